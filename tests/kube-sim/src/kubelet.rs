//! The node side: pods are scheduled onto the one simulated node and given a
//! loopback pod IP (127.P.x.y, P per simulator). In `Instant` mode a pod is Running and Ready as
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
    /// The next pod IP: 127.P.0.2, 127.P.0.3, ... in this simulator's own
    /// block (P drawn at start in 10..130; 127.1.0.1 is the node).
    pub fn allocate_pod_ip(&self) -> String {
        let n = self.next_pod_ip.fetch_add(1, Ordering::Relaxed) + 2;
        format!("127.{}.{}.{}", self.pod_block, (n >> 8) & 0xff, n & 0xff)
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

/// The simulated node object, created at start.
pub fn node_object() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "uid": "00000000-0000-4000-8000-00000000000e",
            "creationTimestamp": now(),
            "labels": {
                "kubernetes.io/hostname": NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "quiver-sim",
                "topology.kubernetes.io/zone": "sim-a",
            },
        },
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.1.0.1"}, {"type": "Hostname", "address": NODE}],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "nodeInfo": {"kubeletVersion": "v1.35.0-quiver-sim", "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "sim://1"},
        },
    })
}

/// The scheduler: whether a pod fits the one node (its `nodeSelector` and
/// required node affinity against the Node's labels; taints, resources and
/// pod affinity are not considered). A pod that does not fit is marked
/// `PodScheduled=False`, reason `Unschedulable`, as the real scheduler does.
pub fn schedule(sim: &Sim, pod: &Value) -> bool {
    let labels = sim.store.get("nodes", "", NODE).map(|n| crate::selectors::labels_of(&n)).unwrap_or_default();
    let mut fits = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()));
    if let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        && !terms.is_empty()
    {
        fits &= terms.iter().any(|t| {
            crate::selectors::LabelSelector::from_object(
                &json!({"matchExpressions": t.get("matchExpressions").cloned().unwrap_or(json!([]))}),
            )
            .matches_labels(&labels)
        });
    }
    if !fits {
        let ns = meta_str(pod, "namespace").unwrap_or_default().to_string();
        let name = meta_str(pod, "name").unwrap_or_default().to_string();
        let _ = internal::modify(sim, "", "pods", &ns, &name, Some("status"), "kube-scheduler", |o| {
            let since = o.pointer("/status/conditions/0/lastTransitionTime").cloned().unwrap_or_else(|| json!(now()));
            o["status"] = json!({
                "phase": "Pending",
                "qosClass": "BestEffort",
                "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
                    "lastTransitionTime": since, "lastProbeTime": null,
                }],
            });
        });
    }
    fits
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
        if p.pointer("/spec/nodeName").is_none() && !schedule(sim, &p) {
            continue;
        }
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
            Ok(c) if c.key != "pods" && c.key != "nodes" => continue,
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
