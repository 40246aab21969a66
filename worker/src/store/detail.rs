//! Detail columns: the rows' exact values (a tower's range in metres and MCC,
//! a vessel's name and MMSI), held cold beside the bin codes for the few rows
//! a sample shows or an export streams.
//!
//! The kernels never read them. They are kept in the store's row order, cut
//! into blocks of [`DETAIL_BLOCK_ROWS`] rows, each column of each block
//! encoded on its own as the smaller of
//!
//! - frame of reference: `value - min`, bit-packed at the width of the
//!   block's range (a tower's `mcc` in a block of neighbours takes 0-2 bits);
//! - a block dictionary: the block's distinct values, sorted, and bit-packed
//!   indices into them (a port's few hundred MMSIs in 8 bits, not 30).
//!
//! Floats are stored as integers at the smallest decimal scale (0 to 4
//! places) that gives every value of the block back bit for bit (AIS speeds
//! have one decimal), else as their raw bits. Text is interned into one
//! dictionary per column and stored as its codes. A missing value costs a
//! bit in a per-block null mask, only in blocks that have one.
//!
//! Any single value decodes in O(1) without touching the rest of its block
//! (bit-packing has fixed widths), which is why this and not LZ4/ZSTD over
//! Arrow IPC buffers: a sample of 5000 rows scattered over a shard reads
//! 5000 values per column instead of decompressing 5000 blocks.
//!
//! While loading, a decoding unit stages its rows' values as they are, a few
//! hundred thousand rows at a time; when the builder sorts those rows into a
//! run, the values are put in the run's order and encoded. The runs' values
//! are then merged in the order the store's merge of the runs gives
//! ([`merge`]), reading every run front to back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampSecondArray};
use arrow_schema::Field;
use rayon::prelude::*;

/// Rows per encoded block of a detail column.
pub const DETAIL_BLOCK_ROWS: usize = 4096;

pub use crate::protocol::DetailInfo;
pub use crate::spec::DetailKind;

/// Interns text values into codes, shared by the units a load decodes in
/// parallel so codes are global to the column.
#[derive(Debug, Default)]
pub struct Interner {
    codes: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    dict: TextDict,
}

impl Interner {
    /// The code of `s`, adding it when new.
    pub fn code(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.codes.get(s) {
            return c;
        }
        let c = self.dict.len() as u32;
        self.dict.push(s);
        self.codes.insert(s.into(), c);
        c
    }
}

/// Text values by code: one byte buffer and the offsets into it.
#[derive(Debug, Default, Clone)]
pub struct TextDict {
    bytes: String,
    ends: Vec<u32>,
}

impl TextDict {
    fn push(&mut self, s: &str) {
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len() as u32);
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value of a code.
    pub fn get(&self, code: u32) -> &str {
        let c = code as usize;
        let start = if c == 0 { 0 } else { self.ends[c - 1] as usize };
        &self.bytes[start..self.ends[c] as usize]
    }

    fn bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }
}

/// One column's values of one block, encoded.
#[derive(Debug, Clone)]
struct EncBlock {
    /// Bits per packed value (0: every value equals `base`).
    width: u8,
    /// Floats: decimal places of the stored integers, or `RAW_BITS`.
    scale: u8,
    /// Frame of reference: the smallest value (dictionary blocks: 0).
    base: i64,
    /// Block dictionary (sorted distinct values); packed values index it.
    dict: Option<Box<[i64]>>,
    /// Bit `i` set when row `i` is missing.
    nulls: Option<Box<[u64]>>,
    words: Box<[u64]>,
}

const RAW_BITS: u8 = u8::MAX;
const POW10: [f64; 5] = [1.0, 10.0, 100.0, 1000.0, 10000.0];

#[inline]
fn unpack(words: &[u64], width: u8, i: usize) -> u64 {
    if width == 0 {
        return 0;
    }
    let w = width as usize;
    let bit = i * w;
    let (k, off) = (bit / 64, bit % 64);
    let mut v = words[k] >> off;
    if off + w > 64 {
        v |= words[k + 1] << (64 - off);
    }
    if w == 64 { v } else { v & ((1u64 << w) - 1) }
}

fn pack(vals: impl Iterator<Item = u64>, n: usize, width: u8) -> Box<[u64]> {
    let w = width as usize;
    let mut words = vec![0u64; (n * w).div_ceil(64)];
    if w == 0 {
        return words.into_boxed_slice();
    }
    for (i, v) in vals.enumerate() {
        let bit = i * w;
        let (k, off) = (bit / 64, bit % 64);
        words[k] |= v << off;
        if off + w > 64 {
            words[k + 1] |= v >> (64 - off);
        }
    }
    words.into_boxed_slice()
}

fn bits_for(range: u64) -> u8 {
    (64 - range.leading_zeros()) as u8
}

impl EncBlock {
    /// Encodes one block of lane values (see [`Lane`]).
    fn encode(kind: DetailKind, vals: &[Option<i64>]) -> EncBlock {
        let n = vals.len();
        let nulls = vals.iter().any(|v| v.is_none()).then(|| {
            let mut m = vec![0u64; n.div_ceil(64)];
            for (i, v) in vals.iter().enumerate() {
                if v.is_none() {
                    m[i / 64] |= 1 << (i % 64);
                }
            }
            m.into_boxed_slice()
        });
        // Floats: the smallest decimal scale that round-trips every value.
        let mut scale = 0u8;
        let ints: Vec<i64>;
        let present = || vals.iter().flatten().copied();
        if kind == DetailKind::Float {
            let found = (0..POW10.len()).find(|&s| {
                present().all(|b| {
                    let v = f64::from_bits(b as u64);
                    let i = (v * POW10[s]).round();
                    i.abs() < 9.0e15 && (i / POW10[s]).to_bits() == v.to_bits()
                })
            });
            match found {
                Some(s) => {
                    scale = s as u8;
                    ints = vals
                        .iter()
                        .map(|v| v.map_or(0, |b| (f64::from_bits(b as u64) * POW10[s]).round() as i64))
                        .collect();
                }
                None => {
                    scale = RAW_BITS;
                    ints = vals.iter().map(|v| v.unwrap_or(0)).collect();
                }
            }
        } else {
            ints = vals.iter().map(|v| v.unwrap_or(0)).collect();
        }
        // Nulls take the smallest present value so they do not widen the range.
        let (min, max) = present_min_max(&ints, vals);
        let for_width = bits_for((max as i128 - min as i128) as u64);
        let present_ints = || ints.iter().zip(vals).filter(|(_, v)| v.is_some()).map(|(i, _)| *i);
        // A dictionary only pays with few distinct values: judge by the first
        // 256 before sorting the whole block.
        let mut head: Vec<i64> = present_ints().take(256).collect();
        head.sort_unstable();
        head.dedup();
        let distinct: Vec<i64> = if for_width > 2 && head.len() <= 128 {
            if for_width <= 16 {
                // A narrow range: mark the values present instead of sorting.
                let mut seen = vec![0u64; (1usize << for_width).div_ceil(64)];
                for v in present_ints() {
                    let o = (v - min) as usize;
                    seen[o / 64] |= 1 << (o % 64);
                }
                let mut d = Vec::new();
                for (k, &w) in seen.iter().enumerate() {
                    let mut w = w;
                    while w != 0 {
                        d.push(min + (k * 64 + w.trailing_zeros() as usize) as i64);
                        w &= w - 1;
                    }
                }
                d
            } else {
                let mut d: Vec<i64> = present_ints().collect();
                d.sort_unstable();
                d.dedup();
                d
            }
        } else {
            vec![]
        };
        let dict_width = bits_for(distinct.len().saturating_sub(1) as u64);
        let for_bits = n * for_width as usize;
        let dict_bits = n * dict_width as usize + distinct.len() * 64;
        if !distinct.is_empty() && dict_bits < for_bits {
            let words = pack(
                ints.iter().zip(vals).map(|(i, v)| {
                    if v.is_some() { distinct.binary_search(i).expect("value is in its dictionary") as u64 } else { 0 }
                }),
                n,
                dict_width,
            );
            EncBlock { width: dict_width, scale, base: 0, dict: Some(distinct.into()), nulls, words }
        } else {
            let words = pack(
                ints.iter().zip(vals).map(|(i, v)| if v.is_some() { (*i as i128 - min as i128) as u64 } else { 0 }),
                n,
                for_width,
            );
            EncBlock { width: for_width, scale, base: min, dict: None, nulls, words }
        }
    }

    /// The lane value of row `i` of the block.
    #[inline]
    fn get(&self, kind: DetailKind, i: usize) -> Option<i64> {
        if let Some(m) = &self.nulls
            && m[i / 64] >> (i % 64) & 1 == 1
        {
            return None;
        }
        let p = unpack(&self.words, self.width, i);
        let int = match &self.dict {
            Some(d) => d[p as usize],
            None => (self.base as i128 + p as i128) as i64,
        };
        if kind == DetailKind::Float && self.scale != RAW_BITS {
            return Some(((int as f64) / POW10[self.scale as usize]).to_bits() as i64);
        }
        Some(int)
    }

    /// The lane values of rows `rows` of the block into `out` (`None`
    /// where missing), what [`EncBlock::get`] gives row by row, with the
    /// block's decisions (dictionary, scale) taken once.
    fn decode_into(&self, kind: DetailKind, rows: std::ops::Range<usize>, out: &mut Vec<Lane>) {
        out.clear();
        let first = rows.start;
        let packed = rows.map(|i| unpack(&self.words, self.width, i));
        match (&self.dict, kind == DetailKind::Float && self.scale != RAW_BITS) {
            (Some(d), false) => out.extend(packed.map(|p| Some(d[p as usize]))),
            (None, false) => out.extend(packed.map(|p| Some((self.base as i128 + p as i128) as i64))),
            (dict, true) => {
                let pow = POW10[self.scale as usize];
                out.extend(packed.map(|p| {
                    let int = dict.as_ref().map_or((self.base as i128 + p as i128) as i64, |d| d[p as usize]);
                    Some(((int as f64) / pow).to_bits() as i64)
                }))
            }
        }
        if let Some(m) = &self.nulls {
            for (k, o) in out.iter_mut().enumerate() {
                let i = first + k;
                if m[i / 64] >> (i % 64) & 1 == 1 {
                    *o = None;
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
            + self.dict.as_ref().map_or(0, |d| d.len() * 8)
            + self.nulls.as_ref().map_or(0, |m| m.len() * 8)
    }
}

fn present_min_max(ints: &[i64], vals: &[Option<i64>]) -> (i64, i64) {
    let mut it = ints.iter().zip(vals).filter(|(_, v)| v.is_some()).map(|(i, _)| *i);
    let Some(first) = it.next() else {
        return (0, 0);
    };
    it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Rows a [`Cursor`] decodes at once: enough to take the block's decisions
/// once for many rows, few enough that a merge chunk decodes little past
/// what it takes from each run.
const CURSOR_ROWS: usize = 512;

/// Reads one run's column front to back, decoding [`CURSOR_ROWS`] at a time.
struct Cursor<'a> {
    col: &'a Encoded,
    rows: usize,
    /// Next row to hand out.
    at: usize,
    /// The values of rows `at - taken ..`, decoded.
    window: Vec<Lane>,
    taken: usize,
}

impl<'a> Cursor<'a> {
    fn new(col: &'a Encoded, rows: usize, at: usize) -> Cursor<'a> {
        Cursor { col, rows, at, window: Vec::with_capacity(CURSOR_ROWS), taken: 0 }
    }

    #[inline]
    fn next(&mut self) -> Lane {
        if self.taken == self.window.len() {
            let (b, i) = (self.at / DETAIL_BLOCK_ROWS, self.at % DETAIL_BLOCK_ROWS);
            let n = (self.rows - b * DETAIL_BLOCK_ROWS).min(DETAIL_BLOCK_ROWS);
            self.col.blocks[b].decode_into(self.col.kind, i..n.min(i + CURSOR_ROWS), &mut self.window);
            self.taken = 0;
        }
        let v = self.window[self.taken];
        self.taken += 1;
        self.at += 1;
        v
    }
}

/// A value as the encoder sees it ("lane"): ints and seconds as they are,
/// floats as their bits, text as its code in the column's dictionary.
pub type Lane = Option<i64>;

/// One column of detail values, encoded block by block.
#[derive(Debug, Clone)]
struct Encoded {
    kind: DetailKind,
    blocks: Vec<EncBlock>,
}

impl Encoded {
    fn new(kind: DetailKind) -> Encoded {
        Encoded { kind, blocks: vec![] }
    }

    #[inline]
    fn get(&self, row: usize) -> Lane {
        self.blocks[row / DETAIL_BLOCK_ROWS].get(self.kind, row % DETAIL_BLOCK_ROWS)
    }

    fn bytes(&self) -> usize {
        self.blocks.iter().map(EncBlock::bytes).sum::<usize>()
            + self.blocks.capacity() * std::mem::size_of::<EncBlock>()
    }
}

/// The detail values of rows being decoded, in decoding order, as they
/// are: 8 bytes a value and a bit when missing. A builder seals its rows into
/// a sorted run every few hundred thousand rows, so this stays small; the
/// run holds them encoded (see [`DetailStage::reorder`]).
#[derive(Debug)]
pub struct DetailStage {
    columns: Vec<RawColumn>,
    rows: usize,
}

#[derive(Debug)]
struct RawColumn {
    kind: DetailKind,
    /// Lane values; 0 where missing.
    vals: Vec<i64>,
    /// Bit `i` set when row `i` is missing.
    nulls: Vec<u64>,
}

impl DetailStage {
    /// An empty stage for columns of these kinds.
    pub fn new(kinds: &[DetailKind]) -> DetailStage {
        let columns = kinds.iter().map(|&kind| RawColumn { kind, vals: vec![], nulls: vec![] }).collect();
        DetailStage { columns, rows: 0 }
    }

    /// Rows staged.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one row's lane values, one per column.
    #[inline]
    pub fn push_row(&mut self, vals: impl Iterator<Item = Lane>) {
        let i = self.rows;
        for (c, v) in self.columns.iter_mut().zip(vals) {
            if i.is_multiple_of(64) {
                c.nulls.push(0);
            }
            c.vals.push(v.unwrap_or(0));
            if v.is_none() {
                c.nulls[i / 64] |= 1 << (i % 64);
            }
        }
        self.rows += 1;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.columns.iter().map(|c| (c.vals.capacity() + c.nulls.capacity()) * 8).sum()
    }

    /// The staged rows in the order `ids` gives (row `r` of the result is
    /// staged row `ids[r]`), encoded.
    pub fn reorder(self, ids: &[u32]) -> Run {
        assert_eq!(ids.len(), self.rows, "a reordering names every staged row once");
        let rows = self.rows;
        let mut lanes: Vec<Lane> = Vec::with_capacity(DETAIL_BLOCK_ROWS);
        let columns = self
            .columns
            .into_iter()
            .map(|col| {
                let blocks = ids
                    .chunks(DETAIL_BLOCK_ROWS)
                    .map(|chunk| {
                        lanes.clear();
                        lanes.extend(chunk.iter().map(|&id| {
                            let id = id as usize;
                            (col.nulls[id / 64] >> (id % 64) & 1 == 0).then(|| col.vals[id])
                        }));
                        EncBlock::encode(col.kind, &lanes)
                    })
                    .collect();
                Encoded { kind: col.kind, blocks }
            })
            .collect();
        Run { columns, rows }
    }
}

/// The detail columns of a sorted run of rows (see [`DetailStage::reorder`]),
/// waiting for [`merge`].
#[derive(Debug)]
pub struct Run {
    columns: Vec<Encoded>,
    rows: usize,
}

impl Run {
    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.columns.iter().map(Encoded::bytes).sum()
    }
}

/// Output rows whose run cursors [`merge`] finds in one pass and then
/// re-encodes in parallel with other such chunks (256 detail blocks): each
/// run's cursor decodes at most [`CURSOR_ROWS`] past what a chunk takes.
pub(crate) const MERGE_CHUNK_ROWS: usize = 256 * DETAIL_BLOCK_ROWS;

/// The runs' rows as the store's detail columns: output row `r` is the next
/// row of run `from[r]` not yet taken (each run's rows are taken in its
/// order, as the store's sort merged them).
///
/// Every run is read front to back, so each value is a sequential bit
/// unpack, not a cache miss. One column at a time: a column's runs are freed
/// once it is re-encoded, so the load holds the staged values and one
/// re-encoded column on top of the rest, never two copies of everything.
pub fn merge<T: Copy + Into<usize> + Sync>(
    mut runs: Vec<Run>,
    from: &[T],
    infos: Vec<DetailInfo>,
    dicts: Vec<Option<TextDict>>,
) -> Details {
    let rows = from.len();
    assert_eq!(runs.iter().map(Run::rows).sum::<usize>(), rows, "the runs hold as many rows as are merged");
    // Where each run's cursor stands at the start of each chunk.
    let counts: Vec<Vec<u32>> = from
        .par_chunks(MERGE_CHUNK_ROWS)
        .map(|chunk| {
            let mut c = vec![0u32; runs.len()];
            for &f in chunk {
                c[f.into()] += 1;
            }
            c
        })
        .collect();
    let mut cursors = Vec::with_capacity(counts.len());
    let mut at = vec![0u32; runs.len()];
    for c in &counts {
        cursors.push(at.clone());
        for (a, n) in at.iter_mut().zip(c) {
            *a += n;
        }
    }
    drop(counts);
    let started = std::time::Instant::now();
    let columns = infos
        .into_iter()
        .zip(dicts)
        .enumerate()
        .map(|(c, (info, dict))| {
            let kind = info.kind;
            let parts: Vec<&Encoded> = runs.iter().map(|r| &r.columns[c]).collect();
            let chunks: Vec<Vec<EncBlock>> = from
                .par_chunks(MERGE_CHUNK_ROWS)
                .zip(cursors.par_iter())
                .map(|(chunk, start)| {
                    let mut cur: Vec<Cursor<'_>> = parts
                        .iter()
                        .zip(&runs)
                        .zip(start)
                        .map(|((p, r), &at)| Cursor::new(p, r.rows, at as usize))
                        .collect();
                    let mut vals: Vec<Lane> = Vec::with_capacity(DETAIL_BLOCK_ROWS);
                    chunk
                        .chunks(DETAIL_BLOCK_ROWS)
                        .map(|block| {
                            vals.clear();
                            vals.extend(block.iter().map(|&f| cur[f.into()].next()));
                            EncBlock::encode(kind, &vals)
                        })
                        .collect()
                })
                .collect();
            for run in &mut runs {
                run.columns[c] = Encoded::new(kind);
            }
            crate::mem::return_freed_memory();
            super::phase(&info.column, "detail column in store order", started);
            let blocks = chunks.into_iter().flatten().collect();
            DetailColumn { info, data: Encoded { kind, blocks }, dict }
        })
        .collect();
    Details { columns, rows }
}

/// One held detail column.
#[derive(Debug, Clone)]
pub struct DetailColumn {
    /// What it is.
    pub info: DetailInfo,
    data: Encoded,
    dict: Option<TextDict>,
}

/// A shard's detail columns, in the store's row order.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// The columns.
    pub columns: Vec<DetailColumn>,
    rows: usize,
}

/// A column's value of one row, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailValue {
    /// Missing.
    Null,
    /// A whole number or unix seconds.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
}

impl DetailColumn {
    /// The value of a row.
    pub fn value(&self, row: usize) -> DetailValue {
        match (self.data.get(row), self.info.kind) {
            (None, _) => DetailValue::Null,
            (Some(v), DetailKind::Int | DetailKind::Time) => DetailValue::Int(v),
            (Some(v), DetailKind::Float) => DetailValue::Float(f64::from_bits(v as u64)),
            (Some(v), DetailKind::Text) => {
                DetailValue::Text(self.dict.as_ref().map_or("", |d| d.get(v as u32)).to_string())
            }
        }
    }

    /// The values of these rows as an Arrow array of the column's kind.
    pub fn take(&self, rows: &[u32]) -> ArrayRef {
        let lanes = rows.iter().map(|&r| self.data.get(r as usize));
        match self.info.kind {
            DetailKind::Int => Arc::new(Int64Array::from_iter(lanes)),
            DetailKind::Time => Arc::new(TimestampSecondArray::from_iter(lanes)),
            DetailKind::Float => Arc::new(Float64Array::from_iter(lanes.map(|v| v.map(|b| f64::from_bits(b as u64))))),
            DetailKind::Text => {
                let d = self.dict.as_ref();
                Arc::new(StringArray::from_iter(lanes.map(|v| v.map(|c| d.map_or("", |d| d.get(c as u32))))))
            }
        }
    }

    /// The Arrow field of the column, named `prefix` + column.
    pub fn field(&self, prefix: &str) -> Field {
        Field::new(format!("{prefix}{}", self.info.column), self.info.kind.arrow_type(), true)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.bytes() + self.dict.as_ref().map_or(0, TextDict::bytes)
    }
}

impl Details {
    /// Rows held (0 when the dataset keeps no details).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held by every column.
    pub fn bytes(&self) -> usize {
        self.columns.iter().map(DetailColumn::bytes).sum()
    }

    /// Column descriptions.
    pub fn infos(&self) -> Vec<DetailInfo> {
        self.columns.iter().map(|c| c.info.clone()).collect()
    }

    /// Position of a column by name.
    pub fn index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.info.column == column)
    }
}

/// The interners of a load's text columns (`None` for other kinds).
#[derive(Debug, Clone)]
pub struct Interners(pub Arc<Vec<Option<Mutex<Interner>>>>);

impl Interners {
    /// One interner per text column.
    pub fn new(kinds: &[DetailKind]) -> Interners {
        Interners(Arc::new(kinds.iter().map(|k| (*k == DetailKind::Text).then(Default::default)).collect()))
    }

    /// The dictionaries, once decoding is done.
    pub fn into_dicts(self) -> Vec<Option<TextDict>> {
        match Arc::try_unwrap(self.0) {
            Ok(v) => v.into_iter().map(|m| m.map(|m| m.into_inner().expect("interner lock").dict)).collect(),
            Err(shared) => {
                shared.iter().map(|m| m.as_ref().map(|m| m.lock().expect("interner lock").dict.clone())).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use rand::{Rng, SeedableRng};

    fn roundtrip(kind: DetailKind, vals: &[Lane]) -> EncBlock {
        let b = EncBlock::encode(kind, vals);
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(b.get(kind, i), *v, "row {i} of {kind:?}");
        }
        b
    }

    #[test]
    fn blocks_decode_every_value_exactly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = DETAIL_BLOCK_ROWS;
        // Full-range integers, with nulls: 64-bit frame of reference.
        let wide: Vec<Lane> = (0..n).map(|_| rng.random_bool(0.9).then(|| rng.random::<i64>())).collect();
        assert_eq!(roundtrip(DetailKind::Int, &wide).width, 64);
        // A few distinct large values: a block dictionary.
        let mmsi: Vec<Lane> = (0..n).map(|_| Some(200_000_000 + 1_000_000 * rng.random_range(0..100i64))).collect();
        let b = roundtrip(DetailKind::Int, &mmsi);
        assert!(b.dict.is_some() && b.width <= 7, "{b:?}");
        // A few distinct values in a narrow range (found by marking, not sorting).
        let nets: Vec<Lane> =
            (0..n).map(|_| rng.random_bool(0.97).then(|| [3, 17, 250][rng.random_range(0..3)])).collect();
        let b = roundtrip(DetailKind::Int, &nets);
        assert_eq!(b.dict.as_deref(), Some(&[3i64, 17, 250][..]));
        // A constant: no bits at all.
        assert_eq!(roundtrip(DetailKind::Int, &vec![Some(208); n]).words.len(), 0);
        // Speeds with one decimal: integers at scale 1.
        let sog: Vec<Lane> = (0..n).map(|_| Some((rng.random_range(0..300) as f64 / 10.0).to_bits() as i64)).collect();
        assert_eq!(roundtrip(DetailKind::Float, &sog).scale, 1);
        // Arbitrary floats, -0.0, NaN, infinities: raw bits.
        let mut raw: Vec<Lane> = (0..n).map(|_| Some(rng.random::<f64>().to_bits() as i64)).collect();
        for (i, v) in [-0.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE].into_iter().enumerate() {
            raw[i] = Some(v.to_bits() as i64);
        }
        assert_eq!(roundtrip(DetailKind::Float, &raw).scale, RAW_BITS);
        // Every width from 0 to 64, short blocks, all-null blocks.
        for w in 0..=64u32 {
            let hi = if w == 64 { u64::MAX } else { (1u64 << w).wrapping_sub(1) };
            let vals: Vec<Lane> = (0..1000).map(|_| Some((rng.random::<u64>() & hi) as i64 - 5)).collect();
            roundtrip(DetailKind::Int, &vals);
        }
        roundtrip(DetailKind::Time, &[None, None, None]);
        roundtrip(DetailKind::Int, &[]);
    }

    #[test]
    fn reordered_and_merged_runs_hold_each_row_s_values_in_the_new_order() {
        // Four stages (decoding units) of uneven sizes, each reordered by its
        // own permutation (its sort), then merged by a random interleaving of
        // the runs; a reference of plain vectors follows every row.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        // The last column spans more than 32 bits: reordered through 64-bit values.
        let kinds = [DetailKind::Int, DetailKind::Float, DetailKind::Text, DetailKind::Time, DetailKind::Int];
        let interners = Interners::new(&kinds);
        let names = ["Alpha", "Beta", "", "Gamma delta", "Zoë"];
        // Per run, its rows' reference values in the run's (sorted) order.
        let mut reference: Vec<Vec<Vec<DetailValue>>> = vec![];
        let mut runs = vec![];
        // The third stage has no int or time value at all.
        for (part, size) in [5000usize, 1, 300, DETAIL_BLOCK_ROWS * 2 + 17].into_iter().enumerate() {
            let mut st = DetailStage::new(&kinds);
            let mut staged = vec![];
            for _ in 0..size {
                let int = (part != 2 && rng.random_bool(0.95)).then(|| rng.random_range(-5..1_000_000i64));
                let float = rng.random_bool(0.95).then(|| rng.random_range(0..4000) as f64 / 100.0);
                let text = rng.random_bool(0.9).then(|| names[rng.random_range(0..names.len())]);
                let time = (part != 2).then(|| 1_700_000_000 + rng.random_range(0..86_400 * 30i64));
                let code = text.map(|t| interners.0[2].as_ref().unwrap().lock().unwrap().code(t) as i64);
                let wide = rng.random_bool(0.9).then(|| rng.random::<i64>());
                st.push_row([int, float.map(|f: f64| f.to_bits() as i64), code, time, wide].into_iter());
                staged.push(vec![
                    int.map_or(DetailValue::Null, DetailValue::Int),
                    float.map_or(DetailValue::Null, DetailValue::Float),
                    text.map_or(DetailValue::Null, |t| DetailValue::Text(t.into())),
                    time.map_or(DetailValue::Null, DetailValue::Int),
                    wide.map_or(DetailValue::Null, DetailValue::Int),
                ]);
            }
            let mut ids: Vec<u32> = (0..size as u32).collect();
            for i in (1..size).rev() {
                ids.swap(i, rng.random_range(0..=i));
            }
            reference.push(ids.iter().map(|&id| staged[id as usize].clone()).collect());
            runs.push(st.reorder(&ids));
        }
        // The interleaving: each run's rows in order, runs drawn at random.
        let mut left: Vec<usize> = reference.iter().map(Vec::len).collect();
        let mut from: Vec<u8> = vec![];
        while left.iter().any(|&l| l > 0) {
            let i = rng.random_range(0..left.len());
            if left[i] > 0 {
                left[i] -= 1;
                from.push(i as u8);
            }
        }
        let mut taken = vec![0usize; reference.len()];
        let want: Vec<&Vec<DetailValue>> = from
            .iter()
            .map(|&i| {
                taken[i as usize] += 1;
                &reference[i as usize][taken[i as usize] - 1]
            })
            .collect();
        let n = want.len();
        let infos = kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| DetailInfo {
                column: format!("c{i}"),
                title: format!("C{i}"),
                unit: None,
                kind,
                dimension: None,
            })
            .collect();
        let details = merge(runs, &from, infos, interners.into_dicts());
        assert_eq!(details.rows(), n);
        for (r, row) in want.iter().enumerate() {
            for (c, col) in details.columns.iter().enumerate() {
                assert_eq!(col.value(r), row[c], "row {r} column {c}");
            }
        }
        // Arrow arrays carry the same values.
        let rows: Vec<u32> = (0..n as u32).step_by(97).collect();
        let ints = details.columns[0].take(&rows);
        let ints = ints.as_any().downcast_ref::<Int64Array>().unwrap();
        for (k, &r) in rows.iter().enumerate() {
            let want = match &want[r as usize][0] {
                DetailValue::Int(v) => Some(*v),
                _ => None,
            };
            assert_eq!(ints.is_valid(k).then(|| ints.value(k)), want);
        }
    }

    #[test]
    fn clustered_columns_cost_a_few_bits_a_row() {
        // A tower-like block: one MCC, a few networks, ranges up to 100 km,
        // creation times over 20 years.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = DETAIL_BLOCK_ROWS;
        let bytes = |kind, f: &mut dyn FnMut() -> Lane| {
            let v: Vec<Lane> = (0..n).map(|_| f()).collect();
            roundtrip(kind, &v).bytes() as f64 / n as f64
        };
        assert!(bytes(DetailKind::Int, &mut || Some(262)) < 0.05);
        assert!(bytes(DetailKind::Int, &mut || Some(rng.random_range(1..8))) <= 0.45);
        assert!(bytes(DetailKind::Int, &mut || Some(rng.random_range(1..100_000))) <= 2.2);
        assert!(bytes(DetailKind::Time, &mut || Some(rng.random_range(1_041_379_200..1_640_995_200))) <= 3.8);
    }
}
