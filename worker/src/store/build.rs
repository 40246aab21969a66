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
        let (xs, ys, codes) = if self.codes.len() <= 4 { self.sort_packed() } else { self.sort_gathered() };
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

impl Builder {
    /// Up to four dimensions: each row packs into one `u128` (key, x, y,
    /// codes), which a stable LSD radix sort on the key moves with streaming
    /// memory access; unpacking is sequential too.
    fn sort_packed(self) -> Columns {
        let n = self.xs.len();
        let ndims = self.codes.len();
        let mut recs: Vec<u128> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut c: u128 = 0;
                for (d, col) in self.codes.iter().enumerate() {
                    c |= (col[i] as u128) << (8 * d);
                }
                ((hilbert_key(self.xs[i], self.ys[i]) as u128) << 96)
                    | ((self.xs[i] as u128) << 64)
                    | ((self.ys[i] as u128) << 32)
                    | c
            })
            .collect();
        drop(self.xs);
        drop(self.ys);
        drop(self.codes);
        radix_sort_top32(&mut recs);
        let xs = recs.par_iter().map(|r| (r >> 64) as u32).collect();
        let ys = recs.par_iter().map(|r| (r >> 32) as u32).collect();
        let codes = (0..ndims).map(|d| recs.par_iter().map(|r| (r >> (8 * d)) as u8).collect()).collect();
        (xs, ys, codes)
    }

    /// Any number of dimensions: sort (key, row) pairs, then gather columns.
    fn sort_gathered(self) -> Columns {
        let n = self.xs.len();
        let mut keys: Vec<u64> = (0..n)
            .into_par_iter()
            .map(|i| ((hilbert_key(self.xs[i], self.ys[i]) as u64) << 32) | i as u64)
            .collect();
        keys.par_sort_unstable();
        let order = |i: usize| (keys[i] & 0xffff_ffff) as usize;
        let xs: Vec<u32> = (0..n).into_par_iter().map(|i| self.xs[order(i)]).collect();
        let ys: Vec<u32> = (0..n).into_par_iter().map(|i| self.ys[order(i)]).collect();
        let codes = self.codes.iter().map(|c| (0..n).into_par_iter().map(|i| c[order(i)]).collect()).collect();
        (xs, ys, codes)
    }
}

/// Stable LSD radix sort of records by their top 32 bits.
fn radix_sort_top32(v: &mut Vec<u128>) {
    let n = v.len();
    let mut buf = vec![0u128; n];
    for pass in 0..4 {
        let shift = 96 + pass * 8;
        let mut counts = [0usize; 256];
        for &r in v.iter() {
            counts[((r >> shift) & 0xff) as usize] += 1;
        }
        if counts.contains(&n) {
            continue; // every record has the same digit
        }
        let mut offs = [0usize; 256];
        let mut sum = 0;
        for (o, c) in offs.iter_mut().zip(counts.iter()) {
            *o = sum;
            sum += c;
        }
        for &r in v.iter() {
            let d = ((r >> shift) & 0xff) as usize;
            buf[offs[d]] = r;
            offs[d] += 1;
        }
        std::mem::swap(v, &mut buf);
    }
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

    #[test]
    fn packed_and_gathered_sorts_agree() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 50_000;
        let mut b = Builder::new(3);
        for _ in 0..n {
            // Few distinct positions, so keys tie and stability matters.
            b.xs.push(rng.random_range(0..8u32) << 28);
            b.ys.push(rng.random_range(0..8u32) << 28);
            for d in 0..3 {
                b.codes[d].push(rng.random());
            }
        }
        let copy = Builder { xs: b.xs.clone(), ys: b.ys.clone(), codes: b.codes.clone(), dropped: 0 };
        let packed = b.sort_packed();
        let gathered = copy.sort_gathered();
        assert_eq!(packed, gathered);
        let keys: Vec<u32> = packed.0.iter().zip(&packed.1).map(|(&x, &y)| hilbert_key(x, y)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
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
