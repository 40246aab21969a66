//! Worker rollouts, driven by the operator. Pure.
//!
//! The StatefulSet uses `updateStrategy: OnDelete`: Kubernetes creates each
//! replaced pod from the new template, but replaces nothing by itself. A
//! worker is Ready only once it has loaded its shard, so the built-in rolling
//! update (one pod at a time, each waiting for the last to load) would take
//! `N × load time` and stall for good on a shard that never loads. Instead,
//! each reconcile deletes outdated pods:
//!
//! - **re-shard** (the shard count changed): every outdated pod at once. Pods
//!   on the old shard count cannot serve a consistent answer next to the new
//!   ones, and deleting them all frees their memory for the new shards;
//! - **same shard count** (image, resources, restart annotation, datasets):
//!   in batches of at most `maxUnavailable` unavailable workers. Outdated pods
//!   that are not Ready anyway are replaced at once (they serve nothing).
//!
//! A rollout that has not finished within `progressDeadline` is reported as
//! stuck (condition `RollingOut`, reason `Stuck`); no further healthy pod is
//! deleted meanwhile beyond what the batch allows.

use k8s_openapi::api::core::v1::Pod;

/// Label the StatefulSet controller puts on each pod: its template revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// One worker pod as the rollout sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPod {
    /// Pod name.
    pub name: String,
    /// StatefulSet ordinal.
    pub ordinal: u32,
    /// Template revision it was created from.
    pub revision: Option<String>,
    /// The pod's `QUIVER_SHARDS`.
    pub shards: Option<i32>,
    /// Ready (its shard is loaded).
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
}

impl WorkerPod {
    /// Reads what the rollout needs from a pod of StatefulSet `sts_name`.
    pub fn from_pod(sts_name: &str, p: &Pod) -> Option<WorkerPod> {
        let name = p.metadata.name.clone()?;
        let ordinal = name
            .strip_prefix(&format!("{sts_name}-"))?
            .parse::<u32>()
            .ok()?;
        let shards = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.env.as_ref())
            .and_then(|env| env.iter().find(|e| e.name == "QUIVER_SHARDS"))
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse().ok());
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Some(WorkerPod {
            revision: p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .cloned(),
            shards,
            ready,
            terminating: p.metadata.deletion_timestamp.is_some(),
            name,
            ordinal,
        })
    }
}

/// What a reconcile should do about the rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Outdated pods to delete now (the StatefulSet recreates them from the new template).
    pub delete: Vec<String>,
    /// Pods not yet on the new revision (including those deleted now).
    pub outdated: usize,
    /// Pods on the new revision that are not Ready yet (loading, or failing).
    pub waiting: Vec<String>,
    /// Outdated pods remain (the reconciler also counts pods not yet created).
    pub in_progress: bool,
}

/// Plans one step of the rollout of `desired` workers with `shards` shards
/// towards `update_revision`, with at most `max_unavailable` workers down.
pub fn plan(
    pods: &[WorkerPod],
    update_revision: Option<&str>,
    desired: i32,
    shards: i32,
    max_unavailable: i32,
) -> Plan {
    let Some(update) = update_revision else {
        return Plan::default();
    };
    let live: Vec<&WorkerPod> = pods
        .iter()
        .filter(|p| !p.terminating && (p.ordinal as i32) < desired)
        .collect();
    let mut outdated: Vec<&WorkerPod> = live
        .iter()
        .copied()
        .filter(|p| p.revision.as_deref() != Some(update))
        .collect();
    outdated.sort_by_key(|p| p.ordinal);
    let in_progress = !outdated.is_empty();
    let waiting = live
        .iter()
        .filter(|p| p.revision.as_deref() == Some(update) && !p.ready)
        .map(|p| p.name.clone())
        .collect();
    let resharding = outdated
        .iter()
        .any(|p| p.shards.is_some_and(|s| s != shards));
    let delete: Vec<String> = if resharding {
        outdated.iter().map(|p| p.name.clone()).collect()
    } else {
        let available = live.iter().filter(|p| p.ready).count() as i32;
        let unavailable = (desired - available).max(0);
        let mut budget = (max_unavailable.max(1) - unavailable).max(0);
        let mut out = Vec::new();
        // Outdated pods that serve nothing go first, and cost no budget.
        out.extend(outdated.iter().filter(|p| !p.ready).map(|p| p.name.clone()));
        for p in outdated.iter().filter(|p| p.ready) {
            if budget == 0 {
                break;
            }
            budget -= 1;
            out.push(p.name.clone());
        }
        out
    };
    Plan {
        delete,
        outdated: outdated.len(),
        waiting,
        in_progress,
    }
}

/// `maxUnavailable` (an integer, or a percentage of `desired` rounded down,
/// at least 1) as a count.
pub fn resolve_max_unavailable(value: &str, desired: i32) -> Result<i32, String> {
    let n = match value.strip_suffix('%') {
        Some(pct) => {
            let p: i64 = pct
                .parse()
                .map_err(|_| format!("maxUnavailable {value:?} is not a number or a percentage"))?;
            if !(0..=100).contains(&p) {
                return Err(format!("maxUnavailable {value:?} must be 0% to 100%"));
            }
            (i64::from(desired) * p / 100) as i32
        }
        None => value
            .parse::<i32>()
            .map_err(|_| format!("maxUnavailable {value:?} is not a number or a percentage"))?,
    };
    if n < 0 {
        return Err(format!("maxUnavailable {value:?} must not be negative"));
    }
    Ok(n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ordinal: u32, revision: &str, shards: i32, ready: bool) -> WorkerPod {
        WorkerPod {
            name: format!("demo-workers-{ordinal}"),
            ordinal,
            revision: Some(revision.into()),
            shards: Some(shards),
            ready,
            terminating: false,
        }
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.delete.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_settled_cluster_deletes_nothing() {
        let pods: Vec<_> = (0..4).map(|i| pod(i, "new", 4, true)).collect();
        let p = plan(&pods, Some("new"), 4, 4, 1);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn a_reshard_replaces_every_outdated_worker_at_once() {
        // 4 → 8: the four old pods serve 4 shards; new ordinals 4..8 already exist.
        let mut pods: Vec<_> = (0..4).map(|i| pod(i, "old", 4, true)).collect();
        pods.extend((4..8).map(|i| pod(i, "new", 8, false)));
        let p = plan(&pods, Some("new"), 8, 8, 1);
        assert_eq!(
            names(&p),
            [
                "demo-workers-0",
                "demo-workers-1",
                "demo-workers-2",
                "demo-workers-3"
            ]
        );
        assert!(p.in_progress);
    }

    #[test]
    fn a_restart_goes_in_batches_of_max_unavailable() {
        let pods: Vec<_> = (0..8).map(|i| pod(i, "old", 8, true)).collect();
        let p = plan(&pods, Some("new"), 8, 8, 2);
        assert_eq!(names(&p), ["demo-workers-0", "demo-workers-1"]);
        // Next pass: 0 and 1 came back on the new revision, still loading.
        let mut pods: Vec<_> = (2..8).map(|i| pod(i, "old", 8, true)).collect();
        pods.extend((0..2).map(|i| pod(i, "new", 8, false)));
        let p = plan(&pods, Some("new"), 8, 8, 2);
        assert!(p.delete.is_empty(), "the batch is still loading: {p:?}");
        assert_eq!(p.outdated, 6);
    }

    #[test]
    fn outdated_workers_that_serve_nothing_are_replaced_at_once() {
        // A shard that never loads on the old revision must not stall the rollout.
        let mut pods: Vec<_> = (0..4).map(|i| pod(i, "old", 4, true)).collect();
        pods[3].ready = false;
        pods[2].ready = false;
        let p = plan(&pods, Some("new"), 4, 4, 1);
        assert_eq!(names(&p), ["demo-workers-2", "demo-workers-3"]);
    }

    #[test]
    fn terminating_pods_and_pods_beyond_the_replica_count_are_left_alone() {
        let mut pods: Vec<_> = (0..3).map(|i| pod(i, "old", 2, true)).collect();
        pods[0].terminating = true;
        // 0 is going (one unavailable already); 2 is beyond the 2 replicas
        // (the StatefulSet removes it).
        let p = plan(&pods, Some("new"), 2, 2, 1);
        assert!(p.delete.is_empty(), "{p:?}");
        let p = plan(&pods, Some("new"), 2, 2, 2);
        assert_eq!(names(&p), ["demo-workers-1"]);
    }

    #[test]
    fn max_unavailable_takes_a_count_or_a_percentage() {
        assert_eq!(resolve_max_unavailable("25%", 64), Ok(16));
        assert_eq!(resolve_max_unavailable("25%", 2), Ok(1));
        assert_eq!(resolve_max_unavailable("3", 64), Ok(3));
        assert!(resolve_max_unavailable("lots", 4).is_err());
        assert!(resolve_max_unavailable("120%", 4).is_err());
    }
}
