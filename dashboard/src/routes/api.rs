//! The JSON API behind the session guard (see `API.md`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use quiver_worker::protocol::{LoadState, WorkerStats};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::merge::{Merged, merge};
use crate::query::{QueryRequest, QueryResponse, Timings, histograms_out, plan};
use crate::replicas::ShardKey;
use crate::routes::{BODY_LIMIT, read_body};
use crate::shade::{category_colors, encode_png, shade};
use crate::state::AppState;

/// `GET /api/datasets`.
pub async fn datasets(State(state): State<AppState>) -> Result<Response> {
    let catalog = state.catalog.get(&state.fanout).await?;
    Ok(Json(serde_json::json!({ "datasets": catalog.views() })).into_response())
}

/// `GET /api/config`: what the front end needs to know about this deployment.
pub async fn config(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({
        "tileUrl": state.settings.tile_url,
        "tileAttribution": state.settings.tile_attribution,
        "basemap": crate::routes::assets::basemap_detail().ok().map(|_| "/static/basemap/index.json"),
        "exportRowLimit": state.settings.export_row_limit,
    }))
    .into_response()
}

/// Parses a JSON body, answering 400 with serde's message (which names the field).
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// `POST /api/query`: fan out, merge, shade.
pub async fn query(State(state): State<AppState>, req: Request) -> Result<Response> {
    let started = Instant::now();
    let body = read_body(req.into_body(), BODY_LIMIT).await?;
    let request: QueryRequest = parse_json(&body)?;
    let mut catalog = state.catalog.get(&state.fanout).await?;
    if !catalog.datasets.contains_key(&request.dataset) {
        // Maybe added since the catalogue was cached.
        catalog = state.catalog.get_within(&state.fanout, Duration::from_secs(1)).await?;
    }
    let Some(dataset) = catalog.datasets.get(&request.dataset) else {
        let known = catalog.datasets.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(Error::BadRequest(format!(
            "unknown dataset {:?}; this cluster serves: {}",
            request.dataset.chars().take(64).collect::<String>(),
            if known.is_empty() { "nothing yet" } else { &known }
        )));
    };
    let plan = plan(&request, dataset)?;
    let fanout = state.fanout.clone();
    let t_workers = Instant::now();
    let main = fanout.query(plan.main.clone());
    let base = async {
        match &plan.baseline {
            Some(b) => Some(fanout.query(b.clone()).await),
            None => None,
        }
    };
    let (main, base) = tokio::join!(main, base);
    let workers_ms = ms(t_workers.elapsed());

    let t_shade = Instant::now();
    let sample = plan.sample;
    let (legend_labels, legend_colors) = dataset.legend();
    let shade_opts = state.settings.shade;
    // Merging and shading are CPU work: keep them off the request threads.
    let (merged, baseline, image) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut merged: Merged = merge(main, sample)?;
        let baseline = match base {
            Some(b) => Some(merge(b, None)?),
            None => None,
        };
        let image = match merged.raster.take() {
            Some(raster) => {
                let colors = category_colors(&legend_labels, &legend_colors, &raster.categories);
                let img = shade(&raster, &colors, &shade_opts)?;
                let png = encode_png(&img)?;
                Some(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
            }
            None => None,
        };
        Ok((merged, baseline, image))
    })
    .await
    .map_err(|e| Error::Internal(format!("shading task failed: {e}")))??;
    let shade_ms = ms(t_shade.elapsed());

    let mut shards = merged.shards.clone();
    if let Some(b) = &baseline
        && b.shards.partial()
    {
        shards.consistent &= b.shards.consistent;
        if shards.message.is_none() {
            shards.message = b.shards.message.clone().map(|m| format!("unfiltered histograms: {m}"));
        }
    }
    let partial = shards.partial() || baseline.as_ref().is_some_and(|b| b.shards.partial());
    if partial {
        state.metrics.partial_results.inc();
        // A shard missing with no worker failing: pods of a new sharding may
        // have come up at addresses not listed yet.
        state.fanout.discovery().nudge();
    }
    let total = started.elapsed();
    state.metrics.query_seconds.observe(total.as_secs_f64());
    tracing::debug!(
        dataset = %request.dataset, views = plan.main.views.len(), selected = merged.selected,
        partial, total_ms = ms(total), workers_ms, shade_ms, "query answered"
    );
    let resp = QueryResponse {
        total: merged.total,
        selected: merged.selected,
        histograms: histograms_out(&merged.histograms),
        baseline: baseline.map(|b| histograms_out(&b.histograms)),
        image,
        sample: merged.sample,
        shards,
        partial,
        timings: Timings {
            total_ms: ms(started.elapsed()),
            workers_ms,
            kernel_ms: merged.kernel_micros as f64 / 1000.0,
            shade_ms,
        },
    };
    Ok(Json(resp).into_response())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DatasetStatus {
    name: String,
    state: LoadState,
    rows: u64,
    bytes: u64,
    generation: String,
    error: Option<String>,
    reloading: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerStatus {
    endpoint: String,
    ok: bool,
    shard: Option<u32>,
    shards: Option<u32>,
    queries: Option<u64>,
    last_query_time: Option<String>,
    error: Option<String>,
    datasets: Vec<DatasetStatus>,
}

/// One replica of a shard in `/api/status`.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// The worker's endpoint.
    pub endpoint: String,
    /// It answered `stats`.
    pub ok: bool,
    /// It answered and every dataset it holds is loaded.
    pub loaded: bool,
    /// `ready`, `loading`, `failed` (the worst of its datasets), or `down`.
    pub state: String,
    /// Generation of each dataset it holds, by name.
    pub generations: BTreeMap<String, String>,
}

/// One shard and its replicas in `/api/status`.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Shard index.
    pub shard: u32,
    /// At least one replica answers.
    pub complete: bool,
    /// At least one replica answers with every dataset loaded.
    pub loaded: bool,
    /// Its replicas, by endpoint.
    pub replicas: Vec<ReplicaStatus>,
}

/// What `/api/status` says about the sharding as a whole.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShardSummary {
    /// The shard count most workers report.
    pub shards: u32,
    /// Every shard has a replica answering.
    pub complete: bool,
    /// One shard count, and one generation per dataset among loaded replicas.
    pub consistent: bool,
    /// Each shard of that sharding with its replicas.
    #[serde(rename = "replicas")]
    pub by_shard: Vec<ShardStatus>,
}

/// The shard-consistency summary of every worker's `stats`. Workers that did
/// not answer are placed under the shard `known` says they served. Replicas of
/// a shard are expected: a shard is complete when one of them answers. Pure.
pub fn summarize(
    replies: &[crate::merge::Reply<WorkerStats>],
    known: impl Fn(&str) -> Option<ShardKey>,
) -> ShardSummary {
    // Shard count: the one most workers report.
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for r in replies {
        if let Ok(s) = &r.result {
            *counts.entry(s.shards).or_default() += 1;
        }
    }
    let shards = counts.iter().max_by_key(|(n, c)| (**c, **n)).map(|(n, _)| *n).unwrap_or(0);
    let mut consistent = counts.len() <= 1;
    let mut generations: BTreeMap<&str, &str> = BTreeMap::new();
    let mut by_shard: Vec<ShardStatus> =
        (0..shards).map(|shard| ShardStatus { shard, complete: false, loaded: false, replicas: Vec::new() }).collect();
    for r in replies {
        let (key, replica) = match &r.result {
            Ok(s) => {
                for d in &s.datasets {
                    if d.state == LoadState::Ready {
                        let g = generations.entry(d.name.as_str()).or_insert(d.generation.as_str());
                        consistent &= *g == d.generation;
                    }
                }
                let loaded = s.datasets.iter().all(|d| d.state == LoadState::Ready);
                let state = if s.datasets.iter().any(|d| d.state == LoadState::Failed) {
                    "failed"
                } else if loaded {
                    "ready"
                } else {
                    "loading"
                };
                let replica = ReplicaStatus {
                    endpoint: r.endpoint.clone(),
                    ok: true,
                    loaded,
                    state: state.into(),
                    generations: s.datasets.iter().map(|d| (d.name.clone(), d.generation.clone())).collect(),
                };
                (Some(ShardKey { shard: s.shard, shards: s.shards }), replica)
            }
            Err(_) => (
                known(&r.endpoint),
                ReplicaStatus {
                    endpoint: r.endpoint.clone(),
                    ok: false,
                    loaded: false,
                    state: "down".into(),
                    generations: BTreeMap::new(),
                },
            ),
        };
        if let Some(k) = key.filter(|k| k.shards == shards)
            && let Some(slot) = by_shard.get_mut(k.shard as usize)
        {
            slot.complete |= replica.ok;
            slot.loaded |= replica.loaded;
            slot.replicas.push(replica);
        }
    }
    let complete = shards > 0 && by_shard.iter().all(|s| s.complete);
    ShardSummary { shards, complete, consistent, by_shard }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusResponse {
    #[serde(flatten)]
    summary: ShardSummary,
    /// The workers were stopped while idle and the operator can resume them.
    suspended: bool,
    workers: Vec<WorkerStatus>,
}

/// `GET /api/status`: every worker's shard and load state, and each shard's replicas.
pub async fn status(State(state): State<AppState>) -> Result<Response> {
    let replies = state.fanout.stats().await;
    let summary = summarize(&replies, |ep| state.fanout.replicas().shard_of(ep));
    let workers = replies
        .into_iter()
        .map(|r| match r.result {
            Ok(s) => WorkerStatus {
                endpoint: r.endpoint,
                ok: true,
                shard: Some(s.shard),
                shards: Some(s.shards),
                queries: Some(s.queries),
                last_query_time: s.last_query_time,
                error: None,
                datasets: s
                    .datasets
                    .into_iter()
                    .map(|d| DatasetStatus {
                        name: d.name,
                        state: d.state,
                        rows: d.rows,
                        bytes: d.bytes,
                        generation: d.generation,
                        error: d.error,
                        reloading: d.reloading,
                    })
                    .collect(),
            },
            Err(e) => WorkerStatus {
                endpoint: r.endpoint,
                ok: false,
                shard: None,
                shards: None,
                queries: None,
                last_query_time: None,
                error: Some(e.public_message()),
                datasets: Vec::new(),
            },
        })
        .collect();
    let suspended = resumable(&state).await;
    Ok(Json(StatusResponse { summary, suspended, workers }).into_response())
}

/// True when the operator says the cluster was suspended while idle (a
/// suspension the spec asks for is not offered for resume). An operator that
/// cannot be asked is logged and reads as not suspended.
async fn resumable(state: &AppState) -> bool {
    let Some(op) = &state.operator else { return false };
    match op.status().await {
        Ok(s) => s.suspended && s.suspend_reason.as_deref() == Some("Idle"),
        Err(e) => {
            tracing::warn!(error = %e, "asking the operator for the cluster's status failed");
            false
        }
    }
}

/// `POST /api/resume`: asks the operator to resume the idle-suspended cluster.
pub async fn resume(State(state): State<AppState>) -> Result<Response> {
    let op = state
        .operator
        .as_ref()
        .ok_or_else(|| Error::NotFound("resume: this dashboard is not managed by the operator".into()))?;
    op.resume().await?;
    tracing::info!("resume requested");
    Ok((axum::http::StatusCode::ACCEPTED, Json(serde_json::json!({"resuming": true}))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    #[serde(default)]
    dataset: Option<String>,
}

/// `POST /api/reload`: every worker reloads its shard from the source.
pub async fn reload(State(state): State<AppState>, req: Request) -> Result<Response> {
    let body = read_body(req.into_body(), BODY_LIMIT).await?;
    let r: ReloadRequest =
        if body.iter().all(u8::is_ascii_whitespace) { ReloadRequest::default() } else { parse_json(&body)? };
    if let Some(d) = &r.dataset {
        quiver_worker::spec::validate_name(d).map_err(|e| Error::BadRequest(e.to_string()))?;
    }
    let replies = state.fanout.reload(r.dataset).await;
    if replies.is_empty() {
        return Err(Error::Unavailable("no workers are known (none configured or discovered yet)".into()));
    }
    state.catalog.invalidate();
    let ok = replies.iter().filter(|r| r.result.is_ok()).count();
    tracing::info!(workers = replies.len(), ok, "reload requested");
    let workers: Vec<_> = replies
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "endpoint": r.endpoint,
                "ok": r.result.is_ok(),
                "error": r.result.err().map(|e| e.public_message()),
            })
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "workers": workers }))).into_response())
}

/// Unknown `/api` routes (reached only once authenticated).
pub async fn not_found(req: Request) -> Response {
    Error::NotFound(req.uri().path().chars().take(100).collect()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::Reply;
    use quiver_worker::protocol::DatasetStats;

    fn stats(shard: u32, shards: u32, generation: &str, state: LoadState) -> WorkerStats {
        WorkerStats {
            shard,
            shards,
            version: "t".into(),
            queries: 0,
            last_query_time: None,
            started_at: "2024-01-01T00:00:00Z".into(),
            datasets: vec![DatasetStats {
                name: "d".into(),
                state,
                rows: 1,
                bytes: 1,
                generation: generation.into(),
                load_seconds: 0.0,
                loaded_at: None,
                error: None,
                reloading: false,
            }],
        }
    }

    fn up(ep: &str, s: WorkerStats) -> Reply<WorkerStats> {
        Reply { endpoint: ep.into(), result: Ok(s) }
    }

    fn down(ep: &str) -> Reply<WorkerStats> {
        Reply { endpoint: ep.into(), result: Err(Error::Unavailable("gone".into())) }
    }

    #[test]
    fn a_shard_is_complete_when_one_of_its_replicas_answers() {
        let replies = vec![
            up("a", stats(0, 2, "g", LoadState::Ready)),
            down("b"),
            up("c", stats(1, 2, "g", LoadState::Loading)),
            up("d", stats(1, 2, "g", LoadState::Ready)),
        ];
        let s = summarize(&replies, |ep| (ep == "b").then_some(ShardKey { shard: 0, shards: 2 }));
        assert_eq!((s.shards, s.complete, s.consistent), (2, true, true), "replicas are not duplicates");
        assert_eq!(s.by_shard[0].replicas.iter().map(|r| r.endpoint.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(s.by_shard[0].replicas[1].state, "down");
        assert!(s.by_shard[0].loaded);
        assert_eq!(s.by_shard[1].replicas[0].state, "loading");
        assert!(s.by_shard[1].loaded, "one loaded replica is enough");
        assert_eq!(s.by_shard[1].replicas[1].generations["d"], "g");
    }

    #[test]
    fn a_shard_with_every_replica_down_is_incomplete() {
        let replies = vec![up("a", stats(0, 2, "g", LoadState::Ready)), down("b"), down("c")];
        let s = summarize(&replies, |ep| (ep != "a").then_some(ShardKey { shard: 1, shards: 2 }));
        assert!(!s.complete);
        assert!(!s.by_shard[1].complete && s.by_shard[1].replicas.len() == 2);
    }

    #[test]
    fn replicas_of_different_generations_are_inconsistent() {
        let replies = vec![
            up("a", stats(0, 2, "old", LoadState::Ready)),
            up("b", stats(0, 2, "new", LoadState::Ready)),
            up("c", stats(1, 2, "new", LoadState::Ready)),
        ];
        let s = summarize(&replies, |_| None);
        assert!(s.complete && !s.consistent);
        // A replica still loading the new data does not count against consistency.
        let replies = vec![
            up("a", stats(0, 2, "old", LoadState::Loading)),
            up("b", stats(0, 2, "new", LoadState::Ready)),
            up("c", stats(1, 2, "new", LoadState::Ready)),
        ];
        assert!(summarize(&replies, |_| None).consistent);
        // Another sharding mid-rescale is.
        let replies =
            vec![up("a", stats(0, 1, "new", LoadState::Ready)), up("b", stats(0, 2, "new", LoadState::Ready))];
        assert!(!summarize(&replies, |_| None).consistent);
    }
}
