//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator
//! replicas never reconcile at once.
//!
//! As in client-go: the holder renews the Lease every `duration / 3`; a standby
//! takes it over only once it has seen the same Lease record, unchanged, for
//! `leaseDurationSeconds` of its *own* monotonic time (the holder's
//! `renewTime` is never compared with the local wall clock, so clock skew
//! cannot make a standby steal a healthy Lease). Writes carry the Lease's
//! `resourceVersion`, so of two replicas racing for a free Lease one gets a
//! conflict and stays standby.
//!
//! Every round is bounded: a leader's round may last at most until its renew
//! deadline (`2/3 × duration` after the start of its last successful renewal),
//! and leadership is dropped the moment that deadline passes, whatever the API
//! call is doing. A standby that observes a change waits a full `duration`, so
//! the old leader has stopped at least `duration / 3` before anyone may take
//! over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result, is_status};
use crate::lifecycle::Clock;

/// Election settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Namespace of the Lease (the operator's).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    /// Time between renewals (and between a standby's looks at the Lease).
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// How long a leader keeps leading after the start of its last successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    /// No Lease exists: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds it and it is valid: wait.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// The Lease record a standby last saw and when, by its own monotonic clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observer {
    seen: Option<(LeaseSpec, Instant)>,
}

impl Observer {
    /// Notes the record read at `local_now`; returns when it was first seen unchanged.
    pub fn observe(&mut self, spec: &LeaseSpec, local_now: Instant) -> Instant {
        match &self.seen {
            Some((s, at)) if s == spec => *at,
            _ => {
                self.seen = Some((spec.clone(), local_now));
                local_now
            }
        }
    }
}

/// Decides from the Lease as read at `local_now`. Pure but for the observer's memory.
pub fn decide(lease: Option<&Lease>, me: &str, observer: &mut Observer, local_now: Instant) -> LeaseAction {
    let Some(lease) = lease else {
        return LeaseAction::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let since = observer.observe(&spec, local_now);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return LeaseAction::Renew;
    }
    if holder.is_empty() {
        return LeaseAction::TakeOver;
    }
    let valid_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    if local_now.saturating_duration_since(since) < valid_for {
        LeaseAction::Wait { holder }
    } else {
        LeaseAction::TakeOver
    }
}

fn held_spec(cfg: &LeaseConfig, now: Timestamp, previous: Option<&LeaseSpec>, transition: bool) -> LeaseSpec {
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs().max(1) as i32),
        acquire_time: if transition { Some(MicroTime(now)) } else { previous.and_then(|p| p.acquire_time.clone()) },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if transition { transitions + 1 } else { transitions }),
        ..Default::default()
    }
}

/// One replica's side of the election.
#[derive(Clone, Debug)]
pub struct Elector {
    cfg: LeaseConfig,
    observer: Observer,
}

impl Elector {
    /// An elector that has seen nothing yet.
    pub fn new(cfg: LeaseConfig) -> Elector {
        Elector { cfg, observer: Observer::default() }
    }

    /// One round: read, decide, write. `now` is only written into the Lease
    /// (for people reading it); expiry is judged on `local_now`. Returns whether
    /// we hold the Lease.
    pub async fn round(&mut self, client: &Client, now: Timestamp, local_now: Instant) -> Result<bool> {
        let cfg = &self.cfg;
        let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
        let current =
            api.get_opt(&cfg.name).await.map_err(|e| Error::Lease(format!("reading Lease {}: {e}", cfg.name)))?;
        let action = decide(current.as_ref(), &cfg.identity, &mut self.observer, local_now);
        let lost_race = |e: &kube::Error| is_status(e, 409);
        match action {
            LeaseAction::Wait { .. } => Ok(false),
            LeaseAction::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(cfg.name.clone()),
                        namespace: Some(cfg.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(held_spec(cfg, now, None, false)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(e) if lost_race(&e) => Ok(false),
                    Err(e) => Err(Error::Lease(format!("creating Lease {}: {e}", cfg.name))),
                }
            }
            LeaseAction::Renew | LeaseAction::TakeOver => {
                let mut lease = current.expect("a Lease exists for renew and take-over");
                let transition = action == LeaseAction::TakeOver;
                lease.spec = Some(held_spec(cfg, now, lease.spec.as_ref(), transition));
                // `replace` sends the resourceVersion read above: a concurrent writer makes it fail.
                match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(e) if lost_race(&e) => Ok(false),
                    Err(e) => Err(Error::Lease(format!("updating Lease {}: {e}", cfg.name))),
                }
            }
        }
    }
}

/// Gives the Lease up (on shutdown) so a standby takes over at once. Bounded by
/// `renew_every`: a release that cannot be written just lets the Lease expire.
pub async fn release(client: &Client, cfg: &LeaseConfig) -> Result<()> {
    let call = async {
        let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
        let Some(mut lease) = api.get_opt(&cfg.name).await.map_err(|e| Error::Lease(e.to_string()))? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        api.replace(&cfg.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| Error::Lease(format!("releasing Lease {}: {e}", cfg.name)))?;
        Ok(())
    };
    tokio::time::timeout(cfg.renew_every(), call)
        .await
        .map_err(|_| Error::Lease(format!("releasing Lease {}: no answer within {:?}", cfg.name, cfg.renew_every())))?
}

/// Why a leader stops reconciling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Termination was requested: finish, release the Lease, exit 0.
    Stopped,
    /// The Lease was lost: stop at once and exit non-zero.
    Lost,
}

/// Waits, while leading, until leadership is lost or a stop is requested. A
/// requested stop wins: on SIGTERM the elector stops and closes its channel
/// right after the stop flag is set, and that must not read as a lost Lease.
pub async fn await_end(mut leadership: watch::Receiver<bool>, mut stop: watch::Receiver<bool>) -> Ending {
    let ending = tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => Ending::Stopped,
        _ = leadership.wait_for(|l| !*l) => Ending::Lost,
    };
    if ending == Ending::Lost && *stop.borrow() {
        return Ending::Stopped;
    }
    ending
}

/// Runs the election until `stop` flips to true; publishes leadership on the
/// returned channel. A leader's rounds are cut off at its renew deadline, when
/// `false` is published.
pub fn spawn_elector(
    client: Client,
    cfg: LeaseConfig,
    clock: std::sync::Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut elector = Elector::new(cfg.clone());
        // Start of the last successful round while leading.
        let mut renewed: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let budget = match renewed {
                Some(at) => (at + cfg.renew_deadline()).saturating_duration_since(started),
                None => cfg.renew_every(),
            }
            .min(cfg.renew_every());
            let outcome = tokio::time::timeout(budget, elector.round(&client, clock.now(), started)).await;
            let leading = match outcome {
                Ok(Ok(true)) => {
                    renewed = Some(started);
                    true
                }
                Ok(Ok(false)) => false,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "leader election round failed");
                    renewed.is_some_and(|at| Instant::now() < at + cfg.renew_deadline())
                }
                Err(_) => {
                    tracing::warn!(budget = ?budget, "leader election round timed out");
                    renewed.is_some_and(|at| Instant::now() < at + cfg.renew_deadline())
                }
            };
            if !leading {
                renewed = None;
            }
            if *tx.borrow() != leading {
                tracing::info!(identity = %cfg.identity, leading, "leadership changed");
            }
            let _ = tx.send(leading);
            let next = started + cfg.renew_every();
            let wake = match renewed {
                // Retry sooner than the deadline when a renewal failed.
                Some(at) => next.min(at + cfg.renew_deadline()),
                None => next,
            };
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: &str, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_duration_seconds: Some(secs),
                ..Default::default()
            }),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn no_lease_is_created_and_ours_is_renewed() {
        let l0 = Instant::now();
        let mut o = Observer::default();
        assert_eq!(decide(None, "a", &mut o, l0), LeaseAction::Create);
        let ours = lease(Some("a"), "2026-03-01T11:59:55Z", 15);
        assert_eq!(decide(Some(&ours), "a", &mut o, l0), LeaseAction::Renew);
    }

    #[test]
    fn another_replicas_lease_is_respected_until_seen_unchanged_for_its_duration() {
        let l0 = Instant::now();
        let mut o = Observer::default();
        // Its renewTime is an hour old by our wall clock (skew): irrelevant.
        let theirs = lease(Some("b"), "2026-03-01T11:00:00Z", 15);
        let wait = LeaseAction::Wait { holder: "b".into() };
        assert_eq!(decide(Some(&theirs), "a", &mut o, l0), wait);
        assert_eq!(decide(Some(&theirs), "a", &mut o, l0 + secs(14)), wait);
        // A renewal restarts our observation.
        let renewed = lease(Some("b"), "2026-03-01T11:00:10Z", 15);
        assert_eq!(decide(Some(&renewed), "a", &mut o, l0 + secs(14)), wait);
        assert_eq!(decide(Some(&renewed), "a", &mut o, l0 + secs(28)), wait);
        assert_eq!(decide(Some(&renewed), "a", &mut o, l0 + secs(29)), LeaseAction::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_over_at_once() {
        let mut o = Observer::default();
        let free = lease(None, "2026-03-01T11:59:59Z", 15);
        assert_eq!(decide(Some(&free), "a", &mut o, Instant::now()), LeaseAction::TakeOver);
    }

    #[test]
    fn a_take_over_counts_a_transition_and_a_renewal_does_not() {
        let cfg = LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        let now: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        let prev = LeaseSpec { lease_transitions: Some(2), ..Default::default() };
        assert_eq!(held_spec(&cfg, now, Some(&prev), true).lease_transitions, Some(3));
        assert_eq!(held_spec(&cfg, now, Some(&prev), false).lease_transitions, Some(2));
        assert_eq!(cfg.renew_every(), Duration::from_secs(5));
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
    }
}
