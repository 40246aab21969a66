//! Why worker pods do not run: the reasons a kubelet, scheduler or the
//! StatefulSet controller gives, read from pods and events. Pure.
//!
//! Without this a quota, a wrong image or a crash loop shows only as
//! "Pending / WorkersUnreachable"; with it the `ReplicaFailure` condition and
//! an event name the reason, as KubeRay's ReplicaFailure does.

use k8s_openapi::api::core::v1::{Event, Pod};

/// Container waiting reasons that mean the pod will not start by itself.
pub const WAITING_FAILURES: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// One failing pod (or a pod that could not be created).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFailure {
    /// The pod (or, for `FailedCreate`, the StatefulSet).
    pub object: String,
    /// PascalCase reason, e.g. `ImagePullBackOff`, `Unschedulable`, `FailedCreate`.
    pub reason: String,
    /// What Kubernetes said.
    pub message: String,
}

impl PodFailure {
    /// `pod: Reason: message`, for a condition message.
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            format!("{}: {}", self.object, self.reason)
        } else {
            format!("{}: {}: {}", self.object, self.reason, self.message)
        }
    }
}

/// The failures of the pods listed (terminating pods are skipped).
pub fn pod_failures(pods: &[Pod]) -> Vec<PodFailure> {
    let mut out = Vec::new();
    for p in pods {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = p.metadata.name.clone().unwrap_or_default();
        let Some(status) = &p.status else { continue };
        let unschedulable =
            status.conditions.iter().flatten().find(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            });
        if let Some(c) = unschedulable {
            out.push(PodFailure {
                object: name.clone(),
                reason: "Unschedulable".into(),
                message: c.message.clone().unwrap_or_default(),
            });
            continue;
        }
        let containers =
            status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
        for cs in containers {
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let Some(reason) = waiting.reason.as_deref().filter(|r| WAITING_FAILURES.contains(r)) else {
                continue;
            };
            let mut message = waiting.message.clone().unwrap_or_default();
            if reason == "CrashLoopBackOff"
                && let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref())
            {
                let why = t.reason.clone().unwrap_or_else(|| "Error".into());
                let last = format!("last exit: {why} (code {})", t.exit_code);
                message = if message.is_empty() { last } else { format!("{last}; {message}") };
            }
            out.push(PodFailure { object: name.clone(), reason: reason.into(), message });
            break;
        }
    }
    out
}

/// The latest `FailedCreate` event of the StatefulSet (a quota, a policy or an
/// admission webhook refusing its pods), when fewer pods exist than desired.
pub fn failed_create(events: &[Event], statefulset: &str) -> Option<PodFailure> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter(|e| e.involved_object.name.as_deref() == Some(statefulset))
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        })
        .map(|e| PodFailure {
            object: statefulset.to_string(),
            reason: "FailedCreate".into(),
            message: e.message.clone().unwrap_or_default(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_kind_of_stuck_pod_is_named_with_its_reason() {
        let pods = vec![
            pod(json!({"metadata": {"name": "w-0"}, "status": {"containerStatuses": [{
                "name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}})),
            pod(json!({"metadata": {"name": "w-1"}, "status": {"containerStatuses": [{
                "name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}})),
            pod(json!({"metadata": {"name": "w-2"}, "status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory."}]}})),
            pod(json!({"metadata": {"name": "w-3"}, "status": {"containerStatuses": [{
                "name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError",
                                      "message": "couldn't find key secretAccessKey in Secret analytics/s3"}}}]}})),
            // Loading normally: not a failure.
            pod(json!({"metadata": {"name": "w-4"}, "status": {"containerStatuses": [{
                "name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-05T09:00:00Z"}}}]}})),
            pod(json!({"metadata": {"name": "w-5"}, "status": {"containerStatuses": [{
                "name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}})),
        ];
        let f = pod_failures(&pods);
        let reasons: Vec<_> = f.iter().map(|f| (f.object.as_str(), f.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                ("w-0", "ImagePullBackOff"),
                ("w-1", "CrashLoopBackOff"),
                ("w-2", "Unschedulable"),
                ("w-3", "CreateContainerConfigError")
            ]
        );
        assert_eq!(f[1].message, "last exit: OOMKilled (code 137); back-off 5m0s");
        assert!(f[3].describe().contains("couldn't find key secretAccessKey"));
    }

    #[test]
    fn the_latest_failed_create_event_of_the_statefulset_is_reported() {
        let ev = |name: &str, at: &str, msg: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": format!("e-{at}")},
                "involvedObject": {"kind": "StatefulSet", "name": name},
                "reason": "FailedCreate", "message": msg, "lastTimestamp": at}))
            .unwrap()
        };
        let events = vec![
            ev("demo-workers", "2026-01-05T09:00:00Z", "old"),
            ev("demo-workers", "2026-01-05T09:05:00Z", "exceeded quota: compute, requested: memory=8Gi"),
            ev("other-workers", "2026-01-05T09:06:00Z", "not ours"),
        ];
        let f = failed_create(&events, "demo-workers").unwrap();
        assert_eq!(f.reason, "FailedCreate");
        assert!(f.message.contains("exceeded quota"));
        assert_eq!(failed_create(&events, "none-workers"), None);
    }
}
