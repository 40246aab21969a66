//! Building a shard: append decoded rows as packed records, sort each
//! decoding unit's rows along a Hilbert curve into a run, then merge the runs
//! into columns and cut blocks.
//!
//! A record is the row's Hilbert key (which encodes the top 16 bits of x and
//! y), the low 16 bits of x and y, and the bin codes: 12 bytes for up to four
//! dimensions, 16 for up to eight. Rows are held once, as records, from
//! decoding to the merge; the merge writes the columns while it returns the
//! runs' pages behind it, so a load peaks near the size of the records, not
//! records + columns.
//!
//! A dataset with detail columns (see [`super::detail`]) stages their values
//! as they are, in decoding order, until the rows are sealed into a run
//! (every [`SEAL_ROWS`]). The records being sorted carry their position among
//! those rows, and the staged values are put in the run's order and encoded
//! then, while they are few and in cache. The merge notes which run each row
//! came from, and the detail columns are merged by reading each run's values
//! front to back: no row id is held past a run, and no column is read at
//! random at the scale of the shard.

use rayon::prelude::*;

use super::detail::{self, DetailInfo, DetailKind, DetailStage, TextDict};
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
    /// Rows pushed since the last [`Builder::seal`], in push order.
    records: Records,
    /// Their detail values, in push order.
    details: Option<DetailStage>,
    /// The detail columns' kinds (empty: none).
    kinds: Vec<DetailKind>,
    /// Sealed rows: sorted runs, in the order their rows were pushed.
    runs: Vec<Run>,
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

/// Sorted records of one sealed batch of rows, and their detail values in
/// the same order.
#[derive(Debug)]
struct Run {
    records: RunRecords,
    details: Option<detail::Run>,
}

#[derive(Debug)]
enum RunRecords {
    Narrow(Vec<[u32; 3]>),
    Wide(Vec<[u32; 4]>),
}

impl RunRecords {
    fn len(&self) -> usize {
        match self {
            RunRecords::Narrow(v) => v.len(),
            RunRecords::Wide(v) => v.len(),
        }
    }
}

/// Detail columns' descriptions and text dictionaries, for [`Builder::finish`].
pub type DetailMeta = (Vec<DetailInfo>, Vec<Option<TextDict>>);

/// Bytes a row a load holds at its peak with `ndims` dimensions: the records
/// (12 or 16 bytes) or the columns (8 + one per dimension), whichever is
/// larger, since the merge frees the one as it writes the other.
pub fn peak_bytes_per_row(ndims: usize) -> u64 {
    let record = if ndims <= 4 { 12 } else { 16 };
    record.max(8 + ndims as u64)
}

/// [`peak_bytes_per_row`] with detail columns of about `detail` bytes a row
/// encoded, the largest of them `largest`: the staged details sit beside the
/// records; then beside the columns, each row's run (one byte, two past 256
/// runs) and the column being re-encoded.
pub fn peak_bytes_per_row_with_details(ndims: usize, detail: u64, largest: u64) -> u64 {
    if detail == 0 {
        return peak_bytes_per_row(ndims);
    }
    peak_bytes_per_row(ndims) + 2 + detail + largest
}

impl Builder {
    /// An empty builder for `ndims` dimensions (at most [`MAX_RECORD_DIMS`]).
    pub fn new(ndims: usize) -> Builder {
        Builder::with_capacity(ndims, 0)
    }

    /// An empty builder with room for about `rows` rows.
    pub fn with_capacity(ndims: usize, rows: usize) -> Builder {
        Builder::with_details(ndims, rows, &[])
    }

    /// An empty builder that also stages detail columns of these kinds (none:
    /// the same as [`Builder::with_capacity`]).
    pub fn with_details(ndims: usize, rows: usize, kinds: &[DetailKind]) -> Builder {
        assert!(ndims <= MAX_RECORD_DIMS, "at most {MAX_RECORD_DIMS} dimensions");
        Builder {
            ndims,
            records: Records::empty(ndims, !kinds.is_empty(), rows),
            details: (!kinds.is_empty()).then(|| DetailStage::new(kinds)),
            kinds: kinds.to_vec(),
            runs: vec![],
            dropped: 0,
        }
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
        let runs: usize = self
            .runs
            .iter()
            .map(|r| {
                let recs = match &r.records {
                    RunRecords::Narrow(v) => v.capacity() * 12,
                    RunRecords::Wide(v) => v.capacity() * 16,
                };
                recs + r.details.as_ref().map_or(0, detail::Run::bytes)
            })
            .sum();
        recs + runs + self.details.as_ref().map_or(0, DetailStage::bytes)
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
        self.records.len() + self.runs.iter().map(|r| r.records.len()).sum::<usize>()
    }

    /// True when no rows were added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts the rows pushed since the last seal into a run. A decoding unit
    /// seals its rows before handing them over, so units sort in parallel
    /// while their rows are in cache.
    pub fn seal(&mut self) {
        if self.records.len() == 0 {
            return;
        }
        let records = std::mem::replace(&mut self.records, Records::empty(self.ndims, !self.kinds.is_empty(), 0));
        let stage = self.details.as_mut().map(|d| std::mem::replace(d, DetailStage::new(&self.kinds)));
        let run = match (records, stage) {
            (Records::Narrow(mut v), None) => {
                sort(&mut v);
                Run { records: RunRecords::Narrow(v), details: None }
            }
            (Records::Wide(mut v), None) => {
                sort(&mut v);
                Run { records: RunRecords::Wide(v), details: None }
            }
            (Records::NarrowId(v), Some(stage)) => {
                let (recs, details) = sort_with_ids(v, stage);
                Run { records: RunRecords::Narrow(recs), details: Some(details) }
            }
            (Records::WideId(v), Some(stage)) => {
                let (recs, details) = sort_with_ids(v, stage);
                Run { records: RunRecords::Wide(recs), details: Some(details) }
            }
            _ => unreachable!("records carry ids exactly when details are staged"),
        };
        self.runs.push(run);
    }

    /// [`Builder::seal`]s once [`SEAL_ROWS`] rows have been pushed since the
    /// last seal (with detail columns, whose rows are staged as they are
    /// until then).
    pub fn seal_when_full(&mut self) {
        if self.records.len() >= SEAL_ROWS {
            self.seal();
        }
    }

    /// Appends another builder's rows (after these, for ties in the sort).
    pub fn append(&mut self, mut other: Builder) {
        assert!(
            other.ndims == self.ndims && other.kinds == self.kinds,
            "appending a builder of {} dimensions and {} detail columns to one of {} and {}",
            other.ndims,
            other.kinds.len(),
            self.ndims,
            self.kinds.len()
        );
        self.seal();
        other.seal();
        self.runs.append(&mut other.runs);
        self.dropped += other.dropped;
    }

    /// Sorts rows along the Hilbert curve (ties in the order of the rest of
    /// the row, then of pushes, so the result depends on the rows and the
    /// order of the units, not on the order units finished decoding in) and
    /// cuts blocks. `details` describes the staged detail columns, if any.
    pub fn finish(
        mut self,
        name: &str,
        view: ViewConfig,
        dims: Vec<DimBins>,
        category_dim: usize,
        info: ShardInfo,
        details: Option<DetailMeta>,
    ) -> Shard {
        let started = std::time::Instant::now();
        self.seal();
        let n = self.len();
        assert!(n < u32::MAX as usize, "a shard holds fewer than 2^32 rows");
        let dropped = self.dropped;
        let ((xs, ys, codes), details) = self.merge(details);
        phase(name, "runs merged", started);
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
    pub(crate) fn into_sorted_columns(mut self) -> Columns {
        self.seal();
        self.merge(None).0
    }

    /// The rows as columns and detail columns, in Hilbert order.
    #[cfg(test)]
    pub(crate) fn into_sorted_columns_and_details(mut self, meta: DetailMeta) -> (Columns, Details) {
        self.seal();
        self.merge(Some(meta))
    }

    /// Merges the sealed runs into columns and, when staged, detail columns.
    fn merge(self, meta: Option<DetailMeta>) -> (Columns, Details) {
        let ndims = self.ndims;
        let mut narrow = vec![];
        let mut wide = vec![];
        let mut stages = vec![];
        for run in self.runs {
            match run.records {
                RunRecords::Narrow(v) => narrow.push(v),
                RunRecords::Wide(v) => wide.push(v),
            }
            stages.extend(run.details);
        }
        let staged = !self.kinds.is_empty();
        let runs = narrow.len().max(wide.len());
        let (cols, from) = if ndims <= 4 {
            merge_runs(narrow, ndims, staged.then_some(runs))
        } else {
            merge_runs(wide, ndims, staged.then_some(runs))
        };
        let details = match (from, meta) {
            (None, _) => Details::default(),
            (Some(RunOfRow::Byte(f)), Some((infos, dicts))) => detail::merge(stages, &f, infos, dicts),
            (Some(RunOfRow::Wide(f)), Some((infos, dicts))) => detail::merge(stages, &f, infos, dicts),
            (Some(_), None) => panic!("detail columns staged without their description"),
        };
        (cols, details)
    }
}

impl Records {
    fn empty(ndims: usize, with_ids: bool, rows: usize) -> Records {
        match (ndims <= 4, with_ids) {
            (true, false) => Records::Narrow(Vec::with_capacity(rows)),
            (false, false) => Records::Wide(Vec::with_capacity(rows)),
            (true, true) => Records::NarrowId(Vec::with_capacity(rows)),
            (false, true) => Records::WideId(Vec::with_capacity(rows)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Records::Narrow(v) => v.len(),
            Records::Wide(v) | Records::NarrowId(v) => v.len(),
            Records::WideId(v) => v.len(),
        }
    }
}

/// Rows a decoding unit stages before it sorts them into a run: its staged
/// detail values (8 bytes each) stay a few megabytes, and in cache while
/// they are put in order.
pub const SEAL_ROWS: usize = 1 << 18;

/// Rows above which a run is sorted by every thread (a decoding unit's rows
/// are sorted on its own thread, beside other units').
const PARALLEL_SORT_ROWS: usize = 1 << 21;

/// A record's words as one number that orders records as their words do
/// (first word most significant): two machine comparisons instead of a
/// loop over words.
#[inline(always)]
fn rank<const N: usize>(r: &[u32; N]) -> (u128, u32) {
    let word = |k: usize| if k < N { r[k] as u128 } else { 0 };
    let head = word(0) << 96 | word(1) << 64 | word(2) << 32 | word(3);
    (head, if N > 4 { r[4] } else { 0 })
}

fn sort<const N: usize>(v: &mut [[u32; N]]) {
    if v.len() > PARALLEL_SORT_ROWS {
        v.par_sort_unstable_by_key(rank);
    } else {
        v.sort_unstable_by_key(rank);
    }
}

/// Sorts records that end in their push position (`M = N + 1` words), and
/// the staged details with them; returns the records without the position.
fn sort_with_ids<const M: usize, const N: usize>(
    mut v: Vec<[u32; M]>,
    stage: DetailStage,
) -> (Vec<[u32; N]>, detail::Run) {
    const { assert!(M == N + 1) };
    sort(&mut v);
    let ids: Vec<u32> = v.iter().map(|r| r[N]).collect();
    let recs = v.iter().map(|r| std::array::from_fn(|k| r[k])).collect();
    drop(v);
    (recs, stage.reorder(&ids))
}

type Columns = (Vec<u32>, Vec<u32>, Vec<Vec<u8>>);

/// Which run each output row of a merge came from.
enum RunOfRow {
    /// Up to 256 runs.
    Byte(Vec<u8>),
    Wide(Vec<u16>),
}

/// Logs a step of building a shard (`what`: the dataset, or the column a
/// step is about): seconds since `started`, and the process's resident and
/// peak resident memory, which show what each step holds.
pub(crate) fn phase(what: &str, step: &str, started: std::time::Instant) {
    let (rss, peak) = crate::mem::resident();
    tracing::debug!(
        what,
        seconds = started.elapsed().as_secs_f64(),
        rss_mb = rss >> 20,
        peak_rss_mb = peak >> 20,
        "building: {step}"
    );
}

/// Output rows a merge hands each task: enough for the threads to share the
/// work evenly and for the runs' pages to be returned as the merge advances.
const MERGE_RANGE_ROWS: usize = 1 << 19;

/// Merges sorted runs into columns, in record order and, between equal
/// records, in run order; with `Some(runs)`, also notes each row's run.
///
/// The output is cut into ranges at splitter records sampled from the runs;
/// a run's part of each range is found by binary search, and ranges are
/// merged in parallel in waves, after each of which the runs' pages before
/// the wave's end are returned to the system.
fn merge_runs<const N: usize>(
    mut runs: Vec<Vec<[u32; N]>>,
    ndims: usize,
    note_runs: Option<usize>,
) -> (Columns, Option<RunOfRow>) {
    runs.retain(|r| !r.is_empty());
    let n: usize = runs.iter().map(Vec::len).sum();
    let nranges = n.div_ceil(MERGE_RANGE_ROWS).max(1);
    // Splitters: quantiles of a sample of every run. A sample row stands
    // for up to `stride` rows of its run, so a splitter may be off by that
    // many rows per run: few rows against a range's (an eighth of a range
    // over all runs), but at most about a million samples.
    let stride = (MERGE_RANGE_ROWS / (8 * runs.len().max(1))).max(n >> 20).max(1);
    let mut sample: Vec<(u128, u32)> = runs.iter().flat_map(|r| r.iter().step_by(stride).map(rank)).collect();
    sample.sort_unstable();
    let splitters: Vec<(u128, u32)> = (1..nranges).map(|j| sample[j * sample.len() / nranges]).collect();
    drop(sample);
    // cuts[j][i]: where range j starts in run i.
    let mut cuts: Vec<Vec<usize>> = vec![vec![0; runs.len()]];
    for s in &splitters {
        cuts.push(runs.iter().map(|r| r.partition_point(|x| rank(x) < *s)).collect());
    }
    cuts.push(runs.iter().map(Vec::len).collect());
    let starts: Vec<usize> = cuts.iter().map(|c| c.iter().sum()).collect();

    let mut xs = vec![0u32; n];
    let mut ys = vec![0u32; n];
    let mut codes: Vec<Vec<u8>> = (0..ndims).map(|_| vec![0u8; n]).collect();
    let wide_from = note_runs.is_some_and(|r| r > 256);
    let mut from8 = note_runs.filter(|_| !wide_from).map(|_| vec![0u8; n]);
    let mut from16 = note_runs.filter(|_| wide_from).map(|_| vec![0u16; n]);
    assert!(runs.len() <= 1 << 16, "at most 65,536 runs of rows are merged");

    // Disjoint output slices, one per range.
    struct Out<'a> {
        xs: &'a mut [u32],
        ys: &'a mut [u32],
        codes: Vec<&'a mut [u8]>,
        from8: Option<&'a mut [u8]>,
        from16: Option<&'a mut [u16]>,
    }
    let lens: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let mut code_parts: Vec<std::vec::IntoIter<&mut [u8]>> =
        codes.iter_mut().map(|c| split_by_lens(c, &lens).into_iter()).collect();
    let mut from8_parts = from8.as_deref_mut().map(|f| split_by_lens(f, &lens).into_iter());
    let mut from16_parts = from16.as_deref_mut().map(|f| split_by_lens(f, &lens).into_iter());
    let outs: Vec<Out<'_>> = split_by_lens(&mut xs, &lens)
        .into_iter()
        .zip(split_by_lens(&mut ys, &lens))
        .map(|(xs, ys)| Out {
            xs,
            ys,
            codes: code_parts.iter_mut().map(|p| p.next().expect("one part per range")).collect(),
            from8: from8_parts.as_mut().and_then(Iterator::next),
            from16: from16_parts.as_mut().and_then(Iterator::next),
        })
        .collect();
    let started = std::time::Instant::now();
    let wave = rayon::current_num_threads().max(1) * 2;
    let mut j0 = 0;
    let mut outs = outs.into_iter();
    while j0 < nranges {
        let j1 = (j0 + wave).min(nranges);
        let batch: Vec<(usize, Out<'_>)> = (j0..j1).zip(outs.by_ref()).collect();
        batch.into_par_iter().for_each(|(j, mut out)| {
            let parts: Vec<&[[u32; N]]> =
                runs.iter().enumerate().map(|(i, r)| &r[cuts[j][i]..cuts[j + 1][i]]).collect();
            merge_range(&parts, |o, i, r| {
                let (xh, yh) = hilbert_point(r[0]);
                out.xs[o] = (xh << 16) | (r[1] >> 16);
                out.ys[o] = (yh << 16) | (r[1] & 0xffff);
                for (d, c) in out.codes.iter_mut().enumerate() {
                    c[o] = (r[2 + d / 4] >> (24 - 8 * (d % 4))) as u8;
                }
                if let Some(f) = out.from8.as_deref_mut() {
                    f[o] = i as u8;
                }
                if let Some(f) = out.from16.as_deref_mut() {
                    f[o] = i as u16;
                }
            });
        });
        for (i, r) in runs.iter().enumerate() {
            release_range(r, cuts[j0][i], cuts[j1][i]);
        }
        j0 = j1;
    }
    phase("rows", "records merged into columns", started);
    drop(runs);
    crate::mem::return_freed_memory();
    let from = from8.map(RunOfRow::Byte).or(from16.map(RunOfRow::Wide));
    ((xs, ys, codes), from)
}

/// `v` cut into consecutive slices of these lengths.
fn split_by_lens<'a, T>(mut v: &'a mut [T], lens: &[usize]) -> Vec<&'a mut [T]> {
    lens.iter()
        .map(|&len| {
            let (head, tail) = std::mem::take(&mut v).split_at_mut(len);
            v = tail;
            head
        })
        .collect()
}

/// Calls `emit(output index, part, record)` for the records of sorted
/// `parts` in merged order (equal records in part order).
///
/// A tournament of losers: each internal node keeps the part that lost the
/// match there, so replacing the winner replays one path of `log2(parts)`
/// comparisons, with no second child to look at as a heap's sift-down has.
fn merge_range<const N: usize>(parts: &[&[[u32; N]]], mut emit: impl FnMut(usize, usize, &[u32; N])) {
    const { assert!(N <= 4, "a run's records are at most four words") };
    // Keys are unique: the record's rank, then the part. Exhausted parts
    // hold the largest key, which no record has (parts number < 2^32).
    const DONE: (u128, u32) = (u128::MAX, u32::MAX);
    let size = parts.len().next_power_of_two();
    let key = |i: usize, at: usize| parts.get(i).and_then(|p| p.get(at)).map_or(DONE, |r| (rank(r).0, i as u32));
    let mut keys: Vec<(u128, u32)> = (0..size).map(|i| key(i, 0)).collect();
    let mut pos = vec![0usize; size];
    // tree[n] for 1 <= n < size: the loser of the match at node n (node n's
    // children are 2n and 2n + 1; part i is leaf size + i); tree[0]: the winner.
    let mut tree = vec![0usize; size];
    let mut round: Vec<usize> = (0..size).collect();
    let mut first = size;
    while round.len() > 1 {
        first /= 2;
        round = round
            .chunks(2)
            .enumerate()
            .map(|(m, pair)| {
                let (a, b) = (pair[0], pair[1]);
                let (win, lose) = if keys[b] < keys[a] { (b, a) } else { (a, b) };
                tree[first + m] = lose;
                win
            })
            .collect();
    }
    tree[0] = round[0];
    // As many rounds as rows: no round needs to ask whether any are left.
    let total: usize = parts.iter().map(|p| p.len()).sum();
    for o in 0..total {
        let mut winner = tree[0];
        emit(o, winner, &parts[winner][pos[winner]]);
        pos[winner] += 1;
        keys[winner] = key(winner, pos[winner]);
        let mut node = (winner + size) / 2;
        while node >= 1 {
            let l = tree[node];
            if keys[l] < keys[winner] {
                tree[node] = winner;
                winner = l;
            }
            node /= 2;
        }
        tree[0] = winner;
    }
}

/// Gives the system back the pages of `v[..to]` from the one holding
/// `v[from]` on, which the caller will not read again (Linux; a no-op
/// elsewhere).
fn release_range<T>(v: &[T], from: usize, to: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let base = v.as_ptr() as usize;
        let size = std::mem::size_of::<T>();
        // The page holding the allocation's start may hold the allocator's data.
        let first = ((base + from * size) & !(PAGE - 1)).max(base.next_multiple_of(PAGE));
        let last = (base + to.min(v.len()) * size) & !(PAGE - 1);
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
    let _ = (v, from, to);
}

/// Position along a Hilbert curve of order 16 over the top 16 bits of x and y.
///
/// Four table lookups, each placing four levels of the curve: the table is
/// indexed by the orientation the levels above left (a swap of x and y and a
/// complement of both; four in all) and a nibble of x and of y, and gives
/// eight bits of the key and the next orientation.
#[inline]
pub fn hilbert_key(x: u32, y: u32) -> u32 {
    let (x, y) = (x >> 16, y >> 16);
    let mut state = 0usize;
    let mut d = 0u32;
    for k in (0..4).rev() {
        let e = HILBERT_KEY[state][(((x >> (4 * k)) & 15) << 4 | ((y >> (4 * k)) & 15)) as usize];
        d = d << 8 | (e & 0xff) as u32;
        state = (e >> 8) as usize;
    }
    d
}

/// The top 16 bits of x and y of a Hilbert key (the inverse of [`hilbert_key`]).
#[inline]
pub fn hilbert_point(key: u32) -> (u32, u32) {
    let (mut x, mut y) = (0u32, 0u32);
    let mut state = 0usize;
    for k in (0..4).rev() {
        let e = HILBERT_POINT[state][((key >> (8 * k)) & 0xff) as usize];
        x = x << 4 | ((e >> 4) & 15) as u32;
        y = y << 4 | (e & 15) as u32;
        state = (e >> 8) as usize;
    }
    (x, y)
}

/// `[orientation][x nibble << 4 | y nibble]` → eight key bits | next orientation << 8.
static HILBERT_KEY: [[u16; 256]; 4] = hilbert_key_table();
/// `[orientation][eight key bits]` → x nibble << 4 | y nibble | next orientation << 8.
static HILBERT_POINT: [[u16; 256]; 4] = hilbert_point_table();

/// Orientation bit 0: x and y are swapped; bit 1: both are complemented.
/// At each level the (oriented) bits give the quadrant's digit, `3x ^ y`; a
/// quadrant with y = 0 swaps, and with x = 1 also complements, the levels
/// below it.
const fn hilbert_key_table() -> [[u16; 256]; 4] {
    let mut t = [[0u16; 256]; 4];
    let mut state = 0;
    while state < 4 {
        let mut idx = 0;
        while idx < 256 {
            let (xn, yn) = (idx >> 4, idx & 15);
            let (mut swapped, mut complemented) = (state & 1 == 1, state & 2 == 2);
            let mut d = 0u16;
            let mut level = 4;
            while level > 0 {
                level -= 1;
                let (xb, yb) = ((xn >> level) & 1, (yn >> level) & 1);
                let (mut cx, mut cy) = if swapped { (yb, xb) } else { (xb, yb) };
                if complemented {
                    cx ^= 1;
                    cy ^= 1;
                }
                d = d << 2 | ((3 * cx) ^ cy) as u16;
                if cy == 0 {
                    if cx == 1 {
                        complemented = !complemented;
                    }
                    swapped = !swapped;
                }
            }
            t[state][idx] = d | ((swapped as u16) | (complemented as u16) << 1) << 8;
            idx += 1;
        }
        state += 1;
    }
    t
}

const fn hilbert_point_table() -> [[u16; 256]; 4] {
    let key = hilbert_key_table();
    let mut t = [[0u16; 256]; 4];
    let mut state = 0;
    while state < 4 {
        let mut idx = 0;
        while idx < 256 {
            let e = key[state][idx];
            t[state][(e & 0xff) as usize] = idx as u16 | (e & 0x300);
            idx += 1;
        }
        state += 1;
    }
    t
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
            columns(3, MERGE_RANGE_ROWS * 5 + 77, 3, &near),
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

    /// The curve one level at a time (the textbook `xy2d`), for the tables.
    fn reference_key(x: u32, y: u32) -> u32 {
        let (mut x, mut y) = (x >> 16, y >> 16);
        let mut d: u32 = 0;
        let mut s: u32 = 1 << 15;
        while s > 0 {
            let rx = u32::from(x & s > 0);
            let ry = u32::from(y & s > 0);
            d += s * s * ((3 * rx) ^ ry);
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

    #[test]
    fn table_driven_keys_match_the_level_by_level_curve() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..200_000 {
            let (x, y): (u32, u32) = (rng.random(), rng.random());
            assert_eq!(hilbert_key(x, y), reference_key(x, y), "{x:#x} {y:#x}");
        }
        // Every cell of a 256 x 256 grid at the top, and at the bottom of the 16 bits.
        for gx in 0..256u32 {
            for gy in 0..256u32 {
                assert_eq!(hilbert_key(gx << 24, gy << 24), reference_key(gx << 24, gy << 24));
                assert_eq!(hilbert_key(gx << 16, gy << 16), reference_key(gx << 16, gy << 16));
            }
        }
    }

    #[test]
    fn runs_merge_into_one_sort_s_order_with_each_row_s_details() {
        // Decoding units of uneven sizes (some empty, some sealed part way, as
        // a unit past SEAL_ROWS is), with few distinct positions so that
        // equal records abound; more rows than one merge range or one chunk
        // of the details' merge. Each row's detail value is its position in
        // the order of pushes, which must come out beside its row, equal rows
        // in the order they were pushed.
        // The last case has more than 256 runs: each row's run takes 2 bytes.
        for (ndims, units, most) in
            [(3, 40, 6 * MERGE_RANGE_ROWS / 40), (6, 40, 6 * MERGE_RANGE_ROWS / 40), (3, 300, 200)]
        {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12 + ndims as u64 + units as u64);
            let kinds = [DetailKind::Int];
            let mut all = Builder::with_details(ndims, 0, &kinds);
            let mut rows: Vec<(u32, u32, Vec<u8>, i64)> = vec![];
            for unit in 0..units {
                let size = if unit % 9 == 0 { 0 } else { rng.random_range(1..most) };
                let mut b = Builder::with_details(ndims, size, &kinds);
                let seal_at = rng.random_range(0..size.max(1));
                for i in 0..size {
                    let x = rng.random_range(0..6u32) << 29 | rng.random_range(0..3u32);
                    let y = rng.random_range(0..6u32) << 29;
                    let codes: Vec<u8> = (0..ndims).map(|_| rng.random_range(0..2u8)).collect();
                    let id = rows.len() as i64;
                    b.push(x, y, &codes);
                    b.details_mut().unwrap().push_row([Some(id)].into_iter());
                    rows.push((x, y, codes, id));
                    if i == seal_at {
                        b.seal();
                    }
                }
                b.dropped = 1;
                all.append(b);
            }
            assert_eq!((all.len(), all.dropped), (rows.len(), units as u64));
            if units > 256 {
                assert!(all.runs.len() > 256, "{} runs", all.runs.len());
            } else {
                assert!(rows.len() > detail::MERGE_CHUNK_ROWS.max(MERGE_RANGE_ROWS), "several merge ranges and chunks");
            }
            let info = DetailInfo {
                column: "id".into(),
                title: "Id".into(),
                unit: None,
                kind: DetailKind::Int,
                dimension: None,
            };
            let ((xs, ys, codes), details) = all.into_sorted_columns_and_details((vec![info], vec![None]));
            rows.sort_by_key(|(x, y, c, id)| (hilbert_key(*x, *y), *x, *y, c.clone(), *id));
            assert_eq!(xs, rows.iter().map(|r| r.0).collect::<Vec<_>>(), "{ndims} dimensions, {units} units");
            assert_eq!(ys, rows.iter().map(|r| r.1).collect::<Vec<_>>());
            for (d, col) in codes.iter().enumerate() {
                assert!(col.iter().zip(&rows).all(|(c, r)| *c == r.2[d]), "dimension {d}");
            }
            assert_eq!(details.rows(), rows.len());
            for (r, row) in rows.iter().enumerate() {
                assert_eq!(details.columns[0].value(r), super::super::detail::DetailValue::Int(row.3), "row {r}");
            }
        }
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
