//! Whole DataCluster lifecycles on the simulated control plane
//! (`quiver-kube-sim`), driven by the real `kubectl` and `helm` of
//! `.ci/tools/bin`, with the real operator, worker and dashboard binaries
//! running as pods (local processes on loopback pod IPs) and a real
//! S3-protocol server (s3s-fs) holding the Parquet files.
//!
//! ```text
//! helm install ──▶ 2 operator pods, one Lease holder
//! kubectl apply ─▶ DataCluster "towers" (2 workers)   DataCluster "idle" (1 worker, idleTimeout 1m)
//!                   Ready with the rows (kubectl get dc)  Ready, one query
//!                   login + query = counts of the files
//!                   delete the leading operator pod ──▶ the standby leads within the lease duration
//!                   freeze the leader (SIGSTOP) ──▶ the standby leads; thawed, the old one writes nothing
//!                   write log: no object written by two operator pods in overlapping leadership
//!                   kubectl scale --replicas 3 ──▶ surge re-shard, no partial answer, same counts
//!                   restart annotation ──▶ surge, old workers replaced together, no partial answer
//!                   replicasPerShard: 2 ──▶ 6 pods on 3 shards (pod i serves i mod 3),
//!                                           shards 3/3, rows counted once
//!                   kubectl delete dc ──▶ children and processes gone
//!                                                       idle ──▶ ScaleToZero, workers gone
//!                                                       resume from its dashboard ──▶ Ready, same counts
//! helm uninstall ──▶ nothing of the release left but the CRD
//! ```
//!
//! Simulated: the API server, the workload controllers, the scheduler, the
//! kubelet (processes, not containers), kube-proxy and the cluster DNS. Real:
//! kubectl, helm, the chart, the CRD with its CEL rules, the three Quiver
//! binaries, S3 over HTTP with signed requests, Parquet files.
//!
//! Without kubectl and helm the tests print SKIPPED and pass, unless `CI` is
//! set (`.ci/run` installs them), where they fail.

/// Prints a line and appends it to `control-plane-report.md` in the target's tmp folder, which
/// `.ci/run` shows after the tests (a passing test's output is captured).
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("control-plane-report.md");
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
        }
    }};
}

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use quiver_e2e::cluster::{build_binaries, children_of, cmdline, pid_alive, repo_root, signal};
use quiver_kube_sim::kubelet::PodMode;

/// Rows of the dataset, over `FILES` Parquet files.
const ROWS: u64 = 30_000;
const FILES: u32 = 3;
const DATA_NS: &str = "analytics";
const OPERATOR_NS: &str = "quiver";
/// The operator's lease duration, set through the chart.
const LEASE: Duration = Duration::from_secs(6);
/// The operator's poll interval, set through the chart.
const POLL: Duration = Duration::from_secs(4);
const S3_ACCESS_KEY: &str = "quiver-e2e-reader";
const S3_SECRET_KEY: &str = "quiver-e2e-secret-0123456789";

// ---------------------------------------------------------------- tools

/// kubectl and helm from `.ci/tools/bin`, or `None` (after saying SKIPPED)
/// when absent outside CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let bin = repo_root().join(".ci/tools/bin");
    let (kubectl, helm) = (bin.join("kubectl"), bin.join("helm"));
    if kubectl.is_file() && helm.is_file() {
        return Some((kubectl, helm));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but kubectl/helm are missing from {} (.ci/run installs them)",
        bin.display()
    );
    say!("SKIPPED: kubectl/helm not found in {} (bash .ci/run installs them)", bin.display());
    None
}

/// The worker, dashboard and operator binaries (`QUIVER_BIN_DIR`, else this profile's).
fn binaries() -> PathBuf {
    let dir = build_binaries();
    let op = dir.join("quiver-operator");
    assert!(op.exists(), "{} not found (cargo test --workspace builds it)", op.display());
    dir
}

/// Runs kubectl and helm against the simulator.
struct Cli {
    kubectl: PathBuf,
    helm: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Cli {
    async fn run(&self, bin: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("HELM_CACHE_HOME", self.home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", self.home.join("helm-config"))
            .env("HELM_DATA_HOME", self.home.join("helm-data"))
            .current_dir(repo_root())
            .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run the tool");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} did not finish within 60 s", bin.display()))
            .unwrap()
    }

    async fn kubectl(&self, args: &[&str]) -> Output {
        self.run(&self.kubectl, args, None).await
    }

    /// kubectl that must succeed; its stdout.
    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn kubectl_apply(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.run(&self.kubectl, &args, Some(yaml)).await
    }

    async fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&a).await).expect("kubectl -o json")
    }

    async fn helm_ok(&self, args: &[&str]) -> String {
        let out = self.run(&self.helm, args, None).await;
        assert!(
            out.status.success(),
            "helm {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply` of a Namespace (`kubectl create namespace` posts
    /// protobuf, which the simulator reads for Secrets and ConfigMaps only).
    async fn create_namespace(&self, name: &str) {
        let out =
            self.kubectl_apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"), &[]).await;
        assert!(out.status.success(), "namespace {name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// One row of `kubectl get dc NAME` as column → value (the CRD's printer columns).
    async fn get_dc(&self, name: &str) -> BTreeMap<String, String> {
        let out = self.kubectl_ok(&["get", "dc", name, "-n", DATA_NS]).await;
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        header.iter().zip(row.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()
    }
}

/// Polls `check` until it gives a value or `limit` passes; panics with the last reason.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: not within {limit:?}; last: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---------------------------------------------------------------- data

/// A real S3 server (s3s-fs over a directory, each subdirectory a bucket) on
/// 127.0.0.1, checking SigV4 signatures with one access key.
struct S3Server {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    async fn start(root: &Path) -> S3Server {
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(S3_ACCESS_KEY, S3_SECRET_KEY));
        let service = b.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let svc = service.clone();
                tokio::spawn(async move {
                    let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = http.serve_connection(hyper_util::rt::TokioIo::new(sock), svc).await;
                });
            }
        });
        S3Server { endpoint: format!("http://{addr}"), task }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rows per `radio` value, read back from the Parquet files (null as `None`).
fn radio_counts(dir: &Path) -> BTreeMap<Option<String>, u64> {
    use arrow_array::{Array, StringArray};
    let mut counts = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), FILES as usize, "{files:?}");
    for f in files {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col =
                arrow_cast::cast(batch.column_by_name("radio").expect("a radio column"), &arrow_schema::DataType::Utf8)
                    .unwrap();
            let col = col.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..col.len() {
                let v = (!col.is_null(i)).then(|| col.value(i).to_string());
                *counts.entry(v).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// What a dashboard's answer must hold: the radio histogram of the files.
#[derive(Clone)]
struct Reference {
    radio: BTreeMap<Option<String>, u64>,
}

impl Reference {
    /// Checks a `/api/query` answer: complete, every row counted once.
    fn check(&self, answer: &Value, shards: u64) -> Result<(), String> {
        if answer["partial"] != json!(false) || answer["shards"]["expected"] != json!(shards) {
            return Err(format!("not a complete answer of {shards} shards: {}", answer["shards"]));
        }
        let total: u64 = self.radio.values().sum();
        if answer["total"] != json!(total) || answer["selected"] != json!(total) {
            return Err(format!("total {} selected {}, want {total}", answer["total"], answer["selected"]));
        }
        let hist = &answer["histograms"]["radio"];
        let bins = hist["bins"].as_array().ok_or("no radio histogram")?;
        let labels: BTreeSet<String> = bins.iter().filter_map(|b| b["label"].as_str().map(String::from)).collect();
        for b in bins {
            let label = b["label"].as_str().unwrap_or_default();
            let want: u64 = if label == "Other" {
                self.radio.iter().filter(|(k, _)| k.as_ref().is_some_and(|k| !labels.contains(k))).map(|(_, n)| n).sum()
            } else {
                self.radio.get(&Some(label.to_string())).copied().unwrap_or(0)
            };
            if b["count"] != json!(want) {
                return Err(format!("radio {label}: {} rows, the files hold {want}", b["count"]));
            }
        }
        let missing = self.radio.get(&None).copied().unwrap_or(0);
        if hist["missing"] != json!(missing) {
            return Err(format!("radio missing {}, the files hold {missing} nulls", hist["missing"]));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the cluster

fn labels_match(obj: &Value, selector: &[(&str, &str)]) -> bool {
    selector.iter().all(|(k, v)| obj["metadata"]["labels"][*k].as_str() == Some(*v))
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Pods of one DataCluster's component, straight from the simulator's store
/// (free: not an API request, so not counted anywhere).
fn pods_of(handle: &quiver_kube_sim::Handle, cluster: &str, component: &str) -> Vec<Value> {
    let (pods, _) = handle.sim.store.list("pods", Some(DATA_NS));
    let mut pods: Vec<Value> = pods
        .into_iter()
        .filter(|p| {
            labels_match(p, &[("app.kubernetes.io/instance", cluster), ("app.kubernetes.io/component", component)])
        })
        .collect();
    pods.sort_by_key(name_of);
    pods
}

/// Processes of the pods the simulator runs (they are this test's children),
/// by pod IP: (pid, binary name).
fn pod_processes() -> BTreeMap<String, Vec<(u32, String)>> {
    let mut out: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for pid in children_of(std::process::id()) {
        if !pid_alive(pid) {
            continue;
        }
        let Some(bin) = cmdline(pid).first().cloned() else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let ip = env
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix("POD_IP="))
            .map(str::to_string);
        if let Some(ip) = ip {
            let name = Path::new(&bin).file_name().unwrap_or_default().to_string_lossy().into_owned();
            out.entry(ip).or_default().push((pid, name));
        }
    }
    out
}

/// A pod's environment variable, from its spec.
fn pod_env(pod: &Value, name: &str) -> Option<String> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}

/// Each Ready worker pod of a cluster: (ordinal, shard, shards) as the worker
/// itself reports them over Flight (`stats`), with the cluster's worker token.
async fn worker_shards(cli: &Cli, handle: &quiver_kube_sim::Handle, cluster: &str) -> Vec<(u32, u32, u32)> {
    let secret = cli.kubectl_json(&["get", "secret", &format!("{cluster}-worker-token"), "-n", DATA_NS]).await;
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str().expect("a token key"))
        .unwrap();
    let token = String::from_utf8(token).unwrap();
    let prefix = format!("{cluster}-workers-");
    let mut out = Vec::new();
    for p in pods_of(handle, cluster, "worker").iter().filter(|p| ready(p)) {
        let name = name_of(p);
        let Some(ordinal) = name.strip_prefix(&prefix).and_then(|o| o.parse::<u32>().ok()) else { continue };
        let ip = p["status"]["podIP"].as_str().expect("a Ready pod has an IP");
        let client =
            quiver_worker::flight::client::WorkerClient::connect(&format!("http://{ip}:8815"), Some(token.clone()))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let stats = client.stats().await.unwrap_or_else(|e| panic!("{name} stats: {e}"));
        out.push((ordinal, stats.shard, stats.shards));
    }
    out.sort();
    out
}

/// A logged-in session on a DataCluster's dashboard pod.
#[derive(Clone)]
struct Dashboard {
    http: reqwest::Client,
    base: String,
}

impl Dashboard {
    async fn login(cli: &Cli, handle: &quiver_kube_sim::Handle, cluster: &str) -> Dashboard {
        let secret = cli.kubectl_json(&["get", "secret", &format!("{cluster}-dashboard-token"), "-n", DATA_NS]).await;
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["token"].as_str().expect("a token key"))
            .unwrap();
        let token = String::from_utf8(token).unwrap();
        let ip = eventually(&format!("{cluster}'s dashboard pod Ready"), Duration::from_secs(60), || async {
            pods_of(handle, cluster, "dashboard")
                .iter()
                .find(|p| ready(p))
                .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
                .ok_or_else(|| "no ready dashboard pod".to_string())
        })
        .await;
        let http =
            reqwest::Client::builder().cookie_store(true).no_proxy().timeout(Duration::from_secs(20)).build().unwrap();
        let base = format!("http://{ip}:8050");
        let r = http.post(format!("{base}/login")).json(&json!({"token": token})).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204, "login on {cluster}'s dashboard");
        // A wrong token is refused: the session above came from the right one.
        let bad = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = bad.post(format!("{base}/login")).json(&json!({"token": "not-the-token"})).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        Dashboard { http, base }
    }

    async fn query(&self) -> Result<Value, String> {
        let r = self
            .http
            .post(format!("{}/api/query", self.base))
            .json(&json!({"dataset": "celltowers", "histograms": ["radio"]}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = r.status().as_u16();
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(format!("HTTP {code}: {body}"));
        }
        Ok(body)
    }

    /// Queries until the answer is complete over `shards` shards and equals the reference.
    async fn counts_match(&self, reference: &Reference, shards: u64, what: &str) -> Duration {
        let t = Instant::now();
        eventually(what, Duration::from_secs(60), || async {
            let a = self.query().await?;
            reference.check(&a, shards)
        })
        .await;
        t.elapsed()
    }

    async fn status(&self) -> Value {
        self.http.get(format!("{}/api/status", self.base)).send().await.unwrap().json().await.unwrap()
    }
}

/// Answers seen while a cluster changes shape.
#[derive(Debug, Default)]
struct Tally {
    complete: u64,
    partial: u64,
    failed: u64,
    /// Complete answers whose counts differ from the files: must stay empty.
    wrong: Vec<String>,
}

/// Queries the dashboard every 100 ms until `stop`: a complete answer (not
/// `partial`) must equal the files whatever the shard count; partial answers
/// and errors are allowed while workers come and go.
fn keep_querying(
    ui: Dashboard,
    reference: Reference,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Tally> {
    tokio::spawn(async move {
        let mut tally = Tally::default();
        while !*stop.borrow() {
            match ui.query().await {
                Ok(a) if a["partial"] == json!(false) => {
                    tally.complete += 1;
                    let shards = a["shards"]["expected"].as_u64().unwrap_or(0);
                    if let Err(e) = reference.check(&a, shards) {
                        tally.wrong.push(e);
                    }
                }
                Ok(_) => tally.partial += 1,
                Err(_) => tally.failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tally
    })
}

/// Prints the tail of every pod's log when the test fails half-way.
struct LogsOnPanic(PathBuf);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut stack = vec![self.0.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() && !p.ends_with("volumes") {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    eprintln!("---- {} (last 15 lines)", p.display());
                    for l in &lines[lines.len().saturating_sub(15)..] {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

fn datacluster_yaml(name: &str, replicas: u32, s3: &str, extra: &str) -> String {
    format!(
        "apiVersion: quiver.dev/v1alpha1
kind: DataCluster
metadata:
  name: {name}
  namespace: {DATA_NS}
spec:
  workers:
    replicas: {replicas}
{extra}  datasets:
    - name: celltowers
      preset: celltowers
      source: s3://quiver/celltowers/
      format: parquet
      s3:
        endpoint: {s3}
        region: us-east-1
        allowHttp: true
        pathStyle: true
      credentialsSecret:
        name: s3-reader
        accessKeyIdKey: accessKeyId
        secretAccessKeyKey: secretAccessKey
"
    )
}

/// Waits for `kubectl get dc NAME` to show Ready, `workers/workers` and every row.
async fn dc_ready(cli: &Cli, name: &str, workers: u32) -> Duration {
    let t = Instant::now();
    let want = format!("{workers}/{workers}");
    eventually(&format!("kubectl get dc {name}: Ready {want} with {ROWS} rows"), Duration::from_secs(120), || async {
        let row = cli.get_dc(name).await;
        let ok = row.get("PHASE").map(String::as_str) == Some("Ready")
            && row.get("WORKERS") == Some(&want)
            && row.get("ROWS") == Some(&ROWS.to_string());
        if ok { Ok(()) } else { Err(format!("{row:?}")) }
    })
    .await;
    t.elapsed()
}

async fn lease_holder(cli: &Cli) -> Option<String> {
    let out = cli
        .kubectl(&["get", "lease", "quiver-operator", "-n", OPERATOR_NS, "-o", "jsonpath={.spec.holderIdentity}"])
        .await;
    let h = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !h.is_empty()).then_some(h)
}

fn operator_pods(handle: &quiver_kube_sim::Handle) -> Vec<Value> {
    let (pods, _) = handle.sim.store.list("pods", Some(OPERATOR_NS));
    let mut pods: Vec<Value> = pods
        .into_iter()
        .filter(|p| {
            labels_match(p, &[("app.kubernetes.io/name", "quiver-operator")])
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect();
    pods.sort_by_key(name_of);
    pods
}

// ---------------------------------------------------------------- leadership

/// The operator pod that sent a write, from its client name (the simulator's
/// pod identity, `system:serviceaccount:NS:SA@POD`), or `None` for any other client.
fn operator_pod_of(w: &quiver_kube_sim::writes::Write) -> Option<&str> {
    let rest = w.client.strip_prefix(&format!("system:serviceaccount:{OPERATOR_NS}:"))?;
    rest.split_once('@').map(|(_, pod)| pod)
}

fn is_lease(w: &quiver_kube_sim::writes::Write) -> bool {
    w.resource == "coordination.k8s.io/leases" && w.namespace == OPERATOR_NS && w.name == "quiver-operator"
}

/// One pod's leadership, in the store's order: from the write that gave it
/// the Lease to the next write of the Lease by another pod (exclusive).
#[derive(Debug, Clone)]
struct Term {
    pod: String,
    start: u64,
    end: u64,
    /// When it took the Lease (µs since the epoch).
    start_micros: u64,
}

/// Leadership terms from the Lease's changes: a term starts at each change
/// of the Lease by a pod other than the one that changed it last (the
/// optimistic concurrency of Lease writes lets only one of two racing pods
/// succeed), and ends where the next one starts.
fn leadership_terms(writes: &[quiver_kube_sim::writes::Write]) -> Vec<Term> {
    let mut lease: Vec<&quiver_kube_sim::writes::Write> = writes.iter().filter(|w| is_lease(w) && w.changed).collect();
    lease.sort_by_key(|w| w.version);
    let mut terms: Vec<Term> = Vec::new();
    for w in lease {
        let Some(pod) = operator_pod_of(w) else { continue };
        if terms.last().is_some_and(|t| t.pod == pod) {
            continue;
        }
        if let Some(t) = terms.last_mut() {
            t.end = w.version;
        }
        terms.push(Term { pod: pod.to_string(), start: w.version, end: u64::MAX, start_micros: w.unix_micros });
    }
    terms
}

/// Every write request of an operator pod (changed or not, refused or not:
/// a replica that only thinks it leads must not even try) that falls
/// outside that pod's own leadership terms, other than its own Lease
/// writes (a standby's acquire is a Lease write outside any term; a
/// refused renewal by a deposed leader changes nothing). As terms never
/// overlap, an empty answer means no object was written by two pods in
/// overlapping leadership.
fn writes_outside_leadership(writes: &[quiver_kube_sim::writes::Write], terms: &[Term]) -> Vec<String> {
    writes
        .iter()
        .filter_map(|w| Some((operator_pod_of(w)?, w)))
        .filter(|(pod, w)| {
            let inside = terms.iter().any(|t| t.pod == *pod && t.start <= w.version && w.version < t.end);
            let lease_attempt =
                is_lease(w) && (!w.changed || inside || terms.iter().any(|t| t.pod == *pod && t.start == w.version));
            !inside && !lease_attempt
        })
        .map(|(pod, w)| {
            format!("{pod}: {} {} {}/{} ({}) at version {}", w.verb, w.resource, w.namespace, w.name, w.code, w.version)
        })
        .collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_datacluster_lives_its_whole_life_under_helm_kubectl_and_the_real_binaries() {
    let Some((kubectl, helm)) = tools() else { return };
    let bins = binaries();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    // The dataset: Parquet in bucket `quiver` of a local S3 server, and its
    // radio histogram read back from the files.
    let files = dir.path().join("s3/quiver/celltowers");
    std::fs::create_dir_all(&files).unwrap();
    quiver_worker::synth::generate(
        &quiver_worker::synth::GenOptions {
            preset: quiver_worker::spec::Preset::Celltowers,
            rows: ROWS,
            out: format!("file://{}/", files.display()),
            format: quiver_worker::spec::Format::Parquet,
            files: FILES,
            seed: 12,
            s3: Default::default(),
        },
        false,
    )
    .await
    .unwrap();
    let reference = Reference { radio: radio_counts(&files) };
    assert_eq!(reference.radio.values().sum::<u64>(), ROWS);
    let s3 = S3Server::start(&dir.path().join("s3")).await;

    // The simulator, running the three images as local processes.
    let mut config = quiver_kube_sim::Config { pods: PodMode::Process, ..Default::default() };
    config.runtime.root = dir.path().join("pods");
    config.runtime.probe_period = Duration::from_millis(200);
    for b in ["quiver-worker", "quiver-dashboard", "quiver-operator"] {
        config.runtime.images.insert(b.into(), bins.join(b));
    }
    let _logs = LogsOnPanic(dir.path().join("pods"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = quiver_kube_sim::start(listener, config).await.unwrap();
    let cli = Cli { kubectl, helm, kubeconfig: dir.path().join("kubeconfig"), home: dir.path().to_path_buf() };
    handle.write_kubeconfig(&cli.kubeconfig).unwrap();

    // ---- helm install: two operator pods, one leads through the Lease.
    let t = Instant::now();
    let lease = format!("leaderElection.leaseDuration={}s", LEASE.as_secs());
    let poll = format!("pollInterval={}s", POLL.as_secs());
    cli.helm_ok(&[
        "install",
        "quiver",
        "charts/quiver",
        "-n",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        &lease,
        "--set",
        &poll,
    ])
    .await;
    let manifest = cli.helm_ok(&["get", "manifest", "quiver", "-n", OPERATOR_NS]).await;
    let leader = eventually("two operator pods Ready and one holding the Lease", Duration::from_secs(60), || async {
        let pods = operator_pods(&handle);
        let names: Vec<String> = pods.iter().filter(|p| ready(p)).map(name_of).collect();
        let holder = lease_holder(&cli).await;
        match holder {
            Some(h) if names.len() == 2 && names.contains(&h) => Ok(h),
            h => Err(format!("ready operator pods {names:?}, lease holder {h:?}")),
        }
    })
    .await;
    say!("helm install: 2 operator pods Ready, {leader} leads, in {}", secs(t.elapsed()));

    // ---- Two DataClusters over the S3 data.
    cli.create_namespace(DATA_NS).await;
    cli.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s3-reader",
        "-n",
        DATA_NS,
        &format!("--from-literal=accessKeyId={S3_ACCESS_KEY}"),
        &format!("--from-literal=secretAccessKey={S3_SECRET_KEY}"),
    ])
    .await;
    let t = Instant::now();
    // All of a restart's workers at once (the default replaces a quarter at a time).
    let towers = datacluster_yaml("towers", 2, &s3.endpoint, "    rollout:\n      maxUnavailable: 100%\n");
    let idle = datacluster_yaml("idle", 1, &s3.endpoint, "")
        .replace("  datasets:", "  lifecycle:\n    idleTimeout: 1m\n    onIdle: ScaleToZero\n  datasets:");
    let out = cli.kubectl_apply(&format!("{towers}---\n{idle}"), &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ready_towers = dc_ready(&cli, "towers", 2).await;
    say!("kubectl apply: towers Ready 2/2 with {ROWS} rows in {}", secs(ready_towers));
    dc_ready(&cli, "idle", 1).await;
    say!("kubectl apply: idle Ready 1/1 with {ROWS} rows in {}", secs(t.elapsed()));

    // ---- Login on each dashboard pod; answers equal the files' counts.
    let towers_ui = Dashboard::login(&cli, &handle, "towers").await;
    let took = towers_ui.counts_match(&reference, 2, "towers: complete answer equal to the files").await;
    say!("dashboard towers: login, query over 2 shards = the files' radio counts ({})", secs(took));
    let idle_ui = Dashboard::login(&cli, &handle, "idle").await;
    // Taken before the queries: the workers' last query is no earlier.
    let idle_last_query = Instant::now();
    idle_ui.counts_match(&reference, 1, "idle: complete answer equal to the files").await;
    let idle_pods: Vec<String> = pods_of(&handle, "idle", "worker")
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    let idle_procs: Vec<u32> = pod_processes()
        .into_iter()
        .filter(|(ip, _)| idle_pods.contains(ip))
        .flat_map(|(_, v)| v.into_iter().map(|(pid, _)| pid))
        .collect();
    assert_eq!(idle_procs.len(), 1, "one idle worker process");
    say!("dashboard idle: login, query = the files' counts; now left without queries");

    // ---- Delete the leading operator pod: the standby leads within the lease duration.
    // The operator pods' writes so far: only the leader wrote.
    let writes = handle.sim.writes.snapshot();
    let first_terms = leadership_terms(&writes);
    assert_eq!(first_terms.iter().map(|t| t.pod.as_str()).collect::<Vec<_>>(), [leader.as_str()], "one term so far");
    assert!(
        writes.iter().any(|w| operator_pod_of(w) == Some(leader.as_str()) && w.resource.starts_with("quiver.dev/")),
        "the leader wrote the DataClusters' status (so the write log sees the operator pods)"
    );
    let t = Instant::now();
    cli.kubectl_ok(&["delete", "pod", &leader, "-n", OPERATOR_NS, "--wait=false"]).await;
    let new_leader = eventually("another operator pod holding the Lease", LEASE, || async {
        match lease_holder(&cli).await {
            Some(h) if h != leader => Ok(h),
            h => Err(format!("holder {h:?}")),
        }
    })
    .await;
    say!(
        "leader failover: {new_leader} took the Lease {} after {leader} was deleted (lease duration {})",
        secs(t.elapsed()),
        secs(LEASE)
    );

    // ---- Freeze the leader (SIGSTOP: a hung node or a partition, no chance to
    // release): the standby takes over once the Lease has gone unrenewed for
    // the lease duration, and the old leader, thawed, stops instead of leading too.
    let standby = eventually("a second operator pod Ready", Duration::from_secs(30), || async {
        let names: Vec<String> = operator_pods(&handle).iter().filter(|p| ready(p)).map(name_of).collect();
        match names.iter().find(|n| **n != new_leader) {
            Some(n) if names.len() == 2 => Ok(n.clone()),
            _ => Err(format!("ready operator pods {names:?}")),
        }
    })
    .await;
    let frozen_ip = operator_pods(&handle)
        .iter()
        .find(|p| name_of(p) == new_leader)
        .and_then(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .expect("the leader's pod IP");
    let frozen = pod_processes()
        .remove(&frozen_ip)
        .and_then(|v| v.into_iter().find(|(_, b)| b == "quiver-operator"))
        .map(|(pid, _)| pid)
        .expect("the leader's process");
    let t = Instant::now();
    signal(i64::from(frozen), "STOP");
    // The standby judges expiry by its own clock, as client-go does: the
    // Lease must look unchanged for the lease duration from the first look
    // that saw the last renewal (up to one look after it), and it looks every
    // third of the duration; so at most the duration plus two looks.
    let limit = LEASE + LEASE * 2 / 3 + Duration::from_secs(1);
    let took_over = eventually("the standby holding the Lease of a frozen leader", limit, || async {
        match lease_holder(&cli).await {
            Some(h) if h == standby => Ok(t.elapsed()),
            h => Err(format!("holder {h:?}")),
        }
    })
    .await;
    // Nor earlier than a valid Lease allows: the last renewal was at most a
    // third of the duration before the stop, so the Lease was valid until at
    // least two thirds of the duration after it.
    assert!(
        took_over + Duration::from_millis(200) >= LEASE * 2 / 3,
        "the standby took a Lease still valid ({} after the leader stopped)",
        secs(took_over)
    );
    signal(i64::from(frozen), "CONT");
    let t = Instant::now();
    eventually("the thawed old leader exits (it lost the Lease)", LEASE, || async {
        if pid_alive(frozen) { Err("still running".to_string()) } else { Ok(()) }
    })
    .await;
    let stepped_down = t.elapsed();
    assert_eq!(lease_holder(&cli).await.as_deref(), Some(standby.as_str()), "the Lease stays with the new leader");
    say!(
        "frozen leader: {standby} took the Lease {} after {new_leader} was stopped (lease duration {}, a standby looks every {}); thawed, the old leader exited {} later",
        secs(took_over),
        secs(LEASE),
        secs(LEASE / 3),
        secs(stepped_down)
    );

    // ---- kubectl scale: re-shard to 3 by a surge (the default strategy): the
    // 3 new shards load in towers-surge while the 2 old ones answer, the
    // dashboard is switched over once all are loaded, towers-workers is
    // re-sharded behind it and switched back to. No row lost or counted
    // twice, and no partial answer at any time.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let during = keep_querying(towers_ui.clone(), reference.clone(), stopped);
    let t = Instant::now();
    cli.kubectl_ok(&["scale", "dc", "towers", "-n", DATA_NS, "--replicas", "3"]).await;
    // The stages the RollingOut condition went through, as kubectl shows them.
    let stages: std::cell::RefCell<Vec<String>> = Default::default();
    let surge_seen = std::cell::Cell::new(false);
    let took =
        eventually("towers: Ready 3/3, the surge StatefulSet and its pods gone", Duration::from_secs(180), || async {
            let dc = cli.kubectl_json(&["get", "dc", "towers", "-n", DATA_NS]).await;
            let reason = dc["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "RollingOut"))
                .and_then(|c| c["reason"].as_str())
                .unwrap_or_default()
                .to_string();
            if stages.borrow().last() != Some(&reason) {
                stages.borrow_mut().push(reason);
            }
            let surge = handle.sim.store.get("statefulsets.apps", DATA_NS, "towers-surge");
            surge_seen.set(surge_seen.get() || surge.is_some());
            let pods = pods_of(&handle, "towers", "worker");
            let row = cli.get_dc("towers").await;
            let ready = row.get("PHASE").map(String::as_str) == Some("Ready")
                && row.get("WORKERS").map(String::as_str) == Some("3/3");
            let settled = stages.borrow().last().map(String::as_str) == Some("Idle");
            if ready && surge.is_none() && pods.len() == 3 && settled {
                Ok(t.elapsed())
            } else {
                Err(format!(
                    "{row:?}, surge {}, {} worker pods, stages {:?}",
                    surge.is_some(),
                    pods.len(),
                    stages.borrow()
                ))
            }
        })
        .await;
    let stages = stages.into_inner();
    let surge_seen = surge_seen.get();
    assert!(surge_seen, "the re-shard ran a surge StatefulSet");
    // (SurgeLoading lasts as long as a load, which may fall between two looks;
    // the two switches each last the 15 s drain.)
    for want in ["SurgeSwitched", "SurgeReturned"] {
        assert!(stages.iter().any(|s| s == want), "RollingOut went through {want}: {stages:?}");
    }
    let pods = pods_of(&handle, "towers", "worker");
    for p in &pods {
        assert_eq!(pod_env(p, "QUIVER_SHARDS").as_deref(), Some("3"), "{} runs on 3 shards", name_of(p));
        assert!(name_of(p).starts_with("towers-workers-"), "{} belongs to towers-workers", name_of(p));
    }
    let q = towers_ui.counts_match(&reference, 3, "towers: complete answer over 3 shards equal to the files").await;
    stop.send(true).unwrap();
    let tally = during.await.unwrap();
    say!("  answers during the surge re-shard: {tally:?}");
    assert!(tally.wrong.is_empty(), "complete answers with wrong counts during the re-shard: {:?}", tally.wrong);
    assert_eq!(tally.partial, 0, "partial answers during the surge re-shard: {tally:?}");
    assert_eq!(tally.failed, 0, "failed answers during the surge re-shard: {tally:?}");
    assert!(tally.complete > 20, "the dashboard was queried all along: {tally:?}");
    say!(
        "kubectl scale --replicas 3 (Surge): settled in {} (by the third leader; stages {}), {} complete answers, 0 partial, 0 failed; answers over 3 shards equal the files {} later",
        secs(took),
        stages.join(" -> "),
        tally.complete,
        secs(q)
    );

    // ---- Restart annotation: a surge rollout (a new template, the same
    // shards). The new workers load in NAME-surge while the old ones answer;
    // the old ones are then replaced together while the surge answers.
    let before: BTreeMap<String, String> = pods_of(&handle, "towers", "worker")
        .iter()
        .map(|p| (name_of(p), p["metadata"]["uid"].as_str().unwrap_or_default().to_string()))
        .collect();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let during = keep_querying(towers_ui.clone(), reference.clone(), stopped);
    let t = Instant::now();
    cli.kubectl_ok(&[
        "annotate",
        "dc",
        "towers",
        "-n",
        DATA_NS,
        "--overwrite",
        "quiver.dev/restartedAt=2026-01-01T00:00:00Z",
    ])
    .await;
    // Per pod name: when its old pod was first seen going, when its new one was Ready.
    let mut gone: BTreeMap<String, Instant> = BTreeMap::new();
    let mut back: BTreeMap<String, Instant> = BTreeMap::new();
    let mut most_down = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while back.len() < before.len() {
        assert!(Instant::now() < deadline, "restart rollout: {back:?} of {before:?} replaced within 120 s");
        let pods = pods_of(&handle, "towers", "worker");
        let mut down = 0;
        for (name, old_uid) in &before {
            let pod = pods.iter().find(|p| &name_of(p) == name);
            let uid = pod.and_then(|p| p["metadata"]["uid"].as_str());
            let serving = pod.is_some_and(|p| p["metadata"]["deletionTimestamp"].is_null() && ready(p));
            match (uid == Some(old_uid.as_str()), serving) {
                (true, true) => {}
                (false, true) => {
                    gone.entry(name.clone()).or_insert_with(Instant::now);
                    back.entry(name.clone()).or_insert_with(Instant::now);
                }
                (_, false) => {
                    gone.entry(name.clone()).or_insert_with(Instant::now);
                    down += 1;
                }
            }
        }
        most_down = most_down.max(down);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_gone = *gone.values().min().unwrap();
    let rollout = *back.values().max().unwrap() - first_gone;
    let each: Vec<Duration> = back.iter().map(|(n, at)| *at - gone[n]).collect();
    let serial: Duration = each.iter().sum();
    say!(
        "restart annotation: {} workers replaced in {} (started {} after the annotation); each took {:?}, {} one after the other; at most {most_down} down at once",
        before.len(),
        secs(rollout),
        secs(first_gone - t),
        each.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        secs(serial)
    );
    // One at a time (N x load time) never has two workers down; maxUnavailable 100% takes all down together.
    assert_eq!(most_down, before.len(), "the workers were not replaced together ({most_down} down at most)");
    dc_ready(&cli, "towers", 3).await;
    towers_ui.counts_match(&reference, 3, "towers after the restart: answers equal the files").await;
    stop.send(true).unwrap();
    let tally = during.await.unwrap();
    say!("  answers during the restart: {tally:?}");
    assert!(tally.wrong.is_empty(), "complete answers with wrong counts during the restart: {:?}", tally.wrong);
    // The surge answered while the workers were replaced: no answer was partial or failed.
    assert_eq!(tally.partial, 0, "partial answers during the restart: {tally:?}");
    assert_eq!(tally.failed, 0, "failed answers during the restart: {tally:?}");

    // ---- replicasPerShard: 2 on the 3 shards: 6 pods, pod i serving shard
    // i mod 3, each shard counted once in the status (rows = the files').
    // Going from 1 to 2 adds the placement rules to the template, so the 3
    // old pods are replaced too, each once another replica of its shard loaded.
    // The dashboard's replica-aware fan-out asks one loaded replica per
    // shard: no answer may count a shard twice while the replicas come.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let during = keep_querying(towers_ui.clone(), reference.clone(), stopped);
    let t = Instant::now();
    cli.kubectl_ok(&[
        "patch",
        "dc",
        "towers",
        "-n",
        DATA_NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"workers":{"replicasPerShard":2}}}"#,
    ])
    .await;
    let took = dc_ready(&cli, "towers", 6).await;
    let sts = handle.sim.store.get("statefulsets.apps", DATA_NS, "towers-workers").expect("towers-workers");
    assert_eq!(sts["spec"]["replicas"], json!(6), "3 shards × 2 replicas");
    let pods = eventually("towers: 6 worker pods on the current template", Duration::from_secs(60), || async {
        let pods = pods_of(&handle, "towers", "worker");
        let settled = pods.len() == 6
            && pods.iter().all(|p| ready(p) && p["metadata"]["deletionTimestamp"].is_null())
            && pods.iter().all(|p| !p["spec"]["affinity"]["podAntiAffinity"].is_null());
        if settled {
            Ok(pods)
        } else {
            Err(format!("{} pods: {:?}", pods.len(), pods.iter().map(name_of).collect::<Vec<_>>()))
        }
    })
    .await;
    for p in &pods {
        assert_eq!(pod_env(p, "QUIVER_SHARDS").as_deref(), Some("3"), "{} keeps the shard count 3", name_of(p));
    }
    let shards = worker_shards(&cli, &handle, "towers").await;
    assert_eq!(
        shards,
        (0..6).map(|i| (i, i % 3, 3)).collect::<Vec<_>>(),
        "each pod's (ordinal, shard, shards) as its worker reports it"
    );
    let dc = cli.kubectl_json(&["get", "dc", "towers", "-n", DATA_NS]).await;
    let s = &dc["status"];
    assert_eq!(
        (&s["shards"], &s["shardsReady"], &s["replicasPerShard"], &s["minReadyReplicas"], &s["rows"]),
        (&json!(3), &json!(3), &json!(2), &json!(2), &json!(ROWS)),
        "status: {s}"
    );
    assert_eq!(s["datasets"][0]["shardsReady"], json!(3), "status: {s}");
    let row = cli.get_dc("towers").await;
    assert_eq!(
        (row.get("SHARDS").map(String::as_str), row.get("REPLICAS").map(String::as_str)),
        (Some("3/3"), Some("2"))
    );
    let q =
        towers_ui.counts_match(&reference, 3, "towers with 2 replicas: answers over 3 shards equal the files").await;
    stop.send(true).unwrap();
    let tally = during.await.unwrap();
    say!("  answers while the replicas came: {tally:?}");
    assert!(tally.wrong.is_empty(), "complete answers with wrong counts while replicating: {:?}", tally.wrong);
    say!(
        "replicasPerShard 2: towers Ready 6/6 in {} ({} after the patch), pods 0..5 serve shards {:?} of 3 (from their stats), shards 3/3, {ROWS} rows counted once; dashboard answers equal the files {} later",
        secs(took),
        secs(t.elapsed()),
        shards.iter().map(|s| s.1).collect::<Vec<_>>(),
        secs(q)
    );

    // ---- A replicated shard survives its worker: delete towers-workers-1
    // (shard 1; towers-workers-4 holds it too) while querying.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let during = keep_querying(towers_ui.clone(), reference.clone(), stopped);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let old_uid = pods_of(&handle, "towers", "worker")
        .iter()
        .find(|p| name_of(p) == "towers-workers-1")
        .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .expect("towers-workers-1");
    let t = Instant::now();
    cli.kubectl_ok(&["delete", "pod", "towers-workers-1", "-n", DATA_NS, "--wait=false"]).await;
    let back = eventually("towers-workers-1 replaced and Ready", Duration::from_secs(60), || async {
        let pods = pods_of(&handle, "towers", "worker");
        let p = pods.iter().find(|p| name_of(p) == "towers-workers-1");
        match p {
            Some(p) if p["metadata"]["uid"].as_str() != Some(old_uid.as_str()) && ready(p) => Ok(t.elapsed()),
            _ => Err("not back yet".to_string()),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    let tally = during.await.unwrap();
    say!(
        "worker towers-workers-1 deleted with 2 replicas per shard: back Ready in {}; answers meanwhile: {tally:?}",
        secs(back)
    );
    assert!(tally.wrong.is_empty(), "complete answers with wrong counts after losing a replica: {:?}", tally.wrong);
    assert_eq!(tally.partial, 0, "partial answers while shard 1 had a replica left: {tally:?}");
    assert_eq!(tally.failed, 0, "failed answers while shard 1 had a replica left: {tally:?}");

    // ---- No object written by two operator pods in overlapping leadership,
    // from helm install through both failovers and the third leader's
    // re-shard and restart, judged in the store's order.
    let writes = handle.sim.writes.snapshot();
    let terms = leadership_terms(&writes);
    let leaders: Vec<&str> = terms.iter().map(|t| t.pod.as_str()).collect();
    assert_eq!(
        leaders,
        [leader.as_str(), new_leader.as_str(), standby.as_str()],
        "three terms, one per leader: {terms:?}"
    );
    let outside = writes_outside_leadership(&writes, &terms);
    assert!(outside.is_empty(), "operator writes outside their pod's leadership: {outside:#?}");
    // Each handover: every write of the old leader precedes the new leader's first.
    // (Lease writes that changed nothing, such as a deposed leader's renewal
    // refused for its stale resourceVersion, are not writes of anything.)
    let by = |pod: &str| writes.iter().filter(move |w| operator_pod_of(w) == Some(pod)).collect::<Vec<_>>();
    let effective = |pod: &str| by(pod).into_iter().filter(|w| !is_lease(w) || w.changed).collect::<Vec<_>>();
    let mut gaps = Vec::new();
    for pair in terms.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let old_last = effective(&old.pod).into_iter().max_by_key(|w| w.version).expect("the old leader wrote");
        let new_first = effective(&new.pod).into_iter().min_by_key(|w| w.version).expect("the new leader wrote");
        assert!(
            old_last.version < new_first.version,
            "{} wrote {} {}/{} at version {} after {}'s first write at version {}",
            old.pod,
            old_last.resource,
            old_last.namespace,
            old_last.name,
            old_last.version,
            new.pod,
            new_first.version
        );
        gaps.push(Duration::from_micros(new.start_micros.saturating_sub(old_last.unix_micros)));
    }
    // The thawed leader wrote nothing once it had lost the Lease: at most
    // renewals the Lease's resourceVersion refused.
    let deposed: Vec<&quiver_kube_sim::writes::Write> =
        by(&new_leader).into_iter().filter(|w| w.version >= terms[2].start).collect();
    assert!(
        deposed.iter().all(|w| is_lease(w) && !w.changed),
        "the thawed old leader wrote after losing the Lease: {deposed:?}"
    );
    let both: BTreeSet<(String, String, String)> = {
        let written = |pod: &str| -> BTreeSet<(String, String, String)> {
            by(pod)
                .into_iter()
                .filter(|w| w.changed && !is_lease(w))
                .map(|w| (w.resource.clone(), w.namespace.clone(), w.name.clone()))
                .collect()
        };
        let (a, b, c) = (written(&leader), written(&new_leader), written(&standby));
        a.iter()
            .filter(|o| b.contains(*o) || c.contains(*o))
            .chain(b.iter().filter(|o| c.contains(*o)))
            .cloned()
            .collect()
    };
    let counts: Vec<String> =
        terms.iter().map(|t| format!("{} {}", t.pod, by(&t.pod).iter().filter(|w| w.changed).count())).collect();
    say!(
        "leadership: 3 terms ({}), changes by each pod: {}; {} objects written by more than one pod, each only in its own term; old leader's last write to the new leader's Lease take-over: {}; thawed leader: {} refused Lease writes, no other write",
        leaders.join(" -> "),
        counts.join(", "),
        both.len(),
        gaps.iter().map(|g| secs(*g)).collect::<Vec<_>>().join(", "),
        deposed.len()
    );

    // ---- kubectl delete dc: every child garbage-collected, the processes gone.
    let dc = cli.kubectl_json(&["get", "dc", "towers", "-n", DATA_NS]).await;
    let uid = dc["metadata"]["uid"].as_str().unwrap().to_string();
    let ips: BTreeSet<String> = ["worker", "dashboard"]
        .iter()
        .flat_map(|c| pods_of(&handle, "towers", c))
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    let procs: Vec<(u32, String)> =
        pod_processes().into_iter().filter(|(ip, _)| ips.contains(ip)).flat_map(|(_, v)| v).collect();
    assert!(procs.iter().filter(|(_, b)| b == "quiver-worker").count() == 6, "six worker processes: {procs:?}");
    assert!(procs.iter().any(|(_, b)| b == "quiver-dashboard"), "a dashboard process: {procs:?}");
    let t = Instant::now();
    cli.kubectl_ok(&["delete", "dc", "towers", "-n", DATA_NS]).await;
    eventually("every child of towers gone with its processes", Duration::from_secs(60), || async {
        let left: Vec<String> = handle
            .sim
            .store
            .all()
            .into_iter()
            .filter(|(_, _, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().any(|r| r["uid"] == uid.as_str()))
                    || labels_match(o, &[("app.kubernetes.io/instance", "towers")])
            })
            .map(|(k, ns, o)| format!("{k} {ns}/{}", name_of(&o)))
            .collect();
        let running: Vec<&(u32, String)> = procs.iter().filter(|(pid, _)| pid_alive(*pid)).collect();
        if left.is_empty() && running.is_empty() { Ok(()) } else { Err(format!("left {left:?}, running {running:?}")) }
    })
    .await;
    say!("kubectl delete dc towers: children and {} processes gone in {}", procs.len(), secs(t.elapsed()));

    // ---- idle: ScaleToZero after a minute without queries (perhaps already:
    // the phases above can outlast the minute).
    let suspended = eventually(
        "idle: Suspended (Idle) with its workers gone",
        Duration::from_secs(60) + POLL * 3 + Duration::from_secs(30),
        || async {
            let dc = cli.kubectl_json(&["get", "dc", "idle", "-n", DATA_NS]).await;
            let s = &dc["status"];
            let ok = s["phase"] == "Suspended"
                && s["suspendReason"] == "Idle"
                && pods_of(&handle, "idle", "worker").is_empty()
                && !pid_alive(idle_procs[0]);
            if ok { Ok(idle_last_query.elapsed()) } else { Err(format!("status {s}")) }
        },
    )
    .await;
    assert!(
        suspended >= Duration::from_secs(60),
        "suspended {} after the last query, before the 1m idle timeout",
        secs(suspended)
    );
    assert_eq!(cli.get_dc("idle").await.get("PHASE").map(String::as_str), Some("Suspended"));
    let status = idle_ui.status().await;
    assert_eq!(status["suspended"], json!(true), "the dashboard says suspended: {status}");
    say!(
        "idle: ScaleToZero {} after its last query (idleTimeout 1m, poll {}), worker process gone",
        secs(suspended),
        secs(POLL)
    );

    // ---- Resume from the dashboard: Ready again, the same counts.
    let r = idle_ui.http.post(format!("{}/api/resume", idle_ui.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "resume: {}", r.text().await.unwrap_or_default());
    let took = dc_ready(&cli, "idle", 1).await;
    let q = idle_ui.counts_match(&reference, 1, "idle after resume: answers equal the files").await;
    say!("resume from the dashboard: Ready 1/1 in {}, answers equal the files {} later", secs(took), secs(q));
    assert_eq!(idle_ui.status().await["suspended"], json!(false));

    // ---- helm uninstall: nothing of the release left, the CRD kept.
    cli.kubectl_ok(&["delete", "dc", "idle", "-n", DATA_NS]).await;
    let operator_ips: BTreeSet<String> =
        operator_pods(&handle).iter().filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string)).collect();
    let operator_procs: Vec<u32> = pod_processes()
        .into_iter()
        .filter(|(ip, _)| operator_ips.contains(ip))
        .flat_map(|(_, v)| v.into_iter().map(|(pid, _)| pid))
        .collect();
    assert_eq!(operator_procs.len(), 2, "two operator processes");
    let released: Vec<(String, String)> = manifest
        .split("\n---")
        .filter_map(|doc| {
            let v: Value = serde_yaml::from_str(doc).ok()?;
            Some((v["kind"].as_str()?.to_string(), v["metadata"]["name"].as_str()?.to_string()))
        })
        .collect();
    assert!(released.len() >= 5, "the release's objects: {released:?}");
    let t = Instant::now();
    cli.helm_ok(&["uninstall", "quiver", "-n", OPERATOR_NS]).await;
    eventually("the release's objects and operator processes gone", Duration::from_secs(60), || async {
        let left: Vec<String> = handle
            .sim
            .store
            .all()
            .into_iter()
            .filter(|(k, _, o)| {
                let kind = o["kind"].as_str().unwrap_or_default();
                (released.iter().any(|(rk, rn)| rk == kind && *rn == name_of(o)) && k != "namespaces")
                    || (k == "pods" && labels_match(o, &[("app.kubernetes.io/name", "quiver-operator")]))
                    || labels_match(o, &[("app.kubernetes.io/managed-by", "quiver-operator")])
            })
            .map(|(k, ns, o)| format!("{k} {ns}/{}", name_of(&o)))
            .collect();
        let running: Vec<u32> = operator_procs.iter().copied().filter(|p| pid_alive(*p)).collect();
        if left.is_empty() && running.is_empty() { Ok(()) } else { Err(format!("left {left:?}, running {running:?}")) }
    })
    .await;
    let crd = cli.kubectl_json(&["get", "crd", "dataclusters.quiver.dev"]).await;
    assert_eq!(crd["metadata"]["name"], "dataclusters.quiver.dev", "the CRD stays");
    // Left in the operator's namespace: only the Lease (the operators' own,
    // not the release's), released by the last holder on SIGTERM.
    let ns_left: Vec<String> = handle
        .sim
        .store
        .all()
        .iter()
        .filter(|(k, ns, _)| ns == OPERATOR_NS && !k.ends_with("events"))
        .map(|(k, _, o)| format!("{k}/{}", name_of(o)))
        .collect();
    assert_eq!(ns_left, vec!["leases.coordination.k8s.io/quiver-operator".to_string()], "left in {OPERATOR_NS}");
    assert_eq!(lease_holder(&cli).await, None, "the Lease was released");
    say!(
        "helm uninstall: {} objects of the release and both operator processes gone in {}; CRD kept; left in {OPERATOR_NS}: the released Lease",
        released.len(),
        secs(t.elapsed())
    );
    say!("control plane lifecycle: {} in all", secs(started.elapsed()));
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_apply_server_side_and_an_invalid_datacluster_is_refused_by_the_cel_rules() {
    let Some((kubectl, helm)) = tools() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = quiver_kube_sim::start(listener, quiver_kube_sim::Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { kubectl, helm, kubeconfig: dir.path().join("kubeconfig"), home: dir.path().to_path_buf() };
    handle.write_kubeconfig(&cli.kubeconfig).unwrap();

    let out = cli.kubectl_ok(&["apply", "--server-side", "-f", "crds/"]).await;
    assert!(out.contains("dataclusters.quiver.dev serverside-applied"), "{out}");
    let generation =
        cli.kubectl_json(&["get", "crd", "dataclusters.quiver.dev"]).await["metadata"]["generation"].clone();
    // Applying the same files again changes nothing.
    cli.kubectl_ok(&["apply", "--server-side", "-f", "crds/"]).await;
    let crd = cli.kubectl_json(&["get", "crd", "dataclusters.quiver.dev"]).await;
    assert_eq!(crd["metadata"]["generation"], generation);
    cli.create_namespace(DATA_NS).await;

    // Each rule's message, as the CRD states it.
    let crd_text = std::fs::read_to_string(repo_root().join("crds/datacluster.yaml")).unwrap();
    let message = |rule_start: &str| -> String {
        let at = crd_text.find(rule_start).unwrap_or_else(|| panic!("no rule with {rule_start:?} in crds/"));
        let before = &crd_text[..at];
        let line = before.lines().rev().find(|l| l.trim_start().starts_with("- message:")).unwrap();
        line.trim_start().trim_start_matches("- message:").trim().to_string()
    };
    let cases = [
        ("  lifecycle:\n    idleTimeout: 30s\n    onIdle: ScaleToZero\n", message("duration(self) >= duration('1m')")),
        (
            "  dashboard:\n    autoscaling: {minReplicas: 3, maxReplicas: 2}\n",
            message("self.maxReplicas >= self.minReplicas"),
        ),
    ];
    for (extra, want) in cases {
        let yaml =
            datacluster_yaml("bad", 1, "http://127.0.0.1:9", "").replace("  datasets:", &format!("{extra}  datasets:"));
        let out = cli.kubectl_apply(&yaml, &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "an invalid DataCluster was accepted: {extra}");
        assert!(err.contains(&want), "kubectl apply's error names the rule's message {want:?}: {err}");
        say!("refused at apply: {}", err.trim());
    }
    // Replicas per shard: more than 5 (the schema's maximum), or more than
    // 1024 worker pods in all (the CEL rule over replicas × replicasPerShard).
    let too_many_pods = message("self.replicas * self.replicasPerShard <= 1024");
    for (shards, replicas, want) in [(1, 6, "replicasPerShard".to_string()), (600, 2, too_many_pods)] {
        let yaml =
            datacluster_yaml("bad", shards, "http://127.0.0.1:9", &format!("    replicasPerShard: {replicas}\n"));
        let out = cli.kubectl_apply(&yaml, &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{shards} shards × {replicas} replicas was accepted");
        assert!(err.contains(&want), "kubectl apply's error names {want:?}: {err}");
        say!("refused at apply: {}", err.trim());
    }
    let out = cli.kubectl(&["get", "dc", "bad", "-n", DATA_NS]).await;
    assert!(!out.status.success(), "nothing was stored");
    // The same cluster with valid values is accepted, replicated too.
    let out = cli.kubectl_apply(&datacluster_yaml("good", 1, "http://127.0.0.1:9", ""), &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replicated = datacluster_yaml("good-replicated", 512, "http://127.0.0.1:9", "    replicasPerShard: 2\n");
    let out = cli.kubectl_apply(&replicated, &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    handle.stop().await;
}
