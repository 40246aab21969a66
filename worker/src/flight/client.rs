//! The Rust client of the worker protocol, used by the dashboard and the operator.

use std::time::Duration;

use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, Criteria, Ticket};
use futures::{StreamExt, TryStreamExt};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use arrow_array::RecordBatch;

use crate::protocol::{DatasetInfo, Query, QueryResult, WorkerStats};

/// A connection to one worker. Cheap to clone (shares the HTTP/2 channel).
#[derive(Clone, Debug)]
pub struct WorkerClient {
    endpoint: String,
    inner: FlightServiceClient<Channel>,
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl WorkerClient {
    /// Connects to `http://host:port` (5 s connect timeout).
    pub async fn connect(endpoint: &str, token: Option<String>) -> Result<WorkerClient> {
        let channel = Self::endpoint(endpoint)?.connect().await.map_err(|e| Error::Unavailable {
            endpoint: endpoint.to_string(),
            message: format!("connect failed: {e}"),
        })?;
        Self::with_channel(endpoint, channel, token)
    }

    /// A client that connects on first use (never fails up front).
    pub fn connect_lazy(endpoint: &str, token: Option<String>) -> Result<WorkerClient> {
        let channel = Self::endpoint(endpoint)?.connect_lazy();
        Self::with_channel(endpoint, channel, token)
    }

    fn endpoint(endpoint: &str) -> Result<Endpoint> {
        Ok(Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| Error::InvalidSpec(format!("worker endpoint {endpoint:?} is not a URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30)))
    }

    fn with_channel(endpoint: &str, channel: Channel, token: Option<String>) -> Result<WorkerClient> {
        let auth = match token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Error::InvalidSpec("worker token must be printable ASCII".into()))?,
            ),
            None => None,
        };
        let inner = FlightServiceClient::new(channel).max_decoding_message_size(256 << 20);
        Ok(WorkerClient { endpoint: endpoint.to_string(), inner, auth })
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(a) = &self.auth {
            r.metadata_mut().insert("authorization", a.clone());
        }
        r
    }

    fn status(&self, s: tonic::Status) -> Error {
        status_error(&self.endpoint, s)
    }

    /// Runs an export (a query whose only view is `rows`, see
    /// [`crate::protocol::View::Rows`]): the answer's batches as they arrive.
    /// Refusals (too many rows, unknown columns) come before the first batch.
    /// The first item is an empty batch of the export's schema, so an export
    /// of no rows still names its columns (a CSV header, a valid Parquet file).
    pub async fn export(&self, q: &Query) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch>>> {
        let mut inner = self.inner.clone();
        let resp = inner.do_get(self.request(Ticket::new(q.to_json()))).await.map_err(|s| self.status(s))?;
        let flight = resp.into_inner().map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s)));
        let endpoint = self.endpoint.clone();
        let mut decoder = FlightDataDecoder::new(flight).peekable();
        // The first message settles whether the worker accepted the export.
        if let Some(Err(_)) = std::pin::Pin::new(&mut decoder).peek().await {
            let Some(Err(e)) = decoder.next().await else { unreachable!("peeked an error") };
            return Err(flight_error(&endpoint, e));
        }
        Ok(decoder
            .filter_map(move |item| {
                let out = match item {
                    Ok(d) => match d.payload {
                        DecodedPayload::RecordBatch(b) => Some(Ok(b)),
                        DecodedPayload::Schema(s) => Some(Ok(RecordBatch::new_empty(s))),
                        DecodedPayload::None => None,
                    },
                    Err(e) => Some(Err(flight_error(&endpoint, e))),
                };
                futures::future::ready(out)
            })
            .boxed())
    }
}

fn flight_error(endpoint: &str, e: arrow_flight::error::FlightError) -> Error {
    match e {
        arrow_flight::error::FlightError::Tonic(s) => status_error(endpoint, *s),
        other => Error::Protocol(other.to_string()),
    }
}

/// The error a worker's status stands for.
fn status_error(endpoint: &str, s: tonic::Status) -> Error {
    {
        use tonic::Code;
        let msg = s.message().to_string();
        let category = s.metadata().get(crate::error::CATEGORY_HEADER).and_then(|v| v.to_str().ok());
        if category == Some("too_many_rows") {
            // The worker says `N rows are selected; the export limit is L rows`.
            let nums: Vec<u64> = msg.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse().ok()).collect();
            if let [rows, limit] = nums[..] {
                return Error::TooManyRows { rows, limit };
            }
        }
        if category == Some("not_ready") {
            // The worker says `dataset "NAME" is not ready: REASON`.
            let parsed = msg.strip_prefix("dataset \"").and_then(|r| r.split_once("\" is not ready: "));
            return match parsed {
                Some((name, reason)) => Error::NotReady { name: name.to_string(), reason: reason.to_string() },
                None => Error::NotReady { name: String::new(), reason: msg },
            };
        }
        match s.code() {
            Code::InvalidArgument | Code::FailedPrecondition => Error::InvalidQuery(msg),
            Code::NotFound => Error::UnknownDataset(msg),
            Code::Unauthenticated | Code::PermissionDenied => Error::Unauthenticated(msg),
            Code::ResourceExhausted => Error::OutOfMemory(msg),
            _ => Error::Unavailable { endpoint: endpoint.to_string(), message: format!("{:?}: {msg}", s.code()) },
        }
    }
}

impl WorkerClient {
    /// Runs a query and decodes the answer.
    pub async fn query(&self, q: &Query) -> Result<QueryResult> {
        let mut inner = self.inner.clone();
        let resp = inner.do_get(self.request(Ticket::new(q.to_json()))).await.map_err(|s| self.status(s))?;
        let flight = resp.into_inner().map_err(|s| arrow_flight::error::FlightError::Tonic(Box::new(s)));
        let mut decoder = FlightDataDecoder::new(flight);
        let mut batches = vec![];
        // Each view's batch comes with its schema (which carries the view's
        // metadata); a view of no rows (a sample of an empty selection) is
        // sent as its schema alone: it stands for an empty batch.
        let mut unfilled: Option<arrow_schema::SchemaRef> = None;
        while let Some(item) = decoder.next().await {
            let item = item.map_err(|e| match e {
                arrow_flight::error::FlightError::Tonic(s) => self.status(*s),
                other => Error::Protocol(other.to_string()),
            })?;
            match item.payload {
                DecodedPayload::Schema(s) => {
                    if let Some(empty) = unfilled.replace(s) {
                        batches.push(RecordBatch::new_empty(empty));
                    }
                }
                DecodedPayload::RecordBatch(b) => {
                    unfilled = None;
                    batches.push(b);
                }
                DecodedPayload::None => {}
            }
        }
        if let Some(empty) = unfilled {
            batches.push(RecordBatch::new_empty(empty));
        }
        crate::encode::decode(&batches)
    }

    async fn action(&self, kind: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        let mut inner = self.inner.clone();
        let resp = inner
            .do_action(self.request(Action { r#type: kind.to_string(), body: body.into() }))
            .await
            .map_err(|s| self.status(s))?;
        let mut stream = resp.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Error::Protocol(format!("action {kind} returned nothing")))?
            .map_err(|s| self.status(s))?;
        Ok(first.body.to_vec())
    }

    /// The worker's stats.
    pub async fn stats(&self) -> Result<WorkerStats> {
        let body = self.action("stats", vec![]).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("stats: {e}")))
    }

    /// Asks the worker to reload one dataset, or all.
    pub async fn reload(&self, dataset: Option<&str>) -> Result<()> {
        let body = match dataset {
            Some(d) => serde_json::to_vec(&serde_json::json!({ "dataset": d })).expect("json"),
            None => vec![],
        };
        self.action("reload", body).await.map(|_| ())
    }

    /// Checks the worker answers.
    pub async fn health(&self) -> Result<()> {
        self.action("health", vec![]).await.map(|_| ())
    }

    /// The datasets the worker holds.
    pub async fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        let mut inner = self.inner.clone();
        let resp = inner.list_flights(self.request(Criteria::default())).await.map_err(|s| self.status(s))?;
        let infos: Vec<arrow_flight::FlightInfo> = resp.into_inner().try_collect().await.map_err(|s| self.status(s))?;
        infos
            .into_iter()
            .map(|i| {
                serde_json::from_slice(&i.app_metadata)
                    .map_err(|e| Error::Protocol(format!("flight info metadata: {e}")))
            })
            .collect()
    }
}
