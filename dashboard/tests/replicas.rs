//! Replica-aware fan-out: 2 shards × 2 replicas of fake workers under a
//! paused clock. Each query asks one replica per shard; a replica that is
//! killed, refuses, hangs or is slow is retried or hedged on the other, and
//! the answer stays complete; replicas of another generation are not mixed in.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use quiver_dashboard::discovery::Discovery;
use quiver_dashboard::fanout::Fanout;
use quiver_dashboard::merge::{Merged, Reply, merge};
use quiver_dashboard::metrics::Metrics;
use quiver_dashboard::replicas::HedgePolicy;
use quiver_worker::protocol::{PROTOCOL_VERSION, Query, QueryResult, View};
use serde_json::json;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(5);
const HEDGE: HedgePolicy = HedgePolicy { min: Duration::from_millis(10), max: Duration::from_millis(200) };
/// Rows of shard 0 plus shard 1 (see `fake_answer`).
const ALL_ROWS: u64 = 3000;

/// Workers by shard then replica, endpoints `http://s<shard>r<replica>:8815`.
struct Cluster {
    fanout: Arc<Fanout>,
    metrics: Metrics,
    workers: Vec<Vec<Arc<FakeWorker>>>,
}

impl Cluster {
    fn new(workers: Vec<Vec<Arc<FakeWorker>>>) -> Cluster {
        let mut map = std::collections::HashMap::new();
        let mut endpoints = Vec::new();
        for (s, replicas) in workers.iter().enumerate() {
            for (r, w) in replicas.iter().enumerate() {
                let ep = endpoint(s, r);
                endpoints.push(ep.clone());
                map.insert(ep, w.clone());
            }
        }
        let metrics = Metrics::new();
        let fanout = Fanout::new(Discovery::fixed(endpoints), Arc::new(FakeConnector(map)), TIMEOUT, metrics.clone())
            .with_hedge(HEDGE);
        Cluster { fanout: Arc::new(fanout), metrics, workers }
    }

    /// 2 shards × 2 replicas of one generation.
    fn two_by_two() -> Cluster {
        Cluster::new((0..2).map(|s| (0..2).map(|_| FakeWorker::replica(s, 2, "gen-1", Mode::Ok)).collect()).collect())
    }

    fn w(&self, shard: usize, replica: usize) -> &FakeWorker {
        &self.workers[shard][replica]
    }

    /// Who serves what, as the dashboard learns it from `stats` (the status
    /// page, the catalogue's `ListFlights` and every answer teach it too).
    async fn learn(&self) {
        let replies = self.fanout.stats().await;
        assert!(replies.iter().all(|r| r.result.is_ok()), "{replies:?}");
    }

    async fn query(&self) -> (Vec<Reply<QueryResult>>, Duration) {
        let t = Instant::now();
        let replies = self.fanout.query(radio()).await;
        (replies, t.elapsed())
    }

    fn queries(&self, shard: usize, replica: usize) -> u32 {
        self.w(shard, replica).queries.load(Ordering::SeqCst)
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.metrics.encode();
        let line = text.lines().find(|l| l.starts_with(&format!("quiver_dashboard_{name}_total ")));
        line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

fn endpoint(shard: usize, replica: usize) -> String {
    format!("http://s{shard}r{replica}:8815")
}

fn radio() -> Query {
    Query {
        version: PROTOCOL_VERSION,
        dataset: "celltowers".into(),
        filters: Default::default(),
        viewport: None,
        viewport_filter: false,
        views: vec![View::Histogram { dimension: "radio".into() }],
    }
}

fn answers(replies: &[Reply<QueryResult>]) -> Vec<(u32, String)> {
    let mut a: Vec<(u32, String)> =
        replies.iter().filter_map(|r| r.result.as_ref().ok().map(|q| (q.shard.shard, r.endpoint.clone()))).collect();
    a.sort();
    a
}

fn complete(replies: Vec<Reply<QueryResult>>) -> Merged {
    let m = merge(replies, None).unwrap();
    assert!(!m.shards.partial(), "{:?}", m.shards);
    assert_eq!(m.total, ALL_ROWS);
    m
}

#[tokio::test(start_paused = true)]
async fn each_shard_is_asked_once_and_its_replicas_share_the_load() {
    let c = Cluster::two_by_two();
    c.learn().await;
    for _ in 0..20 {
        let (replies, _) = c.query().await;
        assert_eq!(replies.len(), 2, "one answer per shard: {replies:?}");
        complete(replies);
    }
    for s in 0..2 {
        assert_eq!(c.queries(s, 0) + c.queries(s, 1), 20, "shard {s}: one replica per query");
        for r in 0..2 {
            assert!(c.queries(s, r) >= 5, "replica {r} of shard {s} got {} of 20 queries", c.queries(s, r));
        }
    }
    // Concurrent queries spread too: slow replicas, 8 at once.
    let c = Cluster::new(
        (0..2)
            .map(|s| (0..2).map(|_| FakeWorker::replica(s, 2, "gen-1", Mode::Slow(Duration::from_millis(5)))).collect())
            .collect(),
    );
    c.learn().await;
    let all = futures::future::join_all((0..8).map(|_| c.fanout.query(radio()))).await;
    for replies in all {
        complete(replies);
    }
    for s in 0..2 {
        assert_eq!((c.queries(s, 0), c.queries(s, 1)), (4, 4), "shard {s}: least outstanding requests");
    }
    assert_eq!(c.metric("hedges_fired"), 0, "nobody was slow");
}

#[tokio::test(start_paused = true)]
async fn endpoints_are_all_asked_until_their_shard_is_known() {
    let c = Cluster::two_by_two();
    let (replies, _) = c.query().await;
    assert_eq!(replies.len(), 2, "two replicas of a shard answered: one is kept: {replies:?}");
    let m = complete(replies);
    assert!(m.shards.consistent, "replicas are not duplicates");
    assert!((0..2).all(|s| c.queries(s, 0) == 1 && c.queries(s, 1) == 1), "unknown: everyone is asked");
    // The answers named the shards: from now on, one replica per shard.
    complete(c.query().await.0);
    assert_eq!((0..2).map(|s| c.queries(s, 0) + c.queries(s, 1)).sum::<u32>(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_killed_replica_is_retried_on_the_other_at_once() {
    let c = Cluster::two_by_two();
    c.learn().await;
    c.w(0, 0).set_mode(Mode::Down);
    let (replies, took) = c.query().await;
    assert_eq!(answers(&replies), vec![(0, endpoint(0, 1)), (1, endpoint(1, 0))]);
    assert!(replies.iter().all(|r| r.result.is_ok()), "the failure is not reported once the other answered");
    complete(replies);
    assert!(took < HEDGE.min, "no waiting for a hedge: {took:?}");
    assert_eq!(c.metric("replica_retries"), 1);
    // Avoided from then on: no more tries on the dead replica for a while.
    for _ in 0..5 {
        complete(c.query().await.0);
    }
    assert_eq!(c.queries(0, 0), 1);
    assert_eq!(c.queries(0, 1), 6);
}

#[tokio::test(start_paused = true)]
async fn a_refusing_replica_is_retried_and_a_loading_one_not_asked() {
    let c = Cluster::two_by_two();
    c.learn().await;
    // Loaded when learned, refuses now (restarted, loading again).
    c.w(1, 0).set_mode(Mode::NotLoaded);
    let (replies, _) = c.query().await;
    assert_eq!(answers(&replies), vec![(0, endpoint(0, 0)), (1, endpoint(1, 1))]);
    complete(replies);
    assert_eq!(c.metric("replica_retries"), 1);
    // Its stats now say it is loading: it is not asked while another is loaded.
    c.learn().await;
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..6 {
        complete(c.query().await.0);
    }
    assert_eq!(c.queries(1, 0), 1, "asked once, before it was known to be loading");
    // Once loaded again, it takes its share.
    c.w(1, 0).set_mode(Mode::Ok);
    c.learn().await;
    for _ in 0..6 {
        complete(c.query().await.0);
    }
    assert!(c.queries(1, 0) > 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_replica_is_hedged_well_before_the_deadline() {
    let c = Cluster::two_by_two();
    c.learn().await;
    c.w(0, 0).set_mode(Mode::Hang);
    let (replies, took) = c.query().await;
    assert_eq!(answers(&replies), vec![(0, endpoint(0, 1)), (1, endpoint(1, 0))]);
    complete(replies);
    // No latency known yet: the hedge waits its upper bound, far below the 5 s deadline.
    assert!(took >= HEDGE.max && took < HEDGE.max + Duration::from_millis(50), "{took:?}");
    assert_eq!((c.metric("hedges_fired"), c.metric("hedges_won")), (1, 1));
    let hung = c.fanout.replicas().view(&endpoint(0, 0)).unwrap();
    assert_eq!(hung.outstanding, 0, "the losing call was cancelled");
    assert!(hung.suspect, "a replica that lost a hedge is avoided");
    // The next queries go to the live replica straight away.
    let (replies, took) = c.query().await;
    complete(replies);
    assert!(took < HEDGE.min, "{took:?}");
    assert_eq!(c.queries(0, 0), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_replica_is_hedged_after_the_shards_p95() {
    let slow = |s: u32| FakeWorker::replica(s, 2, "gen-1", Mode::Slow(Duration::from_millis(20)));
    let c = Cluster::new(vec![vec![slow(0), slow(0)], vec![slow(1), slow(1)]]);
    c.learn().await;
    // Every answer takes 20 ms: that becomes the shards' p95.
    for _ in 0..20 {
        complete(c.query().await.0);
    }
    assert_eq!(c.metric("hedges_fired"), 0);
    c.w(0, 0).set_mode(Mode::Slow(Duration::from_secs(3)));
    let (replies, took) = c.query().await;
    assert_eq!(answers(&replies)[0], (0, endpoint(0, 1)));
    complete(replies);
    // 20 ms of hedge delay, then 20 ms on the other replica.
    assert!(took >= Duration::from_millis(40) && took < Duration::from_millis(60), "{took:?}");
    assert_eq!((c.metric("hedges_fired"), c.metric("hedges_won")), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_shard_with_every_replica_down_is_reported_partial_naming_them() {
    let c = Cluster::two_by_two();
    c.learn().await;
    c.w(1, 0).set_mode(Mode::Down);
    c.w(1, 1).set_mode(Mode::Down);
    let (replies, took) = c.query().await;
    assert!(took < TIMEOUT, "{took:?}");
    let m = merge(replies, None).unwrap();
    assert_eq!(m.shards.missing, vec![1]);
    assert!(m.shards.partial());
    let msg = m.shards.message.unwrap();
    assert!(msg.contains(&endpoint(1, 0)) && msg.contains(&endpoint(1, 1)), "{msg}");
    assert!(msg.contains("connection refused"), "{msg}");
    // Both hanging: the deadline, then the same report.
    c.w(1, 0).set_mode(Mode::Hang);
    c.w(1, 1).set_mode(Mode::Hang);
    let (replies, took) = c.query().await;
    assert!(took >= TIMEOUT && took < TIMEOUT + Duration::from_millis(100), "{took:?}");
    let m = merge(replies, None).unwrap();
    assert_eq!(m.shards.missing, vec![1]);
    assert!(m.shards.message.unwrap().contains("did not answer within"));
}

#[tokio::test(start_paused = true)]
async fn replicas_of_different_generations_are_not_mixed() {
    let c = Cluster::new(vec![
        vec![FakeWorker::replica(0, 2, "old", Mode::Ok), FakeWorker::replica(0, 2, "new", Mode::Ok)],
        vec![FakeWorker::replica(1, 2, "new", Mode::Ok), FakeWorker::replica(1, 2, "new", Mode::Ok)],
    ]);
    // Before anything is known every endpoint answers; the old snapshot is dropped.
    let (replies, _) = c.query().await;
    assert!(replies.iter().all(|r| r.result.as_ref().unwrap().shard.generation == "new"), "{replies:?}");
    assert!(complete(replies).shards.consistent);
    // Known: the replica of the old snapshot is not asked while one of the new serves.
    for _ in 0..6 {
        let (replies, _) = c.query().await;
        assert!(replies.iter().all(|r| r.result.as_ref().unwrap().shard.generation == "new"));
        assert!(complete(replies).shards.consistent);
    }
    assert_eq!(c.queries(0, 0), 1);
    // The new one gone: the old snapshot is the only answer for shard 0, and
    // merge reports it instead of adding it to the new.
    c.w(0, 1).set_mode(Mode::Down);
    let (replies, _) = c.query().await;
    let m = merge(replies, None).unwrap();
    assert!(m.shards.partial() && !m.shards.consistent, "{:?}", m.shards);
    assert_eq!(m.total, 2000, "only shard 1 of the new snapshot");
}

#[tokio::test(start_paused = true)]
async fn with_one_replica_per_shard_a_failing_worker_is_retried_once_as_before() {
    let c = Cluster::new(vec![
        vec![FakeWorker::replica(0, 2, "gen-1", Mode::Ok)],
        vec![FakeWorker::replica(1, 2, "gen-1", Mode::Ok)],
    ]);
    c.learn().await;
    c.w(1, 0).set_mode(Mode::Down);
    let (replies, _) = c.query().await;
    assert_eq!(c.queries(1, 0), 2, "tried twice");
    let m = merge(replies, None).unwrap();
    assert_eq!(m.shards.missing, vec![1]);
    assert_eq!((c.metric("hedges_fired"), c.metric("replica_retries")), (0, 0));
    // A hang costs exactly the deadline, as before.
    c.w(1, 0).set_mode(Mode::Hang);
    let (_, took) = c.query().await;
    assert!(took >= TIMEOUT && took < TIMEOUT + Duration::from_millis(100), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn status_and_queries_through_the_app_with_a_replica_down() {
    let w = vec![
        FakeWorker::replica(0, 2, "gen-1", Mode::Ok),
        FakeWorker::replica(1, 2, "gen-1", Mode::Ok),
        FakeWorker::replica(0, 2, "gen-1", Mode::Ok),
        FakeWorker::replica(1, 2, "gen-1", Mode::Ok),
    ];
    let (app, _) = app_with_args(w.clone(), |mut a| {
        a.worker_timeout = "2s".into();
        a
    });
    let j = send(&app, bearer(get("/api/status"), TOKEN)).await.json();
    assert_eq!((j["complete"].as_bool(), j["consistent"].as_bool()), (Some(true), Some(true)), "{j}");
    w[2].set_mode(Mode::Down);
    let j = send(&app, bearer(get("/api/status"), TOKEN)).await.json();
    assert_eq!(j["complete"], true, "shard 0 still has a replica: {j}");
    let shard0 = &j["replicas"][0];
    assert_eq!(shard0["shard"], 0);
    assert_eq!(shard0["loaded"], true);
    assert_eq!(
        shard0["replicas"][0],
        json!({"endpoint": "http://fake-0:8815", "ok": true, "loaded": true, "state": "ready", "generations": {"celltowers": "gen-1"}})
    );
    assert_eq!(shard0["replicas"][1]["endpoint"], "http://fake-2:8815");
    assert_eq!(shard0["replicas"][1]["state"], "down");
    assert_eq!(j["replicas"][1]["replicas"].as_array().unwrap().len(), 2);
    for _ in 0..4 {
        let a = send(&app, query(json!({"dataset": "celltowers", "histograms": ["radio"]}))).await;
        assert_eq!(a.status, StatusCode::OK);
        let a = a.json();
        assert_eq!((a["partial"].as_bool(), a["total"].as_u64()), (Some(false), Some(ALL_ROWS)), "{a}");
    }
    // A replica freezes after the catalogue expired: the refresh asks every
    // worker, but queries do not wait for it (the last catalogue serves).
    w[1].set_mode(Mode::Hang);
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..4 {
        let t = Instant::now();
        let a = send(&app, query(json!({"dataset": "celltowers", "histograms": ["radio"]}))).await.json();
        assert_eq!((a["partial"].as_bool(), a["total"].as_u64()), (Some(false), Some(ALL_ROWS)), "{a}");
        assert!(t.elapsed() < Duration::from_millis(1100), "{:?}: held by the frozen worker", t.elapsed());
    }
}

#[tokio::test(start_paused = true)]
async fn an_export_starts_on_another_replica_of_the_same_snapshot_when_its_own_fails() {
    use futures::StreamExt as _;
    let c = Cluster::new(vec![vec![
        FakeWorker::replica(0, 1, "gen-1", Mode::Ok),
        FakeWorker::replica(0, 1, "other", Mode::Ok),
        FakeWorker::replica(0, 1, "gen-1", Mode::Ok),
    ]]);
    c.learn().await;
    c.w(0, 0).set_mode(Mode::Down);
    let info = quiver_worker::protocol::ShardInfo { shard: 0, shards: 1, generation: "gen-1".into() };
    let mut q = radio();
    q.views = vec![View::Rows { limit: 10, columns: None }];
    let mut stream = c.fanout.export_shard(&endpoint(0, 0), &info, &q).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().num_rows(), 1);
    let exports: Vec<u32> = (0..3).map(|r| c.w(0, r).exports.load(Ordering::SeqCst)).collect();
    assert_eq!(exports, vec![1, 0, 1], "not the replica of another snapshot");
    // A refusal of the query itself is not retried elsewhere.
    q.dataset = "nope".into();
    c.w(0, 0).set_mode(Mode::Ok);
    assert!(c.fanout.export_shard(&endpoint(0, 0), &info, &q).await.is_err());
    assert_eq!(c.w(0, 0).exports.load(Ordering::SeqCst), 2);
    assert_eq!(c.w(0, 2).exports.load(Ordering::SeqCst), 1, "UnknownDataset on a replica: another is tried");
}
