//! `GET /api/export` (the selected rows as CSV or Parquet, streamed) and
//! `GET /api/export/python` (a pyarrow.flight program reproducing the query).
//!
//! ```text
//! request ─▶ plan (dataset, filters, viewport checked as for /api/query)
//!   ─▶ count: a 1-row sample on every worker; one answer per shard, all shards
//!   ─▶ refuse above --export-row-limit (413, the count and the limit)
//!   ─▶ per shard in order: DoGet a `rows` ticket ─▶ batches ─▶ CSV / Parquet
//!      writer ─▶ chunks of the HTTP body as they are written
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use quiver_worker::protocol::{Filter, Query, ShardInfo, View, Viewport};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::query::{QueryRequest, SampleSize, plan};
use crate::state::AppState;

/// The export's file format.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// The selection to export (the JSON of the `request` URL parameter).
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    /// Dataset name.
    pub dataset: String,
    /// Filters by dimension, as for `/api/query`.
    #[serde(default)]
    pub filters: BTreeMap<String, Filter>,
    /// The map viewport.
    #[serde(default)]
    pub viewport: Option<Viewport>,
    /// Keep only rows inside the viewport (as the counter does when the map filters).
    #[serde(default)]
    pub viewport_filter: bool,
}

/// URL parameters of both routes.
#[derive(Deserialize, Debug)]
pub struct Params {
    /// `csv` or `parquet` (export only).
    pub format: Option<Format>,
    /// The [`ExportRequest`], JSON.
    pub request: String,
}

/// The ticket of an export and the worker chosen for each shard (the replica
/// that answered the count), with the shard it serves, in shard order.
struct Prepared {
    ticket: Query,
    endpoints: Vec<String>,
    shards: Vec<ShardInfo>,
    rows: u64,
}

async fn prepare(state: &AppState, p: &Params) -> Result<Prepared> {
    let req: ExportRequest = serde_json::from_str(&p.request)
        .map_err(|e| Error::BadRequest(format!("request: invalid export request: {e}")))?;
    if req.viewport_filter && req.viewport.is_none() {
        return Err(Error::BadRequest("request: viewportFilter needs a viewport".into()));
    }
    let catalog = state.catalog.get(&state.fanout).await?;
    let Some(dataset) = catalog.datasets.get(&req.dataset) else {
        return Err(Error::BadRequest(format!(
            "unknown dataset {:?}",
            req.dataset.chars().take(64).collect::<String>()
        )));
    };
    // The count: rows passing the filters, inside the viewport when it filters.
    let scope = if req.viewport_filter { req.viewport } else { Some(Viewport::WORLD) };
    let counting = QueryRequest {
        dataset: req.dataset.clone(),
        filters: req.filters.clone(),
        viewport: scope,
        viewport_filter: false,
        histograms: vec![],
        baseline: false,
        image: None,
        sample: Some(SampleSize { limit: 1, all_or_none: false }),
    };
    let count_query = plan(&counting, dataset)?.main;
    let replies = state.fanout.query(count_query).await;
    let mut per_shard: BTreeMap<u32, (String, u64, ShardInfo)> = BTreeMap::new();
    let mut shards = None;
    let mut generation = None;
    let mut failure = None;
    for r in replies {
        match r.result {
            Ok(res) => {
                let g = res.shard.generation.clone();
                if *generation.get_or_insert_with(|| g.clone()) != g {
                    return Err(Error::Unavailable(
                        "the workers hold different snapshots of the data (a reload is under way); try again".into(),
                    ));
                }
                shards = Some(res.shard.shards);
                let matched = res.sample.map_or(0, |s| s.matched);
                per_shard.entry(res.shard.shard).or_insert((r.endpoint, matched, res.shard));
            }
            Err(e) => failure = Some(e),
        }
    }
    let Some(n) = shards else {
        return Err(failure.unwrap_or_else(|| Error::Unavailable("no worker answered".into())));
    };
    if let Some(missing) = (0..n).find(|s| !per_shard.contains_key(s)) {
        return Err(Error::Unavailable(format!(
            "shard {missing} of {n} did not answer; an export would miss its rows, so none is made"
        )));
    }
    let rows: u64 = per_shard.values().map(|(_, m, _)| m).sum();
    let limit = state.settings.export_row_limit;
    if rows > limit {
        return Err(Error::ExportTooLarge { rows, limit });
    }
    let ticket = Query {
        version: quiver_worker::protocol::PROTOCOL_VERSION,
        dataset: req.dataset,
        filters: req.filters,
        viewport: if req.viewport_filter { req.viewport } else { None },
        viewport_filter: false,
        views: vec![View::Rows { limit, columns: None }],
    };
    let (endpoints, shards) = per_shard.into_values().map(|(e, _, s)| (e, s)).unzip();
    Ok(Prepared { ticket, endpoints, shards, rows })
}

/// `GET /api/export?format=csv|parquet&request=<JSON>`: the selected rows,
/// streamed from the workers shard by shard.
pub async fn export(State(state): State<AppState>, UrlQuery(p): UrlQuery<Params>) -> Result<Response> {
    let format = p.format.ok_or_else(|| Error::BadRequest("format: give csv or parquet".into()))?;
    let prepared = prepare(&state, &p).await?;
    // The first shard's stream opens before the response starts: a refusal
    // is still an HTTP error, not a broken download.
    let first = state.fanout.export_shard(&prepared.endpoints[0], &prepared.shards[0], &prepared.ticket).await?;
    let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(4);
    let fanout = state.fanout.clone();
    let (ticket, endpoints, rows) = (prepared.ticket.clone(), prepared.endpoints.clone(), prepared.rows);
    let shard_infos = prepared.shards.clone();
    let dataset = ticket.dataset.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut writer = Writer::new(format);
        let mut stream = Some(first);
        let mut sent: u64 = 0;
        let mut outcome: std::result::Result<(), String> = Ok(());
        'shards: for (i, endpoint) in endpoints.iter().enumerate() {
            let mut batches = match stream.take() {
                Some(s) => s,
                None => match fanout.export_shard(endpoint, &shard_infos[i], &ticket).await {
                    Ok(s) => s,
                    Err(e) => {
                        outcome = Err(format!("shard {i}: {e}"));
                        break;
                    }
                },
            };
            while let Some(b) = batches.next().await {
                let chunk = b.map_err(|e| format!("shard {i}: {e}")).and_then(|b| {
                    sent += b.num_rows() as u64;
                    writer.write(&b)
                });
                match chunk {
                    Ok(bytes) if bytes.is_empty() => {}
                    Ok(bytes) => {
                        if tx.send(Ok(bytes)).await.is_err() {
                            outcome = Err("the client went away".into());
                            break 'shards;
                        }
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break 'shards;
                    }
                }
            }
        }
        if outcome.is_ok() {
            match writer.finish() {
                Ok(bytes) if !bytes.is_empty() => {
                    let _ = tx.send(Ok(bytes)).await;
                }
                Ok(_) => {}
                Err(e) => outcome = Err(e),
            }
        }
        match outcome {
            Ok(()) => tracing::info!(
                dataset = %dataset, rows = sent, expected = rows, ms = started.elapsed().as_millis() as u64,
                "export sent"
            ),
            Err(e) => {
                tracing::warn!(dataset = %dataset, rows = sent, error = %e, "export failed midway");
                // Ends the body with an error: the client sees a failed
                // download, never a silently short file.
                let _ = tx.send(Err(std::io::Error::other(e))).await;
            }
        }
    });
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Parquet => ("application/vnd.apache.parquet", "parquet"),
    };
    let mut resp = Body::from_stream(rx).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let name = format!("attachment; filename=\"{}-export.{ext}\"", prepared.ticket.dataset);
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).map_err(|e| Error::Internal(e.to_string()))?);
    h.insert("x-quiver-rows", HeaderValue::from(prepared.rows));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /api/export/python?request=<JSON>`: a Python program that reads the
/// same rows from the workers with pyarrow.flight.
pub async fn python(State(state): State<AppState>, UrlQuery(p): UrlQuery<Params>) -> Result<Response> {
    let prepared = prepare(&state, &p).await?;
    let text = quiver_worker::export::python_snippet(&prepared.ticket, &prepared.endpoints);
    let mut resp = text.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/x-python; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Bytes the Parquet writer's buffer collects before they are sent.
const PARQUET_CHUNK: usize = 1 << 20;
/// Rows per Parquet row group.
const PARQUET_ROW_GROUP: usize = 128 * 1024;

/// A `Write` whose bytes the caller takes as they come.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("export buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().expect("export buffer lock")))
    }
}

/// Encodes batches as they arrive; each call returns the bytes ready to send.
#[allow(clippy::large_enum_variant, reason = "one per download, never moved in a loop")]
enum Writer {
    Csv { header: bool },
    Parquet { out: Shared, writer: Option<(parquet::arrow::ArrowWriter<Shared>, arrow_schema::SchemaRef)> },
}

impl Writer {
    fn new(format: Format) -> Writer {
        match format {
            Format::Csv => Writer::Csv { header: true },
            Format::Parquet => Writer::Parquet { out: Shared::default(), writer: None },
        }
    }

    fn write(&mut self, b: &arrow_array::RecordBatch) -> std::result::Result<Bytes, String> {
        self.write_inner(b).map_err(|e| e.to_string())
    }

    fn write_inner(&mut self, b: &arrow_array::RecordBatch) -> std::result::Result<Bytes, Box<dyn std::error::Error>> {
        match self {
            Writer::Csv { header } => {
                let mut buf = Vec::with_capacity(b.num_rows() * 64);
                let mut w = arrow_csv::WriterBuilder::new().with_header(*header).build(&mut buf);
                w.write(b)?;
                drop(w);
                *header = false;
                Ok(Bytes::from(buf))
            }
            Writer::Parquet { out, writer } => {
                if writer.is_none() {
                    let props = parquet::file::properties::WriterProperties::builder()
                        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                        .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
                        .build();
                    // Shards' schemas differ only in their metadata (shard index): keep none.
                    let schema = Arc::new(arrow_schema::Schema::new(b.schema().fields().clone()));
                    *writer =
                        Some((parquet::arrow::ArrowWriter::try_new(out.clone(), schema.clone(), Some(props))?, schema));
                }
                let (w, schema) = writer.as_mut().expect("created above");
                let b = arrow_array::RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
                // Row groups are written to `out` as they fill.
                w.write(&b)?;
                let ready = out.0.lock().expect("export buffer lock").len();
                Ok(if ready >= PARQUET_CHUNK { out.take() } else { Bytes::new() })
            }
        }
    }

    fn finish(self) -> std::result::Result<Bytes, String> {
        match self {
            Writer::Csv { .. } => Ok(Bytes::new()),
            Writer::Parquet { out, writer } => {
                if let Some((w, _)) = writer {
                    w.close().map_err(|e| e.to_string())?;
                }
                Ok(out.take())
            }
        }
    }
}
