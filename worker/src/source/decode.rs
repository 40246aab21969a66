//! Decoding one unit (a Parquet row group, or a CSV file) into compact rows.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
// ParquetObjectReader is deprecated upstream in favour of hand-written readers;
// it remains the maintained object_store adapter in this release.
#[allow(deprecated)]
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::objstore::Location;
use super::units::{Unit, UnitKind};
use super::{CSV_CHUNK_ROWS, CompiledView, ShardId};
use crate::bins::{DimBins, Kind};
use crate::error::{Error, Result};
use crate::geo::{lat_to_y, lon_to_x};
use crate::spec::Preset;
use crate::store::Builder;
use crate::store::detail::{DetailInfo, DetailKind, Interner, Interners, Lane};

/// Logs load progress every few seconds.
#[derive(Debug)]
pub struct Progress {
    dataset: String,
    expected: u64,
    rows: AtomicU64,
    started: Instant,
    last_log_ms: AtomicU64,
}

impl Progress {
    /// A progress tracker expecting about `expected` rows.
    pub fn new(dataset: &str, expected: u64) -> Progress {
        Progress {
            dataset: dataset.to_string(),
            expected,
            rows: AtomicU64::new(0),
            started: Instant::now(),
            last_log_ms: AtomicU64::new(0),
        }
    }

    fn add(&self, rows: u64) {
        let total = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let ms = self.started.elapsed().as_millis() as u64;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if ms >= last + 3000
            && self.last_log_ms.compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let pct = if self.expected > 0 { 100.0 * total as f64 / self.expected as f64 } else { 0.0 };
            tracing::info!(
                dataset = %self.dataset, rows = total, expected = self.expected,
                percent = format!("{:.0}", pct.min(100.0)),
                rows_per_second = (total as f64 / (ms as f64 / 1000.0).max(1e-3)) as u64,
                "loading"
            );
        }
    }
}

/// Decodes one unit into rows.
pub async fn decode_unit(
    loc: &Location,
    unit: &Unit,
    view: &CompiledView,
    interners: &Interners,
    preset: Option<Preset>,
    shard: ShardId,
    progress: &Progress,
) -> Result<Builder> {
    let ctx = Ctx { view, interners };
    let mut rows: Builder = match &unit.kind {
        UnitKind::Parquet { meta, row_group } => {
            decode_parquet(loc, unit, meta.clone(), *row_group, &ctx, progress).await
        }
        UnitKind::CsvWhole { gzip } => decode_csv(loc, unit, *gzip, None, &ctx, preset, progress).await,
        UnitKind::CsvStripes { gzip } => decode_csv(loc, unit, *gzip, Some(shard), &ctx, preset, progress).await,
    }?;
    // Sorted here, beside the other units decoding, while the rows are in cache.
    rows.seal();
    Ok(rows)
}

/// What decoding a unit reads against: the compiled view and the shared
/// text interners of the detail columns.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The compiled view.
    pub view: &'a CompiledView,
    /// One interner per text detail column.
    pub interners: &'a Interners,
}

impl Ctx<'_> {
    fn builder(&self, rows: usize) -> Builder {
        Builder::with_details(self.view.dims.len(), rows, &self.view.detail_kinds())
    }
}

/// Columns the view must read, deduplicated, in a fixed order: x, y,
/// dimensions, then the detail columns listed in the spec.
fn needed_columns(view: &CompiledView) -> Vec<String> {
    let mut cols = vec![view.view.x.clone(), view.view.y.clone()];
    let details = view.details.iter().zip(&view.detail_optional).filter(|(_, o)| !**o).map(|(d, _)| d.column.as_str());
    let all = view.dims.iter().map(|d| d.column()).chain(details);
    for c in all {
        if !cols.iter().any(|have| have == c) {
            cols.push(c.to_string());
        }
    }
    cols
}

/// [`needed_columns`], then the preset's default detail columns the file has.
fn wanted_columns(view: &CompiledView, have: &[String]) -> Vec<String> {
    let mut cols = needed_columns(view);
    for c in view.details.iter().map(|d| &d.column) {
        if have.contains(c) && !cols.contains(c) {
            cols.push(c.clone());
        }
    }
    cols
}

fn missing_column(url: &str, col: &str, have: &[String]) -> Error {
    Error::Decode {
        file: url.to_string(),
        message: format!("column {col:?} not found; the file has columns {}", have.join(", ")),
    }
}

async fn decode_parquet(
    loc: &Location,
    unit: &Unit,
    meta: parquet::arrow::arrow_reader::ArrowReaderMetadata,
    row_group: usize,
    ctx: &Ctx<'_>,
    progress: &Progress,
) -> Result<Builder> {
    let view = ctx.view;
    let schema = meta.schema().clone();
    let have: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut roots = vec![];
    for col in wanted_columns(view, &have) {
        let i = have.iter().position(|h| *h == col).ok_or_else(|| missing_column(&unit.url, &col, &have))?;
        roots.push(i);
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(loc.store.clone(), unit.path.clone()).with_file_size(unit.size);
    // The footer's row count sizes the rows once (bounded: a corrupt footer
    // can claim anything); each decoded batch is compacted as it arrives, so
    // a unit holds one batch of Arrow arrays at a time, not the row group's.
    let rows = meta.metadata().row_group(row_group).num_rows().clamp(0, 1 << 22) as usize;
    let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
        .with_row_groups(vec![row_group])
        .with_projection(mask)
        .with_batch_size(65_536)
        .build()
        .map_err(|e| Error::Decode { file: unit.url.clone(), message: e.to_string() })?;
    let mut b = ctx.builder(rows);
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| Error::Decode { file: unit.url.clone(), message: format!("row group {row_group}: {e}") })?
    {
        append_batch(&mut b, &batch, ctx, &unit.url)?;
        progress.add(batch.num_rows() as u64);
    }
    Ok(b)
}

async fn decode_csv(
    loc: &Location,
    unit: &Unit,
    gzip: bool,
    stripes: Option<ShardId>,
    ctx: &Ctx<'_>,
    preset: Option<Preset>,
    progress: &Progress,
) -> Result<Builder> {
    let got = loc
        .store
        .get(&unit.path)
        .await
        .map_err(|e| Error::Store { location: unit.url.clone(), message: e.to_string() })?;
    let url = unit.url.clone();
    let stream = got.into_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let view = ctx.view.clone();
    let interners = ctx.interners.clone();
    // The Progress lives in an Arc held by the loader; borrow it through a raw
    // count instead so the blocking task owns everything it touches.
    let counted = Arc::new(AtomicU64::new(0));
    let counted2 = counted.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let raw: Box<dyn Read + Send> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, reader)))
        } else {
            Box::new(reader)
        };
        let ctx = Ctx { view: &view, interners: &interners };
        csv_rows(BufReader::with_capacity(1 << 20, raw), &url, stripes, &ctx, preset, &counted2)
    });
    // Report progress while the blocking task runs.
    let mut handle = handle;
    let mut reported = 0;
    loop {
        tokio::select! {
            res = &mut handle => {
                let now = counted.load(Ordering::Relaxed);
                progress.add(now - reported);
                return res.map_err(|e| super::task_error(&unit.url, e))?;
            }
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                let now = counted.load(Ordering::Relaxed);
                progress.add(now - reported);
                reported = now;
            }
        }
    }
}

/// Splits a header line into column names.
fn split_header(line: &str) -> Vec<String> {
    line.trim_end_matches(['\r', '\n']).split(',').map(|s| s.trim().trim_matches('"').to_string()).collect()
}

fn csv_rows<R: BufRead>(
    mut input: R,
    url: &str,
    stripes: Option<ShardId>,
    ctx: &Ctx<'_>,
    preset: Option<Preset>,
    counted: &AtomicU64,
) -> Result<Builder> {
    let view = ctx.view;
    let io_err = |e: std::io::Error| Error::Decode { file: url.to_string(), message: format!("read failed: {e}") };
    let mut first = String::new();
    input.read_line(&mut first).map_err(io_err)?;
    let needed = needed_columns(view);
    let mut header = split_header(&first);
    let mut pending_first: Option<Vec<u8>> = None;
    if !needed.iter().all(|c| header.contains(c)) {
        match preset {
            // A headerless file of a preset: the first line is data.
            Some(p) if header.len() == super::presets::columns(p).len() && !first.trim().is_empty() => {
                header = super::presets::columns(p);
                pending_first = Some(first.clone().into_bytes());
            }
            _ => {
                let missing = needed.iter().find(|c| !header.contains(c)).expect("one is missing");
                return Err(missing_column(url, missing, &header));
            }
        }
    }
    // Read the columns we need with the types binning wants; the rest as text.
    let fields: Vec<Field> = header
        .iter()
        .map(|name| {
            let ty = if *name == view.view.x || *name == view.view.y {
                DataType::Float64
            } else {
                match view.dims.iter().find(|d| d.column() == name).map(|d| d.kind()) {
                    Some(Kind::Linear | Kind::Log) => DataType::Float64,
                    Some(_) => DataType::Utf8,
                    // Detail columns: numbers as numbers; times and text as text.
                    None => match view.details.iter().find(|d| d.column == *name).map(|d| d.kind) {
                        Some(DetailKind::Int) => DataType::Int64,
                        Some(DetailKind::Float) => DataType::Float64,
                        _ => DataType::Utf8,
                    },
                }
            };
            Field::new(name, ty, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let needed = wanted_columns(view, &header);
    let projection: Vec<usize> =
        needed.iter().map(|c| header.iter().position(|h| h == c).expect("checked above")).collect();
    let mut decoder = arrow_csv::ReaderBuilder::new(schema)
        .with_header(false)
        .with_batch_size(CSV_CHUNK_ROWS)
        .with_projection(projection)
        .build_decoder();
    let mut out = ctx.builder(0);
    let mut row: u64 = 0; // data rows seen (after the header)
    let flush = |decoder: &mut arrow_csv::reader::Decoder, out: &mut Builder| -> Result<()> {
        if let Some(batch) = decoder.flush().map_err(|e| csv_error(url, e, &needed))? {
            append_batch(out, &batch, ctx, url)?;
            counted.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        }
        Ok(())
    };
    let mine = |row: u64| match stripes {
        None => true,
        Some(s) => (row / CSV_CHUNK_ROWS as u64) % s.count as u64 == s.index as u64,
    };
    let last = std::cell::Cell::new(b'\n');
    let feed = |bytes: &[u8], decoder: &mut arrow_csv::reader::Decoder, out: &mut Builder| -> Result<()> {
        if let Some(&l) = bytes.last() {
            last.set(l);
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let n = decoder.decode(&bytes[pos..]).map_err(|e| csv_error(url, e, &needed))?;
            pos += n;
            if pos < bytes.len() || n == 0 {
                flush(decoder, out)?;
            }
        }
        Ok(())
    };
    if let Some(bytes) = pending_first.take() {
        if mine(0) {
            feed(&bytes, &mut decoder, &mut out)?;
        }
        row = 1;
    }
    loop {
        let buf = input.fill_buf().map_err(io_err)?;
        if buf.is_empty() {
            break;
        }
        let len = buf.len();
        match stripes {
            None => {
                // Count rows only for progress; the decoder splits lines itself.
                feed(buf, &mut decoder, &mut out)?;
            }
            Some(_) => {
                // Feed only the lines of our chunks; skip the rest unparsed.
                let mut start = 0;
                let mut keep = mine(row);
                for (i, &c) in buf.iter().enumerate() {
                    if c == b'\n' {
                        row += 1;
                        let next = mine(row);
                        if next != keep {
                            if keep {
                                feed(&buf[start..=i], &mut decoder, &mut out)?;
                            }
                            start = i + 1;
                            keep = next;
                        }
                    }
                }
                if keep && start < len {
                    feed(&buf[start..len], &mut decoder, &mut out)?;
                }
            }
        }
        input.consume(len);
    }
    // A final line without a newline is complete at end of input.
    if last.get() != b'\n' {
        feed(b"\n", &mut decoder, &mut out)?;
    }
    flush(&mut decoder, &mut out)?;
    Ok(out)
}

fn csv_error(url: &str, e: arrow_schema::ArrowError, needed: &[String]) -> Error {
    // Arrow numbers projected columns; name them.
    let mut msg = e.to_string();
    if let Some(pos) = msg.find("for column ") {
        let rest = &msg[pos + 11..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(i) = digits.parse::<usize>()
            && let Some(name) = needed.get(i)
        {
            msg = format!("{msg} (column {name:?})");
        }
    }
    Error::Decode { file: url.to_string(), message: msg }
}

fn column<'a>(batch: &'a RecordBatch, name: &str, url: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        let have: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        missing_column(url, name, &have)
    })
}

fn as_f64(col: &ArrayRef, name: &str, url: &str) -> Result<Vec<Option<f64>>> {
    let c = cast(col, &DataType::Float64).map_err(|e| Error::Decode {
        file: url.to_string(),
        message: format!("column {name:?} of type {} is not numeric: {e}", col.data_type()),
    })?;
    let a = c.as_primitive::<arrow_array::types::Float64Type>();
    Ok(a.iter().collect())
}

/// Codes of one dimension's column.
fn codes(col: &ArrayRef, dim: &DimBins, url: &str) -> Result<Vec<u8>> {
    let miss = dim.missing_code();
    let name = dim.column();
    let bad = |e: String| Error::Decode {
        file: url.to_string(),
        message: format!("column {name:?} of type {}: {e}", col.data_type()),
    };
    let out = match col.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let s = cast(col, &DataType::Utf8).map_err(|e| bad(e.to_string()))?;
            s.as_string::<i32>().iter().map(|v| v.map_or(miss, |v| dim.code_str(v))).collect()
        }
        DataType::Timestamp(unit, _) => {
            let div = match unit {
                TimeUnit::Second => 1,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let i = cast(col, &DataType::Int64).map_err(|e| bad(e.to_string()))?;
            i.as_primitive::<Int64Type>().iter().map(|v| v.map_or(miss, |v| dim.code_i64(v.div_euclid(div)))).collect()
        }
        DataType::Date32 => {
            let i = cast(col, &DataType::Int32).map_err(|e| bad(e.to_string()))?;
            i.as_primitive::<arrow_array::types::Int32Type>()
                .iter()
                .map(|v| v.map_or(miss, |v| dim.code_i64(v as i64 * 86_400)))
                .collect()
        }
        t if t.is_integer() => {
            let i = cast(col, &DataType::Int64).map_err(|e| bad(e.to_string()))?;
            i.as_primitive::<Int64Type>().iter().map(|v| v.map_or(miss, |v| dim.code_i64(v))).collect()
        }
        t if t.is_floating() || matches!(t, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) => {
            let f = cast(col, &DataType::Float64).map_err(|e| bad(e.to_string()))?;
            let f = f.as_primitive::<arrow_array::types::Float64Type>();
            if dim.kind() == Kind::Categorical {
                f.iter()
                    .map(|v| v.map_or(miss, |v| if v.is_finite() { dim.code_i64(v as i64) } else { miss }))
                    .collect()
            } else {
                f.iter().map(|v| v.map_or(miss, |v| dim.code_f64(v))).collect()
            }
        }
        DataType::Boolean => {
            let b = col.as_boolean();
            b.iter().map(|v| v.map_or(miss, |v| dim.code_i64(v as i64))).collect()
        }
        other => return Err(bad(format!("type {other} cannot be binned"))),
    };
    Ok(out)
}

/// One detail column of a batch as lane values (see [`crate::store::detail::Lane`]).
fn detail_lanes(
    col: &ArrayRef,
    info: &DetailInfo,
    interner: Option<&std::sync::Mutex<Interner>>,
    url: &str,
) -> Result<Vec<Lane>> {
    let name = &info.column;
    let bad = |e: String| Error::Decode {
        file: url.to_string(),
        message: format!("detail column {name:?} of type {} is not {:?}: {e}", col.data_type(), info.kind),
    };
    let ints = |to: &DataType| -> Result<Vec<Lane>> {
        let c = cast(col, to).map_err(|e| bad(e.to_string()))?;
        let c = cast(&c, &DataType::Int64).map_err(|e| bad(e.to_string()))?;
        Ok(c.as_primitive::<Int64Type>().iter().collect())
    };
    Ok(match info.kind {
        DetailKind::Int => ints(&DataType::Int64)?,
        DetailKind::Float => {
            let c = cast(col, &DataType::Float64).map_err(|e| bad(e.to_string()))?;
            c.as_primitive::<arrow_array::types::Float64Type>().iter().map(|v| v.map(|f| f.to_bits() as i64)).collect()
        }
        DetailKind::Time => match col.data_type() {
            DataType::Timestamp(..) => ints(&DataType::Timestamp(TimeUnit::Second, None))?,
            DataType::Date32 | DataType::Date64 => ints(&DataType::Timestamp(TimeUnit::Second, None))?,
            t if t.is_integer() => ints(&DataType::Int64)?,
            t if t.is_floating() => ints(&DataType::Int64)?,
            _ => {
                let s = cast(col, &DataType::Utf8).map_err(|e| bad(e.to_string()))?;
                s.as_string::<i32>().iter().map(|v| v.and_then(crate::bins::parse_instant)).collect()
            }
        },
        DetailKind::Text => {
            let s = cast(col, &DataType::Utf8).map_err(|e| bad(e.to_string()))?;
            let mut dict = interner.expect("text columns have an interner").lock().expect("interner lock");
            s.as_string::<i32>().iter().map(|v| v.map(|v| dict.code(v) as i64)).collect()
        }
    })
}

/// Appends a decoded batch: quantises positions (rows without one are
/// dropped and counted), codes every dimension, stages detail values.
pub fn append_batch(b: &mut Builder, batch: &RecordBatch, ctx: &Ctx<'_>, url: &str) -> Result<()> {
    let view = ctx.view;
    let xs = as_f64(column(batch, &view.view.x, url)?, &view.view.x, url)?;
    let ys = as_f64(column(batch, &view.view.y, url)?, &view.view.y, url)?;
    let dim_codes: Vec<Vec<u8>> =
        view.dims.iter().map(|d| codes(column(batch, d.column(), url)?, d, url)).collect::<Result<_>>()?;
    let details: Vec<Vec<Lane>> = view
        .details
        .iter()
        .enumerate()
        .map(|(k, d)| match batch.column_by_name(&d.column) {
            // A preset's default column the file lacks: its values are missing.
            None if view.detail_optional[k] => Ok(vec![None; batch.num_rows()]),
            _ => detail_lanes(column(batch, &d.column, url)?, d, ctx.interners.0[k].as_ref(), url),
        })
        .collect::<Result<_>>()?;
    let mut row = [0u8; crate::store::MAX_RECORD_DIMS];
    let row = &mut row[..dim_codes.len()];
    for i in 0..batch.num_rows() {
        match (xs[i], ys[i]) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                for (d, c) in dim_codes.iter().enumerate() {
                    row[d] = c[i];
                }
                b.push(lon_to_x(x), lat_to_y(y), row);
                if let Some(stage) = b.details_mut() {
                    stage.push_row(details.iter().map(|c| c[i]));
                }
            }
            _ => b.dropped += 1,
        }
    }
    b.seal_when_full();
    Ok(())
}
