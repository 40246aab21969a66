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
//!   With several replicas per shard (pod ordinal `i` serves shard
//!   `i mod shards`), a Ready pod is replaced only while another Ready
//!   replica of its shard stays up, so every shard keeps answering.
//!
//! That is how `strategy: Replace` rolls, and what a surge falls back to.
//!
//! A rollout that has not finished within `progressDeadline` is reported as
//! stuck (condition `RollingOut`, reason `Stuck`); no further healthy pod is
//! deleted meanwhile beyond what the batch allows.
//!
//! With `strategy: Surge` ([`surge`]), any change of the worker pod template
//! (a re-shard, an image, resources, a restart, the dataset list) keeps a
//! complete generation answering all along. A pod's generation is the hash
//! of the template it was created from
//! ([`crate::crd::TEMPLATE_HASH_ANNOTATION`]), so the old pods are told
//! apart in either StatefulSet whatever changed. The headless Service
//! `NAME-workers`, whose DNS records are the dashboards' list of workers, is
//! pinned to one StatefulSet revision (`controller-revision-hash`) while two
//! generations run:
//!
//! ```text
//!            NAME-workers (old template)  NAME-surge (new template)   Service selects
//! Loading    held on the old template     created, loading            old NAME-workers
//! Switched   held                         complete                    NAME-surge (drain)
//! Reloading  new template, replaced       serving                     NAME-surge
//! Returned   complete on the new template serving                    new NAME-workers (drain)
//! Done       serving                      deleted                     every worker
//! ```
//!
//! Old pods are deleted only [`SWITCH_DRAIN`] after the switch away from
//! them, when every dashboard has re-resolved the name, and then all at once
//! (the surge answers). If the surge pods cannot be created or scheduled
//! before the switch, the surge is removed and the rollout falls back to
//! `Replace`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::crd::RolloutStrategy;

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
    /// The hash of the pod template it was created from (its generation).
    pub template: Option<String>,
    /// Ready (its shard is loaded).
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
}

impl WorkerPod {
    /// Reads what the rollout needs from a pod of StatefulSet `sts_name`.
    pub fn from_pod(sts_name: &str, p: &Pod) -> Option<WorkerPod> {
        let name = p.metadata.name.clone()?;
        let ordinal = name.strip_prefix(&format!("{sts_name}-"))?.parse::<u32>().ok()?;
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
            revision: p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).cloned(),
            template: p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::crd::TEMPLATE_HASH_ANNOTATION))
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
    /// The surge re-shard's stage, while one runs (or just fell back).
    pub surge: Option<SurgeStage>,
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
/// towards `update_revision`, with at most `max_unavailable` workers down;
/// every outdated worker at once when `others_answer` (a surge's workers
/// answer meanwhile).
pub fn plan(
    pods: &[WorkerPod],
    update_revision: Option<&str>,
    desired: i32,
    shards: i32,
    max_unavailable: i32,
    others_answer: bool,
) -> Plan {
    let Some(update) = update_revision else {
        return Plan::default();
    };
    let live: Vec<&WorkerPod> = pods.iter().filter(|p| !p.terminating && (p.ordinal as i32) < desired).collect();
    let mut outdated: Vec<&WorkerPod> =
        live.iter().copied().filter(|p| p.revision.as_deref() != Some(update)).collect();
    outdated.sort_by_key(|p| p.ordinal);
    let in_progress = !outdated.is_empty();
    let waiting =
        live.iter().filter(|p| p.revision.as_deref() == Some(update) && !p.ready).map(|p| p.name.clone()).collect();
    let resharding = outdated.iter().any(|p| p.shards.is_some_and(|s| s != shards));
    let delete: Vec<String> = if resharding || others_answer {
        outdated.iter().map(|p| p.name.clone()).collect()
    } else {
        let available = live.iter().filter(|p| p.ready).count() as i32;
        let unavailable = (desired - available).max(0);
        let mut budget = (max_unavailable.max(1) - unavailable).max(0);
        let shards = shards.max(1) as u32;
        let replicated = desired > shards as i32;
        // Ready replicas per shard, less those deleted below.
        let mut serving: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
        for p in live.iter().filter(|p| p.ready) {
            *serving.entry(p.ordinal % shards).or_insert(0) += 1;
        }
        let mut out = Vec::new();
        // Outdated pods that serve nothing go first, and cost no budget.
        out.extend(outdated.iter().filter(|p| !p.ready).map(|p| p.name.clone()));
        for p in outdated.iter().filter(|p| p.ready) {
            if budget == 0 {
                break;
            }
            let left = serving.entry(p.ordinal % shards).or_insert(0);
            // A shard's last Ready replica waits for another to load.
            if replicated && *left <= 1 {
                continue;
            }
            *left -= 1;
            budget -= 1;
            out.push(p.name.clone());
        }
        out
    };
    Plan { surge: None, delete, outdated: outdated.len(), waiting, in_progress }
}

/// Name of the transitional StatefulSet of a surge re-shard (short: its
/// revision hash label must fit 63 characters, as `NAME-workers`' does).
pub fn surge_name(cluster: &str) -> String {
    format!("{cluster}-surge")
}

/// How long the old generation keeps running after the Service stopped
/// selecting it: dashboards re-resolve the worker name every 10 s (their
/// `--workers-dns-interval` default, which the operator leaves alone), and
/// queries in flight finish well within the rest.
pub const SWITCH_DRAIN: Duration = Duration::from_secs(15);

/// Which revision the worker Service selects, as last applied, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// `controller-revision-hash` the Service selects.
    pub revision: String,
    /// When the Service started selecting it.
    pub since: Timestamp,
}

/// Where a surge re-shard stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SurgeStage {
    /// The new shards load in the surge StatefulSet; the old ones answer.
    Loading,
    /// Every new shard is loaded; the dashboards move to them.
    Switched,
    /// The surge answers while `NAME-workers` is re-sharded.
    Reloading,
    /// `NAME-workers` is complete on the new shards; the dashboards move back.
    Returned,
    /// The dashboards are back: the surge StatefulSet is deleted.
    Done,
    /// The surge could not run (why); the re-shard replaces every worker at once.
    FellBack(String),
}

impl SurgeStage {
    /// For the `RollingOut` condition.
    pub fn describe(&self, shards: i32) -> String {
        match self {
            SurgeStage::Loading => format!(
                "surge rollout: the new workers ({shards} shards) load beside the old ones, which keep answering"
            ),
            SurgeStage::Switched => format!(
                "surge rollout: the new workers ({shards} shards) are loaded and answer; the old ones go once every dashboard has moved"
            ),
            SurgeStage::Reloading => {
                "surge rollout: the surge workers answer while the workers StatefulSet is replaced".into()
            }
            SurgeStage::Returned => {
                "surge rollout: the workers StatefulSet is complete again and answers; the surge workers go once every dashboard has moved".into()
            }
            SurgeStage::Done => "surge rollout: removing the surge workers".into(),
            SurgeStage::FellBack(why) => format!(
                "surge rollout fell back to replacing the workers in place (a re-shard: all at once; otherwise in batches of maxUnavailable): {why}"
            ),
        }
    }
}

/// What a surge re-shard needs to know.
#[derive(Clone, Debug)]
pub struct SurgeInputs<'a> {
    /// The cluster's choice.
    pub strategy: RolloutStrategy,
    /// Pods of `NAME-workers`.
    pub main: &'a [WorkerPod],
    /// `NAME-workers`' update revision, once its controller saw the current spec.
    pub main_revision: Option<&'a str>,
    /// Pods of the surge StatefulSet; `None` when it does not exist.
    pub surge: Option<&'a [WorkerPod]>,
    /// The surge StatefulSet's update revision, once observed.
    pub surge_revision: Option<&'a str>,
    /// Worker pods wanted.
    pub desired: i32,
    /// Shards wanted.
    pub shards: i32,
    /// The hash of the worker pod template the spec asks for
    /// ([`crate::crd::TEMPLATE_HASH_ANNOTATION`]).
    pub template: &'a str,
    /// The worker Service's pin as last applied.
    pub pin: Option<&'a Pin>,
    /// Why the surge pods cannot be created or scheduled, if they cannot.
    pub surge_failure: Option<&'a str>,
    /// This generation's re-shard already fell back to Replace.
    pub fell_back: bool,
    /// Now.
    pub now: Timestamp,
}

/// What to do about a surge re-shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurgePlan {
    /// Where it stands; `None`: no surge (a settled cluster, or `Replace`).
    pub stage: Option<SurgeStage>,
    /// The surge StatefulSet should exist (apply it); otherwise delete it.
    pub keep_surge: bool,
    /// Leave `NAME-workers` on its current template (its old generation answers).
    pub hold_main: bool,
    /// The revision the worker Service selects; `None`: every worker.
    pub pin: Option<String>,
    /// Look again after this long (a drain to wait out).
    pub wait: Option<Duration>,
    /// Surge pods to delete now: created from an older surge template while
    /// loading (the spec changed again), they answer nothing yet.
    pub delete_surge: Vec<String>,
}

impl SurgePlan {
    fn at(stage: SurgeStage, keep_surge: bool, hold_main: bool, pin: Option<String>) -> SurgePlan {
        SurgePlan { stage: Some(stage), keep_surge, hold_main, pin, wait: None, delete_surge: vec![] }
    }

    /// No surge: the Service selects every worker.
    pub fn none() -> SurgePlan {
        SurgePlan { stage: None, keep_surge: false, hold_main: false, pin: None, wait: None, delete_surge: vec![] }
    }
}

/// All `desired` pods live, Ready, on `revision`, on `shards` and from `template`.
fn complete(pods: &[&WorkerPod], revision: Option<&str>, desired: i32, shards: i32, template: &str) -> bool {
    revision.is_some()
        && pods.len() as i32 == desired
        && pods
            .iter()
            .all(|p| p.ready && p.revision.as_deref() == revision && p.shards == Some(shards) && p.is_from(template))
}

impl WorkerPod {
    /// Created from pod template `template` (a pod of an operator that did
    /// not stamp templates counts as older than any).
    fn is_from(&self, template: &str) -> bool {
        self.template.as_deref() == Some(template)
    }
}

fn live(pods: &[WorkerPod]) -> Vec<&WorkerPod> {
    pods.iter().filter(|p| !p.terminating).collect()
}

/// Plans one step of a surge rollout (see the module's table). Pure.
pub fn surge(i: &SurgeInputs<'_>) -> SurgePlan {
    let main = live(i.main);
    // The old generation: pods from another template than the spec's (a
    // shard count, an image, resources, a restart stamp, a dataset list).
    let old: Vec<&WorkerPod> = main.iter().copied().filter(|p| !p.is_from(i.template)).collect();
    let resharding = !old.is_empty();
    // The old generation's revision: what the Service keeps selecting.
    let old_revision = old.iter().find(|p| p.ready).and_then(|p| p.revision.clone());
    let pinned_for =
        |revision: &str| i.pin.filter(|p| p.revision == revision).map(|p| crate::lifecycle::elapsed(p.since, i.now));
    let Some(surge) = i.surge else {
        // Start only from a complete old generation (there is nothing to keep
        // serving otherwise), and not again once this generation fell back.
        let old_complete =
            resharding && old.len() == main.len() && main.iter().all(|p| p.ready && p.revision == old_revision);
        // With replicas on the same shard count, the in-place rollout keeps a
        // loaded replica of every shard (see [`plan`]): no surge needed.
        let same_shards = old.iter().all(|p| p.shards == Some(i.shards));
        let replicated = i.desired > i.shards;
        if i.strategy == RolloutStrategy::Surge && old_complete && !i.fell_back && !(same_shards && replicated) {
            return SurgePlan::at(SurgeStage::Loading, true, true, old_revision);
        }
        return SurgePlan::none();
    };
    let surge_live = live(surge);
    let surge_complete = complete(&surge_live, i.surge_revision, i.desired, i.shards, i.template);
    if resharding {
        // NAME-workers still holds the old generation.
        let switched = i.surge_revision.and_then(|r| pinned_for(r).map(|e| (r, e)));
        if !surge_complete && switched.is_none() {
            if let Some(why) = i.surge_failure {
                return SurgePlan::at(SurgeStage::FellBack(why.to_string()), false, false, None);
            }
            if i.strategy == RolloutStrategy::Replace {
                return SurgePlan::at(
                    SurgeStage::FellBack("the rollout strategy is now Replace".into()),
                    false,
                    false,
                    None,
                );
            }
            let pin = old_revision.or_else(|| i.pin.map(|p| p.revision.clone()));
            // Surge pods of an older surge template (the spec changed again
            // while they loaded) are replaced: the surge StatefulSet is
            // `OnDelete` too.
            let delete_surge = surge_live
                .iter()
                .filter(|p| i.surge_revision.is_some() && p.revision.as_deref() != i.surge_revision)
                .map(|p| p.name.clone())
                .collect();
            return SurgePlan { delete_surge, ..SurgePlan::at(SurgeStage::Loading, true, true, pin) };
        }
        let revision = i.surge_revision.expect("complete or pinned implies a revision").to_string();
        return match switched.map(|(_, e)| e) {
            None => SurgePlan {
                wait: Some(SWITCH_DRAIN),
                ..SurgePlan::at(SurgeStage::Switched, true, true, Some(revision))
            },
            Some(e) if e < SWITCH_DRAIN => SurgePlan {
                wait: Some(SWITCH_DRAIN - e),
                ..SurgePlan::at(SurgeStage::Switched, true, true, Some(revision))
            },
            Some(_) => SurgePlan::at(SurgeStage::Reloading, true, false, Some(revision)),
        };
    }
    // NAME-workers runs the new shards (loading, or complete).
    if !complete(&main, i.main_revision, i.desired, i.shards, i.template) {
        let pin = i.surge_revision.map(str::to_string).or_else(|| i.pin.map(|p| p.revision.clone()));
        return SurgePlan::at(SurgeStage::Reloading, true, false, pin);
    }
    let revision = i.main_revision.expect("complete implies a revision").to_string();
    match pinned_for(&revision) {
        None => {
            SurgePlan { wait: Some(SWITCH_DRAIN), ..SurgePlan::at(SurgeStage::Returned, true, false, Some(revision)) }
        }
        Some(e) if e < SWITCH_DRAIN => SurgePlan {
            wait: Some(SWITCH_DRAIN - e),
            ..SurgePlan::at(SurgeStage::Returned, true, false, Some(revision))
        },
        Some(_) => SurgePlan::at(SurgeStage::Done, false, false, Some(revision)),
    }
}

/// `maxUnavailable` (an integer, or a percentage of `desired` rounded down,
/// at least 1) as a count.
pub fn resolve_max_unavailable(value: &str, desired: i32) -> Result<i32, String> {
    let n = match value.strip_suffix('%') {
        Some(pct) => {
            let p: i64 =
                pct.parse().map_err(|_| format!("maxUnavailable {value:?} is not a number or a percentage"))?;
            if !(0..=100).contains(&p) {
                return Err(format!("maxUnavailable {value:?} must be 0% to 100%"));
            }
            (i64::from(desired) * p / 100) as i32
        }
        None => {
            value.parse::<i32>().map_err(|_| format!("maxUnavailable {value:?} is not a number or a percentage"))?
        }
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
            // The template of each shard count (same-count template changes set their own).
            template: Some(format!("t{shards}")),
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
        let p = plan(&pods, Some("new"), 4, 4, 1, false);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn a_reshard_replaces_every_outdated_worker_at_once() {
        // 4 → 8: the four old pods serve 4 shards; new ordinals 4..8 already exist.
        let mut pods: Vec<_> = (0..4).map(|i| pod(i, "old", 4, true)).collect();
        pods.extend((4..8).map(|i| pod(i, "new", 8, false)));
        let p = plan(&pods, Some("new"), 8, 8, 1, false);
        assert_eq!(names(&p), ["demo-workers-0", "demo-workers-1", "demo-workers-2", "demo-workers-3"]);
        assert!(p.in_progress);
    }

    #[test]
    fn a_restart_goes_in_batches_of_max_unavailable() {
        let pods: Vec<_> = (0..8).map(|i| pod(i, "old", 8, true)).collect();
        let p = plan(&pods, Some("new"), 8, 8, 2, false);
        assert_eq!(names(&p), ["demo-workers-0", "demo-workers-1"]);
        // Next pass: 0 and 1 came back on the new revision, still loading.
        let mut pods: Vec<_> = (2..8).map(|i| pod(i, "old", 8, true)).collect();
        pods.extend((0..2).map(|i| pod(i, "new", 8, false)));
        let p = plan(&pods, Some("new"), 8, 8, 2, false);
        assert!(p.delete.is_empty(), "the batch is still loading: {p:?}");
        assert_eq!(p.outdated, 6);
    }

    #[test]
    fn a_replicated_restart_never_takes_a_shards_last_ready_replica() {
        // 2 shards × 2 replicas (shard 0: pods 0, 2; shard 1: pods 1, 3), a
        // budget of 3: one replica of each shard goes, never both.
        let pods: Vec<_> = (0..4).map(|i| pod(i, "old", 2, true)).collect();
        let p = plan(&pods, Some("new"), 4, 2, 3, false);
        assert_eq!(names(&p), ["demo-workers-0", "demo-workers-1"]);
        // Next pass: 0 and 1 are back on the new revision but still loading:
        // 2 and 3 are their shards' only Ready replicas and stay.
        let mut pods: Vec<_> = (0..2).map(|i| pod(i, "new", 2, false)).collect();
        pods.extend((2..4).map(|i| pod(i, "old", 2, true)));
        let p = plan(&pods, Some("new"), 4, 2, 3, false);
        assert!(p.delete.is_empty(), "{p:?}");
        // Pod 0 loaded: shard 0's old replica may go; shard 1's must wait.
        pods[0].ready = true;
        let p = plan(&pods, Some("new"), 4, 2, 3, false);
        assert_eq!(names(&p), ["demo-workers-2"]);
    }

    #[test]
    fn adding_replicas_replaces_the_old_pods_only_once_new_replicas_load() {
        // replicasPerShard 1 → 2 on 2 shards: the placement rules change the
        // template; pods 2 and 3 are created on it, 0 and 1 are outdated.
        let mut pods: Vec<_> = (0..2).map(|i| pod(i, "old", 2, true)).collect();
        pods.extend((2..4).map(|i| pod(i, "new", 2, false)));
        let p = plan(&pods, Some("new"), 4, 2, 1, false);
        assert!(p.delete.is_empty(), "the new replicas are still loading: {p:?}");
        assert_eq!(p.outdated, 2);
        pods[2].ready = true;
        pods[3].ready = true;
        let p = plan(&pods, Some("new"), 4, 2, 1, false);
        assert_eq!(names(&p), ["demo-workers-0"]);
    }

    #[test]
    fn outdated_workers_that_serve_nothing_are_replaced_at_once() {
        // A shard that never loads on the old revision must not stall the rollout.
        let mut pods: Vec<_> = (0..4).map(|i| pod(i, "old", 4, true)).collect();
        pods[3].ready = false;
        pods[2].ready = false;
        let p = plan(&pods, Some("new"), 4, 4, 1, false);
        assert_eq!(names(&p), ["demo-workers-2", "demo-workers-3"]);
    }

    #[test]
    fn terminating_pods_and_pods_beyond_the_replica_count_are_left_alone() {
        let mut pods: Vec<_> = (0..3).map(|i| pod(i, "old", 2, true)).collect();
        pods[0].terminating = true;
        // 0 is going (one unavailable already); 2 is beyond the 2 replicas
        // (the StatefulSet removes it).
        let p = plan(&pods, Some("new"), 2, 2, 1, false);
        assert!(p.delete.is_empty(), "{p:?}");
        let p = plan(&pods, Some("new"), 2, 2, 2, false);
        assert_eq!(names(&p), ["demo-workers-1"]);
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn surge_pod(ordinal: u32, revision: &str, shards: i32, ready: bool) -> WorkerPod {
        WorkerPod { name: format!("demo-surge-{ordinal}"), ..pod(ordinal, revision, shards, ready) }
    }

    /// A 2 → 3 re-shard: `main` pods, the surge's pods (None: no surge StatefulSet), the pin.
    fn step(
        main: &[WorkerPod],
        main_revision: &str,
        surge: Option<&[WorkerPod]>,
        pin: Option<&Pin>,
        now: i64,
    ) -> SurgePlan {
        surge_plan_with(RolloutStrategy::Surge, main, main_revision, surge, pin, None, false, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn surge_plan_with(
        strategy: RolloutStrategy,
        main: &[WorkerPod],
        main_revision: &str,
        surge_pods: Option<&[WorkerPod]>,
        pin: Option<&Pin>,
        failure: Option<&str>,
        fell_back: bool,
        now: i64,
    ) -> SurgePlan {
        surge(&SurgeInputs {
            strategy,
            main,
            main_revision: Some(main_revision),
            surge: surge_pods,
            surge_revision: surge_pods.map(|_| "surge-1"),
            desired: 3,
            shards: 3,
            template: "t3",
            pin,
            surge_failure: failure,
            fell_back,
            now: at(now),
        })
    }

    fn pinned(revision: &str, since: i64) -> Pin {
        Pin { revision: revision.into(), since: at(since) }
    }

    #[test]
    fn a_surge_reshard_keeps_a_complete_generation_selected_until_the_end() {
        let old: Vec<_> = (0..2).map(|i| pod(i, "old", 2, true)).collect();
        // Start: the surge loads, NAME-workers is held, the Service keeps the old pods.
        let p = step(&old, "old", None, None, 0);
        assert_eq!(p, SurgePlan::at(SurgeStage::Loading, true, true, Some("old".into())));
        // Loading: two of three new shards loaded.
        let mut new: Vec<_> = (0..3).map(|i| surge_pod(i, "surge-1", 3, true)).collect();
        new[2].ready = false;
        let pin_old = pinned("old", 0);
        let p = step(&old, "old", Some(&new), Some(&pin_old), 5);
        assert_eq!(p, SurgePlan::at(SurgeStage::Loading, true, true, Some("old".into())));
        // Every new shard loaded: switch the Service, keep the old pods for the drain.
        new[2].ready = true;
        let p = step(&old, "old", Some(&new), Some(&pin_old), 8);
        assert_eq!(
            (p.stage.clone(), p.pin.as_deref(), p.hold_main),
            (Some(SurgeStage::Switched), Some("surge-1"), true)
        );
        assert_eq!(p.wait, Some(SWITCH_DRAIN));
        let pin_surge = pinned("surge-1", 8);
        let p = step(&old, "old", Some(&new), Some(&pin_surge), 18);
        assert_eq!(
            (p.stage.clone(), p.hold_main, p.wait),
            (Some(SurgeStage::Switched), true, Some(Duration::from_secs(5)))
        );
        // Drained: NAME-workers takes the new template (the Replace plan then
        // deletes its old pods); the surge answers meanwhile.
        let p = step(&old, "old", Some(&new), Some(&pin_surge), 23);
        assert_eq!(p, SurgePlan::at(SurgeStage::Reloading, true, false, Some("surge-1".into())));
        let mut reloaded: Vec<_> = (0..3).map(|i| pod(i, "new", 3, false)).collect();
        let p = step(&reloaded, "new", Some(&new), Some(&pin_surge), 25);
        assert_eq!(p, SurgePlan::at(SurgeStage::Reloading, true, false, Some("surge-1".into())));
        // NAME-workers complete again: switch back, then drop the surge after the drain.
        for p in &mut reloaded {
            p.ready = true;
        }
        let p = step(&reloaded, "new", Some(&new), Some(&pin_surge), 30);
        assert_eq!((p.stage.clone(), p.pin.as_deref(), p.keep_surge), (Some(SurgeStage::Returned), Some("new"), true));
        let pin_new = pinned("new", 30);
        let p = step(&reloaded, "new", Some(&new), Some(&pin_new), 44);
        assert_eq!(p.stage, Some(SurgeStage::Returned));
        let p = step(&reloaded, "new", Some(&new), Some(&pin_new), 45);
        assert_eq!(p, SurgePlan::at(SurgeStage::Done, false, false, Some("new".into())));
        // Gone: a settled cluster, the Service selects every worker.
        assert_eq!(step(&reloaded, "new", None, Some(&pin_new), 46), SurgePlan::none());
    }

    #[test]
    fn a_surge_starts_only_from_a_complete_old_generation_and_not_for_replace() {
        let mut old: Vec<_> = (0..2).map(|i| pod(i, "old", 2, true)).collect();
        let replace = surge_plan_with(RolloutStrategy::Replace, &old, "old", None, None, None, false, 0);
        assert_eq!(replace, SurgePlan::none());
        let settled: Vec<_> = (0..3).map(|i| pod(i, "new", 3, true)).collect();
        assert_eq!(step(&settled, "new", None, None, 0), SurgePlan::none(), "no re-shard, no surge");
        old[1].ready = false;
        assert_eq!(step(&old, "old", None, None, 0), SurgePlan::none(), "nothing complete to keep serving");
        let again = surge_plan_with(RolloutStrategy::Surge, &old[..1], "old", None, None, None, true, 0);
        assert_eq!(again, SurgePlan::none(), "this generation already fell back");
    }

    #[test]
    fn surge_pods_that_cannot_be_created_or_scheduled_fall_back_to_replace() {
        let old: Vec<_> = (0..2).map(|i| pod(i, "old", 2, true)).collect();
        let new = vec![surge_pod(0, "surge-1", 3, true)];
        let why = "demo-surge: FailedCreate: exceeded quota";
        let p = surge_plan_with(
            RolloutStrategy::Surge,
            &old,
            "old",
            Some(&new),
            Some(&pinned("old", 0)),
            Some(why),
            false,
            5,
        );
        assert_eq!(p, SurgePlan::at(SurgeStage::FellBack(why.into()), false, false, None));
        assert!(SurgeStage::FellBack(why.into()).describe(3).contains("exceeded quota"));
        // Switching to Replace mid-way does the same.
        let p = surge_plan_with(RolloutStrategy::Replace, &old, "old", Some(&new), None, None, false, 5);
        assert!(matches!(p.stage, Some(SurgeStage::FellBack(_))) && !p.keep_surge && !p.hold_main);
        // Once the dashboards switched to a complete surge, a failure no longer undoes it.
        let full: Vec<_> = (0..3).map(|i| surge_pod(i, "surge-1", 3, true)).collect();
        let p = surge_plan_with(
            RolloutStrategy::Surge,
            &old,
            "old",
            Some(&full),
            Some(&pinned("surge-1", 0)),
            Some(why),
            false,
            30,
        );
        assert_eq!(p.stage, Some(SurgeStage::Reloading));
    }

    #[test]
    fn a_replicated_surge_switches_only_once_every_replica_of_every_new_shard_loaded() {
        // 2 → 3 shards with 2 replicas each: 6 surge pods (ordinal i serves shard i mod 3).
        let old: Vec<_> = (0..4).map(|i| pod(i, "old", 2, true)).collect();
        let mut new: Vec<_> = (0..6).map(|i| surge_pod(i, "surge-1", 3, true)).collect();
        new[5].ready = false;
        let inputs = |surge_pods: &[WorkerPod]| {
            surge(&SurgeInputs {
                strategy: RolloutStrategy::Surge,
                main: &old,
                main_revision: Some("old"),
                surge: Some(surge_pods),
                surge_revision: Some("surge-1"),
                desired: 6,
                shards: 3,
                template: "t3",
                pin: Some(&pinned("old", 0)),
                surge_failure: None,
                fell_back: false,
                now: at(5),
            })
        };
        assert_eq!(inputs(&new).stage, Some(SurgeStage::Loading), "pod 5 (shard 2's second replica) still loading");
        assert_eq!(inputs(&new[..3]).stage, Some(SurgeStage::Loading), "three of six surge pods exist");
        new[5].ready = true;
        assert_eq!(inputs(&new).stage, Some(SurgeStage::Switched));
    }

    #[test]
    fn an_image_change_surges_like_a_reshard_and_replaces_the_held_workers_at_once() {
        // Same 3 shards, a new image: the old pods are told apart by their template.
        let old: Vec<_> =
            (0..3).map(|i| WorkerPod { template: Some("t3-image-1".into()), ..pod(i, "old", 3, true) }).collect();
        let p = step(&old, "old", None, None, 0);
        assert_eq!(p, SurgePlan::at(SurgeStage::Loading, true, true, Some("old".into())));
        let new: Vec<_> = (0..3).map(|i| surge_pod(i, "surge-1", 3, true)).collect();
        let p = step(&old, "old", Some(&new), Some(&pinned("old", 0)), 8);
        assert_eq!((p.stage, p.pin.as_deref()), (Some(SurgeStage::Switched), Some("surge-1")));
        let p = step(&old, "old", Some(&new), Some(&pinned("surge-1", 8)), 23);
        assert_eq!(p, SurgePlan::at(SurgeStage::Reloading, true, false, Some("surge-1".into())));
        // NAME-workers on the new template: with the surge answering, every
        // old worker goes at once, not in batches of maxUnavailable.
        let batch = plan(&old, Some("new"), 3, 3, 1, false);
        assert_eq!(names(&batch), ["demo-workers-0"]);
        let all = plan(&old, Some("new"), 3, 3, 1, true);
        assert_eq!(names(&all), ["demo-workers-0", "demo-workers-1", "demo-workers-2"]);
        // Pods of an operator that stamped no template are an old generation too.
        let unstamped: Vec<_> = (0..3).map(|i| WorkerPod { template: None, ..pod(i, "old", 3, true) }).collect();
        assert_eq!(step(&unstamped, "old", None, None, 0).stage, Some(SurgeStage::Loading));
        // The template the spec asks for: nothing to do.
        let settled: Vec<_> = (0..3).map(|i| pod(i, "new", 3, true)).collect();
        assert_eq!(step(&settled, "new", None, None, 0), SurgePlan::none());
    }

    #[test]
    fn a_replicated_cluster_rolls_a_same_shard_change_in_place_and_surges_a_reshard() {
        let with = |main: &[WorkerPod], desired: i32, shards: i32, template: &str| {
            surge(&SurgeInputs {
                strategy: RolloutStrategy::Surge,
                main,
                main_revision: Some("old"),
                surge: None,
                surge_revision: None,
                desired,
                shards,
                template,
                pin: None,
                surge_failure: None,
                fell_back: false,
                now: at(0),
            })
        };
        // 3 shards x 2 replicas, a new image: each shard keeps a loaded replica in place.
        let old: Vec<_> =
            (0..6).map(|i| WorkerPod { template: Some("t3-image-1".into()), ..pod(i, "old", 3, true) }).collect();
        assert_eq!(with(&old, 6, 3, "t3"), SurgePlan::none());
        // The same change with one replica a shard surges.
        assert_eq!(with(&old[..3], 3, 3, "t3").stage, Some(SurgeStage::Loading));
        // A re-shard of a replicated cluster surges.
        let two: Vec<_> = (0..4).map(|i| pod(i, "old", 2, true)).collect();
        assert_eq!(with(&two, 6, 3, "t3").stage, Some(SurgeStage::Loading));
    }

    #[test]
    fn surge_pods_of_an_older_surge_template_are_replaced_while_loading() {
        // The spec changed again while the surge loaded: its StatefulSet now
        // has revision surge-1, two of its pods are from before.
        let old: Vec<_> = (0..2).map(|i| pod(i, "old", 2, true)).collect();
        let mut new: Vec<_> = (0..3).map(|i| surge_pod(i, "surge-1", 3, false)).collect();
        new[0].revision = Some("surge-0".into());
        new[2].revision = Some("surge-0".into());
        let p = step(&old, "old", Some(&new), Some(&pinned("old", 0)), 5);
        assert_eq!(p.stage, Some(SurgeStage::Loading));
        assert_eq!(p.delete_surge, ["demo-surge-0", "demo-surge-2"]);
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
