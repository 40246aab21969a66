//! Cutting a listing into units of work and picking this shard's share.
//!
//! The rule is a pure function of the sorted listing, the Parquet footers and
//! `(index, count)`, so workers agree on it without talking: every unit goes
//! to exactly one shard, and the union of all shards is the dataset.

use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;

use super::objstore::Location;
use super::{CSV_CHUNK_ROWS, ShardId};
use crate::error::{Error, Result};
use crate::spec::Format;

/// One piece of work for the loader.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Object path.
    pub path: Path,
    /// Full URL, for messages.
    pub url: String,
    /// Object size in bytes.
    pub size: u64,
    /// What to read.
    pub kind: UnitKind,
}

/// What part of a file a unit reads.
#[derive(Clone, Debug)]
pub enum UnitKind {
    /// One Parquet row group.
    Parquet {
        /// Footer, read once per file.
        meta: ArrowReaderMetadata,
        /// Row group index.
        row_group: usize,
    },
    /// A whole CSV file (plain or gzip'd).
    CsvWhole {
        /// Compressed with gzip.
        gzip: bool,
    },
    /// The row chunks `c` of a CSV file with `c mod count == index`.
    CsvStripes {
        /// Compressed with gzip.
        gzip: bool,
    },
}

/// A stable identifier of the listing: FNV-1a over paths, sizes and
/// modification times. Equal across workers that see the same objects.
pub fn generation(files: &[(ObjectMeta, Format)]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for (m, _) in files {
        eat(m.location.as_ref().as_bytes());
        eat(&m.size.to_le_bytes());
        eat(&m.last_modified.timestamp_millis().to_le_bytes());
        if let Some(e) = &m.e_tag {
            eat(e.as_bytes());
        }
    }
    format!("{h:016x}")
}

/// This shard's units, in a deterministic order.
pub async fn plan(loc: &Location, files: &[(ObjectMeta, Format)], shard: ShardId) -> Result<Vec<Unit>> {
    let url_of = |p: &Path| url_of(loc, p);
    // Parquet: read every footer (small), number the row groups globally.
    let parquet: Vec<&ObjectMeta> = files.iter().filter(|(_, f)| *f == Format::Parquet).map(|(m, _)| m).collect();
    let metas = futures::future::try_join_all(parquet.iter().map(|m| {
        let store = loc.store.clone();
        let (path, size, url) = (m.location.clone(), m.size, url_of(&m.location));
        async move {
            #[allow(deprecated)]
            let mut reader = ParquetObjectReader::new(store, path).with_file_size(size);
            let meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(|e| {
                Error::Decode { file: url.clone(), message: format!("not a readable Parquet file: {e}") }
            })?;
            check_footer(meta.metadata(), size)
                .map_err(|m| Error::Decode { file: url, message: format!("not a readable Parquet file: {m}") })?;
            Ok::<_, Error>(meta)
        }
    }))
    .await?;
    let mut units = vec![];
    let mut k: u64 = 0;
    for (m, meta) in parquet.iter().zip(metas) {
        for rg in 0..meta.metadata().num_row_groups() {
            if k % shard.count as u64 == shard.index as u64 {
                units.push(Unit {
                    path: m.location.clone(),
                    url: url_of(&m.location),
                    size: m.size,
                    kind: UnitKind::Parquet { meta: meta.clone(), row_group: rg },
                });
            }
            k += 1;
        }
    }
    // CSV: whole files when there are enough to go round, else stripes.
    let csv: Vec<(&ObjectMeta, bool)> =
        files.iter().filter(|(_, f)| *f != Format::Parquet).map(|(m, f)| (m, *f == Format::CsvGz)).collect();
    let whole = csv.len() >= shard.count as usize;
    for (j, (m, gzip)) in csv.iter().enumerate() {
        let kind = if whole {
            if j % shard.count as usize != shard.index as usize {
                continue;
            }
            UnitKind::CsvWhole { gzip: *gzip }
        } else {
            UnitKind::CsvStripes { gzip: *gzip }
        };
        units.push(Unit { path: m.location.clone(), url: url_of(&m.location), size: m.size, kind });
    }
    Ok(units)
}

/// Checks what the footer says against the file before anything trusts it:
/// the parquet reader panics on a negative column chunk offset or size, reads
/// past the end become store errors (which look transient), and a negative
/// row count would turn into a huge row estimate.
fn check_footer(meta: &parquet::file::metadata::ParquetMetaData, file_size: u64) -> std::result::Result<(), String> {
    for (r, rg) in meta.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return Err(format!("row group {r} has a negative row count {}", rg.num_rows()));
        }
        for (c, col) in rg.columns().iter().enumerate() {
            let start = col.dictionary_page_offset().unwrap_or(col.data_page_offset());
            let len = col.compressed_size();
            let end = start.checked_add(len);
            if start < 0 || len < 0 || end.is_none_or(|e| e as u64 > file_size) {
                return Err(format!(
                    "row group {r} column {c} ({}) claims bytes {start}+{len}, outside the file of {file_size} bytes",
                    col.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// Estimated rows of this shard: exact for Parquet, from a sample of the first
/// megabyte for CSV.
pub async fn estimate_rows(loc: &Location, units: &[Unit]) -> Result<u64> {
    let mut rows = 0u64;
    let mut bytes_per_row: Option<(f64, f64)> = None; // (plain, gzip)
    for u in units {
        match &u.kind {
            UnitKind::Parquet { meta, row_group } => {
                // Non-negative (check_footer); saturating, as footers may claim anything.
                rows = rows.saturating_add(meta.metadata().row_group(*row_group).num_rows() as u64);
            }
            UnitKind::CsvWhole { gzip } | UnitKind::CsvStripes { gzip } => {
                if bytes_per_row.is_none() {
                    bytes_per_row = Some(sample_bytes_per_row(loc, u).await?);
                }
                let (plain, gz) = bytes_per_row.unwrap_or((80.0, 20.0));
                let per = if *gzip { gz } else { plain };
                let mut r = (u.size as f64 / per.max(1.0)) as u64;
                if let UnitKind::CsvStripes { .. } = u.kind {
                    // Every worker reads the file; its share is about 1/n, rounded up to chunks.
                    r = r.div_ceil(CSV_CHUNK_ROWS as u64).max(1) * CSV_CHUNK_ROWS as u64;
                    r = r.min((u.size as f64 / per.max(1.0)) as u64 + CSV_CHUNK_ROWS as u64);
                }
                rows = rows.saturating_add(r);
            }
        }
    }
    Ok(rows)
}

/// Bytes per row of plain and gzip'd CSV, measured on the start of a file.
async fn sample_bytes_per_row(loc: &Location, u: &Unit) -> Result<(f64, f64)> {
    let end = u.size.min(1 << 20);
    if end == 0 {
        return Ok((80.0, 20.0));
    }
    let data = loc
        .store
        .get_range(&u.path, 0..end)
        .await
        .map_err(|e| Error::Store { location: u.url.clone(), message: e.to_string() })?;
    let gzip = matches!(u.kind, UnitKind::CsvWhole { gzip: true } | UnitKind::CsvStripes { gzip: true });
    if gzip {
        use std::io::Read;
        let mut dec = flate2::read::MultiGzDecoder::new(&data[..]);
        let mut out = Vec::new();
        // A truncated stream ends with an error; what was decoded is enough.
        let _ = dec.by_ref().take(64 << 20).read_to_end(&mut out);
        let lines = bytecount(&out).max(1) as f64;
        let plain = out.len() as f64 / lines;
        // Compressed bytes consumed per row ≈ sampled compressed / rows decoded.
        let ratio = (out.len() as f64 / data.len() as f64).max(1.0);
        Ok((plain, plain / ratio))
    } else {
        let lines = bytecount(&data).max(1) as f64;
        let plain = data.len() as f64 / lines;
        Ok((plain, plain / 4.0))
    }
}

fn bytecount(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// The URL of an object, for messages.
pub fn url_of(loc: &Location, p: &Path) -> String {
    let mut u = loc.url.clone();
    u.set_path(&format!("/{p}"));
    u.to_string()
}
