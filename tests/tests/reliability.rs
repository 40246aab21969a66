//! Reliability under load and faults: 2 workers and 2 dashboards behind nginx
//! (`deploy/launch.sh --s3`, data in a local S3 server), 32 simulated users
//! from `quiver-dashboard load`, and while they run: a dashboard killed, a
//! worker killed and restarted, a worker frozen (SIGSTOP), and the S3 server
//! gone during a reload. Then 2 shards × 2 replicas (`launch.sh --replicas 2`)
//! under the same load: a worker killed, another frozen, and no partial answer.
//! Every phase prints what it did and what held, and
//! appends it to `target/reliability/report.md`; resident memory is read from
//! `/proc` before and after the load.
//!
//! Needs nginx, curl and `python3 -m moto.server` (`.ci/run` installs them):
//! it fails, naming what is missing, rather than skip. Built with an optimised
//! profile (`cargo test --profile ci`, as `.ci/run` does) the figures mean
//! something; in a debug build the test still checks every outcome.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quiver_e2e::cluster::{
    Launched, build_binaries, cmdline, env_file, launch, nginx_available, pid_alive, read, repo_root, rss_kib, signal,
    started_processes, stop_and_check,
};
use serde_json::{Value, json};

const ROWS: u64 = 2_000_000;
const AIS_ROWS: u64 = 600_000;
const CLIENTS: usize = 32;
/// The dashboards' per-worker deadline in this test.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);
const TOKEN: &str = "reliability-token-7c1e0b9d4a5f";

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// Lines for the report: printed now, written at the end.
struct Report {
    lines: Vec<String>,
    path: PathBuf,
}

impl Report {
    fn new() -> Report {
        let dir = repo_root().join("target/reliability");
        std::fs::create_dir_all(&dir).unwrap();
        Report { lines: Vec::new(), path: dir.join("report.md") }
    }

    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.lines.push(line);
        // Written as we go: a failed phase leaves the phases before it on disk.
        let mut f = std::fs::File::create(&self.path).unwrap();
        for l in &self.lines {
            writeln!(f, "{l}").unwrap();
        }
    }
}

/// `deploy/launch.sh --s3` with 2 shards × `replicas` workers and 2
/// dashboards over this test's data.
fn launch_cluster(dir: &Path, replicas: u32) -> Launched {
    let (rows, ais_rows, timeout) = (ROWS.to_string(), AIS_ROWS.to_string(), format!("{}s", WORKER_TIMEOUT.as_secs()));
    let replicas = replicas.to_string();
    let args = [
        "--s3",
        "--workers",
        "2",
        "--replicas",
        &replicas,
        "--dashboards",
        "2",
        "--rows",
        &rows,
        "--ais-rows",
        &ais_rows,
        "--worker-timeout",
        &timeout,
    ];
    launch(dir, &args, TOKEN)
}

/// A process this test started itself (a restarted worker or dashboard).
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a copy of a running process: same command line, same environment.
fn respawn(argv: &[String], env: &[(String, String)], log: &Path) -> Owned {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("restarting {}: {e}", argv[0]));
    Owned(child)
}

fn environ(pid: u32) -> Vec<(String, String)> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// A running `quiver-dashboard load`.
struct Load {
    child: Child,
    report: PathBuf,
}

fn start_load(bin: &Path, url: &str, seconds: u64, report: &Path, seed: u64) -> Load {
    let child = Command::new(bin.join("quiver-dashboard"))
        .args(["load", "--url", url, "--clients", &CLIENTS.to_string()])
        .args(["--duration", &format!("{seconds}s"), "--max-requests", "2000000"])
        .args(["--expect-rows", &format!("celltowers={ROWS}"), "--expect-rows", &format!("ais={AIS_ROWS}")])
        .args(["--request-timeout", "20s", "--seed", &seed.to_string()])
        .arg("--report")
        .arg(report)
        .env("QUIVER_DASHBOARD_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quiver-dashboard load starts");
    Load { child, report: report.to_path_buf() }
}

/// The load's summary and records, once it finished.
struct Finished {
    summary: Value,
    records: Vec<Value>,
    stdout: String,
}

fn finish(load: Load) -> Finished {
    let out = load.child.wait_with_output().expect("load runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&load.report)
            .unwrap_or_else(|e| panic!("the load wrote no report ({e}); exit {}:\n{stdout}\n{stderr}", out.status)),
    )
    .unwrap();
    Finished {
        summary: report["summary"].clone(),
        records: report["records"].as_array().cloned().unwrap_or_default(),
        stdout,
    }
}

fn fig(s: &Value) -> String {
    let l = &s["latency"];
    format!(
        "{} requests ({:.0}/s), {} errors, {} partial, {} wrong totals; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        s["requests"],
        s["throughput"].as_f64().unwrap_or(0.0),
        s["errors"],
        s["partial"],
        s["wrong_totals"],
        l["p50"].as_f64().unwrap_or(0.0),
        l["p95"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0)
    )
}

fn queries(records: &[Value]) -> impl Iterator<Item = &Value> {
    records.iter().filter(|r| r["dataset"].as_str().is_some_and(|d| !d.is_empty()))
}

fn start(r: &Value) -> f64 {
    r["start_ms"].as_f64().unwrap()
}

fn end(r: &Value) -> f64 {
    start(r) + r["latency_ms"].as_f64().unwrap()
}

fn assert_no_errors(phase: &str, f: &Finished) {
    assert_eq!(f.summary["errors"], 0, "{phase}: failed requests:\n{}", f.stdout);
    assert_eq!(f.summary["wrong_totals"], 0, "{phase}: wrong totals presented as complete:\n{}", f.stdout);
}

/// Resident memory of every worker and dashboard, MiB, by "role index".
fn memory(pids: &BTreeMap<String, u32>) -> BTreeMap<String, f64> {
    pids.iter().filter_map(|(name, pid)| rss_kib(*pid).map(|kib| (name.clone(), kib as f64 / 1024.0))).collect()
}

fn fmt_mem(m: &BTreeMap<String, f64>) -> String {
    m.iter().map(|(k, v)| format!("{k} {v:.0} MiB")).collect::<Vec<_>>().join(", ")
}

async fn wait_ready(http: &reqwest::Client, url: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "{url} not ready within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/api/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_holds_under_load_and_faults() {
    assert!(nginx_available(), "the reliability test needs nginx (apt-get install nginx; `bash .ci/run` installs it)");
    let moto = Command::new("python3").args(["-c", "import moto.server"]).output();
    assert!(
        moto.is_ok_and(|o| o.status.success()),
        "the reliability test needs an S3 server: pip install 'moto[server]' (`bash .ci/run` installs it)"
    );
    let bin = build_binaries();
    let profile = bin.file_name().unwrap().to_string_lossy().into_owned();
    let mut rep = Report::new();
    rep.say(format!(
        "# Reliability run ({profile} build; {} cores)\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    ));

    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut l: Launched = launch_cluster(tmp.path(), 1);
    let url = l.url.clone();
    let env = env_file(&l.run_dir.join("cluster.env"));
    let logs = PathBuf::from(&env["QUIVER_LOGS"]);
    let worker_http: Vec<String> = env["QUIVER_WORKERS_HTTP"].split(',').map(String::from).collect();
    let dashboard_urls: Vec<String> = env["QUIVER_DASHBOARDS"].split(',').map(String::from).collect();
    let procs = started_processes(&l.run_dir);
    let pid_of = |role: &str, index: &str| procs.iter().find(|(r, i, _)| r == role && i == index).map(|p| p.2).unwrap();
    let mut served: BTreeMap<String, u32> = procs
        .iter()
        .filter(|(r, _, _)| r == "worker" || r == "dashboard")
        .map(|(r, i, p)| (format!("{r} {i}"), *p))
        .collect();
    rep.say(format!(
        "Cluster: 2 workers (celltowers {ROWS} rows + ais {AIS_ROWS} rows from S3), 2 dashboards behind nginx, \
         ready in {:.1} s; per-worker deadline {} s; {CLIENTS} simulated users per phase.\n",
        t.elapsed().as_secs_f64(),
        WORKER_TIMEOUT.as_secs()
    ));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let st = status(&http, &url).await;
    assert_eq!(st["complete"], true, "complete before the load: {st}");

    // ---------------------------------------------------------------- load
    let mem_start = memory(&served);
    let warm = finish(start_load(&bin, &url, 5, &tmp.path().join("warm.json"), 1));
    assert_no_errors("warm-up", &warm);
    let mem_warm = memory(&served);
    let steady = finish(start_load(&bin, &url, 20, &tmp.path().join("steady.json"), 2));
    let mem_after = memory(&served);
    rep.say("## 1. Load: 20 s through nginx\n");
    rep.say(format!("- all: {}", fig(&steady.summary)));
    for (kind, l) in steady.summary["by_kind"].as_object().unwrap() {
        rep.say(format!(
            "- {kind}: {} requests, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            l["requests"],
            l["p50"].as_f64().unwrap(),
            l["p95"].as_f64().unwrap(),
            l["p99"].as_f64().unwrap()
        ));
    }
    assert_no_errors("steady load", &steady);
    assert_eq!(steady.summary["partial"], 0, "no fault, yet partial answers:\n{}", steady.stdout);
    assert!(steady.summary["requests"].as_u64().unwrap() >= 100, "the load sent too little: {}", steady.stdout);

    // ---------------------------------------------------------------- memory
    rep.say("\n## 2. Memory (VmRSS)\n");
    rep.say(format!("- before any load: {}", fmt_mem(&mem_start)));
    rep.say(format!("- after a 5 s warm-up: {}", fmt_mem(&mem_warm)));
    rep.say(format!("- after the 20 s load: {}", fmt_mem(&mem_after)));
    // Two bounds, checked at the end so that one run reports every phase:
    // - growth after the warm-up ≤ 25% + 32 MiB: the allocator's arenas still
    //   settle for a while (measured: +10% to +24% on 2 cores), while a leak of
    //   50 KB per request would exceed it over the ~1,500 requests of the load;
    // - an absolute ceiling of 512 MiB per worker (it holds 1.3 M rows, 15 MB):
    //   with the worker's scan admission, at most 10 scans hold scratch at
    //   once; without it, every concurrent query held its own and the workers
    //   passed 550 MiB within 20 s.
    const WORKER_CEILING_MIB: f64 = 512.0;
    let grown: Vec<String> = mem_after
        .iter()
        .filter(|(name, after)| {
            **after > mem_warm[*name] * 1.25 + 32.0 || (name.starts_with("worker") && **after > WORKER_CEILING_MIB)
        })
        .map(|(name, after)| format!("{name} grew from {:.0} MiB to {after:.0} MiB", mem_warm[name]))
        .collect();
    rep.say(format!(
        "- bounds: after the warm-up, growth ≤ 25% + 32 MiB per process, and ≤ {WORKER_CEILING_MIB:.0} MiB per worker: {}",
        if grown.is_empty() { "held".to_string() } else { format!("EXCEEDED ({})", grown.join("; ")) }
    ));

    // ---------------------------------------------------------------- dashboard killed
    rep.say("\n## 3. A dashboard killed under load\n");
    let d0 = pid_of("dashboard", "0");
    let (d0_argv, d0_env) = (cmdline(d0), environ(d0));
    let load = start_load(&bin, &url, 12, &tmp.path().join("dkill.json"), 3);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = now_ms();
    signal(d0 as i64, "KILL");
    served.remove("dashboard 0");
    let f = finish(load);
    let after_kill = queries(&f.records).filter(|r| start(r) > killed_at).count();
    let in_flight = f.records.iter().filter(|r| start(r) < killed_at && end(r) > killed_at).count();
    rep.say(format!("- SIGKILL to dashboard 0 at t+4 s: {}", fig(&f.summary)));
    rep.say(format!(
        "- {in_flight} requests were in flight at the kill, {after_kill} queries started after it; nginx retried on dashboard 1"
    ));
    assert_no_errors("dashboard killed", &f);
    assert!(after_kill > 0, "no request ran after the kill");
    // Back to two replicas for the next phases.
    let _d0 = respawn(&d0_argv, &d0_env, &logs.join("dashboard-0-restarted.log"));
    served.insert("dashboard 0".into(), _d0.0.id());
    wait_ready(&http, &format!("{}/readyz", dashboard_urls[0]), Duration::from_secs(30)).await;

    // ---------------------------------------------------------------- worker killed, restarted
    rep.say("\n## 4. A worker killed under load, then restarted\n");
    let w1 = pid_of("worker", "1");
    let (w1_argv, w1_env) = (cmdline(w1), environ(w1));
    let load = start_load(&bin, &url, 30, &tmp.path().join("wkill.json"), 4);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed_at = now_ms();
    signal(w1 as i64, "KILL");
    served.remove("worker 1");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarted_at = now_ms();
    let w1_new = respawn(&w1_argv, &w1_env, &logs.join("worker-1-restarted.log"));
    let reload_time = wait_ready(&http, &format!("{}/readyz", worker_http[1]), Duration::from_secs(120)).await;
    let ready_at = now_ms();
    served.insert("worker 1".into(), w1_new.0.id());
    let f = finish(load);
    let load_end = f.records.iter().map(end).fold(0.0, f64::max);
    assert!(
        ready_at + 4000.0 < load_end,
        "the restarted worker was ready too late ({:.1} s) to check the answers after it",
        reload_time.as_secs_f64()
    );
    let down: Vec<&Value> =
        queries(&f.records).filter(|r| start(r) > killed_at + 500.0 && end(r) < restarted_at).collect();
    let down_partial = down.iter().filter(|r| r["outcome"] == "partial").count();
    // The dashboards reconnect to the restarted worker on their next call to it.
    let grace = 2000.0;
    let back: Vec<&Value> = queries(&f.records).filter(|r| start(r) > ready_at + grace).collect();
    let back_complete = back.iter().filter(|r| r["outcome"] == "complete").count();
    rep.say(format!(
        "- SIGKILL to worker 1 at t+4 s, restarted at t+8 s, reloaded its shard from S3 in {:.1} s",
        reload_time.as_secs_f64()
    ));
    rep.say(format!("- whole phase: {}", fig(&f.summary)));
    rep.say(format!(
        "- while it was down: {down_partial} of {} answers flagged partial, 0 wrong totals presented as complete",
        down.len()
    ));
    rep.say(format!(
        "- from {:.0} s after it was ready: {back_complete} of {} answers complete with the full row count",
        grace / 1000.0,
        back.len()
    ));
    assert_no_errors("worker killed", &f);
    assert!(!down.is_empty(), "no query ran while the worker was down");
    assert_eq!(down_partial, down.len(), "answers while a shard was missing must all be flagged partial");
    assert!(!back.is_empty(), "no query ran after the worker came back");
    assert_eq!(back_complete, back.len(), "answers after the worker came back must be complete");

    // ---------------------------------------------------------------- worker hangs
    rep.say("\n## 5. A worker that hangs (SIGSTOP) under load\n");
    let w0 = pid_of("worker", "0");
    let load = start_load(&bin, &url, 16, &tmp.path().join("hang.json"), 5);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped_at = now_ms();
    signal(w0 as i64, "STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let resumed_at = now_ms();
    signal(w0 as i64, "CONT");
    let f = finish(load);
    let hung: Vec<&Value> =
        queries(&f.records).filter(|r| start(r) > stopped_at + 200.0 && end(r) < resumed_at).collect();
    let hung_partial = hung.iter().filter(|r| r["outcome"] == "partial").count();
    let worst = f.records.iter().map(|r| r["latency_ms"].as_f64().unwrap()).fold(0.0, f64::max);
    let bound_ms = WORKER_TIMEOUT.as_secs_f64() * 1000.0 + 1500.0;
    let back: Vec<&Value> = queries(&f.records).filter(|r| start(r) > resumed_at + 1000.0).collect();
    let back_complete = back.iter().filter(|r| r["outcome"] == "complete").count();
    rep.say(format!("- worker 0 frozen for 7 s: {}", fig(&f.summary)));
    rep.say(format!(
        "- while frozen: {hung_partial} of {} answers flagged partial; slowest request {worst:.0} ms (bound: the {} s deadline + 1.5 s)",
        hung.len(),
        WORKER_TIMEOUT.as_secs()
    ));
    rep.say(format!("- after it resumed: {back_complete} of {} answers complete", back.len()));
    assert_no_errors("worker hangs", &f);
    assert!(!hung.is_empty(), "no query ran while the worker was frozen");
    assert_eq!(hung_partial, hung.len(), "answers without the frozen shard must be flagged partial");
    assert!(worst <= bound_ms, "a user waited {worst:.0} ms, over the {bound_ms:.0} ms bound");
    assert!(!back.is_empty() && back_complete == back.len(), "answers after the worker resumed must be complete");

    // ---------------------------------------------------------------- S3 unreachable during a reload
    rep.say("\n## 6. S3 unreachable during a reload, under load\n");
    let s3 = pid_of("s3", "0");
    signal(s3 as i64, "KILL");
    let t = Instant::now();
    while pid_alive(s3) {
        assert!(t.elapsed() < Duration::from_secs(10), "the S3 server did not die");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let load = start_load(&bin, &url, 10, &tmp.path().join("s3.json"), 6);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = http.post(format!("{url}/api/reload")).bearer_auth(TOKEN).json(&json!({})).send().await.unwrap();
    let reload_status = r.status().as_u16();
    let reload_body: Value = r.json().await.unwrap_or(Value::Null);
    // Each worker retries, gives up, keeps its data and reports the error.
    let t = Instant::now();
    let reported = loop {
        let st = status(&http, &url).await;
        let errors: Vec<String> = st["workers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w["datasets"].as_array().cloned().unwrap_or_default())
            .filter(|d| d["reloading"] == false)
            .filter_map(|d| d["error"].as_str().map(|e| format!("{}: {e}", d["name"].as_str().unwrap_or("?"))))
            .collect();
        if errors.len() >= 4 {
            break (st, errors);
        }
        assert!(t.elapsed() < Duration::from_secs(90), "the failed reload was not reported in /api/status: {st}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let f = finish(load);
    rep.say(format!(
        "- S3 server killed, then POST /api/reload → {reload_status} {}",
        serde_json::to_string(&reload_body).unwrap().chars().take(160).collect::<String>()
    ));
    rep.say(format!(
        "- {:.1} s later /api/status reports on every shard: {}",
        t.elapsed().as_secs_f64(),
        reported.1.first().map(|e| e.chars().take(160).collect::<String>()).unwrap_or_default()
    ));
    rep.say(format!("- meanwhile the old data kept serving: {}", fig(&f.summary)));
    assert_eq!(reload_status, 202, "reload request accepted: {reload_body}");
    assert_no_errors("S3 unreachable", &f);
    assert_eq!(f.summary["partial"], 0, "the old data must keep serving complete answers:\n{}", f.stdout);
    assert_eq!(reported.0["complete"], true, "shards still complete after the failed reload: {}", reported.0);
    let catalogue: Value =
        http.get(format!("{url}/api/datasets")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    for d in ["celltowers", "ais"] {
        let entry = catalogue["datasets"].as_array().unwrap().iter().find(|e| e["name"] == d).unwrap();
        let first_dim = entry["dimensions"][0]["name"].clone();
        let a: Value = http
            .post(format!("{url}/api/query"))
            .bearer_auth(TOKEN)
            .json(&json!({"dataset": d, "histograms": [first_dim]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let want = if d == "ais" { AIS_ROWS } else { ROWS };
        assert_eq!(
            (a["total"].as_u64(), &a["partial"]),
            (Some(want), &json!(false)),
            "{d} after the failed reload: {a}"
        );
    }

    // ---------------------------------------------------------------- final memory, secrets in logs
    let mem_end = memory(&served);
    rep.say("\n## 7. After every fault\n");
    rep.say(format!("- memory: {}", fmt_mem(&mem_end)));
    let secrets = [
        ("dashboard token", TOKEN.to_string()),
        ("worker token", read(&l.run_dir.join("secrets/worker-token")).trim().to_string()),
        ("S3 secret key", "quiver-local-secret".to_string()),
    ];
    let mut scanned = 0usize;
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
        for line in text.lines() {
            scanned += 1;
            for (what, s) in &secrets {
                assert!(!line.contains(s.as_str()), "{what} in {}: {line}", entry.path().display());
            }
        }
    }
    rep.say(format!(
        "- no token or key in {scanned} log lines of {} files (workers, dashboards, nginx, S3, generator)",
        std::fs::read_dir(&logs).unwrap().count()
    ));

    assert!(grown.is_empty(), "memory grew under load beyond the bound: {grown:?}");

    // Processes this test started are not launch.sh's: stop them first.
    drop(w1_new);
    drop(_d0);
    stop_and_check(&mut l).await;

    replicated_phase(&bin, &mut rep, &steady).await;
    rep.say(format!("\nReport: {}", rep.path.display()));
}

/// The 99th percentile of the query answers' latencies (status polls and
/// catalogue requests left out: `/api/status` asks every worker by design,
/// so a frozen one holds it for the worker deadline and reports it down).
fn query_p99(records: &[Value]) -> f64 {
    let mut l: Vec<f64> = queries(records).map(|r| r["latency_ms"].as_f64().unwrap()).collect();
    l.sort_by(f64::total_cmp);
    if l.is_empty() {
        return 0.0;
    }
    l[((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1]
}

/// 2 shards × 2 replicas (`launch.sh --replicas 2`) under the same 32 users:
/// a worker killed, then another frozen, must give no partial answer and no
/// error, with the query p99 within 2× the replicated steady state; and the
/// throughput of the mix next to the unreplicated cluster's on the same cores.
async fn replicated_phase(bin: &Path, rep: &mut Report, unreplicated: &Finished) {
    rep.say("\n## 8. Replicas: 2 shards × 2 replicas\n");
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut l: Launched = launch_cluster(tmp.path(), 2);
    let url = l.url.clone();
    let procs = started_processes(&l.run_dir);
    let worker = |i: &str| procs.iter().find(|(r, idx, _)| r == "worker" && idx == i).map(|p| p.2).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let st = status(&http, &url).await;
    assert_eq!(st["complete"], true, "complete before the load: {st}");
    let replicas: Vec<usize> =
        st["replicas"].as_array().unwrap().iter().map(|s| s["replicas"].as_array().unwrap().len()).collect();
    assert_eq!(replicas, vec![2, 2], "/api/status lists two replicas per shard: {st}");
    rep.say(format!(
        "- 4 workers (worker i serves shard i mod 2), 2 dashboards behind nginx, ready in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let warm = finish(start_load(bin, &url, 3, &tmp.path().join("r-warm.json"), 11));
    assert_no_errors("replicated warm-up", &warm);
    let steady = finish(start_load(bin, &url, 12, &tmp.path().join("r-steady.json"), 12));
    let steady_p99 = query_p99(&steady.records);
    rep.say(format!("- steady, 12 s: {}; queries p99 {steady_p99:.1} ms", fig(&steady.summary)));
    assert_no_errors("replicated steady load", &steady);
    assert_eq!(steady.summary["partial"], 0, "no fault, yet partial answers:\n{}", steady.stdout);
    let bound = 2.0 * steady_p99;

    // Worker 1 (shard 1, replica 0) killed for good.
    let load = start_load(bin, &url, 12, &tmp.path().join("r-kill.json"), 13);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = now_ms();
    signal(worker("1") as i64, "KILL");
    let killed = finish(load);
    let after: Vec<&Value> = queries(&killed.records).filter(|r| start(r) > killed_at).collect();
    let kill_p99 = query_p99(&killed.records);
    rep.say(format!(
        "- SIGKILL to worker 1 (shard 1) at t+3 s: {}; queries p99 {kill_p99:.1} ms",
        fig(&killed.summary)
    ));
    rep.say(format!(
        "  - {} queries started after the kill, {} flagged partial",
        after.len(),
        after.iter().filter(|r| r["outcome"] == "partial").count()
    ));

    // Worker 2 (shard 0, replica 1) frozen for 6 s; shard 1 still has one replica only.
    let frozen = worker("2");
    let load = start_load(bin, &url, 12, &tmp.path().join("r-hang.json"), 14);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped_at = now_ms();
    signal(frozen as i64, "STOP");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let resumed_at = now_ms();
    signal(frozen as i64, "CONT");
    let hung = finish(load);
    let during: Vec<&Value> = queries(&hung.records).filter(|r| start(r) > stopped_at && end(r) < resumed_at).collect();
    let hang_p99 = query_p99(&hung.records);
    rep.say(format!("- SIGSTOP to worker 2 (shard 0) for 6 s: {}; queries p99 {hang_p99:.1} ms", fig(&hung.summary)));
    rep.say(format!(
        "  - {} queries answered while it was frozen, {} flagged partial",
        during.len(),
        during.iter().filter(|r| r["outcome"] == "partial").count()
    ));
    rep.say(format!(
        "- bound: queries p99 within 2× the steady state ({bound:.1} ms): kill {kill_p99:.1} ms, freeze {hang_p99:.1} ms \
         (with all request kinds, status polls included, p99 is {:.1} / {:.1} ms: a poll waits for the frozen \
         worker's deadline to report it down)",
        killed.summary["latency"]["p99"].as_f64().unwrap_or(0.0),
        hung.summary["latency"]["p99"].as_f64().unwrap_or(0.0)
    ));

    // Throughput of the same mix, 2 × 1 (phase 1) against 2 × 2 (steady above), on the same cores.
    let tput = |f: &Finished| f.summary["throughput"].as_f64().unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    rep.say(format!(
        "- throughput of the {CLIENTS}-user mix on {cores} cores: 2 × 1 workers {:.0} req/s (queries p99 {:.1} ms), \
         2 × 2 workers {:.0} req/s (queries p99 {steady_p99:.1} ms). Replicas add no cores here: the same CPUs \
         serve twice the processes, so no speed-up is expected; with a core per pod, each replica would take \
         about half its shard's queries and the throughput would scale with the replicas until the dashboards \
         or the network limit it",
        tput(unreplicated),
        query_p99(&unreplicated.records),
        tput(&steady)
    ));

    assert_no_errors("replica killed", &killed);
    assert_no_errors("replica frozen", &hung);
    assert!(!after.is_empty() && !during.is_empty(), "no query ran during a fault");
    assert_eq!(killed.summary["partial"], 0, "partial answers with a replica killed:\n{}", killed.stdout);
    assert_eq!(hung.summary["partial"], 0, "partial answers with a replica frozen:\n{}", hung.stdout);
    assert!(kill_p99 <= bound, "queries p99 {kill_p99:.1} ms with a replica killed, over 2× steady ({bound:.1} ms)");
    assert!(hang_p99 <= bound, "queries p99 {hang_p99:.1} ms with a replica frozen, over 2× steady ({bound:.1} ms)");
    stop_and_check(&mut l).await;
}
