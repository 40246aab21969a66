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
//! 5000 values per column instead of decompressing 5000 blocks, and the load
//! can permute values from the decoding order into the store's sorted order
//! straight out of the encoded staging copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampSecondArray};
use arrow::datatypes::Field;
use rayon::prelude::*;

/// Rows per encoded block of a detail column.
pub const DETAIL_BLOCK_ROWS: usize = 4096;

pub use crate::protocol::DetailInfo;
pub use crate::spec::DetailKind;

/// Interns text values into codes, shared by the units a load decodes in
/// parallel so codes are global to the column.
#[derive(Debug, Default)]
pub struct Interner {
    codes: HashMap<Box<str>, u32>,
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

    /// Bounds of the integers the block's rows decode to (not floats'
    /// bits): its dictionary's ends, or its frame of reference and width.
    /// `(i64::MAX, i64::MIN)` for a block without values.
    fn value_bounds(&self) -> (i64, i64) {
        match &self.dict {
            Some(d) if d.is_empty() => (i64::MAX, i64::MIN),
            Some(d) => (d[0], d[d.len() - 1]),
            None => {
                let span = if self.width >= 64 { u64::MAX } else { (1u64 << self.width) - 1 };
                (self.base, (self.base as i128 + span as i128).min(i64::MAX as i128) as i64)
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

/// A value as the encoder sees it ("lane"): ints and seconds as they are,
/// floats as their bits, text as its code in the column's dictionary.
pub type Lane = Option<i64>;

/// One column of detail values under construction or held.
#[derive(Debug, Clone)]
struct Encoded {
    kind: DetailKind,
    rows: usize,
    blocks: Vec<EncBlock>,
    /// Values not yet a whole block.
    pending: Vec<Lane>,
}

impl Encoded {
    fn new(kind: DetailKind) -> Encoded {
        Encoded { kind, rows: 0, blocks: vec![], pending: vec![] }
    }

    fn push(&mut self, v: Lane) {
        self.pending.push(v);
        self.rows += 1;
        if self.pending.len() == DETAIL_BLOCK_ROWS {
            self.blocks.push(EncBlock::encode(self.kind, &self.pending));
            self.pending.clear();
        }
    }

    fn seal(&mut self) {
        if !self.pending.is_empty() {
            self.blocks.push(EncBlock::encode(self.kind, &self.pending));
        }
        self.pending = Vec::new();
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

/// The detail columns of the rows a decoding unit produced, in decoding order.
#[derive(Debug)]
pub struct DetailStage {
    columns: Vec<Encoded>,
    /// Later units' stages, with the row each starts at (appended, unsealed
    /// stages are sealed first, so every part but the last has whole blocks
    /// but its end).
    parts: Vec<(usize, Vec<Encoded>)>,
    rows: usize,
}

impl DetailStage {
    /// An empty stage for columns of these kinds.
    pub fn new(kinds: &[DetailKind]) -> DetailStage {
        DetailStage { columns: kinds.iter().map(|&k| Encoded::new(k)).collect(), parts: vec![], rows: 0 }
    }

    /// Rows staged.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one row's lane values, one per column.
    pub fn push_row(&mut self, vals: impl Iterator<Item = Lane>) {
        assert!(self.parts.is_empty(), "rows are pushed before stages are appended");
        for (c, v) in self.columns.iter_mut().zip(vals) {
            c.push(v);
        }
        self.rows += 1;
    }

    /// Appends another stage's rows after these.
    pub fn append(&mut self, mut other: DetailStage) {
        other.seal();
        let start = self.rows;
        self.rows += other.rows;
        let own = std::mem::take(&mut other.parts);
        self.parts.push((start, other.columns));
        for (s, cols) in own {
            self.parts.push((start + s, cols));
        }
    }

    fn seal(&mut self) {
        for c in &mut self.columns {
            c.seal();
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let cols = |v: &[Encoded]| v.iter().map(|c| c.bytes() + c.pending.capacity() * 16).sum::<usize>();
        cols(&self.columns) + self.parts.iter().map(|(_, p)| cols(p)).sum::<usize>()
    }

    /// The columns in the order `ids` gives: output row `r` is staged row `ids[r]`.
    ///
    /// One column at a time: its staged blocks are decoded, in order, into
    /// one flat array (4 bytes a row when its values span less than 2³², else
    /// 8), whose random reads the gather then makes as plain indexed loads,
    /// many in flight at once. Reading the encoded blocks at random instead
    /// (a block lookup, a bit unpack and a cache miss per value, one after
    /// the other) doubled the load time. The staged copy of a column is
    /// freed before the next: the load's peak holds one column three times
    /// (staged, flat, re-encoded), not every column.
    pub fn permute(mut self, ids: &[u32], infos: Vec<DetailInfo>, dicts: Vec<Option<TextDict>>) -> Details {
        self.seal();
        let started = std::time::Instant::now();
        let mut parts = vec![(0usize, std::mem::take(&mut self.columns))];
        parts.append(&mut self.parts);
        let starts: Vec<usize> = parts.iter().map(|p| p.0).collect();
        let rows = self.rows;
        let mut by_column: Vec<Vec<Encoded>> = infos.iter().map(|_| Vec::with_capacity(parts.len())).collect();
        for (_, cols) in parts {
            for (c, e) in cols.into_iter().enumerate() {
                by_column[c].push(e);
            }
        }
        let columns = infos
            .into_iter()
            .zip(dicts)
            .zip(by_column)
            .map(|((info, dict), parts)| {
                let kind = info.kind;
                let flat = FlatColumn::decode(kind, &parts, &starts, rows);
                drop(parts);
                let blocks: Vec<EncBlock> = ids
                    .par_chunks(DETAIL_BLOCK_ROWS)
                    .map(|chunk| EncBlock::encode(kind, &flat.gather(chunk)))
                    .collect();
                drop(flat);
                crate::mem::return_freed_memory();
                super::phase(&info.column, "detail column in store order", started);
                DetailColumn { info, data: Encoded { kind, rows: ids.len(), blocks, pending: vec![] }, dict }
            })
            .collect();
        Details { columns, rows: ids.len() }
    }
}

/// A staged column's lane values decoded into one array, in staged row order.
struct FlatColumn {
    values: FlatValues,
    /// Bit `i` set when staged row `i` is missing; `None` when none is.
    nulls: Option<Vec<u64>>,
}

enum FlatValues {
    /// Offsets from `base`, when every value of the column fits.
    Narrow { base: i64, offsets: Vec<u32> },
    /// The lane values themselves (floats' bits, wide integers).
    Wide(Vec<i64>),
}

impl FlatColumn {
    /// Decodes `parts` (part `k` starts at staged row `starts[k]`) into `rows` values.
    fn decode(kind: DetailKind, parts: &[Encoded], starts: &[usize], rows: usize) -> FlatColumn {
        // Every block with the staged row it starts at, for a parallel decode
        // into disjoint slices.
        let blocks: Vec<(usize, &EncBlock, usize)> = parts
            .iter()
            .zip(starts)
            .flat_map(|(p, &s)| {
                let mut left = p.rows;
                p.blocks.iter().enumerate().map(move |(b, blk)| {
                    let n = left.min(DETAIL_BLOCK_ROWS);
                    left -= n;
                    (s + b * DETAIL_BLOCK_ROWS, blk, n)
                })
            })
            .collect();
        let any_null = blocks.iter().any(|(_, b, _)| b.nulls.is_some());
        let nulls = any_null.then(|| {
            let mut m = vec![0u64; rows.div_ceil(64)];
            for &(start, b, n) in &blocks {
                if let Some(bm) = &b.nulls {
                    for i in 0..n {
                        if bm[i / 64] >> (i % 64) & 1 == 1 {
                            let r = start + i;
                            m[r / 64] |= 1 << (r % 64);
                        }
                    }
                }
            }
            m
        });
        // Floats travel as their bits, whose range is never narrow.
        let range = (kind != DetailKind::Float).then(|| {
            // Blocks of missing values only (whose frame is 0) do not count.
            let all_null = |b: &EncBlock, n: usize| {
                b.nulls.as_ref().is_some_and(|m| m.iter().map(|w| w.count_ones() as usize).sum::<usize>() == n)
            };
            blocks
                .iter()
                .filter(|(_, b, n)| !all_null(b, *n))
                .map(|(_, b, _)| b.value_bounds())
                .fold((i64::MAX, i64::MIN), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)))
        });
        let values = match range {
            Some((lo, hi)) if lo > hi => FlatValues::Narrow { base: 0, offsets: vec![0; rows] },
            Some((lo, hi)) if (hi as i128 - lo as i128) < u32::MAX as i128 => {
                let mut offsets = vec![0u32; rows];
                fill_blocks(&mut offsets, &blocks, |b, i| b.get(kind, i).map_or(0, |v| (v - lo) as u32));
                FlatValues::Narrow { base: lo, offsets }
            }
            _ => {
                let mut vals = vec![0i64; rows];
                fill_blocks(&mut vals, &blocks, |b, i| b.get(kind, i).unwrap_or(0));
                FlatValues::Wide(vals)
            }
        };
        FlatColumn { values, nulls }
    }

    /// The lane values of staged rows `ids`.
    fn gather(&self, ids: &[u32]) -> Vec<Lane> {
        let mut out: Vec<Lane> = match &self.values {
            FlatValues::Narrow { base, offsets } => {
                ids.iter().map(|&id| Some(base + offsets[id as usize] as i64)).collect()
            }
            FlatValues::Wide(vals) => ids.iter().map(|&id| Some(vals[id as usize])).collect(),
        };
        if let Some(m) = &self.nulls {
            for (o, &id) in out.iter_mut().zip(ids) {
                let id = id as usize;
                if m[id / 64] >> (id % 64) & 1 == 1 {
                    *o = None;
                }
            }
        }
        out
    }
}

/// Fills `out` block by block (each `(start, block, rows)`), in parallel.
fn fill_blocks<T: Send>(
    out: &mut [T],
    blocks: &[(usize, &EncBlock, usize)],
    value: impl Fn(&EncBlock, usize) -> T + Sync,
) {
    let mut slices = Vec::with_capacity(blocks.len());
    let mut rest = out;
    let mut at = 0;
    for &(start, _, n) in blocks {
        let (_, tail) = rest.split_at_mut(start - at);
        let (mine, tail) = tail.split_at_mut(n);
        slices.push(mine);
        rest = tail;
        at = start + n;
    }
    slices.into_par_iter().zip(blocks.par_iter()).for_each(|(slice, &(_, b, _))| {
        for (i, o) in slice.iter_mut().enumerate() {
            *o = value(b, i);
        }
    });
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
    use arrow::array::Array;
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
    fn permuted_stages_hold_each_row_s_values_in_the_new_order() {
        // Three stages (decoding units) of uneven sizes, a permutation, and a
        // reference of plain vectors.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        // The last column spans more than 32 bits: permuted through 64-bit values.
        let kinds = [DetailKind::Int, DetailKind::Float, DetailKind::Text, DetailKind::Time, DetailKind::Int];
        let interners = Interners::new(&kinds);
        let names = ["Alpha", "Beta", "", "Gamma delta", "Zoë"];
        let mut reference: Vec<Vec<DetailValue>> = vec![];
        let mut stages = vec![];
        // The third stage has no int or time value at all.
        for (part, size) in [5000usize, 1, 300, DETAIL_BLOCK_ROWS * 2 + 17].into_iter().enumerate() {
            let mut st = DetailStage::new(&kinds);
            for _ in 0..size {
                let int = (part != 2 && rng.random_bool(0.95)).then(|| rng.random_range(-5..1_000_000i64));
                let float = rng.random_bool(0.95).then(|| rng.random_range(0..4000) as f64 / 100.0);
                let text = rng.random_bool(0.9).then(|| names[rng.random_range(0..names.len())]);
                let time = (part != 2).then(|| 1_700_000_000 + rng.random_range(0..86_400 * 30i64));
                let code = text.map(|t| interners.0[2].as_ref().unwrap().lock().unwrap().code(t) as i64);
                let wide = rng.random_bool(0.9).then(|| rng.random::<i64>());
                st.push_row([int, float.map(|f: f64| f.to_bits() as i64), code, time, wide].into_iter());
                reference.push(vec![
                    int.map_or(DetailValue::Null, DetailValue::Int),
                    float.map_or(DetailValue::Null, DetailValue::Float),
                    text.map_or(DetailValue::Null, |t| DetailValue::Text(t.into())),
                    time.map_or(DetailValue::Null, DetailValue::Int),
                    wide.map_or(DetailValue::Null, DetailValue::Int),
                ]);
            }
            stages.push(st);
        }
        let mut all = stages.remove(0);
        for s in stages {
            all.append(s);
        }
        let n = reference.len();
        let mut ids: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            ids.swap(i, rng.random_range(0..=i));
        }
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
        let details = all.permute(&ids, infos, interners.into_dicts());
        assert_eq!(details.rows(), n);
        for _ in 0..20_000 {
            let r = rng.random_range(0..n);
            for (c, col) in details.columns.iter().enumerate() {
                assert_eq!(col.value(r), reference[ids[r] as usize][c], "row {r} column {c}");
            }
        }
        // Arrow arrays carry the same values.
        let rows: Vec<u32> = (0..n as u32).step_by(97).collect();
        let ints = details.columns[0].take(&rows);
        let ints = ints.as_any().downcast_ref::<Int64Array>().unwrap();
        for (k, &r) in rows.iter().enumerate() {
            let want = match &reference[ids[r as usize] as usize][0] {
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
