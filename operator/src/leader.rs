//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator
//! replicas never reconcile at once.
//!
//! The holder renews the Lease every `duration / 3`; a standby takes it over
//! once `renewTime + leaseDurationSeconds` has passed. Writes use the Lease's
//! `resourceVersion`, so of two replicas racing for an expired Lease one gets a
//! conflict and stays standby. A leader that cannot renew within
//! `renew_deadline` stops leading before anyone else may take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::error::{Error, Result, is_status};
use crate::lifecycle::{Clock, elapsed};

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
    /// Time between renewals.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// How long a leader keeps leading without a successful renewal.
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

/// Decides from the Lease as read. Pure.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> LeaseAction {
    let Some(lease) = lease else {
        return LeaseAction::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == me {
        return LeaseAction::Renew;
    }
    if holder.is_empty() {
        return LeaseAction::TakeOver;
    }
    let valid_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    match spec.renew_time.or(spec.acquire_time) {
        Some(renewed) if elapsed(renewed.0, now) < valid_for => LeaseAction::Wait { holder },
        _ => LeaseAction::TakeOver,
    }
}

fn held_spec(
    cfg: &LeaseConfig,
    now: Timestamp,
    previous: Option<&LeaseSpec>,
    transition: bool,
) -> LeaseSpec {
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs().max(1) as i32),
        acquire_time: if transition {
            Some(MicroTime(now))
        } else {
            previous.and_then(|p| p.acquire_time.clone())
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if transition {
            transitions + 1
        } else {
            transitions
        }),
        ..Default::default()
    }
}

/// One round of the election: read, decide, write. Returns whether we hold the Lease.
pub async fn try_acquire_or_renew(
    client: &Client,
    cfg: &LeaseConfig,
    now: Timestamp,
) -> Result<bool> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let current = api
        .get_opt(&cfg.name)
        .await
        .map_err(|e| Error::Lease(format!("reading Lease {}: {e}", cfg.name)))?;
    let action = decide(current.as_ref(), &cfg.identity, now);
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

/// Gives the Lease up (on shutdown) so a standby takes over at once.
pub async fn release(client: &Client, cfg: &LeaseConfig) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let Some(mut lease) = api
        .get_opt(&cfg.name)
        .await
        .map_err(|e| Error::Lease(e.to_string()))?
    else {
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
}

/// Runs the election until `stop` flips to true; publishes leadership on the returned channel.
pub fn spawn_elector(
    client: Client,
    cfg: LeaseConfig,
    clock: std::sync::Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut last_renewed: Option<tokio::time::Instant> = None;
        loop {
            let leading = match try_acquire_or_renew(&client, &cfg, clock.now()).await {
                Ok(true) => {
                    last_renewed = Some(tokio::time::Instant::now());
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election round failed");
                    // Keep leading only while the last renewal is recent enough.
                    last_renewed.is_some_and(|t| t.elapsed() < cfg.renew_deadline())
                }
            };
            if *tx.borrow() != leading {
                tracing::info!(identity = %cfg.identity, leading, "leadership changed");
            }
            if !leading {
                last_renewed = None;
            }
            let _ = tx.send(leading);
            tokio::select! {
                _ = tokio::time::sleep(cfg.renew_every()) => {}
                _ = stop.wait_for(|s| *s) => break,
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

    fn now() -> Timestamp {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, "a", now()), LeaseAction::Create);
    }

    #[test]
    fn our_lease_is_renewed() {
        assert_eq!(
            decide(
                Some(&lease(Some("a"), "2026-03-01T11:59:55Z", 15)),
                "a",
                now()
            ),
            LeaseAction::Renew
        );
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_respected() {
        assert_eq!(
            decide(
                Some(&lease(Some("b"), "2026-03-01T11:59:50Z", 15)),
                "a",
                now()
            ),
            LeaseAction::Wait { holder: "b".into() }
        );
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        assert_eq!(
            decide(
                Some(&lease(Some("b"), "2026-03-01T11:59:45Z", 15)),
                "a",
                now()
            ),
            LeaseAction::TakeOver
        );
        assert_eq!(
            decide(Some(&lease(None, "2026-03-01T11:59:59Z", 15)), "a", now()),
            LeaseAction::TakeOver
        );
        let mut no_times = lease(Some("b"), "2026-03-01T11:59:59Z", 15);
        no_times.spec.as_mut().unwrap().renew_time = None;
        assert_eq!(decide(Some(&no_times), "a", now()), LeaseAction::TakeOver);
    }

    #[test]
    fn a_take_over_counts_a_transition_and_a_renewal_does_not() {
        let cfg = LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        let prev = LeaseSpec {
            lease_transitions: Some(2),
            ..Default::default()
        };
        assert_eq!(
            held_spec(&cfg, now(), Some(&prev), true).lease_transitions,
            Some(3)
        );
        assert_eq!(
            held_spec(&cfg, now(), Some(&prev), false).lease_transitions,
            Some(2)
        );
        assert_eq!(cfg.renew_every(), Duration::from_secs(5));
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
    }
}
