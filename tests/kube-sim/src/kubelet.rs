//! The node side: pods are scheduled onto the one simulated node and given a
//! loopback pod IP (127.1.x.y). In `Instant` mode a pod is Running and Ready as
//! soon as it exists (enough for the controllers and the operator to see
//! workloads come up); processes are not started. `Process` runs them
//! (`runtime.rs`). `None` leaves pods Pending.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::Sim;
use crate::api::{internal, meta_str, now};

/// What happens to pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PodMode {
    /// Pods stay Pending (no node).
    #[default]
    None,
    /// Pods become Running and Ready at once, with a loopback IP; nothing runs.
    Instant,
    /// Containers run as local processes (see `runtime.rs`).
    Process,
}

/// The simulated node's name.
pub const NODE: &str = "quiver-sim-node";

impl Sim {
    /// The next pod IP: 127.1.0.2, 127.1.0.3, ... (127.1.0.1 stays the node).
    pub fn allocate_pod_ip(&self) -> String {
        let n = self.next_pod_ip.fetch_add(1, Ordering::Relaxed) + 2;
        format!("127.{}.{}.{}", 1 + (n >> 16) % 254, (n >> 8) & 0xff, n & 0xff)
    }
}

fn running_status(pod: &Value, ip: &str) -> Value {
    let t = now();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    json!({
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": format!("sim://{}", c["image"].as_str().unwrap_or_default()),
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": t}},
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let cond = |k: &str| json!({"type": k, "status": "True", "lastTransitionTime": t, "lastProbeTime": null});
    json!({
        "phase": "Running",
        "hostIP": "127.1.0.1",
        "hostIPs": [{"ip": "127.1.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": t,
        "qosClass": "BestEffort",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "containerStatuses": containers,
    })
}

/// One pass: start every pod that has no IP yet.
pub fn pass(sim: &Sim) {
    if sim.config.pods != PodMode::Instant {
        return;
    }
    let (pods, _) = sim.store.list("pods", None);
    for p in pods {
        if p.pointer("/status/podIP").is_some() || p.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let ns = meta_str(&p, "namespace").unwrap_or_default().to_string();
        let name = meta_str(&p, "name").unwrap_or_default().to_string();
        if p.pointer("/spec/nodeName").is_none() {
            let _ = internal::modify(sim, "", "pods", &ns, &name, None, "kube-scheduler", |o| {
                o["spec"]["nodeName"] = json!(NODE);
            });
        }
        let ip = sim.allocate_pod_ip();
        let _ = internal::modify(sim, "", "pods", &ns, &name, Some("status"), "kubelet", |o| {
            o["status"] = running_status(o, &ip);
        });
    }
}

/// Runs the kubelet until the simulator stops.
pub async fn run(sim: Arc<Sim>) {
    let mut rx = sim.store.follow();
    loop {
        match rx.recv().await {
            Ok(c) if c.key != "pods" => continue,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        while rx.try_recv().is_ok() {}
        match sim.config.pods {
            PodMode::Instant => pass(&sim),
            PodMode::Process => crate::runtime::pass(&sim),
            PodMode::None => {}
        }
    }
}
