//! Entry points shared by the fuzz targets (`fuzz/`) and the regression test
//! (`worker/tests/fuzz_regressions.rs`): untrusted bytes in, a clean `Result` out.
//!
//! Each one drives the production path, not a copy of it:
//! - [`ticket`]: `Query::from_json` (what `DoGet` runs on the ticket), then
//!   `query::run` against a small fixed shard (the per-dataset checks of
//!   `kernel::Plan` and the scan), then the Flight encoding of the answer and
//!   the client's decoding of it, which must give the answer back.
//! - [`load_bytes`]: the bytes become one object in the process-wide
//!   `memory://` store and [`crate::source::load`] reads it like any dataset: listing,
//!   unit planning (Parquet footers), row estimate, decode, store build.
//!
//! A panic anywhere below is a bug: the fuzzer reports it as a crash and the
//! regression test fails on it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::protocol::{Query, QueryResult};
use crate::source::{LoadOptions, ShardId};
use crate::spec::{DatasetSpec, Preset};
use crate::store::Shard;

/// Largest input the fuzz targets feed in, in bytes (tickets have their own limit).
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Rows of the fixed shard that tickets are run against.
pub const TICKET_SHARD_ROWS: u64 = 3_000;

/// Name of the fixed shard's dataset; tickets naming another dataset run against it anyway.
pub const TICKET_DATASET: &str = "fuzz-towers";

/// One runtime for every entry point: loading is async (object store, spawned
/// decode tasks), and a runtime per input would cost more than the input.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// A fresh `memory://` prefix per call, so concurrent calls do not see each other's files.
fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("memory://quiver-fuzz/{}/", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Loads `bytes` as the single file `file_name` (its extension picks the
/// format: `.csv`, `.csv.gz`, `.parquet`) of a dataset with `preset`, as
/// shard `shard`, through the loader the worker runs. The object is deleted
/// afterwards.
pub fn load_bytes(bytes: &[u8], file_name: &str, preset: Preset, shard: ShardId) -> Result<Shard> {
    let source = fresh_prefix();
    let spec = DatasetSpec {
        name: "fuzz".into(),
        source: source.clone(),
        preset: Some(preset),
        format: None,
        s3: None,
        view: None,
        details: None,
    };
    let loc = crate::source::objstore::open(&source, None, &Default::default())?;
    let path = loc.child(file_name);
    runtime().block_on(async {
        loc.store
            .put(&path, bytes.to_vec().into())
            .await
            .map_err(|e| Error::Store { location: source.clone(), message: e.to_string() })?;
        let loaded = crate::source::load(&spec, shard, &LoadOptions::default()).await;
        // Best effort: a leftover object only costs memory in this process.
        let _ = loc.store.delete(&path).await;
        loaded
    })
}

/// gzip-compresses `bytes` (to feed CSV text through the `.csv.gz` path).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// What the `csv` fuzz target runs on one input: the bytes as plain CSV of
/// both presets (whole-file units), as celltowers CSV read in stripes (shard
/// 0 of 2: the path taken when there are fewer files than workers), then
/// gzip-wrapped as `.csv.gz`, then unwrapped as a (most likely corrupt)
/// `.csv.gz`. Returns each load's outcome, in that order.
pub fn csv_all(bytes: &[u8]) -> Vec<Result<Shard>> {
    let striped = ShardId { index: 0, count: 2 };
    vec![
        load_bytes(bytes, "data.csv", Preset::Celltowers, ShardId::SINGLE),
        load_bytes(bytes, "data.csv", Preset::Ais, ShardId::SINGLE),
        load_bytes(bytes, "data.csv", Preset::Celltowers, striped),
        load_bytes(&gzip(bytes), "data.csv.gz", Preset::Celltowers, ShardId::SINGLE),
        load_bytes(bytes, "data.csv.gz", Preset::Celltowers, ShardId::SINGLE),
    ]
}

/// What the `parquet` fuzz target runs on one input: the bytes as a Parquet
/// file of both presets. Returns each load's outcome, in that order.
pub fn parquet_all(bytes: &[u8]) -> Vec<Result<Shard>> {
    vec![
        load_bytes(bytes, "data.parquet", Preset::Celltowers, ShardId::SINGLE),
        load_bytes(bytes, "data.parquet", Preset::Ais, ShardId::SINGLE),
    ]
}

/// The fixed shard tickets run against: synthetic cell towers, generated and
/// loaded once per process through the generator and the loader.
pub fn ticket_shard() -> &'static Shard {
    static SHARD: OnceLock<Shard> = OnceLock::new();
    SHARD.get_or_init(|| {
        let out = fresh_prefix();
        let mut opts = crate::synth::GenOptions::new(Preset::Celltowers, TICKET_SHARD_ROWS, out.clone());
        opts.format = crate::spec::Format::Csv;
        opts.files = 1;
        runtime().block_on(crate::synth::generate(&opts, false)).expect("the generator writes to memory");
        let spec = DatasetSpec {
            name: TICKET_DATASET.into(),
            source: out,
            preset: Some(Preset::Celltowers),
            format: None,
            s3: None,
            view: None,
            details: None,
        };
        runtime()
            .block_on(crate::source::load(&spec, ShardId::SINGLE, &LoadOptions::default()))
            .expect("generated towers load")
    })
}

/// Decodes and runs a `DoGet` ticket against [`ticket_shard`], then encodes
/// the answer as the Flight service does and decodes it as the client does.
/// Panics if the round trip changes the answer (that is a codec bug).
pub fn ticket(bytes: &[u8]) -> Result<QueryResult> {
    let q = Query::from_json(bytes)?;
    let shard = ticket_shard();
    let result = crate::query::run(shard, &q)?;
    let batches = crate::encode::encode(&result)?;
    let back = crate::encode::decode(&batches)?;
    assert_eq!(back, result, "the Flight encoding of a query result must decode to the same result");
    Ok(result)
}

/// Whether a panic is a known upstream one that the loader contains: the
/// parquet reader (and the arrow buffers it fills) panics on some malformed
/// pages, e.g. parquet 60.1 divides by zero in `array_reader/byte_array.rs`
/// on a dictionary page that declares no values, and arrow-buffer 60.1 finds
/// `offset + len out of bounds` on a short definition-level run. Decoding runs
/// in a task, and the loader reports such a panic as a decode error naming the
/// file, so the fuzz targets let it unwind to that boundary and keep
/// searching. The rule: the panic is raised in a dependency (not this crate)
/// while the parquet reader is on the stack. Any other panic, or one that
/// escapes the loader, is still a finding.
pub fn is_contained_upstream_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let Some(loc) = info.location() else { return false };
    let file = loc.file().replace('\\', "/");
    let in_dependency = file.contains("/registry/src/") || file.contains("/git/checkouts/");
    if !in_dependency {
        return false;
    }
    let in_parquet_crate = file.split('/').any(|part| part.starts_with("parquet-"));
    in_parquet_crate || std::backtrace::Backtrace::force_capture().to_string().contains("parquet::arrow::")
}

/// Installs the fuzz targets' panic hook: contained upstream panics (see
/// [`is_contained_upstream_panic`]) unwind quietly; any other panic prints
/// its report and aborts, which libFuzzer records as a crash.
pub fn install_fuzz_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_contained_upstream_panic(info) {
            return;
        }
        default(info);
        std::process::abort();
    }));
}
