//! The only call into the data plane: each worker's `stats` (load state, rows,
//! last query time). Behind a trait so tests inject what the workers say.
//!
//! Failures are returned per worker, never swallowed: the status reports which
//! workers did not answer and why, and unknown activity blocks idle actions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use quiver_worker::flight::client::WorkerClient;
use quiver_worker::protocol::WorkerStats;

use crate::children::{FLIGHT_PORT, worker_endpoint};
use crate::lifecycle::Activity;

/// The workers of one cluster, as the reconciler knows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// DataCluster name.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Worker pods expected to run (0 while suspended).
    pub replicas: i32,
    /// The worker token (never logged; `Debug` hides it).
    pub token: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("cluster", &self.cluster)
            .field("namespace", &self.namespace)
            .field("replicas", &self.replicas)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What one worker answered.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerReport {
    /// Pod ordinal (`NAME-workers-<ordinal>`).
    pub ordinal: u32,
    /// Its stats, or why they could not be read.
    pub outcome: Result<WorkerStats, String>,
}

/// Reads the workers' stats.
#[async_trait]
pub trait ActivitySource: Send + Sync + 'static {
    /// One report per expected worker (`0..target.replicas`); `pods` are the
    /// worker pods as listed (reached by IP when they have one).
    async fn observe(&self, target: &Target, pods: &[Pod]) -> Vec<WorkerReport>;
}

/// Query activity from the reports: the latest last-query time among the workers
/// that answered; unknown when workers are expected and none answered.
pub fn summarize(expected: i32, reports: &[WorkerReport]) -> Activity {
    if expected <= 0 {
        return Activity::NoWorkers;
    }
    let answered: Vec<&WorkerStats> = reports.iter().filter_map(|r| r.outcome.as_ref().ok()).collect();
    if answered.is_empty() {
        let why = reports
            .iter()
            .filter_map(|r| r.outcome.as_ref().err().map(|e| format!("worker {}: {e}", r.ordinal)))
            .next()
            .unwrap_or_else(|| "no worker was reachable".into());
        return Activity::Unknown(why);
    }
    let latest =
        answered.iter().filter_map(|s| s.last_query_time.as_deref()).filter_map(|t| t.parse::<Timestamp>().ok()).max();
    Activity::Known(latest)
}

/// Production source: calls `stats` on each worker over Arrow Flight, in
/// parallel, with a per-worker timeout. Pods are reached by IP
/// (loading workers are not ready, so the headless Service does not publish
/// them); a pod without an IP is reached through its per-pod DNS name.
pub struct FlightActivity {
    cluster_domain: String,
    timeout: Duration,
    connections: Connections,
}

impl FlightActivity {
    /// A source reaching workers in `cluster_domain`.
    pub fn new(cluster_domain: impl Into<String>, timeout: Duration) -> Self {
        FlightActivity { cluster_domain: cluster_domain.into(), timeout, connections: Connections::default() }
    }
}

/// Where to reach each expected worker: its pod IP when the pod is listed and
/// not terminating, else its per-pod DNS name. Pure.
pub fn endpoints_from_pods(t: &Target, pods: &[Pod], cluster_domain: &str) -> Vec<(u32, String)> {
    let prefix = format!("{}-workers-", t.cluster);
    (0..t.replicas.max(0) as u32)
        .map(|i| {
            let ordinal = i.to_string();
            let ip = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find(|p| p.metadata.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) == Some(ordinal.as_str()))
                .and_then(|p| p.status.as_ref()?.pod_ip.clone());
            let endpoint = match ip {
                Some(ip) if ip.contains(':') => format!("http://[{ip}]:{FLIGHT_PORT}"),
                Some(ip) => format!("http://{ip}:{FLIGHT_PORT}"),
                None => worker_endpoint(&t.cluster, &t.namespace, i, cluster_domain),
            };
            (i, endpoint)
        })
        .collect()
}

/// Flight connections to workers, kept across reconciles: one HTTP/2 channel
/// per (endpoint, token), which reconnects by itself when the worker restarts.
/// Channels unused for [`IDLE_CONNECTION`] are dropped (deleted clusters,
/// rescheduled pods with new IPs).
#[derive(Default)]
pub struct Connections {
    clients: Mutex<HashMap<ConnectionKey, (WorkerClient, Instant)>>,
}

/// A worker endpoint and the token it is asked with.
type ConnectionKey = (String, Option<String>);

/// How long an unused worker connection is kept.
pub const IDLE_CONNECTION: Duration = Duration::from_secs(600);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.clients.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Connections").field("open", &n).finish()
    }
}

impl Connections {
    /// The client for `endpoint`, reusing an open channel.
    pub fn client(&self, endpoint: &str, token: Option<&str>) -> Result<WorkerClient, String> {
        let key = (endpoint.to_string(), token.map(String::from));
        let mut clients = self.clients.lock().expect("connections lock");
        clients.retain(|_, (_, used)| used.elapsed() < IDLE_CONNECTION);
        if let Some((c, used)) = clients.get_mut(&key) {
            *used = Instant::now();
            return Ok(c.clone());
        }
        let c = WorkerClient::connect_lazy(endpoint, token.map(String::from)).map_err(|e| e.to_string())?;
        clients.insert(key, (c.clone(), Instant::now()));
        Ok(c)
    }

    /// Forgets the channel to `endpoint` (after a failed call, so the next pass dials afresh).
    pub fn forget(&self, endpoint: &str) {
        self.clients.lock().expect("connections lock").retain(|(e, _), _| e != endpoint);
    }

    /// Calls `stats` on each endpoint, in parallel, with a timeout each.
    pub async fn stats(
        &self,
        endpoints: Vec<(u32, String)>,
        token: Option<String>,
        timeout: Duration,
    ) -> Vec<WorkerReport> {
        join_all(endpoints.into_iter().map(|(ordinal, endpoint)| {
            let token = token.clone();
            async move {
                let call = async {
                    let client = self.client(&endpoint, token.as_deref())?;
                    client.stats().await.map_err(|e| e.to_string())
                };
                let outcome = match tokio::time::timeout(timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("{endpoint}: no answer within {timeout:?}")),
                };
                if outcome.is_err() {
                    self.forget(&endpoint);
                }
                WorkerReport { ordinal, outcome }
            }
        }))
        .await
    }
}

/// Calls `stats` on each endpoint with a timeout over fresh connections
/// (for tests and one-off checks; the operator keeps [`Connections`]).
pub async fn stats_of(endpoints: Vec<(u32, String)>, token: Option<String>, timeout: Duration) -> Vec<WorkerReport> {
    join_all(endpoints.into_iter().map(|(ordinal, endpoint)| {
        let token = token.clone();
        async move {
            let call = async {
                let client = WorkerClient::connect(&endpoint, token).await.map_err(|e| e.to_string())?;
                client.stats().await.map_err(|e| e.to_string())
            };
            let outcome = match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(format!("{endpoint}: no answer within {timeout:?}")),
            };
            WorkerReport { ordinal, outcome }
        }
    }))
    .await
}

#[async_trait]
impl ActivitySource for FlightActivity {
    async fn observe(&self, t: &Target, pods: &[Pod]) -> Vec<WorkerReport> {
        if t.replicas <= 0 {
            return Vec::new();
        }
        let endpoints = endpoints_from_pods(t, pods, &self.cluster_domain);
        self.connections.stats(endpoints, t.token.clone(), self.timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(last: Option<&str>) -> WorkerStats {
        WorkerStats {
            shard: 0,
            shards: 1,
            version: "0".into(),
            queries: 0,
            last_query_time: last.map(String::from),
            started_at: "2026-03-01T00:00:00Z".into(),
            datasets: vec![],
        }
    }

    #[test]
    fn activity_is_the_latest_query_among_the_workers_that_answered() {
        let reports = vec![
            WorkerReport { ordinal: 0, outcome: Ok(stats(Some("2026-03-01T10:00:00Z"))) },
            WorkerReport { ordinal: 1, outcome: Err("refused".into()) },
            WorkerReport { ordinal: 2, outcome: Ok(stats(Some("2026-03-01T11:00:00Z"))) },
            WorkerReport { ordinal: 3, outcome: Ok(stats(None)) },
        ];
        assert_eq!(summarize(4, &reports), Activity::Known(Some("2026-03-01T11:00:00Z".parse().unwrap())));
    }

    #[test]
    fn no_answer_is_unknown_activity_naming_the_failure() {
        let reports = vec![WorkerReport { ordinal: 0, outcome: Err("connect failed".into()) }];
        assert_eq!(summarize(1, &reports), Activity::Unknown("worker 0: connect failed".into()));
        assert!(matches!(summarize(2, &[]), Activity::Unknown(_)));
    }

    fn pod(name: &str, ip: Option<&str>, terminating: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "deletionTimestamp": terminating.then_some("2026-03-01T00:00:00Z")},
            "status": {"podIP": ip}
        }))
        .unwrap()
    }

    #[test]
    fn workers_are_reached_by_pod_ip_else_by_their_dns_name() {
        let t = Target { cluster: "demo".into(), namespace: "ns".into(), replicas: 4, token: None };
        let pods = vec![
            pod("demo-workers-0", Some("10.0.0.5"), false),
            pod("demo-workers-1", Some("fd00::7"), false),
            pod("demo-workers-2", Some("10.0.0.9"), true),
            pod("demo-workers-30", Some("10.0.0.30"), false),
            pod("other-workers-3", Some("10.0.0.31"), false),
        ];
        let dns = |i: u32| format!("http://demo-workers-{i}.demo-workers.ns.svc.cluster.local:8815");
        assert_eq!(
            endpoints_from_pods(&t, &pods, "cluster.local"),
            vec![
                (0, "http://10.0.0.5:8815".to_string()),
                (1, "http://[fd00::7]:8815".to_string()),
                (2, dns(2)),
                (3, dns(3)),
            ]
        );
    }

    #[test]
    fn zero_expected_workers_means_no_traffic() {
        assert_eq!(summarize(0, &[]), Activity::NoWorkers);
    }

    #[test]
    fn the_token_never_appears_in_debug_output() {
        let t = Target { cluster: "c".into(), namespace: "n".into(), replicas: 1, token: Some("s3cr3t".into()) };
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
