//! Building a shard: append decoded rows, then sort along a Hilbert curve and
//! cut blocks.

use rayon::prelude::*;

use super::{BLOCK_ROWS, Block, Shard};
use crate::bins::DimBins;
use crate::protocol::ShardInfo;
use crate::spec::ViewConfig;

/// Rows of one dataset being collected; `finish` turns them into a [`Shard`].
#[derive(Debug, Default)]
pub struct Builder {
    /// Quantised x per row.
    pub xs: Vec<u32>,
    /// Quantised y per row.
    pub ys: Vec<u32>,
    /// Bin codes per dimension.
    pub codes: Vec<Vec<u8>>,
    /// Rows skipped for lack of a position.
    pub dropped: u64,
}

impl Builder {
    /// An empty builder for `ndims` dimensions.
    pub fn new(ndims: usize) -> Builder {
        Builder { xs: vec![], ys: vec![], codes: vec![vec![]; ndims], dropped: 0 }
    }

    /// An empty builder with room for about `rows` rows.
    pub fn with_capacity(ndims: usize, rows: usize) -> Builder {
        Builder {
            xs: Vec::with_capacity(rows),
            ys: Vec::with_capacity(rows),
            codes: (0..ndims).map(|_| Vec::with_capacity(rows)).collect(),
            dropped: 0,
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.xs.len()
    }

    /// True when no rows were added.
    pub fn is_empty(&self) -> bool {
        self.xs.is_empty()
    }

    /// Appends another builder's rows.
    pub fn append(&mut self, mut other: Builder) {
        self.xs.append(&mut other.xs);
        self.ys.append(&mut other.ys);
        for (a, b) in self.codes.iter_mut().zip(other.codes.iter_mut()) {
            a.append(b);
        }
        self.dropped += other.dropped;
    }

    /// Sorts rows along the Hilbert curve (ties keep load order, so the result
    /// is deterministic) and cuts blocks.
    pub fn finish(self, name: &str, view: ViewConfig, dims: Vec<DimBins>, category_dim: usize, info: ShardInfo) -> Shard {
        let n = self.xs.len();
        assert!(n < u32::MAX as usize, "a shard holds fewer than 2^32 rows");
        let dropped = self.dropped;
        let (xs, ys, codes) = self.sort();
        let blocks = cut_blocks(&xs, &ys);
        let ncodes: Vec<usize> = dims.iter().map(|d| d.nbins() as usize + 1).collect();
        let aggregates = super::Aggregates::build(&codes, &ncodes, category_dim, |r| {
            super::sample_priority(r, super::SAMPLE_SALT)
        });
        Shard {
            name: name.to_string(),
            view,
            dims,
            category_dim,
            xs,
            ys,
            codes,
            blocks,
            info,
            dropped_rows: dropped,
            aggregates,
        }
    }
}

type Columns = (Vec<u32>, Vec<u32>, Vec<Vec<u8>>);

/// Buckets of at most this many rows are sorted through a temporary of
/// (key, row) pairs, 8 bytes a row; larger ones by a counting pass over the
/// low half of the key with a 4-byte temporary, so no bucket needs more than
/// the permutation's own size again.
const PAIR_SORT_ROWS: usize = 1 << 21;

impl Builder {
    /// Sorts along the Hilbert curve through a permutation: a counting pass
    /// on the top 16 bits of the key puts each row's index in its bucket,
    /// each bucket is sorted by the whole key (row index breaking ties, so
    /// the order is stable), then every column is gathered through the
    /// permutation and its old version freed. Besides the columns (8 +
    /// `ndims` bytes a row) the sort holds the permutation (4) and one
    /// gathered column (at most 4) at a time: the load peaks at
    /// [`PEAK_BYTES_PER_ROW`] + `ndims` bytes a row.
    fn sort(self) -> Columns {
        let perm = hilbert_order(&self.xs, &self.ys);
        let gather32 = |col: Vec<u32>| -> Vec<u32> { perm.par_iter().map(|&i| col[i as usize]).collect() };
        let xs = gather32(self.xs);
        let ys = gather32(self.ys);
        let codes = self.codes.into_iter().map(|col| perm.par_iter().map(|&i| col[i as usize]).collect()).collect();
        (xs, ys, codes)
    }
}

/// Bytes a row the load holds at its peak beyond one byte per dimension:
/// x and y (8), the sort's permutation (4) and one gathered x or y column (4).
pub const PEAK_BYTES_PER_ROW: u64 = 16;

/// Row indices in Hilbert order of their positions, ties in index order.
pub(crate) fn hilbert_order(xs: &[u32], ys: &[u32]) -> Vec<u32> {
    let n = xs.len();
    // Top 16 bits of every key (2 bytes a row, freed before the buckets sort).
    let top: Vec<u16> = xs.par_iter().zip(ys.par_iter()).map(|(&x, &y)| (hilbert_key(x, y) >> 16) as u16).collect();
    let mut starts = vec![0usize; (1 << 16) + 1];
    for &t in &top {
        starts[t as usize + 1] += 1;
    }
    for b in 0..(1 << 16) {
        starts[b + 1] += starts[b];
    }
    let mut perm = vec![0u32; n];
    let mut next = starts.clone();
    for (i, &t) in top.iter().enumerate() {
        let slot = &mut next[t as usize];
        perm[*slot] = i as u32;
        *slot += 1;
    }
    drop(top);
    // Cut the permutation into its buckets and sort each by the low 16 bits.
    let mut buckets: Vec<&mut [u32]> = Vec::new();
    let mut rest: &mut [u32] = &mut perm;
    for w in starts.windows(2) {
        let (bucket, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
        if bucket.len() > 1 {
            buckets.push(bucket);
        }
        rest = tail;
    }
    let low = |i: u32| hilbert_key(xs[i as usize], ys[i as usize]) & 0xffff;
    buckets.into_par_iter().for_each(|bucket| {
        if bucket.len() <= PAIR_SORT_ROWS {
            let mut pairs: Vec<u64> = bucket.iter().map(|&i| ((low(i) as u64) << 32) | i as u64).collect();
            pairs.sort_unstable();
            for (slot, p) in bucket.iter_mut().zip(&pairs) {
                *slot = *p as u32;
            }
        } else {
            // Stable counting sort: the bucket is in index order already.
            let keys: Vec<u16> = bucket.iter().map(|&i| low(i) as u16).collect();
            let mut at = vec![0usize; (1 << 16) + 1];
            for &k in &keys {
                at[k as usize + 1] += 1;
            }
            for b in 0..(1 << 16) {
                at[b + 1] += at[b];
            }
            let mut sorted = vec![0u32; bucket.len()];
            for (&i, &k) in bucket.iter().zip(&keys) {
                sorted[at[k as usize]] = i;
                at[k as usize] += 1;
            }
            bucket.copy_from_slice(&sorted);
        }
    });
    perm
}

fn cut_blocks(xs: &[u32], ys: &[u32]) -> Vec<Block> {
    let n = xs.len();
    (0..n.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let (s, e) = (b * BLOCK_ROWS, ((b + 1) * BLOCK_ROWS).min(n));
            let (mut xmin, mut xmax, mut ymin, mut ymax) = (u32::MAX, 0, u32::MAX, 0);
            for i in s..e {
                xmin = xmin.min(xs[i]);
                xmax = xmax.max(xs[i]);
                ymin = ymin.min(ys[i]);
                ymax = ymax.max(ys[i]);
            }
            Block { start: s as u32, end: e as u32, xmin, xmax, ymin, ymax }
        })
        .collect()
}

/// Position along a Hilbert curve of order 16 over the top 16 bits of x and y.
pub fn hilbert_key(x: u32, y: u32) -> u32 {
    let (mut x, mut y) = (x >> 16, y >> 16);
    let mut d: u32 = 0;
    let mut s: u32 = 1 << 15;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d += s * s * ((3 * rx) ^ ry);
        // Rotate the quadrant.
        if ry == 0 {
            if rx == 1 {
                x = 0xffff - x;
                y = 0xffff - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s >>= 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: every row's (key, index), sorted.
    fn reference_order(xs: &[u32], ys: &[u32]) -> Vec<u32> {
        let mut v: Vec<(u32, u32)> = (0..xs.len()).map(|i| (hilbert_key(xs[i], ys[i]), i as u32)).collect();
        v.sort();
        v.into_iter().map(|(_, i)| i).collect()
    }

    #[test]
    fn hilbert_order_equals_a_plain_sort_of_keys_and_indices() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Few distinct positions (keys tie, so stability shows), positions
        // spread over the world (many small buckets), and every row in one
        // top-level bucket, larger than PAIR_SORT_ROWS (the counting path).
        let spread = |rng: &mut rand_chacha::ChaCha8Rng, n: usize, f: &dyn Fn(&mut rand_chacha::ChaCha8Rng) -> u32| {
            let xs: Vec<u32> = (0..n).map(|_| f(rng)).collect();
            let ys: Vec<u32> = (0..n).map(|_| f(rng)).collect();
            (xs, ys)
        };
        let cases = [
            spread(&mut rng, 50_000, &|r| r.random_range(0..8u32) << 28),
            spread(&mut rng, 200_000, &|r| r.random()),
            spread(&mut rng, PAIR_SORT_ROWS + 5_000, &|r| (3u32 << 24) | r.random_range(0..1u32 << 20)),
        ];
        for (xs, ys) in &cases {
            assert_eq!(hilbert_order(xs, ys), reference_order(xs, ys));
        }
    }

    #[test]
    fn finished_columns_follow_the_permutation() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 30_000;
        let mut b = Builder::new(3);
        for _ in 0..n {
            b.xs.push(rng.random_range(0..16u32) << 27);
            b.ys.push(rng.random());
            for d in 0..3 {
                b.codes[d].push(rng.random());
            }
        }
        let order = reference_order(&b.xs, &b.ys);
        let want_x: Vec<u32> = order.iter().map(|&i| b.xs[i as usize]).collect();
        let want_y: Vec<u32> = order.iter().map(|&i| b.ys[i as usize]).collect();
        let want_c: Vec<Vec<u8>> =
            b.codes.iter().map(|c| order.iter().map(|&i| c[i as usize]).collect()).collect();
        assert_eq!(b.sort(), (want_x, want_y, want_c));
    }

    #[test]
    fn hilbert_neighbours_are_adjacent_cells() {
        // Consecutive keys over a small grid visit 4-neighbours.
        let mut cells: Vec<(u32, u32, u32)> = vec![];
        for gx in 0..16u32 {
            for gy in 0..16u32 {
                // Cells at the finest level near the origin.
                cells.push((hilbert_key(gx << 16, gy << 16), gx, gy));
            }
        }
        cells.sort();
        for w in cells.windows(2) {
            if w[1].0 == w[0].0 + 1 {
                let d = w[0].1.abs_diff(w[1].1) + w[0].2.abs_diff(w[1].2);
                assert_eq!(d, 1, "{:?}", w);
            }
        }
        let keys: std::collections::HashSet<u32> = cells.iter().map(|c| c.0).collect();
        assert_eq!(keys.len(), 256, "keys are distinct");
    }
}
