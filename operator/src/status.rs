//! Status from what was applied and what the workers said: phase, conditions,
//! ready/desired workers, rows per dataset, activity, URL. Pure.
//!
//! `Ready` means every worker pod (each of the `r` replicas of each shard
//! `0..n`, pod ordinal `i` serving shard `i mod n`) answered with the current
//! shard count `n` and has loaded every dataset, and the StatefulSet rollout
//! is complete (so a restart or a re-shard is not reported ready while old
//! pods still serve). A shard counts as complete (`shardsReady`) once one of
//! its replicas has loaded: answers are complete from then on. Rows are summed
//! over complete shards, each once (from its lowest loaded ordinal): a worker
//! still on an old sharding is never counted, nor a second replica, so rows
//! are neither lost nor counted twice once settled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use quiver_worker::protocol::LoadState;

use crate::activity::WorkerReport;
use crate::children::{dashboard_url, worker_selector_string};
use crate::crd::{DataClusterStatus, DatasetStatus, Phase, SuspendReason};
use crate::failures::{PodFailure, WAITING_FAILURES};
use crate::lifecycle::{Action, Activity, Decision, Memory, ResumeTrigger, Suspension};
use crate::validate::ValidCluster;

/// Condition types this operator sets.
pub mod condition {
    /// The spec could be validated.
    pub const SPEC_VALID: &str = "SpecValid";
    /// Every shard loaded every dataset.
    pub const READY: &str = "Ready";
    /// The workers are stopped.
    pub const SUSPENDED: &str = "Suspended";
    /// The operator could read the workers' query activity.
    pub const ACTIVITY_KNOWN: &str = "ActivityKnown";
    /// Every child name is free or already owned by this DataCluster.
    pub const CHILDREN_OWNED: &str = "ChildrenOwned";
    /// A worker pod cannot be created, scheduled, pulled or started (KubeRay's name).
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
    /// Workers are being replaced; its transition time is when the rollout began.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// With replicas per shard: no shard has all its replicas on one node.
    pub const REPLICAS_SPREAD: &str = "ReplicasSpread";
}

/// `ReplicasSpread` reason (and Warning event) when a shard's replicas share a node.
pub const SHARD_ON_ONE_NODE: &str = "ShardOnOneNode";

/// Items named in a condition message before "and N more".
pub const MESSAGE_ITEMS: usize = 3;
/// Longest single item in a condition message (a load error can quote a whole file path and more).
pub const MESSAGE_ITEM_CHARS: usize = 240;

/// Joins the first [`MESSAGE_ITEMS`] items, each cut to [`MESSAGE_ITEM_CHARS`],
/// then "and N more": a condition message stays readable and bounded however
/// many shards fail.
pub fn bounded_list(items: &[String]) -> String {
    let mut out: Vec<String> = items
        .iter()
        .take(MESSAGE_ITEMS)
        .map(|m| {
            if m.chars().count() > MESSAGE_ITEM_CHARS {
                let cut: String = m.chars().take(MESSAGE_ITEM_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                m.clone()
            }
        })
        .collect();
    if items.len() > MESSAGE_ITEMS {
        out.push(format!("and {} more", items.len() - MESSAGE_ITEMS));
    }
    out.join("; ")
}

/// The status as the API server stores it: `Time` keeps whole seconds, so
/// comparing a freshly computed status with the stored one must go through
/// the same serialisation, or sub-second times make every pass a write.
pub fn stored(s: DataClusterStatus) -> DataClusterStatus {
    serde_json::to_value(&s).and_then(serde_json::from_value).expect("a status always round-trips through JSON")
}

/// How finely `lastActivityTime` is recorded: a twentieth of the idle timeout,
/// between 5 s and 5 min (5 min without a timeout). Idle decisions use the
/// workers' exact times while they answer; the recorded value only matters
/// when they do not, so a busy cluster rewrites its status at most this often.
pub fn activity_resolution(idle_timeout: Option<Duration>) -> Duration {
    idle_timeout.map_or(Duration::from_secs(300), |t| (t / 20).clamp(Duration::from_secs(5), Duration::from_secs(300)))
}

/// `lastActivityTime` to record: the previous value while the new one is less
/// than `resolution` later, else the new one in whole seconds.
pub fn coarse_activity(previous: Option<Timestamp>, latest: Timestamp, resolution: Duration) -> Timestamp {
    if let Some(p) = previous
        && latest >= p
        && crate::lifecycle::elapsed(p, latest) < resolution
    {
        return p;
    }
    Timestamp::from_second(latest.as_second()).unwrap_or(latest)
}

/// What the status remembers for the lifecycle decision.
pub fn memory_of(status: Option<&DataClusterStatus>) -> Memory {
    let Some(s) = status else {
        return Memory::default();
    };
    let suspended = match (s.suspend_reason, &s.suspended_at) {
        (Some(reason), Some(at)) => Some(Suspension { reason, since: at.0, generation: s.suspended_generation }),
        _ => None,
    };
    Memory { suspended, last_activity: s.last_activity_time.as_ref().map(|t| t.0) }
}

/// Per-shard summary of the workers' reports under the current sharding.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Shards {
    /// Worker pods that answered with the right shard index and count and loaded every dataset.
    pub ready: i32,
    /// Workers that answered at all.
    pub answered: i32,
    /// Shards expected (0 when no worker should run).
    pub expected: i32,
    /// Shards at least one of whose replicas loaded every dataset.
    pub complete: i32,
    /// The fewest replicas that loaded every dataset, over the shards
    /// (`None` when no worker should run).
    pub min_ready_replicas: Option<i32>,
    /// Per-dataset rows and readiness (each shard counted once).
    pub datasets: Vec<DatasetStatus>,
    /// Load failures, `dataset shard i/n: error` (once per distinct message).
    pub failures: Vec<String>,
    /// Workers still serving another shard count (a re-shard in progress).
    pub stale: i32,
}

/// Summarises the workers' reports for `desired` worker pods over `shards`
/// shards (pod ordinal `i` serves shard `i mod shards`).
pub fn summarize_shards(c: &ValidCluster, desired: i32, shards: i32, reports: &[WorkerReport]) -> Shards {
    let shards = shards.max(1);
    let expected = if desired > 0 { shards.min(desired) } else { 0 };
    let mut out = Shards {
        expected,
        datasets: c
            .datasets
            .iter()
            .map(|d| DatasetStatus {
                name: d.spec.name.clone(),
                rows: 0,
                shards_ready: 0,
                shards: expected,
                error: None,
            })
            .collect(),
        ..Default::default()
    };
    // Lowest ordinal first: a shard's rows come from its first loaded replica.
    let mut ordered: Vec<&WorkerReport> = reports.iter().collect();
    ordered.sort_by_key(|r| r.ordinal);
    let mut seen = BTreeSet::new();
    // (dataset index, shard) already counted.
    let mut counted: BTreeSet<(usize, u32)> = BTreeSet::new();
    // shard → replicas that loaded every dataset.
    let mut ready_replicas: BTreeMap<u32, i32> = (0..expected as u32).map(|s| (s, 0)).collect();
    for r in ordered {
        let Ok(stats) = &r.outcome else { continue };
        // One answer per pod, whatever the transport did.
        if !seen.insert(r.ordinal) {
            continue;
        }
        out.answered += 1;
        if r.ordinal as i32 >= desired {
            continue;
        }
        let shard = r.ordinal % shards as u32;
        if stats.shards as i32 != shards || stats.shard != shard {
            out.stale += 1;
            continue;
        }
        let mut all_ready = true;
        for (i, ds) in out.datasets.iter_mut().enumerate() {
            match stats.datasets.iter().find(|d| d.name == ds.name) {
                Some(d) if d.state == LoadState::Ready => {
                    if counted.insert((i, shard)) {
                        ds.rows += d.rows as i64;
                        ds.shards_ready += 1;
                    }
                }
                Some(d) => {
                    all_ready = false;
                    if d.state == LoadState::Failed {
                        let msg = format!(
                            "dataset {} shard {}/{}: {}",
                            ds.name,
                            stats.shard,
                            stats.shards,
                            d.error.as_deref().unwrap_or("load failed")
                        );
                        ds.error.get_or_insert_with(|| msg.clone());
                        if !out.failures.contains(&msg) {
                            out.failures.push(msg);
                        }
                    }
                }
                None => all_ready = false,
            }
        }
        if all_ready {
            out.ready += 1;
            *ready_replicas.entry(shard).or_insert(0) += 1;
        }
    }
    out.complete = ready_replicas.values().filter(|n| **n > 0).count() as i32;
    out.min_ready_replicas = (expected > 0).then(|| ready_replicas.values().copied().min().unwrap_or(0));
    out
}

/// True when the StatefulSet runs `desired` up-to-date, ready pods. (With
/// `OnDelete` the StatefulSet never advances `currentRevision`, so the pods
/// on the update revision are what counts.)
pub fn rollout_complete(sts: Option<&StatefulSet>, desired: i32) -> bool {
    let Some(sts) = sts else { return desired == 0 };
    let Some(st) = &sts.status else {
        return desired == 0;
    };
    let observed = match (st.observed_generation, sts.metadata.generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    observed
        && st.replicas == desired
        && st.updated_replicas.unwrap_or(0) == desired
        && st.ready_replicas.unwrap_or(0) == desired
}

/// `RollingOut` reason of a surge re-shard that fell back to Replace.
pub const SURGE_FELL_BACK: &str = "SurgeFellBack";

/// `RollingOut` reason of each stage of a surge re-shard.
pub fn surge_reason(stage: &crate::rollout::SurgeStage) -> &'static str {
    use crate::rollout::SurgeStage as S;
    match stage {
        S::Loading => "SurgeLoading",
        S::Switched => "SurgeSwitched",
        S::Reloading => "SurgeReloading",
        S::Returned => "SurgeReturned",
        S::Done => "SurgeDone",
        S::FellBack(_) => SURGE_FELL_BACK,
    }
}

/// Everything the status is computed from.
pub struct Inputs<'a> {
    /// The validated cluster.
    pub cluster: &'a ValidCluster,
    /// The lifecycle decision taken.
    pub decision: &'a Decision,
    /// Workers that should run now.
    pub desired: i32,
    /// The StatefulSet as the API server returned it after the apply.
    pub workers: Option<&'a StatefulSet>,
    /// What the workers said.
    pub reports: &'a [WorkerReport],
    /// Query activity derived from the reports.
    pub activity: &'a Activity,
    /// The Ingress load balancer address, when it has one.
    pub ingress_address: Option<String>,
    /// Worker pods that cannot be created, scheduled, pulled or started.
    pub failures: &'a [PodFailure],
    /// Shards whose replicas all run on one node.
    pub colocated: &'a [crate::placement::Colocated],
    /// The rollout step taken, when workers run.
    pub rollout: Option<&'a crate::rollout::Plan>,
    /// The status before this reconcile.
    pub previous: Option<&'a DataClusterStatus>,
    /// Now.
    pub now: Timestamp,
}

fn cond(type_: &str, status: &str, reason: &str, message: String, generation: i64, now: Timestamp) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time: Time(now),
    }
}

/// Keeps a condition's transition time when its status did not change.
pub fn merge_conditions(previous: &[Condition], mut next: Vec<Condition>) -> Vec<Condition> {
    for c in &mut next {
        if let Some(p) = previous.iter().find(|p| p.type_ == c.type_)
            && p.status == c.status
        {
            c.last_transition_time = p.last_transition_time.clone();
        }
    }
    next
}

/// Computes the status of a valid cluster.
pub fn compute(i: &Inputs<'_>) -> DataClusterStatus {
    let c = i.cluster;
    let generation_now = c.generation;
    let shards = summarize_shards(c, i.desired, c.shards(), i.reports);
    let phase = phase_of(i, &shards);

    let valid = cond(condition::SPEC_VALID, "True", "Valid", "the spec is valid".into(), generation_now, i.now);
    let previous_conditions = i.previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let owned = cond(
        condition::CHILDREN_OWNED,
        "True",
        "Owned",
        "every child is owned by this DataCluster".into(),
        generation_now,
        i.now,
    );
    let mut next_conditions = vec![
        valid,
        ready_condition(i, phase, &shards),
        suspended_condition(i),
        activity_condition(i, &shards),
        owned,
        replica_failure_condition(i),
        rolling_out_condition(i, previous_conditions),
    ];
    if c.replicas_per_shard > 1 {
        next_conditions.push(replicas_spread_condition(i));
    }
    let conditions = merge_conditions(previous_conditions, next_conditions);
    let last_activity = coarse_activity(
        i.previous.and_then(|p| p.last_activity_time.as_ref()).map(|t| t.0),
        i.decision.last_activity,
        activity_resolution(c.idle_timeout),
    );

    let rows = shards.datasets.iter().map(|d| d.rows).sum();
    stored(DataClusterStatus {
        phase: Some(phase),
        conditions,
        observed_generation: Some(generation_now),
        replicas: i.workers.and_then(|s| s.status.as_ref()).map(|s| s.replicas).unwrap_or(0),
        selector: Some(worker_selector_string(&c.name)),
        desired_workers: i.desired,
        ready_workers: shards.ready,
        workers: Some(format!("{}/{}", shards.ready, i.desired)),
        shards: shards.expected,
        shards_ready: shards.complete,
        shards_summary: Some(format!("{}/{}", shards.complete, shards.expected)),
        replicas_per_shard: c.replicas_per_shard,
        min_ready_replicas: shards.min_ready_replicas,
        rows,
        datasets: shards.datasets,
        last_activity_time: Some(Time(last_activity)),
        suspended_at: i.decision.suspended.map(|s| Time(s.since)),
        suspend_reason: i.decision.suspended.map(|s| s.reason),
        suspended_generation: i.decision.suspended.and_then(|s| s.generation),
        url: Some(dashboard_url(c, i.ingress_address.as_deref())),
    })
}

/// The phase, from how many workers loaded, whether the rollout finished, and
/// the phase before.
fn phase_of(i: &Inputs<'_>, shards: &Shards) -> Phase {
    let generation_now = i.cluster.generation;
    let rolled = rollout_complete(i.workers, i.desired);
    let prev_phase = i.previous.and_then(|p| p.phase);
    let prev_gen = i.previous.and_then(|p| p.observed_generation);
    let stopped = i.decision.action.workers_stopped();

    if stopped || i.desired == 0 {
        Phase::Suspended
    } else if shards.ready == i.desired && rolled {
        Phase::Ready
    } else if !shards.failures.is_empty() {
        Phase::Degraded
    } else if matches!(prev_phase, Some(Phase::Ready | Phase::Degraded)) && prev_gen == Some(generation_now) && rolled {
        // Nothing was asked to change, yet a shard is gone.
        Phase::Degraded
    } else if shards.answered > 0 {
        Phase::Loading
    } else {
        Phase::Pending
    }
}

/// `Ready`: why the cluster is or is not, with the workers (and shards) loaded.
fn ready_condition(i: &Inputs<'_>, phase: Phase, shards: &Shards) -> Condition {
    let c = i.cluster;
    let generation_now = c.generation;
    let mut ready_msg = format!("{}/{} workers have loaded their shard of every dataset", shards.ready, i.desired);
    if c.replicas_per_shard > 1 {
        ready_msg.push_str(&format!(
            "; {}/{} shards have a loaded replica ({} per shard)",
            shards.complete, shards.expected, c.replicas_per_shard
        ));
    }
    match phase {
        Phase::Ready => cond(condition::READY, "True", "AllShardsLoaded", ready_msg, generation_now, i.now),
        Phase::Suspended => {
            cond(condition::READY, "False", "Suspended", "the workers are stopped".into(), generation_now, i.now)
        }
        Phase::Degraded if !shards.failures.is_empty() => {
            cond(condition::READY, "False", "LoadFailed", bounded_list(&shards.failures), generation_now, i.now)
        }
        Phase::Degraded => cond(condition::READY, "False", "ShardsUnavailable", ready_msg, generation_now, i.now),
        Phase::Loading if shards.stale > 0 => cond(
            condition::READY,
            "False",
            "Resharding",
            format!("{ready_msg}; {} still serve another shard count", shards.stale),
            generation_now,
            i.now,
        ),
        Phase::Loading => cond(condition::READY, "False", "Loading", ready_msg, generation_now, i.now),
        _ => cond(condition::READY, "False", "WaitingForWorkers", ready_msg, generation_now, i.now),
    }
}

/// `Suspended`: by the spec, by idleness, by zero replicas, or running.
fn suspended_condition(i: &Inputs<'_>) -> Condition {
    let generation_now = i.cluster.generation;
    match (i.decision.suspended, i.desired) {
        (Some(s), _) => {
            let (reason, msg) = match s.reason {
                SuspendReason::Spec => ("Spec", "spec.lifecycle.suspend is true".to_string()),
                SuspendReason::Idle => (
                    "Idle",
                    format!(
                        "no query since {}; resume from the dashboard or by changing the spec",
                        i.decision.last_activity
                    ),
                ),
            };
            cond(condition::SUSPENDED, "True", reason, msg, generation_now, i.now)
        }
        (None, 0) => {
            cond(condition::SUSPENDED, "True", "NoReplicas", "spec.workers.replicas is 0".into(), generation_now, i.now)
        }
        (None, _) => cond(condition::SUSPENDED, "False", "Running", "the workers run".into(), generation_now, i.now),
    }
}

/// `ActivityKnown`: whether the workers told their query activity.
fn activity_condition(i: &Inputs<'_>, shards: &Shards) -> Condition {
    let generation_now = i.cluster.generation;
    match i.activity {
        Activity::Known(_) => cond(
            condition::ACTIVITY_KNOWN,
            "True",
            "WorkersAnswered",
            format!("{} of {} workers reported their query activity", shards.answered, i.desired),
            generation_now,
            i.now,
        ),
        Activity::NoWorkers => cond(
            condition::ACTIVITY_KNOWN,
            "True",
            "NoWorkers",
            "no worker runs, so no query can arrive".into(),
            generation_now,
            i.now,
        ),
        Activity::Unknown(why) => cond(
            condition::ACTIVITY_KNOWN,
            "Unknown",
            "WorkersUnreachable",
            format!(
                "no worker reported its activity, so idle actions are held: {}",
                bounded_list(std::slice::from_ref(why))
            ),
            generation_now,
            i.now,
        ),
    }
}

/// `ReplicaFailure`: the first failing worker pod's reason, and the list.
fn replica_failure_condition(i: &Inputs<'_>) -> Condition {
    let generation_now = i.cluster.generation;
    match i.failures.first() {
        Some(first) => cond(
            condition::REPLICA_FAILURE,
            "True",
            &first.reason,
            bounded_list(&i.failures.iter().map(PodFailure::describe).collect::<Vec<_>>()),
            generation_now,
            i.now,
        ),
        None => cond(
            condition::REPLICA_FAILURE,
            "False",
            "NoFailure",
            "no worker pod is failing".into(),
            generation_now,
            i.now,
        ),
    }
}

/// `RollingOut`: a surge stage, a fallback, a stuck rollout, one in progress, or idle.
fn rolling_out_condition(i: &Inputs<'_>, previous_conditions: &[Condition]) -> Condition {
    let c = i.cluster;
    let generation_now = c.generation;
    let rolling_since = previous_conditions
        .iter()
        .find(|p| p.type_ == condition::ROLLING_OUT && p.status == "True")
        .map(|p| p.last_transition_time.0);
    let previous_rolling = previous_conditions.iter().find(|p| p.type_ == condition::ROLLING_OUT && p.status == "True");
    // A fallback is said for the rest of the generation's rollout (the
    // operator reads it back so as not to surge again).
    let fell_back = previous_rolling
        .filter(|p| p.reason == SURGE_FELL_BACK && p.observed_generation == Some(generation_now))
        .map(|p| p.message.clone());
    match i.rollout.filter(|p| p.in_progress) {
        Some(p)
            if matches!(p.surge, Some(crate::rollout::SurgeStage::FellBack(_)))
                || (fell_back.is_some() && p.surge.is_none()) =>
        {
            let message = match &p.surge {
                Some(stage) => stage.describe(c.worker_replicas.max(1)),
                None => fell_back.clone().unwrap_or_default(),
            };
            cond(condition::ROLLING_OUT, "True", SURGE_FELL_BACK, message, generation_now, i.now)
        }
        Some(p)
            if rolling_since.is_some_and(|since| crate::lifecycle::elapsed(since, i.now) >= c.progress_deadline) =>
        {
            cond(
                condition::ROLLING_OUT,
                "True",
                "Stuck",
                format!(
                    "{} of {} workers still to replace after {}; not Ready on the new template: {}",
                    p.outdated,
                    i.desired,
                    humantime::format_duration(c.progress_deadline),
                    if p.waiting.is_empty() { "none (pods missing)".to_string() } else { bounded_list(&p.waiting) }
                ),
                generation_now,
                i.now,
            )
        }
        Some(crate::rollout::Plan { surge: Some(stage), .. }) => cond(
            condition::ROLLING_OUT,
            "True",
            surge_reason(stage),
            stage.describe(c.worker_replicas.max(1)),
            generation_now,
            i.now,
        ),
        Some(p) => cond(
            condition::ROLLING_OUT,
            "True",
            "InProgress",
            format!(
                "{} of {} workers still to replace; {} loading on the new template",
                p.outdated,
                i.desired,
                p.waiting.len()
            ),
            generation_now,
            i.now,
        ),
        None => cond(
            condition::ROLLING_OUT,
            "False",
            "Idle",
            "every worker runs the current template".into(),
            generation_now,
            i.now,
        ),
    }
}

/// `ReplicasSpread` (replicated clusters only): whether a shard has all its replicas on one node.
fn replicas_spread_condition(i: &Inputs<'_>) -> Condition {
    let generation_now = i.cluster.generation;
    match i.colocated {
        [] => cond(
            condition::REPLICAS_SPREAD,
            "True",
            "Spread",
            "no shard has all its replicas on one node".into(),
            generation_now,
            i.now,
        ),
        shared => cond(
            condition::REPLICAS_SPREAD,
            "False",
            SHARD_ON_ONE_NODE,
            format!(
                "all replicas of a shard run on one node, whose loss makes answers partial \
                 (too few nodes, or the spread was only preferred): {}",
                bounded_list(&shared.iter().map(crate::placement::Colocated::describe).collect::<Vec<_>>())
            ),
            generation_now,
            i.now,
        ),
    }
}

/// Status of a cluster whose spec cannot be run: phase Failed, `SpecValid=False`
/// with the message; everything else is kept from before.
pub fn invalid(
    previous: Option<&DataClusterStatus>,
    generation: Option<i64>,
    message: &str,
    now: Timestamp,
) -> DataClusterStatus {
    let mut s = previous.cloned().unwrap_or_default();
    let generation_now = generation.unwrap_or(0);
    let mut next: Vec<Condition> = s
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::SPEC_VALID && c.type_ != condition::READY)
        .cloned()
        .collect();
    next.insert(0, cond(condition::SPEC_VALID, "False", "InvalidSpec", message.to_string(), generation_now, now));
    next.insert(
        1,
        cond(condition::READY, "False", "InvalidSpec", "the spec cannot be run".into(), generation_now, now),
    );
    s.conditions = merge_conditions(&s.conditions, next);
    s.phase = Some(Phase::Failed);
    s.observed_generation = generation;
    stored(s)
}

/// Status of a cluster some of whose child names are taken by objects it does
/// not own: `ChildrenOwned=False` naming them, `Ready=False`, phase Failed;
/// everything else is kept from before.
pub fn not_owned(
    previous: Option<&DataClusterStatus>,
    generation: i64,
    foreign: &[String],
    now: Timestamp,
) -> DataClusterStatus {
    let mut s = previous.cloned().unwrap_or_default();
    let message = format!(
        "refusing to take over objects this DataCluster does not own (rename or delete them): {}",
        bounded_list(foreign)
    );
    let mut next: Vec<Condition> = s
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::CHILDREN_OWNED && c.type_ != condition::READY)
        .cloned()
        .collect();
    next.push(cond(condition::READY, "False", "NotOwned", message.clone(), generation, now));
    next.push(cond(condition::CHILDREN_OWNED, "False", "NotOwned", message, generation, now));
    s.conditions = merge_conditions(&s.conditions, next);
    s.phase = Some(Phase::Failed);
    s.observed_generation = Some(generation);
    stored(s)
}

/// Status of a cluster whose deletion waits on finalizers: `Ready=False`
/// (reason `Deleting`, naming them); nothing else changes. Its children are
/// left to the garbage collector.
pub fn deleting(
    previous: Option<&DataClusterStatus>,
    generation: Option<i64>,
    finalizers: &[String],
    now: Timestamp,
) -> DataClusterStatus {
    let mut s = previous.cloned().unwrap_or_default();
    let waiting = if finalizers.is_empty() { "nothing".to_string() } else { bounded_list(finalizers) };
    let message = format!(
        "the DataCluster is being deleted; waiting for finalizers: {waiting}; the children are left to garbage collection"
    );
    let mut next: Vec<Condition> = s.conditions.iter().filter(|c| c.type_ != condition::READY).cloned().collect();
    next.push(cond(condition::READY, "False", "Deleting", message, generation.unwrap_or(0), now));
    s.conditions = merge_conditions(&s.conditions, next);
    stored(s)
}

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Expected transition.
    Normal,
    /// Something needs attention.
    Warning,
}

/// A Kubernetes Event to publish about the DataCluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Severity.
    pub severity: Severity,
    /// PascalCase reason.
    pub reason: &'static str,
    /// What the operator did or saw.
    pub action: &'static str,
    /// Human message.
    pub message: String,
}

/// The events a reconcile should publish: lifecycle actions and phase changes.
pub fn events(previous: Option<&DataClusterStatus>, next: &DataClusterStatus, action: Action) -> Vec<Note> {
    let mut out = Vec::new();
    let note = |severity, reason, action, message: String| Note { severity, reason, action, message };
    match action {
        Action::Suspend(SuspendReason::Idle) => out.push(note(
            Severity::Normal,
            "IdleSuspended",
            "ScaleToZero",
            "no query within the idle timeout; workers scaled to zero".into(),
        )),
        Action::Suspend(SuspendReason::Spec) => out.push(note(
            Severity::Normal,
            "Suspended",
            "ScaleToZero",
            "spec.lifecycle.suspend is true; workers scaled to zero".into(),
        )),
        Action::Resume(t) => {
            let why = match t {
                ResumeTrigger::SpecUnsuspended => "spec.lifecycle.suspend is false again",
                ResumeTrigger::ResumeRequest => "a dashboard asked to resume",
                ResumeTrigger::SpecChanged => "the spec changed",
            };
            out.push(note(Severity::Normal, "Resumed", "Resume", format!("{why}; starting the workers")));
        }
        Action::Delete => out.push(note(
            Severity::Normal,
            "IdleDeleted",
            "Delete",
            "no query within the idle timeout; deleting the DataCluster".into(),
        )),
        Action::Run | Action::StaySuspended(_) => {}
    }
    let prev_phase = previous.and_then(|p| p.phase);
    if let Some(phase) = next.phase
        && prev_phase != Some(phase)
        && phase != Phase::Suspended
    {
        let ready = next.conditions.iter().find(|c| c.type_ == condition::READY);
        let valid = next.conditions.iter().find(|c| c.type_ == condition::SPEC_VALID);
        let (severity, message) = match phase {
            Phase::Degraded => (Severity::Warning, ready.map(|c| c.message.clone()).unwrap_or_default()),
            Phase::Failed => (Severity::Warning, valid.map(|c| c.message.clone()).unwrap_or_default()),
            _ => (Severity::Normal, ready.map(|c| c.message.clone()).unwrap_or_default()),
        };
        out.push(Note { severity, reason: phase_reason(phase), action: "Reconcile", message });
    }
    let stuck = |s: Option<&DataClusterStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::ROLLING_OUT))
            .is_some_and(|c| c.reason == "Stuck")
    };
    let rolling_reason = |s: Option<&DataClusterStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::ROLLING_OUT))
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = rolling_reason(Some(next))
        && reason == SURGE_FELL_BACK
        && rolling_reason(previous).map(|(r, _)| r).as_deref() != Some(SURGE_FELL_BACK)
    {
        out.push(note(Severity::Warning, SURGE_FELL_BACK, "Rollout", message));
    }
    if stuck(Some(next)) && !stuck(previous) {
        let message = next
            .conditions
            .iter()
            .find(|c| c.type_ == condition::ROLLING_OUT)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        out.push(note(Severity::Warning, "RolloutStuck", "Rollout", message));
    }
    let spread = |s: Option<&DataClusterStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::REPLICAS_SPREAD && c.status == "False"))
            .map(|c| c.message.clone())
    };
    if let Some(message) = spread(Some(next))
        && spread(previous).is_none()
    {
        out.push(note(Severity::Warning, SHARD_ON_ONE_NODE, "ObservePods", message));
    }
    // A pod failure, once per new reason (not on every back-off message).
    let failure = |s: Option<&DataClusterStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::REPLICA_FAILURE && c.status == "True"))
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = failure(Some(next))
        && failure(previous).map(|(r, _)| r) != Some(reason.clone())
    {
        out.push(note(Severity::Warning, failure_reason(&reason), "ObservePods", message));
    }
    let was_known = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == condition::ACTIVITY_KNOWN))
        .is_none_or(|c| c.status == "True");
    if let Some(c) = next.conditions.iter().find(|c| c.type_ == condition::ACTIVITY_KNOWN)
        && c.status != "True"
        && was_known
    {
        out.push(note(Severity::Warning, "WorkersUnreachable", "ObserveActivity", c.message.clone()));
    }
    out
}

/// The event reason for a pod failure reason (events take static reasons).
fn failure_reason(reason: &str) -> &'static str {
    WAITING_FAILURES
        .iter()
        .chain(["Unschedulable", "FailedCreate"].iter())
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("ReplicaFailure")
}

fn phase_reason(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "Pending",
        Phase::Loading => "Loading",
        Phase::Ready => "Ready",
        Phase::Degraded => "Degraded",
        Phase::Suspended => "Suspended",
        Phase::Failed => "InvalidSpec",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolling(reason: &str, message: &str) -> DataClusterStatus {
        DataClusterStatus {
            conditions: vec![cond(condition::ROLLING_OUT, "True", reason, message.into(), 2, Timestamp::UNIX_EPOCH)],
            ..Default::default()
        }
    }

    #[test]
    fn a_surge_that_falls_back_is_announced_once_with_its_cause() {
        let why = crate::rollout::SurgeStage::FellBack(
            "demo-surge: FailedCreate: exceeded quota: q, requested: pods=1".into(),
        );
        assert_eq!(surge_reason(&why), SURGE_FELL_BACK);
        let loading = rolling(
            surge_reason(&crate::rollout::SurgeStage::Loading),
            "surge rollout: the new workers (3 shards) load",
        );
        let fell = rolling(SURGE_FELL_BACK, &why.describe(3));
        let notes = events(Some(&loading), &fell, Action::Run);
        let warning: Vec<&Note> = notes.iter().filter(|n| n.reason == SURGE_FELL_BACK).collect();
        assert_eq!(warning.len(), 1, "{notes:?}");
        assert_eq!(warning[0].severity, Severity::Warning);
        assert!(warning[0].message.contains("exceeded quota"), "{}", warning[0].message);
        // Said once: the next passes keep the reason without a new event.
        let again = events(Some(&fell), &fell, Action::Run);
        assert!(again.iter().all(|n| n.reason != SURGE_FELL_BACK), "{again:?}");
    }
}
