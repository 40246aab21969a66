//! The process kubelet (`--pods process`): each Pod's containers run as local
//! processes of the binary their image names (`--image-binary NAME=PATH`, by
//! image name without registry or tag), on the pod's own loopback IP.
//!
//! How a container sees its pod (the documented rewriting scheme):
//! - executable: the mapped binary; argv: `command[1..]` (when `command` is
//!   set) followed by `args`; `$(VAR)` references expanded from the
//!   container's env, as Kubernetes does;
//! - env: `value`, `valueFrom` (`secretKeyRef`, `configMapKeyRef`,
//!   `fieldRef` for metadata.name / metadata.namespace / metadata.uid /
//!   status.podIP / spec.nodeName / spec.serviceAccountName), `envFrom`; plus
//!   `POD_IP`, `QUIVER_SIM_DNS` (the cluster DNS server), the per-image extra env of `--image-env NAME=VAR=VALUE`, and
//!   `KUBECONFIG` pointing at a kubeconfig for this simulator whose token
//!   names the service account and the pod, `system:serviceaccount:NS:SA@POD`
//!   ([`crate::pod_identity`]; a real bound token carries the pod too), unless
//!   `automountServiceAccountToken: false`, so `kube::Config::infer()` inside
//!   the process reaches it and two replicas are told apart;
//! - addresses: `0.0.0.0` in args and env values becomes the pod IP;
//! - volumes (secret, configMap, emptyDir) are written under
//!   `ROOT/NS/POD/volumes/VOLUME/`; every mountPath occurring in args or env
//!   values is rewritten to that directory (the process sees no chroot);
//! - stdout/stderr go to `ROOT/NS/POD/CONTAINER.log`.
//!
//! Readiness comes from the httpGet or tcpSocket readinessProbe (exec probes
//! count as passing; no probe: ready once started). A container that exits is
//! restarted per restartPolicy after a doubling back-off (waiting reason
//! CrashLoopBackOff); deletion sends SIGTERM, then SIGKILL after the grace
//! period, then removes the Pod.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::Sim;
use crate::api::{internal, meta_str, now};

/// Settings of the process kubelet.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Image name (no registry, no tag) → binary.
    pub images: HashMap<String, PathBuf>,
    /// Image name → extra env (values may use `$(POD_IP)`).
    pub image_env: HashMap<String, Vec<(String, String)>>,
    /// Where pod directories go.
    pub root: PathBuf,
    /// Readiness probe period (overrides the probe's, to keep tests fast), and
    /// the first restart back-off.
    pub probe_period: Duration,
}

/// The image's name without registry and tag: `ghcr.io/q/quiver-worker:0.1` → `quiver-worker`.
pub fn image_name(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// Pods the kubelet runs: key → stop signal.
#[derive(Default)]
pub struct Running {
    pods: Mutex<HashMap<String, watch::Sender<bool>>>,
}

fn decode_b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).unwrap_or_default()
}

fn key_of(sim: &Sim, kind: &str, ns: &str, name: &str, key: &str) -> Option<String> {
    let obj = sim.store.get(kind, ns, name)?;
    match kind {
        "secrets" => obj.get("data")?.get(key).map(|v| String::from_utf8_lossy(&decode_b64(v)).into_owned()),
        _ => {
            obj.get("data").and_then(|d| d.get(key)).and_then(Value::as_str).map(str::to_string).or_else(|| {
                obj.get("binaryData")?.get(key).map(|v| String::from_utf8_lossy(&decode_b64(v)).into_owned())
            })
        }
    }
}

/// Expands `$(VAR)` from `env` (unknown references stay as written).
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) if env.contains_key(&after[..j]) => {
                out.push_str(&env[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

struct Launch {
    binary: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    log: PathBuf,
}

fn write_volumes(sim: &Sim, pod: &Value, dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let ns = meta_str(pod, "namespace").unwrap_or_default();
    let mut out = BTreeMap::new();
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).cloned().unwrap_or_default() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let vdir = dir.join("volumes").join(&name);
        std::fs::create_dir_all(&vdir).map_err(|e| e.to_string())?;
        let source = if let Some(s) = v.get("secret") {
            Some(("secrets", s.get("secretName"), s))
        } else {
            v.get("configMap").map(|c| ("configmaps", c.get("name"), c))
        };
        if let Some((kind, obj_name, src)) = source {
            let obj_name = obj_name.and_then(Value::as_str).unwrap_or_default();
            let optional = src.get("optional").and_then(Value::as_bool) == Some(true);
            let Some(obj) = sim.store.get(kind, ns, obj_name) else {
                if optional {
                    out.insert(name, vdir);
                    continue;
                }
                return Err(format!(
                    "MountVolume.SetUp failed for volume \"{name}\" : {kind} \"{obj_name}\" not found"
                ));
            };
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            for field in ["data", "binaryData", "stringData"] {
                if let Some(m) = obj.get(field).and_then(Value::as_object) {
                    for (k, val) in m {
                        let bytes = if kind == "secrets" || field == "binaryData" {
                            decode_b64(val)
                        } else {
                            val.as_str().unwrap_or_default().as_bytes().to_vec()
                        };
                        files.push((k.clone(), bytes));
                    }
                }
            }
            if let Some(items) = src.get("items").and_then(Value::as_array) {
                let wanted: BTreeMap<&str, &str> =
                    items.iter().filter_map(|i| Some((i.get("key")?.as_str()?, i.get("path")?.as_str()?))).collect();
                files =
                    files.into_iter().filter_map(|(k, b)| wanted.get(k.as_str()).map(|p| (p.to_string(), b))).collect();
            }
            for (path, bytes) in files {
                let target = vdir.join(&path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::write(&target, bytes).map_err(|e| e.to_string())?;
            }
        }
        out.insert(name, vdir);
    }
    Ok(out)
}

fn prepare(
    sim: &Sim,
    cfg: &RuntimeConfig,
    pod: &Value,
    ip: &str,
    dir: &Path,
    url: &str,
) -> Result<Vec<(String, Launch)>, (String, String)> {
    let ns = meta_str(pod, "namespace").unwrap_or_default();
    let volumes = write_volumes(sim, pod, dir).map_err(|e| ("CreateContainerConfigError".to_string(), e))?;
    let sa = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
    let kubeconfig = dir.join("kubeconfig");
    let automount = pod.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool) != Some(false);
    if automount {
        let pod_name = meta_str(pod, "name").unwrap_or_default();
        std::fs::write(&kubeconfig, crate::kubeconfig_for(url, &crate::pod_identity(ns, sa, pod_name)))
            .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
    }
    let mut out = Vec::new();
    for c in pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default() {
        let cname = c["name"].as_str().unwrap_or_default().to_string();
        let image = c["image"].as_str().unwrap_or_default();
        let Some(binary) = cfg.images.get(image_name(image)) else {
            let seen = pod.pointer("/status/containerStatuses").and_then(Value::as_array).is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.pointer("/state/waiting/reason")
                        .and_then(Value::as_str)
                        .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
                })
            });
            let reason = if seen { "ImagePullBackOff" } else { "ErrImagePull" };
            return Err((
                reason.into(),
                format!("no binary mapped for image \"{image}\" (--image-binary {}=PATH)", image_name(image)),
            ));
        };
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("POD_IP".into(), ip.to_string());
        if let Some(dns) = sim.dns_addr() {
            env.insert("QUIVER_SIM_DNS".into(), dns.to_string());
        }
        if automount {
            env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
        }
        for e in c.get("envFrom").and_then(Value::as_array).cloned().unwrap_or_default() {
            let prefix = e.get("prefix").and_then(Value::as_str).unwrap_or_default();
            let (kind, r) = match (e.get("secretRef"), e.get("configMapRef")) {
                (Some(r), _) => ("secrets", r),
                (_, Some(r)) => ("configmaps", r),
                _ => continue,
            };
            if let Some(obj) = sim.store.get(kind, ns, r["name"].as_str().unwrap_or_default()) {
                for (k, _) in obj.get("data").and_then(Value::as_object).cloned().unwrap_or_default() {
                    if let Some(v) = key_of(sim, kind, ns, r["name"].as_str().unwrap_or_default(), &k) {
                        env.insert(format!("{prefix}{k}"), v);
                    }
                }
            }
        }
        for e in c.get("env").and_then(Value::as_array).cloned().unwrap_or_default() {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
                Some(expand(v, &env))
            } else if let Some(from) = e.get("valueFrom") {
                let (kind, r) = match (from.get("secretKeyRef"), from.get("configMapKeyRef")) {
                    (Some(r), _) => ("secrets", Some(r)),
                    (_, Some(r)) => ("configmaps", Some(r)),
                    _ => ("", None),
                };
                if let Some(r) = r {
                    let v = key_of(
                        sim,
                        kind,
                        ns,
                        r["name"].as_str().unwrap_or_default(),
                        r["key"].as_str().unwrap_or_default(),
                    );
                    if v.is_none() && r.get("optional").and_then(Value::as_bool) != Some(true) {
                        return Err((
                            "CreateContainerConfigError".into(),
                            format!(
                                "couldn't find key {} in {} {}/{}",
                                r["key"].as_str().unwrap_or_default(),
                                &kind[..kind.len() - 1],
                                ns,
                                r["name"].as_str().unwrap_or_default()
                            ),
                        ));
                    }
                    v
                } else if let Some(fp) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                    match fp {
                        "metadata.name" => meta_str(pod, "name").map(str::to_string),
                        "metadata.namespace" => Some(ns.to_string()),
                        "metadata.uid" => meta_str(pod, "uid").map(str::to_string),
                        "status.podIP" => Some(ip.to_string()),
                        "spec.nodeName" => Some(crate::kubelet::NODE.to_string()),
                        "spec.serviceAccountName" => Some(sa.to_string()),
                        _ => None,
                    }
                } else {
                    None
                }
            } else {
                Some(String::new())
            };
            if let Some(v) = value {
                env.insert(name, v);
            }
        }
        for (k, v) in cfg.image_env.get(image_name(image)).cloned().unwrap_or_default() {
            let v = expand(&v, &env);
            env.insert(k, v);
        }
        let mut mounts: Vec<(String, PathBuf)> = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| {
                let host = volumes.get(m["name"].as_str()?)?;
                let host = match m.get("subPath").and_then(Value::as_str) {
                    Some(s) => host.join(s),
                    None => host.clone(),
                };
                Some((m["mountPath"].as_str()?.trim_end_matches('/').to_string(), host))
            })
            .collect();
        mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        rewrite_config_files(pod, &c, &volumes, &mounts).map_err(|e| ("CreateContainerConfigError".to_string(), e))?;
        let rewrite = |s: &str| rewrite_paths(&s.replace("0.0.0.0", ip), &mounts);
        let env: BTreeMap<String, String> = env.into_iter().map(|(k, v)| (k, rewrite(&v))).collect();
        let mut args: Vec<String> = Vec::new();
        if let Some(cmd) = c.get("command").and_then(Value::as_array) {
            args.extend(cmd.iter().skip(1).filter_map(Value::as_str).map(str::to_string));
        }
        args.extend(
            c.get("args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        let args = args.iter().map(|a| rewrite(&expand(a, &env))).collect();
        out.push((cname.clone(), Launch { binary: binary.clone(), args, env, log: dir.join(format!("{cname}.log")) }));
    }
    Ok(out)
}

/// Rewrites the mount paths in the text files of the ConfigMap volumes a
/// container mounts, as in its args and env: configuration files name other
/// mounts (a dataset list naming its credentials directory). Secret volumes
/// are left as they are (their bytes are credentials, not paths).
fn rewrite_config_files(
    pod: &Value,
    c: &Value,
    volumes: &BTreeMap<String, PathBuf>,
    mounts: &[(String, PathBuf)],
) -> Result<(), String> {
    let config_maps: Vec<&str> = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("configMap").is_some())
        .filter_map(|v| v["name"].as_str())
        .collect();
    for m in c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = m["name"].as_str().filter(|n| config_maps.contains(n)) else { continue };
        let Some(vdir) = volumes.get(name) else { continue };
        let root = match m.get("subPath").and_then(Value::as_str) {
            Some(s) => vdir.join(s),
            None => vdir.clone(),
        };
        let mut stack = vec![root];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).map_err(|e| e.to_string())?.flatten() {
                    stack.push(e.path());
                }
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                let rewritten = rewrite_paths(&text, mounts);
                if rewritten != text {
                    std::fs::write(&p, rewritten).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(())
}

/// Rewrites every mount path in `s` to its host directory, once: each
/// occurrence that ends at a path boundary (`/`, the end, or a character
/// that cannot be in a path word) becomes a placeholder first, so a host
/// directory is never rewritten again by a shorter mount path (`/tmp`).
pub fn rewrite_paths(s: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = s.to_string();
    let mut placed = Vec::new();
    for (i, (mount, host)) in mounts.iter().enumerate() {
        if mount.is_empty() {
            continue;
        }
        let mut result = String::new();
        let mut rest = out.as_str();
        let name_char = |c: char| c.is_alphanumeric() || c == '-' || c == '_' || c == '.';
        while let Some(pos) = rest.find(mount.as_str()) {
            let after = &rest[pos + mount.len()..];
            // A path starts the match (`/tmp` is not inside `/work/target/tmp`)
            // and ends with it (`/tmp` is not `/tmpfs`).
            let before = result.chars().last().filter(|_| pos == 0).or_else(|| rest[..pos].chars().last());
            let boundary =
                !before.is_some_and(name_char) && (after.is_empty() || after.starts_with(|c: char| !name_char(c)));
            result.push_str(&rest[..pos]);
            if boundary {
                result.push_str(&format!("\u{0}{i}\u{0}"));
            } else {
                result.push_str(mount);
            }
            rest = after;
        }
        result.push_str(rest);
        out = result;
        placed.push((format!("\u{0}{i}\u{0}"), host.display().to_string()));
    }
    for (ph, host) in placed {
        out = out.replace(&ph, &host);
    }
    out
}

struct Ctr {
    name: String,
    image: String,
    probe: Option<Value>,
    ports: Vec<Value>,
    launch: Launch,
    child: Option<Child>,
    restarts: u32,
    ready: bool,
    started_at: Option<String>,
    last_exit: Option<(i32, String)>,
    next_start: Instant,
    done: bool,
}

fn spawn(l: &Launch) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&l.log)?;
    let err = log.try_clone()?;
    Command::new(&l.binary)
        .args(&l.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&l.env)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
}

/// A probe's port: a number, a numeric string, or the name of a container port.
fn probe_port(v: &Value, ports: &[Value]) -> Option<u64> {
    match v.get("port")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok().or_else(|| {
            ports
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(s.as_str()))
                .and_then(|p| p.get("containerPort")?.as_u64())
        }),
        _ => None,
    }
}

async fn probe(p: &Value, ip: &str, ports: &[Value]) -> bool {
    let port = |v: &Value| probe_port(v, ports);
    let timeout = Duration::from_secs(1);
    if let Some(h) = p.get("httpGet") {
        let Some(port) = port(h) else { return false };
        let path = h.get("path").and_then(Value::as_str).unwrap_or("/");
        let fut = async {
            let mut s = tokio::net::TcpStream::connect((ip, port as u16)).await.ok()?;
            s.write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.35\r\n\r\n").as_bytes(),
            )
            .await
            .ok()?;
            let mut buf = vec![0u8; 64];
            let n = s.read(&mut buf).await.ok()?;
            let line = String::from_utf8_lossy(&buf[..n]).to_string();
            let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some((200..400).contains(&code))
        };
        return tokio::time::timeout(timeout, fut).await.ok().flatten().unwrap_or(false);
    }
    if let Some(t) = p.get("tcpSocket") {
        let Some(port) = port(t) else { return false };
        return tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port as u16)))
            .await
            .is_ok_and(|r| r.is_ok());
    }
    true
}

fn signal(child: &Child, sig: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid we spawned and still hold; no memory is shared.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

fn status_of(pod: &Value, ip: &str, ctrs: &[Ctr], restart_policy: &str, started: &str) -> Value {
    let t = now();
    let statuses: Vec<Value> = ctrs
        .iter()
        .map(|c| {
            let state = if c.child.is_some() {
                json!({"running": {"startedAt": c.started_at}})
            } else if c.done {
                let (code, reason) = c.last_exit.clone().unwrap_or((0, "Completed".into()));
                json!({"terminated": {"exitCode": code, "reason": reason}})
            } else if c.restarts > 0 {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container {} in pod {}", c.name, meta_str(pod, "name").unwrap_or_default())}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            };
            let mut s = json!({
                "name": c.name, "image": c.image, "imageID": format!("sim://{}", c.image),
                "ready": c.ready, "started": c.child.is_some(), "restartCount": c.restarts, "state": state,
            });
            if let Some((code, reason)) = &c.last_exit {
                s["lastState"] = json!({"terminated": {"exitCode": code, "reason": reason}});
            }
            s
        })
        .collect();
    let all_ready = !ctrs.is_empty() && ctrs.iter().all(|c| c.ready);
    let any_running = ctrs.iter().any(|c| c.child.is_some());
    let all_done = ctrs.iter().all(|c| c.done);
    let phase = if all_done && ctrs.iter().all(|c| c.last_exit.as_ref().is_some_and(|(code, _)| *code == 0)) {
        "Succeeded"
    } else if all_done {
        "Failed"
    } else if any_running || restart_policy != "Never" && ctrs.iter().any(|c| c.restarts > 0) {
        "Running"
    } else {
        "Pending"
    };
    let old = |k: &str| {
        pod.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == k).cloned())
    };
    let cond = |k: &str, ok: bool| {
        let status = if ok { "True" } else { "False" };
        let since =
            old(k).filter(|c| c["status"] == status).map(|c| c["lastTransitionTime"].clone()).unwrap_or(json!(t));
        json!({"type": k, "status": status, "lastTransitionTime": since, "lastProbeTime": null})
    };
    json!({
        "phase": phase,
        "hostIP": "127.1.0.1",
        "hostIPs": [{"ip": "127.1.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "qosClass": "BestEffort",
        "conditions": [cond("PodReadyToStartContainers", true), cond("Initialized", true), cond("Ready", all_ready), cond("ContainersReady", all_ready), cond("PodScheduled", true)],
        "containerStatuses": statuses,
    })
}

async fn supervise(sim: Arc<Sim>, pod: Value, ip: String, mut stop: watch::Receiver<bool>) {
    let cfg = sim.config.runtime.clone();
    let ns = meta_str(&pod, "namespace").unwrap_or_default().to_string();
    let name = meta_str(&pod, "name").unwrap_or_default().to_string();
    let dir = cfg.root.join(&ns).join(&name);
    let _ = std::fs::create_dir_all(&dir);
    let started = now();
    let restart_policy = pod.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("Always").to_string();
    let write_status = |st: Value| {
        let _ = internal::modify(&sim, "", "pods", &ns, &name, Some("status"), "kubelet", |o| o["status"] = st);
    };
    let launches = loop {
        let current = sim.store.get("pods", &ns, &name).unwrap_or_else(|| pod.clone());
        match prepare(&sim, &cfg, &current, &ip, &dir, &sim.url()) {
            Ok(l) => break l,
            Err((reason, message)) => {
                tracing::warn!(pod = %name, %reason, %message, "cannot start pod");
                let mut st = status_of(&pod, &ip, &[], &restart_policy, &started);
                st["phase"] = json!("Pending");
                st["containerStatuses"] = pod
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(|cs| cs.iter().map(|c| json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "started": false, "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}})).collect())
                    .unwrap_or(json!([]));
                write_status(st);
                tokio::select! {
                    _ = stop.changed() => { let _ = sim.store.remove("pods", &ns, &name); return; }
                    _ = tokio::time::sleep(cfg.probe_period * 5) => continue,
                }
            }
        }
    };
    let specs = pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut ctrs: Vec<Ctr> = launches
        .into_iter()
        .map(|(cname, launch)| {
            let spec = specs.iter().find(|c| c["name"] == cname.as_str()).cloned().unwrap_or(json!({}));
            Ctr {
                name: cname,
                image: spec["image"].as_str().unwrap_or_default().to_string(),
                probe: spec.get("readinessProbe").cloned(),
                ports: spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default(),
                launch,
                child: None,
                restarts: 0,
                ready: false,
                started_at: None,
                last_exit: None,
                next_start: Instant::now(),
                done: false,
            }
        })
        .collect();
    let mut tick = tokio::time::interval(cfg.probe_period);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        for c in ctrs.iter_mut() {
            if let Some(child) = c.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                let code = exit.code().unwrap_or(128 + 9);
                tracing::info!(pod = %name, container = %c.name, code, "container exited");
                c.child = None;
                c.ready = false;
                c.last_exit = Some((code, if code == 0 { "Completed".into() } else { "Error".into() }));
                let restart = restart_policy == "Always" || (restart_policy == "OnFailure" && code != 0);
                if restart {
                    c.restarts += 1;
                    let backoff = cfg.probe_period * 2u32.saturating_pow(c.restarts.min(8));
                    c.next_start = Instant::now() + backoff.min(Duration::from_secs(300));
                } else {
                    c.done = true;
                }
            }
            if c.child.is_none() && !c.done && Instant::now() >= c.next_start {
                match spawn(&c.launch) {
                    Ok(child) => {
                        tracing::info!(pod = %name, container = %c.name, binary = %c.launch.binary.display(), "container started");
                        c.child = Some(child);
                        c.started_at = Some(now());
                    }
                    Err(e) => {
                        tracing::warn!(pod = %name, container = %c.name, error = %e, "container failed to start");
                        c.restarts += 1;
                        c.last_exit = Some((128, format!("StartError: {e}")));
                        c.next_start = Instant::now() + cfg.probe_period * 2u32.saturating_pow(c.restarts.min(8));
                    }
                }
            }
            if c.child.is_some() {
                c.ready = match &c.probe {
                    Some(p) => probe(p, &ip, &c.ports).await,
                    None => true,
                };
            }
        }
        write_status(status_of(
            &sim.store.get("pods", &ns, &name).unwrap_or(pod.clone()),
            &ip,
            &ctrs,
            &restart_policy,
            &started,
        ));
    }
    // Deletion: SIGTERM, the grace period, SIGKILL, then the Pod goes.
    let current = sim.store.get("pods", &ns, &name).unwrap_or(pod.clone());
    let grace = current
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_u64)
        .filter(|g| *g > 0)
        .or_else(|| current.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_u64))
        .unwrap_or(30);
    for c in &ctrs {
        if let Some(child) = &c.child {
            signal(child, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(grace);
    for c in ctrs.iter_mut() {
        if let Some(child) = c.child.as_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, child.wait()).await.is_err() {
                tracing::info!(pod = %name, container = %c.name, "grace period over, killing");
                let _ = child.kill().await;
            }
        }
    }
    let _ = sim.store.update::<()>("pods", &ns, &name, |cur| {
        Ok(match cur {
            Some(p) if p.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty()) => {
                crate::store::Op::Remove
            }
            _ => crate::store::Op::Keep,
        })
    });
}

/// One pass: start pods that are not running, stop those being deleted.
pub fn pass(sim: &Arc<Sim>) {
    let (pods, _) = sim.store.list("pods", None);
    let mut running = sim.running.pods.lock().unwrap_or_else(|e| e.into_inner());
    let mut alive = std::collections::HashSet::new();
    for p in pods {
        let key = format!(
            "{}/{}/{}",
            meta_str(&p, "namespace").unwrap_or_default(),
            meta_str(&p, "name").unwrap_or_default(),
            meta_str(&p, "uid").unwrap_or_default()
        );
        alive.insert(key.clone());
        let deleting = p.pointer("/metadata/deletionTimestamp").is_some();
        match running.get(&key) {
            Some(tx) if deleting => {
                let _ = tx.send(true);
            }
            Some(_) => {}
            None if deleting => {
                let ns = meta_str(&p, "namespace").unwrap_or_default();
                let _ = sim.store.remove("pods", ns, meta_str(&p, "name").unwrap_or_default());
            }
            None if p.pointer("/spec/nodeName").is_none() && !crate::kubelet::schedule(sim, &p) => {}
            None => {
                let ns = meta_str(&p, "namespace").unwrap_or_default().to_string();
                let name = meta_str(&p, "name").unwrap_or_default().to_string();
                let ip = match p.pointer("/status/podIP").and_then(Value::as_str) {
                    Some(ip) => ip.to_string(),
                    None => sim.allocate_pod_ip(),
                };
                if p.pointer("/spec/nodeName").is_none() {
                    let _ = internal::modify(sim, "", "pods", &ns, &name, None, "kube-scheduler", |o| {
                        o["spec"]["nodeName"] = json!(crate::kubelet::NODE);
                    });
                }
                let (tx, rx) = watch::channel(false);
                running.insert(key, tx);
                let pod = sim.store.get("pods", &ns, &name).unwrap_or(p);
                tokio::spawn(supervise(sim.clone(), pod, ip, rx));
            }
        }
    }
    running.retain(|k, tx| {
        if alive.contains(k) {
            true
        } else {
            // Removed without a graceful deletion (e.g. its namespace went): stop it.
            let _ = tx.send(true);
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_drop_registry_and_tag() {
        assert_eq!(image_name("ghcr.io/quiver-dev/quiver-worker:0.1.0"), "quiver-worker");
        assert_eq!(image_name("quiver-dashboard"), "quiver-dashboard");
        assert_eq!(image_name("r:5000/x/y@sha256:abc"), "y");
    }

    #[test]
    fn probe_ports_resolve_by_number_or_container_port_name() {
        let ports = vec![json!({"name": "http", "containerPort": 9090})];
        assert_eq!(probe_port(&json!({"port": "http"}), &ports), Some(9090));
        assert_eq!(probe_port(&json!({"port": 8080}), &ports), Some(8080));
        assert_eq!(probe_port(&json!({"port": "8081"}), &ports), Some(8081));
        assert_eq!(probe_port(&json!({"port": "grpc"}), &ports), None);
    }

    #[test]
    fn config_map_files_name_the_other_mounts_by_their_host_directories() {
        let sim = Sim::new(Default::default());
        sim.store.put(
            "configmaps",
            "ns",
            "datasets",
            json!({"metadata": {"name": "datasets", "namespace": "ns"}, "data": {"d.json": "{\"credentialsDir\": \"/var/run/creds/a\"}"}}),
        );
        sim.store.put(
            "secrets",
            "ns",
            "creds",
            json!({"metadata": {"name": "creds", "namespace": "ns"}, "data": {"key": "L3Zhci9ydW4vY3JlZHMvYQ=="}}),
        );
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "volumes": [{"name": "datasets", "configMap": {"name": "datasets"}}, {"name": "creds", "secret": {"secretName": "creds"}}],
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "datasets", "mountPath": "/etc/quiver/datasets"},
                    {"name": "creds", "mountPath": "/var/run/creds/a"}
                ]}]
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let volumes = write_volumes(&sim, &pod, dir.path()).unwrap();
        let mounts = vec![
            ("/var/run/creds/a".to_string(), volumes["creds"].clone()),
            ("/etc/quiver/datasets".to_string(), volumes["datasets"].clone()),
        ];
        rewrite_config_files(&pod, &pod["spec"]["containers"][0], &volumes, &mounts).unwrap();
        let text = std::fs::read_to_string(volumes["datasets"].join("d.json")).unwrap();
        assert_eq!(text, format!("{{\"credentialsDir\": \"{}\"}}", volumes["creds"].display()));
        // The Secret's bytes are not paths to rewrite.
        assert_eq!(std::fs::read_to_string(volumes["creds"].join("key")).unwrap(), "/var/run/creds/a");
    }

    #[test]
    fn mount_paths_are_rewritten_once_at_path_boundaries() {
        let mounts = vec![
            ("/etc/quiver/datasets".to_string(), PathBuf::from("/tmp/pods/p/volumes/datasets")),
            ("/tmp".to_string(), PathBuf::from("/tmp/pods/p/volumes/tmp")),
        ];
        assert_eq!(rewrite_paths("/etc/quiver/datasets/d.json", &mounts), "/tmp/pods/p/volumes/datasets/d.json");
        assert_eq!(rewrite_paths("--scratch=/tmp", &mounts), "--scratch=/tmp/pods/p/volumes/tmp");
        assert_eq!(rewrite_paths("/tmpfs/x", &mounts), "/tmpfs/x");
        // A host path with the mount path inside it is not the mount.
        assert_eq!(rewrite_paths("file:///work/target/tmp/data/", &mounts), "file:///work/target/tmp/data/");
        assert_eq!(rewrite_paths("file:///tmp/data/", &mounts), "file:///tmp/pods/p/volumes/tmp/data/");
    }

    #[test]
    fn dependent_env_references_expand() {
        let env: BTreeMap<String, String> = [("POD_IP".to_string(), "127.1.0.5".to_string())].into();
        assert_eq!(expand("--addr=$(POD_IP):8815 $(MISSING)", &env), "--addr=127.1.0.5:8815 $(MISSING)");
    }
}
