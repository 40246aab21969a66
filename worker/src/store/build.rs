//! Building a shard: append decoded rows as packed records, sort them along a
//! Hilbert curve in place, unpack them into columns and cut blocks.
//!
//! A record is the row's Hilbert key (which encodes the top 16 bits of x and
//! y), the low 16 bits of x and y, and the bin codes: 12 bytes for up to four
//! dimensions, 16 for up to eight. Rows are held once, as records, from
//! decoding to the sort; unpacking writes the columns from the end while it
//! returns the records' pages behind it, so a load peaks near the size of the
//! records, not records + columns or columns + sort buffers.
//!
//! A dataset with detail columns (see [`super::detail`]) stages their values
//! encoded, in decoding order, and its records carry one more word, the
//! row's position in that order, so that after the sort the values can be
//! re-encoded in the store's order.

use rayon::prelude::*;

use super::detail::{DetailInfo, DetailKind, DetailStage, TextDict};
use super::{BLOCK_ROWS, Details, Shard};
use crate::bins::DimBins;
use crate::protocol::ShardInfo;
use crate::spec::ViewConfig;

/// Most dimensions a record holds.
pub const MAX_RECORD_DIMS: usize = 8;

/// Rows of one dataset being collected; `finish` turns them into a [`Shard`].
#[derive(Debug)]
pub struct Builder {
    ndims: usize,
    records: Records,
    /// Detail values of the rows, in the order they were pushed.
    details: Option<DetailStage>,
    /// Rows skipped for lack of a position.
    pub dropped: u64,
}

#[derive(Debug)]
enum Records {
    /// Up to four dimensions: key, low halves of x and y, codes.
    Narrow(Vec<[u32; 3]>),
    /// Up to eight.
    Wide(Vec<[u32; 4]>),
    /// [`Records::Narrow`] and the row's position in the order of pushes.
    NarrowId(Vec<[u32; 4]>),
    /// [`Records::Wide`] and the row's position in the order of pushes.
    WideId(Vec<[u32; 5]>),
}

/// Detail columns' descriptions and text dictionaries, for [`Builder::finish`].
pub type DetailMeta = (Vec<DetailInfo>, Vec<Option<TextDict>>);

/// Bytes a row a load holds at its peak with `ndims` dimensions: the records
/// (12 or 16 bytes) or the columns (8 + one per dimension), whichever is
/// larger, since unpacking frees the one as it writes the other.
pub fn peak_bytes_per_row(ndims: usize) -> u64 {
    let record = if ndims <= 4 { 12 } else { 16 };
    record.max(8 + ndims as u64)
}

/// [`peak_bytes_per_row`] with detail columns of about `detail` bytes a row
/// encoded: the records gain a 4-byte row id and the staged details sit
/// beside them; after the sort the columns, the ids, the staged and the
/// re-encoded details are held at once.
pub fn peak_bytes_per_row_with_details(ndims: usize, detail: u64) -> u64 {
    if detail == 0 {
        return peak_bytes_per_row(ndims);
    }
    let record = if ndims <= 4 { 16 } else { 20 };
    (record + detail).max(8 + ndims as u64 + 4 + 2 * detail)
}

impl Builder {
    /// An empty builder for `ndims` dimensions (at most [`MAX_RECORD_DIMS`]).
    pub fn new(ndims: usize) -> Builder {
        Builder::with_capacity(ndims, 0)
    }

    /// An empty builder with room for about `rows` rows.
    pub fn with_capacity(ndims: usize, rows: usize) -> Builder {
        assert!(ndims <= MAX_RECORD_DIMS, "at most {MAX_RECORD_DIMS} dimensions");
        let records = if ndims <= 4 {
            Records::Narrow(Vec::with_capacity(rows))
        } else {
            Records::Wide(Vec::with_capacity(rows))
        };
        Builder { ndims, records, details: None, dropped: 0 }
    }

    /// An empty builder that also stages detail columns of these kinds (none:
    /// the same as [`Builder::with_capacity`]).
    pub fn with_details(ndims: usize, rows: usize, kinds: &[DetailKind]) -> Builder {
        if kinds.is_empty() {
            return Builder::with_capacity(ndims, rows);
        }
        assert!(ndims <= MAX_RECORD_DIMS, "at most {MAX_RECORD_DIMS} dimensions");
        let records = if ndims <= 4 {
            Records::NarrowId(Vec::with_capacity(rows))
        } else {
            Records::WideId(Vec::with_capacity(rows))
        };
        Builder { ndims, records, details: Some(DetailStage::new(kinds)), dropped: 0 }
    }

    /// Where a row's detail values go, right after its [`Builder::push`].
    pub fn details_mut(&mut self) -> Option<&mut DetailStage> {
        self.details.as_mut()
    }

    /// Bytes held by the records and the staged details.
    pub fn bytes(&self) -> usize {
        let recs = match &self.records {
            Records::Narrow(v) => v.capacity() * 12,
            Records::Wide(v) | Records::NarrowId(v) => v.capacity() * 16,
            Records::WideId(v) => v.capacity() * 20,
        };
        recs + self.details.as_ref().map_or(0, DetailStage::bytes)
    }

    /// A builder holding these columns' rows (`codes` has one column per
    /// dimension, each as long as `xs`).
    pub fn from_columns(xs: &[u32], ys: &[u32], codes: &[Vec<u8>]) -> Builder {
        let mut b = Builder::with_capacity(codes.len(), xs.len());
        let mut row = [0u8; MAX_RECORD_DIMS];
        for i in 0..xs.len() {
            for (d, col) in codes.iter().enumerate() {
                row[d] = col[i];
            }
            b.push(xs[i], ys[i], &row[..codes.len()]);
        }
        b
    }

    /// Adds a row: quantised position and one bin code per dimension.
    #[inline]
    pub fn push(&mut self, x: u32, y: u32, codes: &[u8]) {
        debug_assert_eq!(codes.len(), self.ndims);
        let head = [hilbert_key(x, y), (x << 16) | (y & 0xffff)];
        let mut packed = [0u32; 2];
        for (d, &c) in codes.iter().enumerate() {
            // First dimension in the top byte, so records compare by the
            // codes in dimension order.
            packed[d / 4] |= (c as u32) << (24 - 8 * (d % 4));
        }
        match &mut self.records {
            Records::Narrow(v) => v.push([head[0], head[1], packed[0]]),
            Records::Wide(v) => v.push([head[0], head[1], packed[0], packed[1]]),
            Records::NarrowId(v) => v.push([head[0], head[1], packed[0], v.len() as u32]),
            Records::WideId(v) => v.push([head[0], head[1], packed[0], packed[1], v.len() as u32]),
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        match &self.records {
            Records::Narrow(v) => v.len(),
            Records::Wide(v) | Records::NarrowId(v) => v.len(),
            Records::WideId(v) => v.len(),
        }
    }

    /// True when no rows were added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends another builder's rows.
    pub fn append(&mut self, mut other: Builder) {
        let offset = self.len() as u32;
        match (&mut self.records, &mut other.records) {
            (Records::Narrow(a), Records::Narrow(b)) => a.append(b),
            (Records::Wide(a), Records::Wide(b)) => a.append(b),
            (Records::NarrowId(a), Records::NarrowId(b)) => {
                b.iter_mut().for_each(|r| r[3] += offset);
                a.append(b)
            }
            (Records::WideId(a), Records::WideId(b)) => {
                b.iter_mut().for_each(|r| r[4] += offset);
                a.append(b)
            }
            _ => panic!("appending a builder of {} dimensions to one of {}", other.ndims, self.ndims),
        }
        match (&mut self.details, other.details) {
            (Some(a), Some(b)) => a.append(b),
            (None, None) => {}
            _ => panic!("appending a builder with detail columns to one without, or the reverse"),
        }
        self.dropped += other.dropped;
    }

    /// Sorts rows along the Hilbert curve (ties in the order of the rest of
    /// the row, so the result depends on the rows, not on the order files
    /// were read in) and cuts blocks.
    /// `details` describes the staged detail columns, if any.
    pub fn finish(
        mut self,
        name: &str,
        view: ViewConfig,
        dims: Vec<DimBins>,
        category_dim: usize,
        info: ShardInfo,
        details: Option<DetailMeta>,
    ) -> Shard {
        let n = self.len();
        assert!(n < u32::MAX as usize, "a shard holds fewer than 2^32 rows");
        let dropped = self.dropped;
        let stage = self.details.take();
        let started = std::time::Instant::now();
        let ((xs, ys, codes), ids) = self.sort_and_unpack();
        phase(name, "sorted and unpacked", started);
        let details = match (stage, ids, details) {
            (Some(stage), Some(ids), Some((infos, dicts))) => stage.permute(&ids, infos, dicts),
            (None, None, _) => Details::default(),
            _ => panic!("detail columns staged without their description, or described without being staged"),
        };
        phase(name, "detail columns in store order", started);
        let blocks = super::cut_blocks(&xs, &ys, BLOCK_ROWS);
        let ncodes: Vec<usize> = dims.iter().map(|d| d.nbins() as usize + 1).collect();
        let aggregates = super::Aggregates::build(&xs, &ys, &codes, &ncodes, category_dim, |r| {
            super::sample_priority(r, super::SAMPLE_SALT)
        });
        phase(name, "blocks and pre-aggregates built", started);
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
            brushes: Default::default(),
            details,
        }
    }

    /// The rows as columns, in Hilbert order.
    #[cfg(test)]
    pub(crate) fn into_sorted_columns(self) -> Columns {
        self.sort_and_unpack().0
    }

    /// The rows as columns, in Hilbert order, and (with detail columns) the
    /// order of pushes each came from.
    fn sort_and_unpack(self) -> (Columns, Option<Vec<u32>>) {
        match self.records {
            Records::Narrow(v) => sort_and_unpack(v, self.ndims, false),
            Records::Wide(v) => sort_and_unpack(v, self.ndims, false),
            Records::NarrowId(v) => sort_and_unpack(v, self.ndims, true),
            Records::WideId(v) => sort_and_unpack(v, self.ndims, true),
        }
    }
}

type Columns = (Vec<u32>, Vec<u32>, Vec<Vec<u8>>);

/// Logs a step of building a shard: seconds since `started`, and the
/// process's resident and peak resident memory, which show what each step
/// holds.
pub(crate) fn phase(dataset: &str, step: &str, started: std::time::Instant) {
    let (rss, peak) = crate::mem::resident();
    tracing::debug!(
        dataset, seconds = started.elapsed().as_secs_f64(), rss_mb = rss >> 20, peak_rss_mb = peak >> 20,
        "building: {step}"
    );
}

/// Rows unpacked between two returns of the records' pages.
const UNPACK_CHUNK_ROWS: usize = 1 << 20;

/// Sorts records in place and unpacks them into columns from the last row
/// back, returning the records' pages as it goes (the columns are allocated
/// zeroed, which the system maps lazily: only written pages are resident).
fn sort_and_unpack<const N: usize>(
    mut recs: Vec<[u32; N]>,
    ndims: usize,
    with_ids: bool,
) -> (Columns, Option<Vec<u32>>) {
    recs.par_sort_unstable();
    let n = recs.len();
    let mut xs = vec![0u32; n];
    let mut ys = vec![0u32; n];
    let mut codes: Vec<Vec<u8>> = (0..ndims).map(|_| vec![0u8; n]).collect();
    let mut ids = with_ids.then(|| vec![0u32; n]);
    let mut end = n;
    while end > 0 {
        let start = end.saturating_sub(UNPACK_CHUNK_ROWS);
        let src = &recs[start..end];
        xs[start..end].par_iter_mut().zip(ys[start..end].par_iter_mut()).zip(src.par_iter()).for_each(|((x, y), r)| {
            let (xh, yh) = hilbert_point(r[0]);
            *x = (xh << 16) | (r[1] >> 16);
            *y = (yh << 16) | (r[1] & 0xffff);
        });
        for (d, col) in codes.iter_mut().enumerate() {
            let (word, shift) = (2 + d / 4, 24 - 8 * (d % 4));
            col[start..end].par_iter_mut().zip(src.par_iter()).for_each(|(c, r)| *c = (r[word] >> shift) as u8);
        }
        if let Some(ids) = &mut ids {
            ids[start..end].par_iter_mut().zip(src.par_iter()).for_each(|(i, r)| *i = r[N - 1]);
        }
        release_tail(&recs, start);
        end = start;
    }
    ((xs, ys, codes), ids)
}

/// Gives the system back the pages of `v` past element `from`, which the
/// caller will not read again (Linux; a no-op elsewhere).
fn release_tail<T>(v: &[T], from: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let base = v.as_ptr() as usize;
        let first = (base + from * std::mem::size_of::<T>()).next_multiple_of(PAGE);
        let last = (base + std::mem::size_of_val(v)) & !(PAGE - 1);
        if last > first {
            // SAFETY: the range lies inside `v`'s allocation, page-aligned;
            // MADV_DONTNEED keeps it mapped (reads would see zeros) and the
            // caller never reads those elements again before freeing `v`.
            unsafe {
                libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (v, from);
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

/// The top 16 bits of x and y of a Hilbert key (the inverse of [`hilbert_key`]).
pub fn hilbert_point(key: u32) -> (u32, u32) {
    let (mut x, mut y) = (0u32, 0u32);
    let mut t = key;
    let mut s: u32 = 1;
    while s < (1 << 16) {
        let rx = 1 & (t >> 1);
        let ry = 1 & (t ^ rx);
        if ry == 0 {
            if rx == 1 {
                x = s - 1 - x;
                y = s - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        x += s * rx;
        y += s * ry;
        t >>= 2;
        s <<= 1;
    }
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{Rng, SeedableRng};

    /// Random columns; `pos` draws one coordinate.
    fn columns(seed: u64, n: usize, ndims: usize, pos: &dyn Fn(&mut rand_chacha::ChaCha8Rng) -> u32) -> Columns {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let xs = (0..n).map(|_| pos(&mut rng)).collect();
        let ys = (0..n).map(|_| pos(&mut rng)).collect();
        let codes = (0..ndims).map(|_| (0..n).map(|_| rng.random_range(0..4u8)).collect()).collect();
        (xs, ys, codes)
    }

    /// The reference: rows as tuples (key, x, y, codes), sorted, as columns.
    fn reference(cols: &Columns) -> Columns {
        let (xs, ys, codes) = cols;
        let mut rows: Vec<(u32, u32, u32, Vec<u8>)> = (0..xs.len())
            .map(|i| (hilbert_key(xs[i], ys[i]), xs[i], ys[i], codes.iter().map(|c| c[i]).collect()))
            .collect();
        rows.sort();
        let xs = rows.iter().map(|r| r.1).collect();
        let ys = rows.iter().map(|r| r.2).collect();
        let codes = (0..codes.len()).map(|d| rows.iter().map(|r| r.3[d]).collect()).collect();
        (xs, ys, codes)
    }

    fn sorted_by_builder(cols: &Columns) -> Columns {
        Builder::from_columns(&cols.0, &cols.1, &cols.2).into_sorted_columns()
    }

    #[test]
    fn sorted_columns_are_the_rows_in_hilbert_order() {
        // Rows keep their values (the records unpack exactly), in key order;
        // equal keys tie-break the same way whatever order rows came in.
        // Few distinct positions (keys tie), positions anywhere, one small
        // region, several chunks of unpacking, 3 and 6 dimensions.
        let few = |r: &mut rand_chacha::ChaCha8Rng| r.random_range(0..8u32) << 28;
        let any = |r: &mut rand_chacha::ChaCha8Rng| r.random::<u32>();
        let near = |r: &mut rand_chacha::ChaCha8Rng| (3u32 << 24) | r.random_range(0..1u32 << 20);
        let cases = [
            columns(1, 50_000, 3, &few),
            columns(2, 200_000, 3, &any),
            columns(3, UNPACK_CHUNK_ROWS * 2 + 77, 3, &near),
            columns(4, 60_000, 6, &any),
            columns(5, 0, 3, &any),
        ];
        for cols in &cases {
            assert_eq!(sorted_by_builder(cols), reference(cols), "{} rows", cols.0.len());
        }
    }

    #[test]
    fn the_order_does_not_depend_on_the_order_rows_arrive_in() {
        let cols = columns(6, 40_000, 4, &|r| r.random_range(0..64u32) << 26);
        let n = cols.0.len();
        let rev = |v: &Vec<u32>| v.iter().rev().copied().collect::<Vec<_>>();
        let reversed = (rev(&cols.0), rev(&cols.1), cols.2.iter().map(|c| c.iter().rev().copied().collect()).collect());
        assert_eq!(sorted_by_builder(&cols), sorted_by_builder(&reversed));
        assert_eq!(sorted_by_builder(&cols).0.len(), n);
    }

    #[test]
    fn hilbert_point_inverts_the_key() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        for _ in 0..100_000 {
            let (x, y): (u32, u32) = (rng.random(), rng.random());
            assert_eq!(hilbert_point(hilbert_key(x, y)), (x >> 16, y >> 16));
        }
        for (x, y) in [(0, 0), (u32::MAX, 0), (0, u32::MAX), (u32::MAX, u32::MAX)] {
            assert_eq!(hilbert_point(hilbert_key(x, y)), (x >> 16, y >> 16));
        }
    }

    #[test]
    fn appending_builders_keeps_every_row_and_the_dropped_count() {
        let (a, b) = (columns(9, 1000, 3, &|r| r.random()), columns(10, 500, 3, &|r| r.random()));
        let mut left = Builder::from_columns(&a.0, &a.1, &a.2);
        left.dropped = 2;
        let mut right = Builder::from_columns(&b.0, &b.1, &b.2);
        right.dropped = 3;
        left.append(right);
        assert_eq!((left.len(), left.dropped), (1500, 5));
        let all = (
            [a.0, b.0].concat(),
            [a.1, b.1].concat(),
            a.2.iter().zip(&b.2).map(|(x, y)| [x.clone(), y.clone()].concat()).collect(),
        );
        assert_eq!(left.into_sorted_columns(), reference(&all));
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
