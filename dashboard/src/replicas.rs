//! Which endpoint serves which shard, and how each replica of a shard is doing.
//!
//! With `replicasPerShard > 1` several endpoints hold the same shard. The
//! dashboard learns who holds what from the workers' own answers (`stats`,
//! `ListFlights`, and the [`ShardInfo`] of every query answer), so DNS and
//! static lists work alike; an endpoint not yet known is asked as before. For
//! each query the fan-out asks one replica per shard ([`Replicas::pick`]: loaded,
//! of the generation most shards hold, not recently failing, least outstanding
//! requests) and hedges on another after the shard's recent p95
//! ([`Replicas::hedge_delay`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_worker::protocol::{DatasetInfo, LoadState, ShardInfo, WorkerStats};
use tokio::time::Instant;

/// A shard of one sharding: index `shard` of `shards`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardKey {
    /// Shard index.
    pub shard: u32,
    /// Shard count.
    pub shards: u32,
}

impl From<&ShardInfo> for ShardKey {
    fn from(i: &ShardInfo) -> ShardKey {
        ShardKey { shard: i.shard, shards: i.shards }
    }
}

/// Bounds of the hedge delay; between them it follows the shard's recent p95.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HedgePolicy {
    /// Never hedge sooner than this (a fast shard's p95 is noise).
    pub min: Duration,
    /// Never wait longer than this (also the delay before enough latencies are known).
    pub max: Duration,
}

/// Default [`HedgePolicy::min`].
pub const DEFAULT_HEDGE_MIN: Duration = Duration::from_millis(25);
/// Default [`HedgePolicy::max`].
pub const DEFAULT_HEDGE_MAX: Duration = Duration::from_secs(1);

impl Default for HedgePolicy {
    fn default() -> HedgePolicy {
        HedgePolicy { min: DEFAULT_HEDGE_MIN, max: DEFAULT_HEDGE_MAX }
    }
}

/// Latencies kept per shard for its p95.
const WINDOW: usize = 128;
/// Latencies needed before the p95 is trusted (below: [`HedgePolicy::max`]).
const MIN_SAMPLES: usize = 8;
/// How long a replica that failed or lost a hedge is avoided, doubled with
/// each further strike up to [`SUSPECT_MAX`].
const SUSPECT_BASE: Duration = Duration::from_millis(250);
const SUSPECT_MAX: Duration = Duration::from_secs(8);

/// The p95 of `samples`, clamped to `policy`; `policy.max` while fewer than
/// [`MIN_SAMPLES`] are known. Pure.
pub fn hedge_delay_of(samples: &[Duration], policy: HedgePolicy) -> Duration {
    if samples.len() < MIN_SAMPLES {
        return policy.max;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let i = ((s.len() as f64 * 0.95).ceil() as usize).clamp(1, s.len()) - 1;
    s[i].clamp(policy.min, policy.max.max(policy.min))
}

#[derive(Clone, Debug, Default)]
struct DatasetState {
    generation: Option<String>,
    /// `None`: not known; an unknown state is tried like a loaded one.
    loaded: Option<bool>,
}

#[derive(Debug, Default)]
struct Endpoint {
    key: Option<ShardKey>,
    datasets: HashMap<String, DatasetState>,
    outstanding: u32,
    picks: u64,
    /// Consecutive failures or lost hedges; a success clears them.
    strikes: u32,
    suspect_until: Option<Instant>,
}

impl Endpoint {
    /// Avoided: recently failing, or on probation after failing (one request
    /// at a time until one succeeds).
    fn suspect(&self, now: Instant) -> bool {
        self.suspect_until.is_some_and(|t| now < t) || (self.strikes > 0 && self.outstanding > 0)
    }
}

#[derive(Default)]
struct Inner {
    endpoints: HashMap<String, Endpoint>,
    latency: HashMap<ShardKey, VecDeque<Duration>>,
}

/// The replica table, shared by every request.
pub struct Replicas {
    inner: Mutex<Inner>,
    policy: HedgePolicy,
}

/// How the endpoints listed now split into shards for one dataset.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Endpoints known to serve each shard.
    pub shards: BTreeMap<ShardKey, Vec<String>>,
    /// Endpoints whose shard is not known yet: asked directly.
    pub unknown: Vec<String>,
    /// The generation to prefer: the one loaded on replicas of the most shards.
    pub generation: Option<String>,
}

/// A request in flight on a replica; counted in its outstanding requests until dropped.
pub struct InFlight {
    replicas: Arc<Replicas>,
    endpoint: String,
}

impl InFlight {
    /// The replica's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.replicas.inner.lock().expect("replica table lock");
        if let Some(e) = inner.endpoints.get_mut(&self.endpoint) {
            e.outstanding = e.outstanding.saturating_sub(1);
        }
    }
}

/// One replica as `/api/status` and tests see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    /// Endpoint.
    pub endpoint: String,
    /// Requests in flight.
    pub outstanding: u32,
    /// Times chosen.
    pub picks: u64,
    /// Avoided for now.
    pub suspect: bool,
}

impl Replicas {
    /// An empty table hedging within `policy`.
    pub fn new(policy: HedgePolicy) -> Replicas {
        Replicas { inner: Mutex::new(Inner::default()), policy }
    }

    /// The hedge bounds.
    pub fn policy(&self) -> HedgePolicy {
        self.policy
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("replica table lock"))
    }

    /// Forgets endpoints no longer listed.
    pub fn retain(&self, current: &[String]) {
        self.with(|i| i.endpoints.retain(|ep, _| current.iter().any(|c| c == ep)));
    }

    /// Learns an endpoint's shard and datasets from its `stats`.
    pub fn learn_stats(&self, endpoint: &str, s: &WorkerStats) {
        self.with(|i| {
            let e = i.endpoints.entry(endpoint.to_string()).or_default();
            e.key = Some(ShardKey { shard: s.shard, shards: s.shards });
            for d in &s.datasets {
                let st = e.datasets.entry(d.name.clone()).or_default();
                st.generation = Some(d.generation.clone());
                st.loaded = Some(d.state == LoadState::Ready);
            }
        });
    }

    /// Learns an endpoint's shard and datasets from its `ListFlights`.
    pub fn learn_datasets(&self, endpoint: &str, infos: &[DatasetInfo]) {
        self.with(|i| {
            let e = i.endpoints.entry(endpoint.to_string()).or_default();
            for d in infos {
                e.key = Some(ShardKey::from(&d.shard));
                let st = e.datasets.entry(d.name.clone()).or_default();
                st.generation = Some(d.shard.generation.clone());
                st.loaded = Some(d.state == LoadState::Ready);
            }
        });
    }

    /// Learns from a query answer: the endpoint serves `info` of `dataset`, loaded.
    pub fn learn_answer(&self, endpoint: &str, dataset: &str, info: &ShardInfo) {
        self.with(|i| {
            let e = i.endpoints.entry(endpoint.to_string()).or_default();
            e.key = Some(ShardKey::from(info));
            let st = e.datasets.entry(dataset.to_string()).or_default();
            st.generation = Some(info.generation.clone());
            st.loaded = Some(true);
        });
    }

    /// A call succeeded: the replica is in good standing again.
    pub fn succeeded(&self, endpoint: &str) {
        self.with(|i| {
            if let Some(e) = i.endpoints.get_mut(endpoint) {
                e.strikes = 0;
                e.suspect_until = None;
            }
        });
    }

    /// A call failed or lost a hedge: avoid the replica for a while, longer
    /// with each strike. `not_loaded` records that it refused for not holding `dataset`.
    pub fn struck(&self, endpoint: &str, dataset: Option<&str>, not_loaded: bool) {
        let now = Instant::now();
        self.with(|i| {
            let e = i.endpoints.entry(endpoint.to_string()).or_default();
            e.strikes = e.strikes.saturating_add(1);
            let backoff = SUSPECT_BASE.saturating_mul(1 << (e.strikes - 1).min(6)).min(SUSPECT_MAX);
            e.suspect_until = Some(now + backoff);
            if let (true, Some(d)) = (not_loaded, dataset) {
                e.datasets.entry(d.to_string()).or_default().loaded = Some(false);
            }
        });
    }

    /// Splits `endpoints` by the shard each serves, for `dataset`.
    pub fn plan(&self, endpoints: &[String], dataset: &str) -> Plan {
        self.with(|i| {
            let mut plan = Plan::default();
            // Generation → shards with a loaded replica of it.
            let mut held: BTreeMap<&str, (BTreeSet<ShardKey>, usize)> = BTreeMap::new();
            for ep in endpoints {
                match i.endpoints.get(ep).and_then(|e| e.key.map(|k| (k, e))) {
                    Some((key, e)) => {
                        plan.shards.entry(key).or_default().push(ep.clone());
                        if let Some(DatasetState { generation: Some(g), loaded }) = e.datasets.get(dataset)
                            && *loaded != Some(false)
                        {
                            let h = held.entry(g.as_str()).or_default();
                            h.0.insert(key);
                            h.1 += 1;
                        }
                    }
                    None => plan.unknown.push(ep.clone()),
                }
            }
            plan.generation = held
                .into_iter()
                .max_by(|a, b| a.1.0.len().cmp(&b.1.0.len()).then(a.1.1.cmp(&b.1.1)).then(b.0.cmp(a.0)))
                .map(|(g, _)| g.to_string());
            plan
        })
    }

    /// Chooses the replica to ask next among `candidates` not yet `tried`:
    /// good standing first, then loaded with `generation` (unknown counts as
    /// loaded), then fewest requests in flight, then fewest picks so far (so
    /// idle replicas take turns). Counts the request in flight until the
    /// returned guard drops.
    pub fn pick(
        self: &Arc<Self>,
        candidates: &[String],
        tried: &[String],
        dataset: &str,
        generation: Option<&str>,
    ) -> Option<InFlight> {
        let now = Instant::now();
        self.with(|i| {
            let best = candidates
                .iter()
                .filter(|c| !tried.contains(c))
                .min_by_key(|c| match i.endpoints.get(*c) {
                    None => (false, false, false, 0, 0),
                    Some(e) => {
                        let d = e.datasets.get(dataset);
                        let not_loaded = d.is_some_and(|d| d.loaded == Some(false));
                        let other_generation = match (generation, d.and_then(|d| d.generation.as_deref())) {
                            (Some(want), Some(has)) => want != has,
                            _ => false,
                        };
                        (e.suspect(now), not_loaded, other_generation, e.outstanding, e.picks)
                    }
                })?
                .clone();
            let e = i.endpoints.entry(best.clone()).or_default();
            e.outstanding += 1;
            e.picks += 1;
            Some(InFlight { replicas: self.clone(), endpoint: best })
        })
    }

    /// True when `endpoint` is known to hold `generation` of `dataset`.
    pub fn holds(&self, endpoint: &str, dataset: &str, generation: &str) -> bool {
        self.with(|i| {
            i.endpoints
                .get(endpoint)
                .and_then(|e| e.datasets.get(dataset))
                .is_some_and(|d| d.generation.as_deref() == Some(generation) && d.loaded != Some(false))
        })
    }

    /// Records how long a shard took to answer.
    pub fn record_latency(&self, key: ShardKey, took: Duration) {
        self.with(|i| {
            let w = i.latency.entry(key).or_default();
            if w.len() == WINDOW {
                w.pop_front();
            }
            w.push_back(took);
        });
    }

    /// How long to wait for a replica of `key` before asking another.
    pub fn hedge_delay(&self, key: ShardKey) -> Duration {
        let samples: Vec<Duration> =
            self.with(|i| i.latency.get(&key).map(|w| w.iter().copied().collect()).unwrap_or_default());
        hedge_delay_of(&samples, self.policy)
    }

    /// The shard `endpoint` was last known to serve.
    pub fn shard_of(&self, endpoint: &str) -> Option<ShardKey> {
        self.with(|i| i.endpoints.get(endpoint).and_then(|e| e.key))
    }

    /// How a replica is doing, for tests and logs.
    pub fn view(&self, endpoint: &str) -> Option<ReplicaView> {
        let now = Instant::now();
        self.with(|i| {
            i.endpoints.get(endpoint).map(|e| ReplicaView {
                endpoint: endpoint.to_string(),
                outstanding: e.outstanding,
                picks: e.picks,
                suspect: e.suspect(now),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(shard: u32, shards: u32, generation: &str) -> ShardInfo {
        ShardInfo { shard, shards, generation: generation.into() }
    }

    fn eps(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://w{i}:8815")).collect()
    }

    #[test]
    fn the_hedge_delay_is_the_p95_within_bounds() {
        let policy = HedgePolicy { min: Duration::from_millis(10), max: Duration::from_millis(500) };
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(hedge_delay_of(&[ms(1); 3], policy), policy.max, "too few samples: the upper bound");
        let samples: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(hedge_delay_of(&samples, policy), ms(95));
        assert_eq!(hedge_delay_of(&[ms(1); 20], policy), policy.min);
        assert_eq!(hedge_delay_of(&[ms(900); 20], policy), policy.max);
    }

    #[tokio::test(start_paused = true)]
    async fn endpoints_are_grouped_by_the_shard_their_answers_name() {
        let r = Replicas::new(HedgePolicy::default());
        let e = eps(5);
        r.learn_answer(&e[0], "d", &info(0, 2, "g"));
        r.learn_answer(&e[2], "d", &info(0, 2, "g"));
        r.learn_answer(&e[1], "d", &info(1, 2, "g"));
        r.learn_answer(&e[3], "d", &info(1, 2, "g"));
        let p = r.plan(&e, "d");
        assert_eq!(p.shards[&ShardKey { shard: 0, shards: 2 }], vec![e[0].clone(), e[2].clone()]);
        assert_eq!(p.shards[&ShardKey { shard: 1, shards: 2 }], vec![e[1].clone(), e[3].clone()]);
        assert_eq!(p.unknown, vec![e[4].clone()]);
        assert_eq!(p.generation.as_deref(), Some("g"));
        // Gone from the list: forgotten.
        r.retain(&e[..2]);
        assert_eq!(r.plan(&e, "d").unknown, vec![e[2].clone(), e[3].clone(), e[4].clone()]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_preferred_generation_is_the_one_most_shards_hold() {
        let r = Arc::new(Replicas::new(HedgePolicy::default()));
        let e = eps(4);
        r.learn_answer(&e[0], "d", &info(0, 2, "new"));
        r.learn_answer(&e[1], "d", &info(1, 2, "new"));
        r.learn_answer(&e[2], "d", &info(0, 2, "old"));
        r.learn_answer(&e[3], "d", &info(0, 2, "old"));
        let p = r.plan(&e, "d");
        assert_eq!(p.generation.as_deref(), Some("new"), "two shards beat two replicas of one");
        let shard0 = &p.shards[&ShardKey { shard: 0, shards: 2 }];
        let a = r.pick(shard0, &[], "d", Some("new")).unwrap();
        assert_eq!(a.endpoint(), e[0]);
        // Even busy, the replica of the preferred generation is chosen.
        let b = r.pick(shard0, &[], "d", Some("new")).unwrap();
        assert_eq!(b.endpoint(), e[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_replicas_take_turns_and_busy_ones_are_avoided() {
        let r = Arc::new(Replicas::new(HedgePolicy::default()));
        let e = eps(2);
        for ep in &e {
            r.learn_answer(ep, "d", &info(0, 1, "g"));
        }
        let first = r.pick(&e, &[], "d", None).unwrap().endpoint().to_string();
        let second = r.pick(&e, &[], "d", None).unwrap().endpoint().to_string();
        assert_ne!(first, second, "sequential requests alternate");
        let held = r.pick(&e, &[], "d", None).unwrap();
        for _ in 0..3 {
            let other = r.pick(&e, &[], "d", None).unwrap();
            assert_ne!(other.endpoint(), held.endpoint(), "the replica with a request in flight is avoided");
        }
        drop(held);
        assert_eq!(r.view(&e[0]).unwrap().outstanding + r.view(&e[1]).unwrap().outstanding, 0);
        // Nothing left to try.
        assert!(r.pick(&e, &e, "d", None).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_struck_replica_is_avoided_then_probed_one_request_at_a_time() {
        let r = Arc::new(Replicas::new(HedgePolicy::default()));
        let e = eps(2);
        r.struck(&e[0], Some("d"), false);
        for _ in 0..3 {
            assert_eq!(r.pick(&e, &[], "d", None).unwrap().endpoint(), e[1]);
        }
        // Still the only choice when the other was tried.
        assert_eq!(r.pick(&e, &[e[1].clone()], "d", None).unwrap().endpoint(), e[0]);
        tokio::time::advance(SUSPECT_BASE).await;
        let probe = r.pick(&e, &[], "d", None).unwrap();
        assert_eq!(probe.endpoint(), e[0], "after the backoff, one probe");
        let busy = r.pick(&e, &[], "d", None).unwrap();
        let again = r.pick(&e, &[], "d", None).unwrap();
        assert_eq!(
            (busy.endpoint(), again.endpoint()),
            (e[1].as_str(), e[1].as_str()),
            "no second request while the probe runs"
        );
        drop(probe);
        r.succeeded(&e[0]);
        assert!(!r.view(&e[0]).unwrap().suspect);
        // A replica refusing for not holding the dataset is avoided for it.
        r.struck(&e[1], Some("d"), true);
        tokio::time::advance(SUSPECT_MAX).await;
        drop((busy, again));
        assert_eq!(r.pick(&e, &[], "d", None).unwrap().endpoint(), e[0]);
    }
}
