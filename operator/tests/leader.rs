//! Leader election on a Lease, against the mocked API server: two replicas
//! never both lead; an expired Lease is taken over; a lost race stays standby.

mod common;

use std::time::Duration;

use common::apiserver::FakeApi;
use k8s_openapi::jiff::Timestamp;
use quiver_operator::leader::{LeaseConfig, release, try_acquire_or_renew};
use serde_json::json;

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

#[tokio::test]
async fn two_replicas_never_lead_at_once_and_an_expired_lease_is_taken_over() {
    let (client, api) = FakeApi::start();
    let (a, b) = (cfg("operator-a"), cfg("operator-b"));

    assert!(
        try_acquire_or_renew(&client, &a, at("2026-03-01T12:00:00Z"))
            .await
            .unwrap(),
        "a creates the Lease"
    );
    assert!(
        !try_acquire_or_renew(&client, &b, at("2026-03-01T12:00:01Z"))
            .await
            .unwrap(),
        "b waits"
    );
    assert!(
        try_acquire_or_renew(&client, &a, at("2026-03-01T12:00:05Z"))
            .await
            .unwrap(),
        "a renews"
    );
    assert!(
        !try_acquire_or_renew(&client, &b, at("2026-03-01T12:00:19Z"))
            .await
            .unwrap(),
        "14 s after renewal: still a's"
    );
    let lease = api.get(LEASE).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-a");

    // a stops renewing; 15 s after its last renewal b takes over.
    assert!(
        try_acquire_or_renew(&client, &b, at("2026-03-01T12:00:20Z"))
            .await
            .unwrap(),
        "b takes over"
    );
    let lease = api.get(LEASE).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(
        !try_acquire_or_renew(&client, &a, at("2026-03-01T12:00:21Z"))
            .await
            .unwrap(),
        "a is standby now"
    );
}

#[tokio::test]
async fn a_replica_that_loses_the_write_race_stays_standby() {
    let (client, api) = FakeApi::start();
    // Expired Lease of a third replica; b will read it, but c writes first.
    api.insert(
        LEASE,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "quiver-operator", "namespace": "quiver-system", "resourceVersion": "7"},
               "spec": {"holderIdentity": "operator-c", "leaseDurationSeconds": 15,
                        "renewTime": "2026-03-01T11:00:00.000000Z"}}),
    );
    api.fail_next_put_as_conflict();
    assert!(
        !try_acquire_or_renew(&client, &cfg("operator-b"), at("2026-03-01T12:00:00Z"))
            .await
            .unwrap()
    );
    assert_eq!(
        api.get(LEASE).unwrap()["spec"]["holderIdentity"],
        "operator-c"
    );
}

#[tokio::test]
async fn releasing_frees_the_lease_for_an_immediate_take_over() {
    let (client, _api) = FakeApi::start();
    let (a, b) = (cfg("operator-a"), cfg("operator-b"));
    assert!(
        try_acquire_or_renew(&client, &a, at("2026-03-01T12:00:00Z"))
            .await
            .unwrap()
    );
    release(&client, &a).await.unwrap();
    assert!(
        try_acquire_or_renew(&client, &b, at("2026-03-01T12:00:01Z"))
            .await
            .unwrap()
    );
}
