//! Calling the workers at once: each call runs in its own task, bounded by a
//! per-worker deadline, retried once on a transient error; every call's
//! outcome comes back, so the caller can say which shards are missing and why.
//!
//! Admin calls (stats, datasets, reload, health) go to every endpoint. Queries
//! go to one replica per shard (see [`crate::replicas`]):
//!
//! ```text
//! endpoints ─▶ plan: known shard → its replicas; unknown → asked directly
//!   per shard: pick a replica ─▶ answer ─▶ done (latency into the shard's window)
//!                      ├─ fails / refuses ─▶ the next replica at once
//!                      └─ slower than the shard's p95 ─▶ hedge on the next;
//!                         the first good answer wins, the other is dropped
//!   ─▶ one answer per shard (of the generation most shards hold) ─▶ merge
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use quiver_worker::protocol::{DatasetInfo, Query, QueryResult, ShardInfo, WorkerStats};

use crate::discovery::Discovery;
use crate::error::Error;
use crate::merge::Reply;
use crate::metrics::Metrics;
use crate::replicas::{HedgePolicy, InFlight, Replicas, ShardKey};

/// A worker's error, as its client reports it.
pub type WorkerResult<T> = std::result::Result<T, quiver_worker::Error>;

/// What the dashboard asks of one worker. The real one speaks Arrow Flight
/// ([`crate::flight::FlightConnector`]); tests plug in fakes.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Runs a query on this worker's shard.
    async fn query(&self, q: &Query) -> WorkerResult<QueryResult>;
    /// The `stats` action.
    async fn stats(&self) -> WorkerResult<WorkerStats>;
    /// The `reload` action, for one dataset or all.
    async fn reload(&self, dataset: Option<&str>) -> WorkerResult<()>;
    /// Datasets held and their view configs.
    async fn datasets(&self) -> WorkerResult<Vec<DatasetInfo>>;
    /// The `health` action.
    async fn health(&self) -> WorkerResult<()>;
    /// Runs an export (a query whose only view is `rows`): its batches as
    /// they arrive; a refusal comes before the first.
    async fn export(&self, q: &Query) -> WorkerResult<BatchStream> {
        let _ = q;
        Err(quiver_worker::Error::InvalidQuery("this worker does not export rows".into()))
    }
}

/// Record batches streamed from a worker.
pub type BatchStream = futures::stream::BoxStream<'static, WorkerResult<arrow_array::RecordBatch>>;

/// Makes a client for an endpoint.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Connects (or prepares to connect) to `endpoint`.
    async fn connect(&self, endpoint: &str) -> WorkerResult<Arc<dyn Worker>>;
}

/// Parallel calls to all discovered workers.
pub struct Fanout {
    discovery: Discovery,
    connector: Arc<dyn Connector>,
    clients: Mutex<HashMap<String, Arc<dyn Worker>>>,
    replicas: Arc<Replicas>,
    timeout: Duration,
    retry_backoff: Duration,
    metrics: Metrics,
}

/// One try of a query on one replica: the replica (counted in flight until
/// dropped), how long it took, its outcome.
type Attempt = (InFlight, Duration, WorkerResult<QueryResult>);

impl Fanout {
    /// A fan-out over the workers `discovery` lists, each call bounded by `timeout`.
    pub fn new(discovery: Discovery, connector: Arc<dyn Connector>, timeout: Duration, metrics: Metrics) -> Fanout {
        Fanout {
            discovery,
            connector,
            clients: Mutex::new(HashMap::new()),
            replicas: Arc::new(Replicas::new(HedgePolicy::default())),
            timeout,
            retry_backoff: Duration::from_millis(50).min(timeout / 10),
            metrics,
        }
    }

    /// The same fan-out hedging within `policy`.
    pub fn with_hedge(mut self, policy: HedgePolicy) -> Fanout {
        self.replicas = Arc::new(Replicas::new(policy));
        self
    }

    /// Which endpoint serves which shard, as learned so far.
    pub fn replicas(&self) -> &Arc<Replicas> {
        &self.replicas
    }

    /// Where the workers come from.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The per-worker time limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn client(&self, endpoint: &str) -> WorkerResult<Arc<dyn Worker>> {
        if let Some(c) = self.clients.lock().expect("client cache lock").get(endpoint) {
            return Ok(c.clone());
        }
        let c = self.connector.connect(endpoint).await?;
        self.clients.lock().expect("client cache lock").insert(endpoint.to_string(), c.clone());
        Ok(c)
    }

    fn forget(&self, endpoint: &str) {
        self.clients.lock().expect("client cache lock").remove(endpoint);
    }

    /// Drops cached clients of endpoints no longer discovered.
    fn prune(&self, current: &[String]) {
        self.clients.lock().expect("client cache lock").retain(|ep, _| current.iter().any(|c| c == ep));
        self.replicas.retain(current);
    }

    /// Calls `op` on every worker in parallel; one reply per worker, in endpoint order.
    pub async fn call_all<T, F, Fut>(self: &Arc<Self>, op: F) -> Vec<Reply<T>>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Worker>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = WorkerResult<T>> + Send + 'static,
    {
        self.call_all_within(self.timeout, op).await
    }

    /// [`Fanout::call_all`] with another deadline.
    pub async fn call_all_within<T, F, Fut>(self: &Arc<Self>, deadline: Duration, op: F) -> Vec<Reply<T>>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Worker>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = WorkerResult<T>> + Send + 'static,
    {
        let endpoints = self.discovery.endpoints();
        self.prune(&endpoints);
        let handles: Vec<_> = endpoints
            .iter()
            .map(|ep| {
                let (this, ep, op) = (self.clone(), ep.clone(), op.clone());
                tokio::spawn(async move { this.call_one(ep, deadline, op).await })
            })
            .collect();
        let mut replies = Vec::with_capacity(handles.len());
        for (h, ep) in handles.into_iter().zip(endpoints.iter()) {
            replies.push(match h.await {
                Ok(r) => r,
                Err(e) => Reply {
                    endpoint: ep.clone(),
                    result: Err(Error::Internal(format!("worker call task failed: {e}"))),
                },
            });
        }
        // Workers replaced or scaled up from zero have new addresses: look
        // again now rather than at the next periodic resolution.
        if replies.is_empty() || replies.iter().any(|r| r.result.is_err()) {
            self.discovery.nudge();
        }
        replies
    }

    async fn call_one<T, F, Fut>(&self, endpoint: String, deadline: Duration, op: F) -> Reply<T>
    where
        F: Fn(Arc<dyn Worker>) -> Fut,
        Fut: Future<Output = WorkerResult<T>>,
    {
        let attempts = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let res = match self.client(&endpoint).await {
                    Ok(c) => op(c).await,
                    Err(e) => Err(e),
                };
                match res {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        self.metrics.worker_error(e.category());
                        if e.is_transient() {
                            // The connection may be broken: reconnect on the next try.
                            self.forget(&endpoint);
                            if attempt == 1 {
                                tracing::debug!(endpoint = %endpoint, error = %e, "transient worker error; retrying once");
                                tokio::time::sleep(self.retry_backoff).await;
                                continue;
                            }
                        }
                        return Err(Error::Worker { endpoint: endpoint.clone(), source: e });
                    }
                }
            }
        };
        let result = match tokio::time::timeout(deadline, attempts).await {
            Ok(r) => r,
            Err(_) => {
                self.metrics.worker_error("timeout");
                Err(Error::WorkerTimeout { endpoint: endpoint.clone(), after: deadline })
            }
        };
        if let Err(e) = &result {
            tracing::warn!(endpoint = %endpoint, error = %e, "worker call failed");
        }
        Reply { endpoint, result }
    }

    /// Starts an export on one worker (see [`Worker::export`]), within the
    /// per-call deadline for its first answer.
    pub async fn export_from(self: &Arc<Self>, endpoint: &str, q: &Query) -> std::result::Result<BatchStream, Error> {
        let w = self.client(endpoint).await.map_err(|e| Error::Worker { endpoint: endpoint.to_string(), source: e })?;
        match tokio::time::timeout(self.timeout, w.export(q)).await {
            Ok(r) => r.map_err(|e| Error::Worker { endpoint: endpoint.to_string(), source: e }),
            Err(_) => Err(Error::WorkerTimeout { endpoint: endpoint.to_string(), after: self.timeout }),
        }
    }

    /// Starts the export of one shard on `endpoint` (the replica that answered
    /// its count) or, when that fails before the first batch, on another
    /// replica known to hold the same shard and generation. A stream broken
    /// midway is not resumed elsewhere (its rows would repeat).
    pub async fn export_shard(
        self: &Arc<Self>,
        endpoint: &str,
        shard: &ShardInfo,
        q: &Query,
    ) -> std::result::Result<BatchStream, Error> {
        let key = ShardKey::from(shard);
        let mut candidates = vec![endpoint.to_string()];
        candidates.extend(
            self.discovery
                .endpoints()
                .iter()
                .filter(|e| {
                    *e != endpoint
                        && self.replicas.shard_of(e) == Some(key)
                        && self.replicas.holds(e, &q.dataset, &shard.generation)
                })
                .cloned(),
        );
        let mut last = None;
        for (i, ep) in candidates.iter().enumerate() {
            if i > 0 {
                self.metrics.replica_retries.inc();
            }
            match self.export_from(ep, q).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    use quiver_worker::Error as W;
                    if matches!(e, Error::Worker { source: W::InvalidQuery(_) | W::TooManyRows { .. }, .. }) {
                        return Err(e);
                    }
                    tracing::warn!(endpoint = %ep, error = %e, "export from a replica failed");
                    self.replicas.struck(ep, Some(&q.dataset), false);
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least the given endpoint was tried"))
    }

    /// Runs a query on one replica of every shard (and on every endpoint whose
    /// shard is not known yet): at most one answer per shard comes back, with
    /// the errors of the replicas that failed when none answered.
    pub async fn query(self: &Arc<Self>, q: Query) -> Vec<Reply<QueryResult>> {
        let q = Arc::new(q);
        let endpoints = self.discovery.endpoints();
        self.prune(&endpoints);
        let plan = self.replicas.plan(&endpoints, &q.dataset);
        let mut handles = Vec::with_capacity(plan.shards.len() + plan.unknown.len());
        for (key, group) in plan.shards {
            let (this, q, generation) = (self.clone(), q.clone(), plan.generation.clone());
            let label = group.join(", ");
            handles.push((label, tokio::spawn(async move { this.query_shard(key, group, q, generation).await })));
        }
        for ep in plan.unknown {
            let (this, q) = (self.clone(), q.clone());
            handles.push((
                ep.clone(),
                tokio::spawn(async move {
                    let op = {
                        let q = q.clone();
                        move |w: Arc<dyn Worker>| {
                            let q = q.clone();
                            async move { query_worker(w.as_ref(), &q).await }
                        }
                    };
                    let r = this.call_one(ep, this.timeout, op).await;
                    if let Ok(a) = &r.result {
                        this.replicas.learn_answer(&r.endpoint, &q.dataset, &a.shard);
                    }
                    vec![r]
                }),
            ));
        }
        let mut replies = Vec::with_capacity(handles.len());
        for (label, h) in handles {
            match h.await {
                Ok(r) => replies.extend(r),
                Err(e) => replies.push(Reply {
                    endpoint: label,
                    result: Err(Error::Internal(format!("worker call task failed: {e}"))),
                }),
            }
        }
        if replies.is_empty() || replies.iter().any(|r| r.result.is_err()) {
            self.discovery.nudge();
        }
        one_answer_per_shard(replies)
    }

    /// Asks one replica of `key` at a time (see the module doc): the first good
    /// answer, or every failure when none came within the deadline.
    async fn query_shard(
        self: Arc<Self>,
        key: ShardKey,
        group: Vec<String>,
        q: Arc<Query>,
        generation: Option<String>,
    ) -> Vec<Reply<QueryResult>> {
        let dataset = q.dataset.as_str();
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let hedge_delay = self.replicas.hedge_delay(key);
        let hedge = tokio::time::sleep(hedge_delay);
        tokio::pin!(hedge);
        let mut hedge_armed = group.len() > 1;
        let mut tried: Vec<String> = Vec::new();
        let mut in_flight: Vec<String> = Vec::new();
        let mut hedges: Vec<String> = Vec::new();
        let mut failures: Vec<Reply<QueryResult>> = Vec::new();
        let mut other_generation: Option<Reply<QueryResult>> = None;
        let mut retried_same = false;
        let mut running: FuturesUnordered<BoxFuture<'static, Attempt>> = FuturesUnordered::new();
        let next = |tried: &[String]| self.replicas.pick(&group, tried, dataset, generation.as_deref());
        let first = next(&tried).expect("a shard's group lists at least one endpoint");
        tried.push(first.endpoint().to_string());
        in_flight.push(first.endpoint().to_string());
        running.push(self.attempt(first, q.clone(), Duration::ZERO));
        loop {
            tokio::select! {
                biased;
                Some((guard, took, result)) = running.next() => {
                    let ep = guard.endpoint().to_string();
                    in_flight.retain(|e| *e != ep);
                    drop(guard);
                    match result {
                        Ok(answer) => {
                            self.replicas.learn_answer(&ep, dataset, &answer.shard);
                            self.replicas.succeeded(&ep);
                            let reply = Reply { endpoint: ep.clone(), result: Ok(answer) };
                            let stale = match (&generation, &reply.result) {
                                (Some(want), Ok(a)) => ShardKey::from(&a.shard) == key && a.shard.generation != *want,
                                _ => false,
                            };
                            if stale {
                                // Another snapshot than the other shards': ask a replica holding theirs.
                                if let Some(g) = next(&tried) {
                                    self.metrics.replica_retries.inc();
                                    tried.push(g.endpoint().to_string());
                                    in_flight.push(g.endpoint().to_string());
                                    running.push(self.attempt(g, q.clone(), Duration::ZERO));
                                    other_generation.get_or_insert(reply);
                                    continue;
                                }
                                if !running.is_empty() {
                                    other_generation.get_or_insert(reply);
                                    continue;
                                }
                            }
                            self.replicas.record_latency(key, took);
                            if hedges.contains(&ep) {
                                self.metrics.hedges_won.inc();
                            }
                            // Still running and asked before the winner: slower than a hedge delay.
                            let winner_at = tried.iter().position(|e| *e == ep).unwrap_or(0);
                            for loser in tried[..winner_at].iter().filter(|e| in_flight.contains(e)) {
                                self.replicas.struck(loser, Some(dataset), false);
                            }
                            return vec![reply];
                        }
                        Err(e) => {
                            self.metrics.worker_error(e.category());
                            let transient = e.is_transient();
                            // The query's own fault: every replica would say the same.
                            let own_fault = matches!(
                                e,
                                quiver_worker::Error::InvalidQuery(_) | quiver_worker::Error::TooManyRows { .. }
                            );
                            if transient {
                                self.forget(&ep);
                                self.discovery.nudge();
                            }
                            if !own_fault {
                                let not_loaded = matches!(
                                    e,
                                    quiver_worker::Error::NotReady { .. } | quiver_worker::Error::UnknownDataset(_)
                                );
                                self.replicas.struck(&ep, Some(dataset), not_loaded);
                            }
                            tracing::debug!(endpoint = %ep, error = %e, "replica failed");
                            failures.push(Reply { endpoint: ep.clone(), result: Err(Error::Worker { endpoint: ep.clone(), source: e }) });
                            if !own_fault {
                                if let Some(g) = next(&tried) {
                                    self.metrics.replica_retries.inc();
                                    tried.push(g.endpoint().to_string());
                                    in_flight.push(g.endpoint().to_string());
                                    running.push(self.attempt(g, q.clone(), Duration::ZERO));
                                    continue;
                                }
                                if transient && !retried_same && running.is_empty()
                                    && let Some(g) = self.replicas.pick(std::slice::from_ref(&ep), &[], dataset, None)
                                {
                                    // Every replica tried: the transient retry, as with one replica.
                                    retried_same = true;
                                    in_flight.push(ep.clone());
                                    running.push(self.attempt(g, q.clone(), self.retry_backoff));
                                    continue;
                                }
                            }
                            if running.is_empty() {
                                break;
                            }
                        }
                    }
                }
                () = &mut hedge, if hedge_armed => {
                    hedge_armed = false;
                    if let Some(g) = next(&tried) {
                        self.metrics.hedges_fired.inc();
                        tracing::debug!(endpoint = %g.endpoint(), after = ?hedge_delay, "hedging a slow replica");
                        tried.push(g.endpoint().to_string());
                        in_flight.push(g.endpoint().to_string());
                        hedges.push(g.endpoint().to_string());
                        running.push(self.attempt(g, q.clone(), Duration::ZERO));
                        // A third replica, if any, after another delay.
                        hedge.as_mut().reset(tokio::time::Instant::now() + hedge_delay);
                        hedge_armed = tried.len() < group.len();
                    }
                }
                () = &mut deadline => {
                    for ep in in_flight.drain(..) {
                        self.metrics.worker_error("timeout");
                        self.replicas.struck(&ep, Some(dataset), false);
                        failures.push(Reply { endpoint: ep.clone(), result: Err(Error::WorkerTimeout { endpoint: ep, after: self.timeout }) });
                    }
                    break;
                }
            }
        }
        for f in &failures {
            if let Err(e) = &f.result {
                tracing::warn!(endpoint = %f.endpoint, error = %e, "worker call failed");
            }
        }
        // An answer of another snapshot beats none: merge reports it.
        failures.extend(other_generation);
        failures
    }

    /// One query on the replica `guard` names, after `delay`.
    fn attempt(self: &Arc<Self>, guard: InFlight, q: Arc<Query>, delay: Duration) -> BoxFuture<'static, Attempt> {
        let this = self.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let t = tokio::time::Instant::now();
            let result = match this.client(guard.endpoint()).await {
                Ok(c) => query_worker(c.as_ref(), &q).await,
                Err(e) => Err(e),
            };
            (guard, t.elapsed(), result)
        }
        .boxed()
    }

    /// Every worker's stats (which also tell the shard each one serves).
    pub async fn stats(self: &Arc<Self>) -> Vec<Reply<WorkerStats>> {
        let replies = self.call_all(|w| async move { w.stats().await }).await;
        for r in &replies {
            if let Ok(s) = &r.result {
                self.replicas.learn_stats(&r.endpoint, s);
            }
        }
        replies
    }

    /// Every worker's datasets (which also tell the shard each one serves).
    pub async fn datasets(self: &Arc<Self>) -> Vec<Reply<Vec<DatasetInfo>>> {
        let replies = self.call_all(|w| async move { w.datasets().await }).await;
        for r in &replies {
            if let Ok(d) = &r.result {
                self.replicas.learn_datasets(&r.endpoint, d);
            }
        }
        replies
    }

    /// Asks every worker to reload.
    pub async fn reload(self: &Arc<Self>, dataset: Option<String>) -> Vec<Reply<()>> {
        let dataset = Arc::new(dataset);
        self.call_all(move |w| {
            let d = dataset.clone();
            async move { w.reload(d.as_deref()).await }
        })
        .await
    }

    /// True when at least one worker answers `health` within a short deadline.
    pub async fn any_healthy(self: &Arc<Self>) -> bool {
        let deadline = self.timeout.min(Duration::from_secs(2));
        self.call_all_within(deadline, |w| async move { w.health().await }).await.iter().any(|r| r.result.is_ok())
    }
}

/// Keeps at most one answer per shard: replicas (or endpoints asked before
/// their shard was known) may answer the same shard twice. Of a shard's
/// answers the one of the generation covering the most shards of its sharding
/// is kept; errors are all kept (they name what failed). Pure.
pub fn one_answer_per_shard(replies: Vec<Reply<QueryResult>>) -> Vec<Reply<QueryResult>> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut cover: BTreeMap<(u32, String), BTreeSet<u32>> = BTreeMap::new();
    for r in &replies {
        if let Ok(a) = &r.result {
            cover.entry((a.shard.shards, a.shard.generation.clone())).or_default().insert(a.shard.shard);
        }
    }
    let mut best: BTreeMap<u32, (usize, String)> = BTreeMap::new();
    for ((shards, generation), set) in cover {
        let b = best.entry(shards).or_insert((0, generation.clone()));
        if set.len() > b.0 {
            *b = (set.len(), generation);
        }
    }
    let preferred = |i: &ShardInfo| best.get(&i.shards).is_some_and(|(_, g)| *g == i.generation);
    let mut order: Vec<usize> = (0..replies.len()).collect();
    order.sort_by_key(|&i| !replies[i].result.as_ref().is_ok_and(|a| preferred(&a.shard)));
    let mut keep = vec![false; replies.len()];
    let mut seen: BTreeSet<ShardKey> = BTreeSet::new();
    for i in order {
        keep[i] = match &replies[i].result {
            Ok(a) => seen.insert(ShardKey::from(&a.shard)),
            Err(_) => true,
        };
    }
    replies.into_iter().zip(keep).filter_map(|(r, k)| k.then_some(r)).collect()
}

/// Asks a worker a query. A worker built before all-or-none samples refuses
/// the `allOrNone` field (its tickets deny unknown fields): while a rollout
/// has new dashboards and old workers, such a worker is asked again for a
/// plain sample of the same limit. The answer stays all-or-none: the merge
/// keeps the rows only when the shards' matches together fit the limit, and
/// then every shard's matches are in its rows.
pub async fn query_worker(w: &dyn Worker, q: &Query) -> WorkerResult<QueryResult> {
    use quiver_worker::protocol::View;
    match w.query(q).await {
        Err(quiver_worker::Error::InvalidQuery(m)) if m.contains("unknown field `allOrNone`") => {
            tracing::debug!("a worker predates all-or-none samples; asking it for a plain sample");
            let mut plain = q.clone();
            for v in &mut plain.views {
                if let View::Sample { all_or_none, .. } = v {
                    *all_or_none = false;
                }
            }
            w.query(&plain).await
        }
        r => r,
    }
}
