//! Lifecycle decisions: run, suspend, resume or delete. Pure functions of
//! (policy, what the status remembers, what was observed, now); nothing here
//! reads the clock or calls anything.
//!
//! Idleness is measured from real query traffic: the latest of the workers' last
//! query times, the last activity already recorded in the status, a resume
//! request, and the time the cluster was created or resumed. When no worker
//! answers, activity is *unknown* and no idle action is taken (a `Delete` on a
//! guess would be unrecoverable); the reconciler reports that as a condition.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::crd::{OnIdle, SuspendReason};

/// A source of the current time, injectable in tests.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// What the spec says about the lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Idle timeout; `None` never idles.
    pub idle_timeout: Option<Duration>,
    /// What to do when idle.
    pub on_idle: OnIdle,
    /// `spec.lifecycle.suspend`.
    pub suspend: bool,
}

/// A suspension remembered in the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suspension {
    /// Why.
    pub reason: SuspendReason,
    /// Since when.
    pub since: Timestamp,
    /// The spec generation current when it began; a newer spec resumes an idle suspension.
    pub generation: Option<i64>,
}

/// What the status remembers between reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Memory {
    /// The current suspension, if the workers are stopped.
    pub suspended: Option<Suspension>,
    /// The last activity recorded.
    pub last_activity: Option<Timestamp>,
}

/// Query activity as observed on the workers this time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Activity {
    /// At least one worker answered; the latest last-query time among them (`None`: no query yet).
    Known(Option<Timestamp>),
    /// No worker is expected to run (zero replicas or suspended): no query can be served.
    NoWorkers,
    /// Workers should be running but none answered; why.
    Unknown(String),
}

/// Everything observed for one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// `metadata.generation` now.
    pub generation: i64,
    /// `metadata.creationTimestamp`.
    pub created_at: Option<Timestamp>,
    /// The resume annotation, if a dashboard set one.
    pub resume_requested_at: Option<Timestamp>,
    /// Query activity.
    pub activity: Activity,
}

/// Why a suspended cluster runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeTrigger {
    /// `spec.lifecycle.suspend` went back to false.
    SpecUnsuspended,
    /// A dashboard set the resume annotation after the suspension began.
    ResumeRequest,
    /// The spec changed (e.g. `kubectl scale`) after an idle suspension.
    SpecChanged,
}

/// What to do with the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the workers at the spec's replica count.
    Run,
    /// Run again after a suspension.
    Resume(ResumeTrigger),
    /// Stop the workers now (a new suspension).
    Suspend(SuspendReason),
    /// Keep the workers stopped.
    StaySuspended(SuspendReason),
    /// Delete the DataCluster (its children follow through owner references).
    Delete,
}

impl Action {
    /// True when the workers should be at zero.
    pub fn workers_stopped(self) -> bool {
        matches!(self, Action::Suspend(_) | Action::StaySuspended(_))
    }
}

/// A decision and what the status should remember after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The suspension to record (None when running).
    pub suspended: Option<Suspension>,
    /// `status.lastActivityTime` after this decision.
    pub last_activity: Timestamp,
    /// When the idle deadline falls, if the cluster is running under an idle policy
    /// and activity is known: reconcile again by then.
    pub idle_deadline_in: Option<Duration>,
}

fn latest(times: impl IntoIterator<Item = Option<Timestamp>>) -> Option<Timestamp> {
    times.into_iter().flatten().max()
}

/// Decides the cluster's lifecycle. Total: every combination yields a decision.
pub fn decide(policy: &Policy, memory: &Memory, obs: &Observation, now: Timestamp) -> Decision {
    let observed_query = match &obs.activity {
        Activity::Known(t) => *t,
        Activity::NoWorkers | Activity::Unknown(_) => None,
    };
    // Activity never moves backwards, and a cluster is "active" when it is created.
    let last_activity =
        latest([memory.last_activity, observed_query, obs.resume_requested_at]).or(obs.created_at).unwrap_or(now);

    let stay = |reason: SuspendReason, s: Suspension| Decision {
        action: Action::StaySuspended(reason),
        suspended: Some(s),
        last_activity,
        idle_deadline_in: None,
    };
    let suspend_now = |reason: SuspendReason| Decision {
        action: Action::Suspend(reason),
        suspended: Some(Suspension { reason, since: now, generation: Some(obs.generation) }),
        last_activity,
        idle_deadline_in: None,
    };
    // Resuming counts as activity: the idle clock restarts.
    let resume = |trigger: ResumeTrigger| Decision {
        action: Action::Resume(trigger),
        suspended: None,
        last_activity: now.max(last_activity),
        idle_deadline_in: policy.idle_timeout.filter(|_| policy.on_idle != OnIdle::None),
    };

    // 1. An explicit suspend wins over everything.
    if policy.suspend {
        return match memory.suspended {
            Some(s) if s.reason == SuspendReason::Spec => stay(SuspendReason::Spec, s),
            _ => suspend_now(SuspendReason::Spec),
        };
    }

    // 2. Leaving a suspension.
    if let Some(s) = memory.suspended {
        match s.reason {
            SuspendReason::Spec => return resume(ResumeTrigger::SpecUnsuspended),
            SuspendReason::Idle => {
                if obs.resume_requested_at.is_some_and(|r| r > s.since) {
                    return resume(ResumeTrigger::ResumeRequest);
                }
                if s.generation.is_some_and(|g| obs.generation > g) {
                    return resume(ResumeTrigger::SpecChanged);
                }
                return stay(SuspendReason::Idle, s);
            }
        }
    }

    // 3. Running: is it idle?
    let run = |deadline: Option<Duration>| Decision {
        action: Action::Run,
        suspended: None,
        last_activity,
        idle_deadline_in: deadline,
    };
    let Some(timeout) = policy.idle_timeout else {
        return run(None);
    };
    if policy.on_idle == OnIdle::None {
        return run(None);
    }
    if let Activity::Unknown(_) = obs.activity {
        return run(None);
    }
    let idle_for = elapsed(last_activity, now);
    if idle_for < timeout {
        return run(Some(timeout - idle_for));
    }
    match policy.on_idle {
        OnIdle::ScaleToZero => suspend_now(SuspendReason::Idle),
        OnIdle::Delete => Decision { action: Action::Delete, suspended: None, last_activity, idle_deadline_in: None },
        OnIdle::None => run(None),
    }
}

/// Time from `from` to `to`, zero when `to` is earlier (clock skew between workers).
pub fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let micros = to.as_microsecond() - from.as_microsecond();
    Duration::from_micros(micros.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-03-01T12:00:00Z";
    const CREATED: &str = "2026-03-01T10:00:00Z";

    fn policy(timeout_min: Option<u64>, on_idle: OnIdle) -> Policy {
        Policy { idle_timeout: timeout_min.map(|m| Duration::from_secs(m * 60)), on_idle, suspend: false }
    }

    fn obs(activity: Activity) -> Observation {
        Observation { generation: 5, created_at: Some(t(CREATED)), resume_requested_at: None, activity }
    }

    fn queried(at: &str) -> Activity {
        Activity::Known(Some(t(at)))
    }

    fn idle_suspension(since: &str, generation: i64) -> Memory {
        Memory {
            suspended: Some(Suspension { reason: SuspendReason::Idle, since: t(since), generation: Some(generation) }),
            last_activity: Some(t("2026-03-01T11:00:00Z")),
        }
    }

    #[test]
    fn recent_queries_keep_the_cluster_running_until_the_deadline() {
        let d = decide(
            &policy(Some(30), OnIdle::ScaleToZero),
            &Memory::default(),
            &obs(queried("2026-03-01T11:50:00Z")),
            t(NOW),
        );
        assert_eq!(d.action, Action::Run);
        assert_eq!(d.last_activity, t("2026-03-01T11:50:00Z"));
        assert_eq!(d.idle_deadline_in, Some(Duration::from_secs(20 * 60)));
    }

    #[test]
    fn idle_past_timeout_scales_workers_to_zero() {
        let d = decide(
            &policy(Some(30), OnIdle::ScaleToZero),
            &Memory::default(),
            &obs(queried("2026-03-01T11:29:59Z")),
            t(NOW),
        );
        assert_eq!(d.action, Action::Suspend(SuspendReason::Idle));
        assert!(d.action.workers_stopped());
        assert_eq!(d.suspended, Some(Suspension { reason: SuspendReason::Idle, since: t(NOW), generation: Some(5) }));
    }

    #[test]
    fn idle_exactly_at_the_timeout_is_idle() {
        let d = decide(
            &policy(Some(30), OnIdle::ScaleToZero),
            &Memory::default(),
            &obs(queried("2026-03-01T11:30:00Z")),
            t(NOW),
        );
        assert_eq!(d.action, Action::Suspend(SuspendReason::Idle));
    }

    #[test]
    fn idle_past_timeout_with_delete_deletes_the_cluster() {
        let d = decide(
            &policy(Some(30), OnIdle::Delete),
            &Memory::default(),
            &obs(queried("2026-03-01T11:00:00Z")),
            t(NOW),
        );
        assert_eq!(d.action, Action::Delete);
    }

    #[test]
    fn idle_past_timeout_with_on_idle_none_keeps_running() {
        let d =
            decide(&policy(Some(30), OnIdle::None), &Memory::default(), &obs(queried("2026-03-01T09:00:00Z")), t(NOW));
        assert_eq!(d.action, Action::Run);
        assert_eq!(d.idle_deadline_in, None);
    }

    #[test]
    fn without_an_idle_timeout_the_cluster_is_never_idle() {
        for on_idle in [OnIdle::ScaleToZero, OnIdle::Delete, OnIdle::None] {
            let d = decide(
                &policy(None, on_idle),
                &Memory::default(),
                &obs(Activity::Known(None)),
                t("2027-01-01T00:00:00Z"),
            );
            assert_eq!(d.action, Action::Run, "{on_idle:?}");
        }
    }

    #[test]
    fn a_cluster_never_queried_is_idle_from_its_creation() {
        let p = policy(Some(90), OnIdle::ScaleToZero);
        let young = decide(&p, &Memory::default(), &obs(Activity::Known(None)), t("2026-03-01T11:29:00Z"));
        assert_eq!(young.action, Action::Run);
        assert_eq!(young.last_activity, t(CREATED));
        let old = decide(&p, &Memory::default(), &obs(Activity::Known(None)), t("2026-03-01T11:30:00Z"));
        assert_eq!(old.action, Action::Suspend(SuspendReason::Idle));
    }

    #[test]
    fn unknown_activity_never_triggers_an_idle_action() {
        for on_idle in [OnIdle::ScaleToZero, OnIdle::Delete] {
            let d = decide(
                &policy(Some(1), on_idle),
                &Memory::default(),
                &obs(Activity::Unknown("no worker answered".into())),
                t("2027-01-01T00:00:00Z"),
            );
            assert_eq!(d.action, Action::Run, "{on_idle:?}");
            assert_eq!(d.idle_deadline_in, None);
        }
    }

    #[test]
    fn zero_replicas_count_as_no_traffic() {
        let d = decide(&policy(Some(30), OnIdle::Delete), &Memory::default(), &obs(Activity::NoWorkers), t(NOW));
        assert_eq!(d.action, Action::Delete);
    }

    #[test]
    fn recorded_activity_survives_worker_restarts() {
        // Workers restarted and forgot their last query; the status remembers 11:45.
        let memory = Memory { suspended: None, last_activity: Some(t("2026-03-01T11:45:00Z")) };
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &memory, &obs(Activity::Known(None)), t(NOW));
        assert_eq!(d.action, Action::Run);
        assert_eq!(d.last_activity, t("2026-03-01T11:45:00Z"));
    }

    #[test]
    fn activity_never_moves_backwards() {
        let memory = Memory { suspended: None, last_activity: Some(t("2026-03-01T11:55:00Z")) };
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &memory, &obs(queried("2026-03-01T11:00:00Z")), t(NOW));
        assert_eq!(d.last_activity, t("2026-03-01T11:55:00Z"));
    }

    #[test]
    fn a_worker_clock_ahead_of_the_operator_does_not_underflow() {
        let d = decide(
            &policy(Some(30), OnIdle::ScaleToZero),
            &Memory::default(),
            &obs(queried("2026-03-01T12:05:00Z")),
            t(NOW),
        );
        assert_eq!(d.action, Action::Run);
        assert_eq!(d.idle_deadline_in, Some(Duration::from_secs(30 * 60)));
    }

    #[test]
    fn spec_suspend_stops_the_workers_whatever_the_activity() {
        let mut p = policy(None, OnIdle::None);
        p.suspend = true;
        let d = decide(&p, &Memory::default(), &obs(queried("2026-03-01T11:59:00Z")), t(NOW));
        assert_eq!(d.action, Action::Suspend(SuspendReason::Spec));
        let again = decide(
            &p,
            &Memory { suspended: d.suspended, last_activity: Some(d.last_activity) },
            &obs(Activity::NoWorkers),
            t("2026-03-01T13:00:00Z"),
        );
        assert_eq!(again.action, Action::StaySuspended(SuspendReason::Spec));
        assert_eq!(again.suspended.unwrap().since, t(NOW), "the suspension keeps its start");
    }

    #[test]
    fn spec_suspend_takes_over_an_idle_suspension() {
        let mut p = policy(Some(30), OnIdle::ScaleToZero);
        p.suspend = true;
        let d = decide(&p, &idle_suspension("2026-03-01T11:40:00Z", 5), &obs(Activity::NoWorkers), t(NOW));
        assert_eq!(d.action, Action::Suspend(SuspendReason::Spec));
    }

    #[test]
    fn unsetting_spec_suspend_resumes_and_restarts_the_idle_clock() {
        let memory = Memory {
            suspended: Some(Suspension { reason: SuspendReason::Spec, since: t(CREATED), generation: Some(4) }),
            last_activity: Some(t(CREATED)),
        };
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &memory, &obs(Activity::NoWorkers), t(NOW));
        assert_eq!(d.action, Action::Resume(ResumeTrigger::SpecUnsuspended));
        assert_eq!(d.suspended, None);
        assert_eq!(d.last_activity, t(NOW));
        assert_eq!(d.idle_deadline_in, Some(Duration::from_secs(30 * 60)));
    }

    #[test]
    fn an_idle_suspended_cluster_stays_suspended_without_a_trigger() {
        let d = decide(
            &policy(Some(30), OnIdle::ScaleToZero),
            &idle_suspension("2026-03-01T11:40:00Z", 5),
            &obs(Activity::NoWorkers),
            t(NOW),
        );
        assert_eq!(d.action, Action::StaySuspended(SuspendReason::Idle));
        assert_eq!(d.suspended.unwrap().since, t("2026-03-01T11:40:00Z"));
    }

    #[test]
    fn a_resume_request_after_the_suspension_resumes() {
        let mut o = obs(Activity::NoWorkers);
        o.resume_requested_at = Some(t("2026-03-01T11:58:00Z"));
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &idle_suspension("2026-03-01T11:40:00Z", 5), &o, t(NOW));
        assert_eq!(d.action, Action::Resume(ResumeTrigger::ResumeRequest));
        assert_eq!(d.last_activity, t(NOW));
    }

    #[test]
    fn a_resume_request_older_than_the_suspension_is_spent() {
        let mut o = obs(Activity::NoWorkers);
        o.resume_requested_at = Some(t("2026-03-01T11:00:00Z"));
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &idle_suspension("2026-03-01T11:40:00Z", 5), &o, t(NOW));
        assert_eq!(d.action, Action::StaySuspended(SuspendReason::Idle));
    }

    #[test]
    fn a_resume_request_does_not_override_spec_suspend() {
        let mut p = policy(Some(30), OnIdle::ScaleToZero);
        p.suspend = true;
        let memory = Memory {
            suspended: Some(Suspension { reason: SuspendReason::Spec, since: t(CREATED), generation: Some(5) }),
            last_activity: None,
        };
        let mut o = obs(Activity::NoWorkers);
        o.resume_requested_at = Some(t("2026-03-01T11:59:00Z"));
        assert_eq!(decide(&p, &memory, &o, t(NOW)).action, Action::StaySuspended(SuspendReason::Spec));
    }

    #[test]
    fn a_spec_change_resumes_an_idle_suspension() {
        let mut o = obs(Activity::NoWorkers);
        o.generation = 6;
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &idle_suspension("2026-03-01T11:40:00Z", 5), &o, t(NOW));
        assert_eq!(d.action, Action::Resume(ResumeTrigger::SpecChanged));
    }

    #[test]
    fn a_resume_request_while_running_counts_as_activity() {
        let mut o = obs(Activity::Known(None));
        o.resume_requested_at = Some(t("2026-03-01T11:45:00Z"));
        let d = decide(&policy(Some(30), OnIdle::ScaleToZero), &Memory::default(), &o, t(NOW));
        assert_eq!(d.action, Action::Run);
        assert_eq!(d.last_activity, t("2026-03-01T11:45:00Z"));
    }

    #[test]
    fn a_resumed_cluster_is_not_suspended_again_on_the_next_pass() {
        let p = policy(Some(30), OnIdle::ScaleToZero);
        let mut o = obs(Activity::NoWorkers);
        o.resume_requested_at = Some(t("2026-03-01T11:58:00Z"));
        let resumed = decide(&p, &idle_suspension("2026-03-01T11:40:00Z", 5), &o, t(NOW));
        let memory = Memory { suspended: resumed.suspended, last_activity: Some(resumed.last_activity) };
        // Workers are starting: nobody answers yet.
        o.activity = Activity::Unknown("starting".into());
        let next = decide(&p, &memory, &o, t("2026-03-01T12:01:00Z"));
        assert_eq!(next.action, Action::Run);
        // Loaded, no query: idle again only 30 min after the resume.
        o.activity = Activity::Known(None);
        assert_eq!(decide(&p, &memory, &o, t("2026-03-01T12:29:00Z")).action, Action::Run);
        assert_eq!(decide(&p, &memory, &o, t("2026-03-01T12:30:00Z")).action, Action::Suspend(SuspendReason::Idle));
    }

    /// Every combination of inputs yields a decision consistent with the rules.
    #[test]
    fn exhaustive_table_of_inputs_respects_the_invariants() {
        let times = ["2026-03-01T09:00:00Z", "2026-03-01T11:40:00Z", "2026-03-01T11:59:00Z"];
        let mut count = 0;
        for timeout in [None, Some(30)] {
            for on_idle in [OnIdle::ScaleToZero, OnIdle::Delete, OnIdle::None] {
                for suspend in [false, true] {
                    for susp in [None, Some(SuspendReason::Spec), Some(SuspendReason::Idle)] {
                        for activity in [
                            Activity::Known(None),
                            Activity::Known(Some(t(times[0]))),
                            Activity::Known(Some(t(times[2]))),
                            Activity::NoWorkers,
                            Activity::Unknown("x".into()),
                        ] {
                            for resume in [None, Some(t(times[0])), Some(t(times[2]))] {
                                for generation in [5, 6] {
                                    count += 1;
                                    let p = Policy {
                                        idle_timeout: timeout.map(|m| Duration::from_secs(m * 60)),
                                        on_idle,
                                        suspend,
                                    };
                                    let memory = Memory {
                                        suspended: susp.map(|reason| Suspension {
                                            reason,
                                            since: t(times[1]),
                                            generation: Some(5),
                                        }),
                                        last_activity: Some(t(times[0])),
                                    };
                                    let o = Observation {
                                        generation,
                                        created_at: Some(t(CREATED)),
                                        resume_requested_at: resume,
                                        activity: activity.clone(),
                                    };
                                    let d = decide(&p, &memory, &o, t(NOW));
                                    let ctx = format!("{p:?} {memory:?} {o:?} -> {d:?}");
                                    // Spec suspend always wins.
                                    if suspend {
                                        assert!(d.action.workers_stopped(), "{ctx}");
                                        assert_eq!(d.suspended.unwrap().reason, SuspendReason::Spec, "{ctx}");
                                    }
                                    // Stopped exactly when a suspension is recorded.
                                    assert_eq!(d.action.workers_stopped(), d.suspended.is_some(), "{ctx}");
                                    // Delete only under a Delete policy with a timeout, known-or-absent activity, not suspended.
                                    if d.action == Action::Delete {
                                        assert!(
                                            on_idle == OnIdle::Delete
                                                && timeout.is_some()
                                                && !suspend
                                                && susp.is_none(),
                                            "{ctx}"
                                        );
                                        assert!(!matches!(activity, Activity::Unknown(_)), "{ctx}");
                                    }
                                    // Idle suspension only under ScaleToZero with a timeout.
                                    if d.action == Action::Suspend(SuspendReason::Idle) {
                                        assert!(on_idle == OnIdle::ScaleToZero && timeout.is_some(), "{ctx}");
                                    }
                                    // Unknown activity never stops or deletes a running cluster.
                                    if matches!(activity, Activity::Unknown(_)) && susp.is_none() && !suspend {
                                        assert_eq!(d.action, Action::Run, "{ctx}");
                                    }
                                    // Activity never moves backwards.
                                    assert!(d.last_activity >= memory.last_activity.unwrap(), "{ctx}");
                                    // A running cluster with a recent query is never stopped.
                                    if activity == Activity::Known(Some(t(times[2]))) && susp.is_none() && !suspend {
                                        assert_eq!(d.action, Action::Run, "{ctx}");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(count, 2 * 3 * 2 * 3 * 5 * 3 * 2);
    }
}
