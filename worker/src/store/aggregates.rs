//! Pre-aggregates built at load, per block: every dimension's counts, the
//! joint counts of every pair of dimensions, and the rows of smallest sample
//! priority per category code.
//!
//! They answer, without reading a row, every block whose rows all meet the
//! viewport alike (wholly inside it, or any block when it does not filter)
//! under a query that filters at most one dimension `f`: a crossfilter
//! histogram of `f` counts every row (its marginal), one of another dimension
//! `d` counts the rows whose `f` code passes (the sum of those rows of the
//! (`f`, `d`) joint table), the selected count is the passing codes of `f`'s
//! marginal; sample candidates are the kept rows that pass. That covers the
//! unfiltered world view, every `baseline`, a category click and a brush on
//! one dimension. Size per block: `Σ codes + Σ_{a<b} codes_a · codes_b +
//! categories · SAMPLE_KEEP` counters (about 6.5 KB per 16 K rows for the
//! cell-tower preset: 0.40 bytes a row).
//!
//! The map of a block cut by pixel edges is answered finer: per sub-block of
//! [`SUB_ROWS`] rows, its bounding box and its counts per category (36 bytes
//! per 256 rows for 6 categories: 0.14 bytes a row). Under a query whose only filter, if
//! any, is the category's, a sub-block that falls in one pixel adds its
//! passing categories' counts there without reading its rows; the others
//! are read. Rows are in Hilbert order, so a dense place's rows share
//! sub-blocks: at world view most rows are never read.

use rayon::prelude::*;

use super::{BLOCK_ROWS, Block};

/// Rows per sub-block (a 64th of a block). Measured at 40 M rows: the world
/// view took 32 ms without sub-blocks, 17 with 1,024 rows (0.035 bytes a
/// row), 16 with 512, 12 with 256 (0.14 bytes a row).
pub const SUB_ROWS: usize = 256;

/// Rows kept per block and category for samples answered without a scan.
pub const SAMPLE_KEEP: usize = 32;

/// The pre-aggregates of a shard.
#[derive(Debug, Default)]
pub struct Aggregates {
    /// Codes per dimension (`nbins + 1`: every code a row can hold).
    pub codes: Vec<usize>,
    /// Offset within a block's counters of table `(a, b)` at `a · ndims + b`:
    /// `a == b` the marginal of `a`, `a < b` the joint table `[code_a][code_b]`.
    offsets: Vec<usize>,
    /// Counters per block.
    pub per_block: usize,
    counts: Vec<u32>,
    /// Per block and category code, up to [`SAMPLE_KEEP`] rows of smallest
    /// sample priority, ascending by priority, padded with `u32::MAX`.
    samples: Vec<u32>,
    /// Index of the category dimension.
    pub cat_dim: usize,
    /// Sub-blocks of [`SUB_ROWS`] rows: rows and bounding box.
    pub subs: Vec<Block>,
    /// Per sub-block, its rows' counts per category code.
    sub_cats: Vec<u16>,
}

impl Aggregates {
    /// Builds the pre-aggregates over rows cut in blocks of [`BLOCK_ROWS`].
    /// `codes[d]` is dimension `d`'s number of codes; `priority` is the sample
    /// priority of a row; `xs`, `ys` the rows' positions.
    pub fn build(
        xs: &[u32],
        ys: &[u32],
        columns: &[Vec<u8>],
        codes: &[usize],
        cat_dim: usize,
        priority: fn(u32) -> u64,
    ) -> Aggregates {
        let rows = columns.first().map_or(0, Vec::len);
        let n = codes.len();
        let ncat = codes[cat_dim];
        let mut offsets = vec![0; n * n];
        let mut per_block = 0;
        for a in 0..n {
            for b in a..n {
                offsets[a * n + b] = per_block;
                per_block += if a == b { codes[a] } else { codes[a] * codes[b] };
            }
        }
        let blocks = rows.div_ceil(BLOCK_ROWS);
        let parts: Vec<(Vec<u32>, Vec<u32>)> = (0..blocks)
            .into_par_iter()
            .map(|blk| {
                let (s, e) = (blk * BLOCK_ROWS, ((blk + 1) * BLOCK_ROWS).min(rows));
                let mut counts = vec![0u32; per_block];
                // Per category: (priority, row), kept sorted, at most SAMPLE_KEEP.
                let mut keep: Vec<Vec<(u64, u32)>> = vec![Vec::with_capacity(SAMPLE_KEEP + 1); ncat];
                let mut c = vec![0usize; n];
                for i in s..e {
                    for ((cd, col), &k) in c.iter_mut().zip(columns).zip(codes) {
                        *cd = (col[i] as usize).min(k - 1);
                    }
                    for a in 0..n {
                        counts[offsets[a * n + a] + c[a]] += 1;
                        for b in a + 1..n {
                            counts[offsets[a * n + b] + c[a] * codes[b] + c[b]] += 1;
                        }
                    }
                    let k = &mut keep[c[cat_dim]];
                    let p = priority(i as u32);
                    if k.len() < SAMPLE_KEEP || p < k[k.len() - 1].0 {
                        let at = k.partition_point(|&(q, _)| q < p);
                        k.insert(at, (p, i as u32));
                        k.truncate(SAMPLE_KEEP);
                    }
                }
                let mut samples = vec![u32::MAX; ncat * SAMPLE_KEEP];
                for (cat, k) in keep.iter().enumerate() {
                    for (j, &(_, r)) in k.iter().enumerate() {
                        samples[cat * SAMPLE_KEEP + j] = r;
                    }
                }
                (counts, samples)
            })
            .collect();
        let mut counts = Vec::with_capacity(blocks * per_block);
        let mut samples = Vec::with_capacity(blocks * ncat * SAMPLE_KEEP);
        for (c, s) in parts {
            counts.extend_from_slice(&c);
            samples.extend_from_slice(&s);
        }
        let subs = super::cut_blocks(xs, ys, SUB_ROWS);
        let cats = columns.get(cat_dim).map_or(&[][..], Vec::as_slice);
        let mut sub_cats = vec![0u16; subs.len() * ncat];
        sub_cats.par_chunks_mut(ncat.max(1)).zip(cats.par_chunks(SUB_ROWS)).for_each(|(per_cat, rows)| {
            for &c in rows {
                per_cat[(c as usize).min(ncat - 1)] += 1;
            }
        });
        Aggregates { codes: codes.to_vec(), offsets, per_block, counts, samples, cat_dim, subs, sub_cats }
    }

    /// Sub-block `k`'s counts per category code.
    #[inline]
    pub fn sub_categories(&self, k: usize) -> &[u16] {
        let ncat = self.codes[self.cat_dim];
        &self.sub_cats[k * ncat..(k + 1) * ncat]
    }

    /// Counts of dimension `d`'s codes among block `blk`'s rows.
    #[inline]
    pub fn marginal(&self, blk: usize, d: usize) -> &[u32] {
        let at = blk * self.per_block + self.offsets[d * self.codes.len() + d];
        &self.counts[at..at + self.codes[d]]
    }

    /// Adds to `out` the counts of dimension `d`'s codes among block `blk`'s
    /// rows whose code of dimension `f` satisfies `pass` (`d != f`).
    pub fn add_given(&self, blk: usize, d: usize, f: usize, pass: impl Fn(usize) -> bool, out: &mut [u32]) {
        let n = self.codes.len();
        let base = blk * self.per_block;
        if f < d {
            let t = &self.counts[base + self.offsets[f * n + d]..][..self.codes[f] * self.codes[d]];
            for (cf, row) in t.chunks_exact(self.codes[d]).enumerate() {
                if pass(cf) {
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o += v;
                    }
                }
            }
        } else {
            let t = &self.counts[base + self.offsets[d * n + f]..][..self.codes[d] * self.codes[f]];
            for (o, row) in out.iter_mut().zip(t.chunks_exact(self.codes[f])) {
                *o += row.iter().enumerate().filter(|&(cf, _)| pass(cf)).map(|(_, &v)| v).sum::<u32>();
            }
        }
    }

    /// Block `blk`'s rows of category code `cat` of smallest sample priority.
    #[inline]
    pub fn sample_rows(&self, blk: usize, cat: usize) -> impl Iterator<Item = u32> + '_ {
        let ncat = self.codes[self.cat_dim];
        let at = (blk * ncat + cat) * SAMPLE_KEEP;
        self.samples[at..at + SAMPLE_KEEP].iter().copied().take_while(|&r| r != u32::MAX)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.counts.capacity() + self.samples.capacity()) * 4
            + self.subs.capacity() * std::mem::size_of::<Block>()
            + self.sub_cats.capacity() * 2
    }
}
