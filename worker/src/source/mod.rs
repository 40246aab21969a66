//! Reading datasets from object storage: listing, sharding, decoding, presets.
//!
//! ```text
//! list files under the URL ─▶ generation (hash of paths, sizes, mtimes)
//!   ─▶ units: Parquet row groups (unit k → shard k mod n);
//!            CSV files whole (file j → shard j mod n) when there are at least n,
//!            else every worker streams them and keeps row chunks c ≡ i (mod n)
//!   ─▶ memory check ─▶ decode units in parallel ─▶ store::Builder ─▶ Shard
//! ```

mod decode;
pub mod objstore;
pub use crate::details::{MAX_DETAILS, detail_infos};
pub use crate::spec::presets;
mod units;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::bins::DimBins;
use crate::error::{Error, Result};
use crate::protocol::ShardInfo;
use crate::spec::{Binning, DatasetSpec, Format};
use crate::store::{Builder, Shard};

pub use objstore::S3Defaults;
pub use units::{Unit, UnitKind};

/// Which share of a dataset this worker loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardId {
    /// This worker's index, `0..count`.
    pub index: u32,
    /// Number of workers sharing the dataset.
    pub count: u32,
}

impl ShardId {
    /// A checked shard id.
    pub fn new(index: u32, count: u32) -> Result<ShardId> {
        if count == 0 || index >= count {
            return Err(Error::InvalidSpec(format!("shard index {index} must be below the shard count {count}")));
        }
        Ok(ShardId { index, count })
    }

    /// The only shard of an unsharded dataset.
    pub const SINGLE: ShardId = ShardId { index: 0, count: 1 };
}

/// Rows of CSV per striping chunk.
pub const CSV_CHUNK_ROWS: usize = 65_536;

pub use crate::mem::{return_freed_memory, return_large_buffers_at_once};

/// What a load needs besides the spec.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// S3 defaults from the worker's flags.
    pub s3: S3Defaults,
    /// Refuse shards whose estimated peak memory exceeds this many bytes.
    pub memory_limit: Option<u64>,
}

/// The view compiled for loading: binning per dimension and the columns to read.
#[derive(Clone, Debug)]
pub struct CompiledView {
    /// The effective view config.
    pub view: crate::spec::ViewConfig,
    /// Binning per dimension, in view order.
    pub dims: Vec<DimBins>,
    /// Index of the category dimension.
    pub category_dim: usize,
    /// Detail columns kept, typed.
    pub details: Vec<crate::store::DetailInfo>,
    /// Per detail column: true when it comes from the preset's defaults, so
    /// a file without it loads with the values missing instead of failing.
    pub detail_optional: Vec<bool>,
}

impl CompiledView {
    /// Compiles a dataset's effective view.
    pub fn new(spec: &DatasetSpec) -> Result<CompiledView> {
        let view = spec.effective_view()?;
        view.validate(&spec.name)?;
        let dims = view.dimensions.iter().map(DimBins::from_spec).collect::<Result<Vec<_>>>()?;
        let category_dim = view
            .dimensions
            .iter()
            .position(|d| d.name == view.category && matches!(d.bins, Binning::Categorical { .. }))
            .ok_or_else(|| Error::InvalidSpec(format!("category dimension {:?} not found", view.category)))?;
        if dims.len() > crate::kernel::MAX_DIMS {
            return Err(Error::InvalidSpec(format!(
                "dataset {:?} has {} dimensions; at most {} are supported",
                spec.name,
                dims.len(),
                crate::kernel::MAX_DIMS
            )));
        }
        let details = crate::details::resolve(spec, &view)?;
        let detail_optional = vec![spec.details.is_none(); details.len()];
        Ok(CompiledView { view, dims, category_dim, details, detail_optional })
    }

    /// The kinds of the detail columns, in order.
    pub fn detail_kinds(&self) -> Vec<crate::store::DetailKind> {
        self.details.iter().map(|d| d.kind).collect()
    }
}

/// Loads this worker's shard of a dataset. Progress is logged; errors name
/// the file and column.
pub async fn load(spec: &DatasetSpec, shard: ShardId, opts: &LoadOptions) -> Result<Shard> {
    let started = Instant::now();
    spec.validate()?;
    let compiled = Arc::new(CompiledView::new(spec)?);
    let loc = Arc::new(objstore::open(&spec.source, spec.s3.as_ref(), &opts.s3)?);
    let listed = objstore::list_files(&loc).await?;
    let files: Vec<_> = listed
        .into_iter()
        .filter_map(|m| {
            let name = m.location.filename().unwrap_or_default().to_string();
            if name.starts_with('_') || name.starts_with('.') {
                return None;
            }
            let fmt = spec.format.or_else(|| Format::from_path(m.location.as_ref()))?;
            Some((m, fmt))
        })
        .collect();
    if files.is_empty() {
        return Err(Error::Store {
            location: spec.source.clone(),
            message: "no .parquet, .csv or .csv.gz files found".into(),
        });
    }
    let generation = units::generation(&files);
    let plan = units::plan(&loc, &files, shard).await?;
    let estimate = units::estimate_rows(&loc, &plan).await?;
    check_memory(spec, shard, estimate, compiled.dims.len(), &compiled.details, opts.memory_limit)?;
    tracing::info!(
        dataset = %spec.name, shard = shard.index, shards = shard.count,
        files = files.len(), units = plan.len(), estimated_rows = estimate,
        "loading shard"
    );
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let progress = Arc::new(decode::Progress::new(&spec.name, estimate));
    let kinds = compiled.detail_kinds();
    let interners = crate::store::detail::Interners::new(&kinds);
    // Units arrive as sorted runs; this builder only collects them.
    let mut builder = Builder::with_details(compiled.dims.len(), 0, &kinds);
    let mut stream = futures::stream::iter(plan.into_iter().map(|unit| {
        let (loc, compiled, progress, interners) = (loc.clone(), compiled.clone(), progress.clone(), interners.clone());
        let preset = spec.preset;
        let url = unit.url.clone();
        let task = tokio::spawn(async move {
            decode::decode_unit(&loc, &unit, &compiled, &interners, preset, shard, &progress).await
        });
        async move { task.await.map_err(|e| task_error(&url, e))? }
    }))
    .buffered(parallel);
    while let Some(part) = stream.next().await {
        builder.append(part?);
        // A unit's decode buffers and staging, freed, would otherwise stay
        // with the allocator between the runs the load keeps.
        return_freed_memory();
    }
    drop(stream);
    crate::store::phase(&spec.name, "decoded", started);
    let rows = builder.len();
    let dropped = builder.dropped;
    let info = ShardInfo { shard: shard.index, shards: shard.count, generation };
    let name = spec.name.clone();
    let compiled2 = compiled.clone();
    let staged_bytes = builder.bytes();
    let details = (!kinds.is_empty()).then(|| (compiled.details.clone(), interners.into_dicts()));
    let data = tokio::task::spawn_blocking(move || {
        builder.finish(&name, compiled2.view.clone(), compiled2.dims.clone(), compiled2.category_dim, info, details)
    })
    .await
    .map_err(|e| Error::Protocol(format!("build task failed: {e}")))?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        dataset = %spec.name, shard = shard.index, rows, dropped_rows = dropped,
        bytes = data.bytes(), detail_bytes = data.details.bytes(), staged_bytes, seconds = secs, rows_per_second = (rows as f64 / secs.max(1e-9)) as u64,
        "shard loaded"
    );
    Ok(data)
}

/// The error for a decode task that did not finish. A panic there means the
/// file's decoder met data it cannot handle (the parquet reader panics on some
/// malformed pages): a decode error naming the file, not an internal failure.
pub(crate) fn task_error(url: &str, e: tokio::task::JoinError) -> Error {
    if !e.is_panic() {
        return Error::Protocol(format!("decode task for {url} failed: {e}"));
    }
    let why = panic_message(e.into_panic().as_ref());
    Error::Decode { file: url.to_string(), message: format!("the decoder failed on malformed data: {why}") }
}

/// The message a panic carried (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Encoded bytes a row that a detail column of this kind is budgeted at by the
/// memory check: about what the presets' columns measure (see the bench), with
/// margin. Text counts its codes; its dictionary is not known before loading.
pub fn detail_budget(kind: crate::store::DetailKind) -> u64 {
    use crate::store::DetailKind;
    match kind {
        DetailKind::Int | DetailKind::Float => 3,
        DetailKind::Time => 4,
        DetailKind::Text => 2,
    }
}

fn check_memory(
    spec: &DatasetSpec,
    shard: ShardId,
    rows: u64,
    ndims: usize,
    details: &[crate::store::DetailInfo],
    limit: Option<u64>,
) -> Result<()> {
    let Some(limit) = limit else { return Ok(()) };
    let detail: u64 = details.iter().map(|d| detail_budget(d.kind)).sum();
    let largest = details.iter().map(|d| detail_budget(d.kind)).max().unwrap_or(0);
    // Saturating: the row estimate comes from file footers and may be absurd.
    let resident = rows.saturating_mul(8 + ndims as u64 + detail);
    // While building: the packed records or the columns merged from them, the
    // staged and one re-encoded detail column, plus decode batches in flight.
    let peak = rows
        .saturating_mul(crate::store::peak_bytes_per_row_with_details(ndims, detail, largest))
        .saturating_add(64 << 20);
    if peak > limit {
        return Err(Error::OutOfMemory(format!(
            "dataset {:?} shard {}/{}: about {} rows need about {} MiB to load ({} MiB resident, \
             of which about {} bytes a row for {} detail columns), but the memory limit is {} MiB; \
             add workers, raise the limit, or keep fewer detail columns (`details: []` keeps none)",
            spec.name,
            shard.index,
            shard.count,
            rows,
            peak >> 20,
            resident >> 20,
            detail,
            details.len(),
            limit >> 20
        )));
    }
    Ok(())
}

/// The memory limit of this process's cgroup, if one is set.
pub fn cgroup_memory_limit() -> Option<u64> {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    let v1 = || std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok();
    let text = v2.or_else(v1)?;
    let v: u64 = text.trim().parse().ok()?;
    // "max" fails to parse; v1 reports a huge number when unlimited.
    (v < (1u64 << 60)).then_some(v)
}
