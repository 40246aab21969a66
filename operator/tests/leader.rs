//! Leader election on a Lease, against the mocked API server: two replicas
//! never both lead; a Lease is taken over only after a standby has seen it
//! unchanged for its duration (by its own clock); a lost race stays standby;
//! rounds are bounded; a stop is never read as a lost Lease.

use crate::common;

use std::time::Duration;

use common::apiserver::FakeApi;
use k8s_openapi::jiff::Timestamp;
use quiver_operator::leader::{Elector, LeaseConfig, release};
use serde_json::json;
use tokio::time::Instant;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/quiver-system/leases/quiver-operator";

fn cfg(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "quiver-operator".into(),
        namespace: "quiver-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test]
async fn two_replicas_never_lead_at_once_and_an_unrenewed_lease_is_taken_over() {
    let (client, api) = FakeApi::start();
    let (mut a, mut b) = (Elector::new(cfg("operator-a")), Elector::new(cfg("operator-b")));
    let l0 = Instant::now();

    assert!(a.round(&client, at("2026-03-01T12:00:00Z"), l0).await.unwrap(), "a creates the Lease");
    assert!(!b.round(&client, at("2026-03-01T12:00:01Z"), l0 + secs(1)).await.unwrap(), "b waits");
    assert!(a.round(&client, at("2026-03-01T12:00:05Z"), l0 + secs(5)).await.unwrap(), "a renews");
    assert!(
        !b.round(&client, at("2026-03-01T12:00:19Z"), l0 + secs(19)).await.unwrap(),
        "b sees the renewal now: the 15 s count from here"
    );
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "operator-a");
    assert!(
        !b.round(&client, at("2026-03-01T12:00:33Z"), l0 + secs(33)).await.unwrap(),
        "14 s after b saw it: still a's"
    );

    // a stops renewing; 15 s after b last saw a change, b takes over.
    assert!(b.round(&client, at("2026-03-01T12:00:34Z"), l0 + secs(34)).await.unwrap(), "b takes over");
    let lease = api.get(LEASE).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(!a.round(&client, at("2026-03-01T12:00:35Z"), l0 + secs(35)).await.unwrap(), "a is standby now");
}

#[tokio::test]
async fn a_replica_that_loses_the_write_race_stays_standby() {
    let (client, api) = FakeApi::start();
    // A released Lease; b will read it, but c writes first.
    api.insert(
        LEASE,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "quiver-operator", "namespace": "quiver-system", "resourceVersion": "7"},
               "spec": {"leaseDurationSeconds": 15,
                        "renewTime": "2026-03-01T11:00:00.000000Z"}}),
    );
    api.fail_next_put_as_conflict();
    let mut b = Elector::new(cfg("operator-b"));
    assert!(!b.round(&client, at("2026-03-01T12:00:00Z"), Instant::now()).await.unwrap());
    assert!(api.get(LEASE).unwrap()["spec"]["holderIdentity"].is_null());
}

#[tokio::test]
async fn releasing_frees_the_lease_for_an_immediate_take_over() {
    let (client, _api) = FakeApi::start();
    let (mut a, mut b) = (Elector::new(cfg("operator-a")), Elector::new(cfg("operator-b")));
    let l0 = Instant::now();
    assert!(a.round(&client, at("2026-03-01T12:00:00Z"), l0).await.unwrap());
    release(&client, &cfg("operator-a")).await.unwrap();
    assert!(b.round(&client, at("2026-03-01T12:00:01Z"), l0 + secs(1)).await.unwrap());
}

#[tokio::test]
async fn a_requested_stop_is_never_mistaken_for_a_lost_lease() {
    use quiver_operator::leader::{Ending, await_end};
    use tokio::sync::watch;
    // On SIGTERM the stop flag is set, then the elector stops and drops its
    // sender: both wake the waiter at once. It must release, not exit 1.
    for _ in 0..200 {
        let (lead_tx, lead_rx) = watch::channel(true);
        let (stop_tx, stop_rx) = watch::channel(false);
        stop_tx.send(true).unwrap();
        drop(lead_tx);
        assert_eq!(await_end(lead_rx, stop_rx).await, Ending::Stopped);
    }
}

struct WallClock(std::sync::Mutex<Timestamp>);

impl quiver_operator::lifecycle::Clock for WallClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewal_hangs_stops_leading_at_its_renew_deadline() {
    use common::apiserver::{Fault, HANG};
    use quiver_operator::leader::spawn_elector;
    use tokio::sync::watch;
    use tokio::time::Instant;

    let (client, api) = FakeApi::start();
    let clock = std::sync::Arc::new(WallClock(std::sync::Mutex::new(at("2026-03-01T12:00:00Z"))));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut leading = spawn_elector(client, cfg("operator-a"), clock, stop_rx);
    tokio::time::timeout(Duration::from_secs(1), leading.wait_for(|l| *l)).await.expect("leads at once").unwrap();
    let since = Instant::now();
    // The connection goes half-open: reads of the Lease never answer.
    api.fail(Fault { method: "GET", path_contains: "/leases/", code: HANG });
    tokio::time::timeout(Duration::from_secs(60), leading.wait_for(|l| !*l))
        .await
        .expect("leadership is dropped")
        .unwrap();
    let led_for = since.elapsed();
    assert!(
        led_for <= Duration::from_secs(10),
        "leadership kept {led_for:?} after the last renewal; the renew deadline is 10 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_standby_with_a_skewed_clock_never_steals_a_lease_that_is_being_renewed() {
    use quiver_operator::leader::spawn_elector;
    use tokio::sync::watch;

    let (client, api) = FakeApi::start();
    // b renews every 5 s, writing its own wall clock, which runs an hour behind ours.
    let holder = api.clone();
    tokio::spawn(async move {
        for i in 0u32.. {
            let renewed = at("2026-03-01T11:00:00Z").checked_add(jiff_secs(5 * i as i64)).unwrap();
            holder.insert(
                LEASE,
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "quiver-operator", "namespace": "quiver-system",
                                    "resourceVersion": (i + 1).to_string()},
                       "spec": {"holderIdentity": "operator-b", "leaseDurationSeconds": 15,
                                "renewTime": renewed.to_string()}}),
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    tokio::task::yield_now().await;
    let clock = std::sync::Arc::new(WallClock(std::sync::Mutex::new(at("2026-03-01T12:00:00Z"))));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut leading = spawn_elector(client, cfg("operator-a"), clock, stop_rx);
    let stole = tokio::time::timeout(Duration::from_secs(120), leading.wait_for(|l| *l)).await;
    assert!(stole.is_err(), "a took a Lease b renews every 5 s");
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "operator-b");
}

fn jiff_secs(s: i64) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::from_secs(s)
}
