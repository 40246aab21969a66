//! The Flight service: thin glue from gRPC calls to the registry and kernels.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::bins::Kind;
use crate::error::Error;
use crate::protocol::{DatasetInfo, LoadState, Query, View};
use crate::state::WorkerState;
use crate::store::Slot;

type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The worker's Flight service.
#[derive(Debug, Clone)]
pub struct Service {
    state: Arc<WorkerState>,
}

impl Service {
    /// Streams an export: selects the rows (one scan, in the scan queue),
    /// refuses it before the first batch when it is too large, then builds
    /// and sends one batch at a time, so memory holds the row ids and a batch.
    async fn export(
        &self,
        data: Arc<crate::store::Shard>,
        q: Query,
        plan: crate::kernel::Plan,
        started: Instant,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let dataset = q.dataset.clone();
        let export = {
            let _turn = self.state.scans.acquire().await.map_err(|_| Status::unavailable("the worker is stopping"))?;
            let d = data.clone();
            tokio::task::spawn_blocking(move || crate::export::prepare(&d, &q, &plan))
                .await
                .map_err(|e| Status::internal(format!("export task failed: {e}")))?
                .map_err(|e| self.fail(e))?
        };
        tracing::info!(
            dataset = %dataset, rows = export.rows.len(), columns = export.columns.len(),
            select_us = started.elapsed().as_micros() as u64, "export"
        );
        let schema = export.schema.clone();
        let export = Arc::new(export);
        let batches = stream::iter(0..export.batches()).then(move |i| {
            let (e, d) = (export.clone(), data.clone());
            async move {
                tokio::task::spawn_blocking(move || e.batch(&d, i))
                    .await
                    .map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e)))?
                    .map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e)))
            }
        });
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| Status::internal(e.to_string()));
        Ok(Response::new(Box::pin(flight)))
    }

    /// A service over shared state.
    pub fn new(state: Arc<WorkerState>) -> Service {
        Service { state }
    }

    fn fail(&self, e: Error) -> Status {
        self.state.metrics.error(&e);
        if matches!(e, Error::InvalidQuery(_) | Error::UnknownDataset(_)) {
            tracing::debug!(error = %e, "query refused");
        } else {
            tracing::warn!(error = %e, "call failed");
        }
        e.into()
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, Error> {
        self.state.registry.get(name).ok_or_else(|| Error::UnknownDataset(crate::spec::truncate(name, 64)))
    }

    fn info(&self, slot: &Slot) -> Result<FlightInfo, Error> {
        let view = slot.spec.effective_view()?;
        let stats = slot.stats();
        let shard = crate::protocol::ShardInfo {
            shard: self.state.shard.index,
            shards: self.state.shard.count,
            generation: stats.generation.clone(),
        };
        let info = DatasetInfo {
            name: slot.spec.name.clone(),
            view: view.clone(),
            state: stats.state,
            rows: stats.rows,
            bytes: stats.bytes,
            shard,
            details: crate::source::detail_infos(&slot.spec)?,
        };
        // A default ticket with one view, so generic clients can DoGet it.
        let default = Query {
            version: crate::protocol::PROTOCOL_VERSION,
            dataset: slot.spec.name.clone(),
            filters: Default::default(),
            viewport: None,
            viewport_filter: false,
            views: vec![View::Histogram { dimension: view.category.clone() }],
        };
        let schema = logical_schema(slot)?;
        let fi = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(Error::Arrow)?
            .with_descriptor(FlightDescriptor::new_path(vec![slot.spec.name.clone()]))
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(default.to_json())))
            .with_total_records(stats.rows as i64)
            .with_total_bytes(stats.bytes as i64)
            .with_app_metadata(serde_json::to_vec(&info).expect("info serialises"));
        Ok(fi)
    }

    fn descriptor_slot(&self, d: &FlightDescriptor) -> Result<Arc<Slot>, Error> {
        if let Some(name) = d.path.first() {
            return self.slot(name);
        }
        // A command descriptor holds a query ticket.
        let q = Query::from_json(&d.cmd)?;
        self.slot(&q.dataset)
    }
}

/// The dataset as clients see it: position and one column per dimension.
fn logical_schema(slot: &Slot) -> Result<Schema, Error> {
    let view = slot.spec.effective_view()?;
    let mut fields = vec![
        Field::new(view.x.clone(), DataType::Float64, false),
        Field::new(view.y.clone(), DataType::Float64, false),
    ];
    for d in &view.dimensions {
        let bins = crate::bins::DimBins::from_spec(d)?;
        let ty = match bins.kind() {
            Kind::Categorical => DataType::Utf8,
            Kind::Linear | Kind::Log => DataType::Float64,
            Kind::Temporal => DataType::Timestamp(TimeUnit::Second, None),
        };
        if !fields.iter().any(|f| *f.name() == d.column) {
            fields.push(Field::new(d.column.clone(), ty, true));
        }
    }
    let meta = [("quiver.view".to_string(), serde_json::to_string(&view).expect("view serialises"))];
    Ok(Schema::new(fields).with_metadata(meta.into_iter().collect::<std::collections::HashMap<String, String>>()))
}

#[tonic::async_trait]
impl FlightService for Service {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("handshake is not used: send `authorization: Bearer <token>` on every call"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        let infos: Vec<Result<FlightInfo, Status>> =
            self.state.registry.slots().map(|s| self.info(s).map_err(|e| self.fail(e))).collect();
        Ok(Response::new(Box::pin(stream::iter(infos))))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let d = request.into_inner();
        let slot = self.descriptor_slot(&d).map_err(|e| self.fail(e))?;
        let mut info = self.info(&slot).map_err(|e| self.fail(e))?;
        if !d.cmd.is_empty() {
            // The ticket of a command descriptor is the command itself.
            info.endpoint = vec![FlightEndpoint::new().with_ticket(Ticket::new(d.cmd.clone()))];
            info.flight_descriptor = Some(d);
        }
        Ok(Response::new(info))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("poll_flight_info: answers are immediate; use get_flight_info"))
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let slot = self.descriptor_slot(request.get_ref()).map_err(|e| self.fail(e))?;
        let schema = logical_schema(&slot).map_err(|e| self.fail(e))?;
        let result: SchemaResult = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow_schema::ArrowError| self.fail(Error::Arrow(e)))?;
        Ok(Response::new(result))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let started = Instant::now();
        let q = Query::from_json(&request.get_ref().ticket).map_err(|e| self.fail(e))?;
        let slot = self.slot(&q.dataset).map_err(|e| self.fail(e))?;
        self.state.note_query(&q.dataset);
        let data = slot.data().ok_or_else(|| {
            let st = slot.stats();
            let reason = match st.state {
                LoadState::Failed => format!("load failed: {}", st.error.unwrap_or_default()),
                _ => "still loading".to_string(),
            };
            self.fail(Error::NotReady { name: q.dataset.clone(), reason })
        })?;
        let dataset = q.dataset.clone();
        let views = q.views.len();
        // Compiled first: a bad query is refused without queueing.
        let plan = crate::kernel::Plan::new(&q, &data).map_err(|e| self.fail(e))?;
        if crate::export::rows_view(&q).is_some() {
            return self.export(data, q, plan, started).await;
        }
        let queue = if crate::kernel::rows_to_visit(&data, &plan) < crate::kernel::SMALL_SCAN_ROWS {
            &self.state.small_scans
        } else {
            &self.state.scans
        };
        let key = crate::cache::Key {
            dataset: dataset.clone(),
            generation: data.info.generation.clone(),
            query: String::from_utf8_lossy(&q.to_json()).into_owned(),
        };
        let (answer, source) = self
            .state
            .results
            .get_or_compute(key, || async {
                let _turn = queue.acquire().await.map_err(|_| Status::unavailable("the worker is stopping"))?;
                let result = tokio::task::spawn_blocking(move || crate::query::run_planned(&data, &q, &plan))
                    .await
                    .map_err(|e| Status::internal(format!("query task failed: {e}")))?
                    .map_err(|e| self.fail(e))?;
                let batches = crate::encode::encode(&result).map_err(|e| self.fail(e))?;
                Ok::<_, Status>(crate::cache::Answer {
                    batches,
                    total: result.total,
                    selected: result.selected,
                    kernel_micros: result.kernel_micros,
                })
            })
            .await?;
        let elapsed = started.elapsed();
        self.state.metrics.query_seconds.observe(elapsed.as_secs_f64());
        self.state.metrics.answers.get_or_create(&crate::metrics::SourceLabel { source: source.as_str() }).inc();
        tracing::debug!(
            dataset = %dataset, views, rows = answer.total, selected = answer.selected,
            kernel_us = answer.kernel_micros, elapsed_us = elapsed.as_micros() as u64, source = source.as_str(), "query"
        );
        let batches = crate::cache::stamp(&answer.batches, source);
        // One encoder per view, so each view's batch carries its own schema.
        let streams: Vec<BoxStream<'static, Result<FlightData, Status>>> = batches
            .into_iter()
            .map(|b| {
                FlightDataEncoderBuilder::new()
                    .build(stream::once(async move { Ok(b) }))
                    .map_err(|e| Status::internal(e.to_string()))
                    .boxed()
            })
            .collect();
        Ok(Response::new(Box::pin(stream::iter(streams).flatten())))
    }

    async fn do_put(&self, _request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented("workers load from their source; do_put is not accepted"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("do_exchange is not used"))
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        let body: Vec<u8> = match action.r#type.as_str() {
            "health" => br#"{"status":"ok"}"#.to_vec(),
            "stats" => serde_json::to_vec(&self.state.stats()).expect("stats serialise"),
            "reload" => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct ReloadBody {
                    dataset: Option<String>,
                }
                let which = if action.body.is_empty() {
                    None
                } else {
                    let b: ReloadBody = serde_json::from_slice(&action.body).map_err(|e| {
                        self.fail(Error::InvalidQuery(format!("reload body must be {{\"dataset\": name}}: {e}")))
                    })?;
                    b.dataset
                };
                let slots: Vec<Arc<Slot>> = match which {
                    Some(name) => vec![self.slot(&name).map_err(|e| self.fail(e))?],
                    None => self.state.registry.slots().cloned().collect(),
                };
                let mut started = vec![];
                for s in slots {
                    if self.state.start_load(s.clone()) {
                        started.push(s.spec.name.clone());
                    }
                }
                tracing::info!(datasets = ?started, "reload requested");
                serde_json::to_vec(&serde_json::json!({ "reloading": started })).expect("json")
            }
            other => {
                return Err(self.fail(Error::InvalidQuery(format!(
                    "unknown action {:?}; actions are reload, stats, health",
                    crate::spec::truncate(other, 64)
                ))));
            }
        };
        let item = arrow_flight::Result { body: body.into() };
        Ok(Response::new(Box::pin(stream::iter([Ok(item)]))))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions = [
            ("reload", "Drop and reload datasets from the source; body {\"dataset\": name} or empty for all"),
            ("stats", "Rows, bytes, load state and last query time, as JSON"),
            ("health", "Answers {\"status\":\"ok\"}"),
        ];
        let items: Vec<Result<ActionType, Status>> =
            actions.iter().map(|(t, d)| Ok(ActionType { r#type: t.to_string(), description: d.to_string() })).collect();
        Ok(Response::new(Box::pin(stream::iter(items))))
    }
}
