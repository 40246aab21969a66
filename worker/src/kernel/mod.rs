//! The query kernels: one pass over a shard computes every crossfilter
//! histogram, the categorical raster and a sample, in parallel across cores.
//!
//! Crossfilter in one pass: each row gets a failure mask with one bit per
//! dimension whose filter it fails (and one for the viewport when the viewport
//! filters). A row with no bit set counts in every histogram; a row with
//! exactly one bit set counts only in that dimension's histogram (the one that
//! ignores its own filter); other rows count nowhere.

pub mod brush;
pub mod raster;
pub mod reference;

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::geo::{PixelMap, QViewport};
use crate::protocol::{Query, QueryError, View};
use crate::spec::truncate;
use crate::store::{Overlap, SAMPLE_KEEP, SUB_ROWS, Shard};

/// Bit of the failure mask for the viewport.
const VP_BIT: u32 = 1 << 31;
/// Independent copies of each histogram, so consecutive rows with the same
/// bin do not wait on each other's increment.
const LANES: usize = 4;
/// Most dimensions the specialised kernels handle.
pub const MAX_DIMS: usize = 8;

/// A query compiled against one shard.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Per dimension, per code: 0 when rows with that code pass, else the dimension's bit.
    pub fail: Vec<[u32; 256]>,
    /// The viewport, if any.
    pub viewport: Option<QViewport>,
    /// Whether the viewport filters histograms and the selected count.
    pub viewport_filter: bool,
    /// The raster mapping, if a raster is asked for.
    pub raster: Option<PixelMap>,
    /// Categories (bins of the category dimension, `Other` included).
    pub ncat: usize,
    /// Index of the category dimension.
    pub cat_dim: usize,
    /// Sample size (0: no sample).
    pub sample_limit: usize,
    /// The sample's rows only when every match fits in `sample_limit`: a
    /// thread stops sampling once its own matches pass the limit.
    pub sample_all_or_none: bool,
    /// Dimensions whose histograms are asked for, in view order.
    pub histograms: Vec<usize>,
    /// True when at most one dimension filters (a filter that passes every
    /// code a row can hold does not count): blocks whose rows all meet the
    /// viewport alike are then answered from the shard's pre-aggregates.
    pub aggregable: bool,
    /// The one dimension that filters, if any.
    pub filtered: Option<usize>,
}

impl Plan {
    /// Compiles a query (already shape-checked) against a shard; errors name
    /// unknown dimensions and bad filter values.
    pub fn new(q: &Query, shard: &Shard) -> Result<Plan> {
        if shard.dims.len() > MAX_DIMS {
            return Err(Error::InvalidQuery(format!(
                "dataset {:?} has {} dimensions; queries support at most {MAX_DIMS}",
                shard.name,
                shard.dims.len()
            )));
        }
        let dim = |name: &str| {
            shard.dim_index(name).ok_or_else(|| {
                Error::InvalidQuery(format!(
                    "dataset {:?} has no dimension {:?}; it has {}",
                    shard.name,
                    truncate(name, 64),
                    shard.dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
                ))
            })
        };
        let mut fail = vec![[0u32; 256]; shard.dims.len()];
        for (name, f) in &q.filters {
            let d = dim(name)?;
            let pass = shard.dims[d].pass_table(f)?;
            for (code, p) in pass.iter().enumerate() {
                fail[d][code] = if *p { 0 } else { 1 << d };
            }
        }
        let viewport = q.viewport.as_ref().map(QViewport::from_viewport);
        let mut plan = Plan {
            fail,
            viewport,
            viewport_filter: q.viewport_filter,
            raster: None,
            ncat: shard.dims[shard.category_dim].nbins() as usize,
            cat_dim: shard.category_dim,
            sample_limit: 0,
            sample_all_or_none: false,
            histograms: vec![],
            aggregable: false,
            filtered: None,
        };
        for v in &q.views {
            match v {
                View::Histogram { dimension } => plan.histograms.push(dim(dimension)?),
                View::Raster { width, height } => {
                    // Refused by `check_shape`; a query built in code may not have been checked.
                    let vp = viewport.ok_or(QueryError::RasterWithoutViewport)?;
                    plan.raster = Some(PixelMap::new(vp, *width, *height));
                }
                View::Sample { limit, all_or_none } => {
                    plan.sample_limit = *limit as usize;
                    plan.sample_all_or_none = *all_or_none;
                }
                View::Rows { .. } => {}
            }
        }
        // Codes a row can hold: the bins and "missing".
        let filtering: Vec<usize> = (0..plan.fail.len())
            .filter(|&d| plan.fail[d][..=shard.dims[d].nbins() as usize].iter().any(|&f| f != 0))
            .collect();
        plan.aggregable = filtering.len() <= 1;
        plan.filtered = filtering.first().copied();
        Ok(plan)
    }
}

/// What one scan produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// Per dimension: counts per code, `nbins + 1` entries (the last is "missing").
    pub hists: Vec<Vec<u64>>,
    /// Rows passing every filter (and inside the viewport when it filters).
    pub selected: u64,
    /// Rows passing every filter and inside the viewport (all selected rows
    /// when there is no viewport): the pool the sample is drawn from.
    pub in_view: u64,
    /// Non-empty pixels of the raster (`row · W + col`, ascending); empty
    /// without a raster view.
    pub pixels: Vec<u32>,
    /// Counts per category of each pixel in `pixels`, `ncat` each.
    pub cells: Vec<u32>,
    /// Sampled rows (indices into the shard), ascending.
    pub sample: Vec<u32>,
}

impl Counts {
    /// The raster as one dense vector `[(row · W + col) · ncat + category]`.
    pub fn dense_raster(&self, width: u32, height: u32, ncat: usize) -> Vec<u32> {
        let mut dense = vec![0u32; width as usize * height as usize * ncat];
        for (i, &p) in self.pixels.iter().enumerate() {
            let p = p as usize;
            dense[p * ncat..(p + 1) * ncat].copy_from_slice(&self.cells[i * ncat..(i + 1) * ncat]);
        }
        dense
    }
}

pub use crate::store::{SAMPLE_SALT, sample_priority};

struct Acc {
    hists: Vec<[[u32; 256]; LANES]>,
    selected: u64,
    in_view: u64,
    grid: Option<raster::Grid>,
    heap: BinaryHeap<(u64, u32)>,
    threshold: u64,
    /// (block, category code, last kept priority) of full kept-row lists.
    unseen: Vec<(u32, u8, u64)>,
}

impl Acc {
    fn new(ndims: usize, plan: &Plan) -> Acc {
        Acc {
            hists: vec![[[0u32; 256]; LANES]; ndims],
            selected: 0,
            in_view: 0,
            grid: plan.raster.map(|r| raster::Grid::new(r.width, r.height, plan.ncat)),
            heap: BinaryHeap::new(),
            threshold: u64::MAX,
            unseen: vec![],
        }
    }

    /// The sample size still worth collecting: none once an all-or-none
    /// sample has seen more matches than it may return (the shard's matches
    /// are at least this thread's).
    fn sample_limit(&self, plan: &Plan) -> usize {
        if plan.sample_all_or_none && self.in_view > plan.sample_limit as u64 { 0 } else { plan.sample_limit }
    }
}

/// Keeps the `limit` rows of smallest priority; `threshold` is the largest kept
/// priority once the heap is full, so most rows are rejected by one compare.
fn offer(heap: &mut BinaryHeap<(u64, u32)>, threshold: &mut u64, p: u64, row: u32, limit: usize) {
    heap.push((p, row));
    if heap.len() > limit {
        heap.pop();
    }
    if heap.len() == limit {
        *threshold = heap.peek().map_or(u64::MAX, |t| t.0);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Test each row against the viewport.
    Check,
    /// Every row is inside.
    In,
    /// Every row is outside.
    Out,
}

/// Rows a scan of the plan reads one by one (blocks outside a filtering
/// viewport are skipped, blocks answered from pre-aggregates cost no row
/// unless a raster or a large sample needs their rows): what it will cost,
/// known before it runs.
pub fn rows_to_visit(shard: &Shard, plan: &Plan) -> usize {
    visits(shard, plan)
        .iter()
        .filter(|&&(_, mode)| {
            let aggregated = plan.aggregable && mode != Mode::Check;
            let rows_needed = mode == Mode::In && plan.raster.is_some();
            !aggregated || rows_needed
        })
        .map(|&(b, _)| (shard.blocks[b].end - shard.blocks[b].start) as usize)
        .sum()
}

/// Below this many rows a scan runs on one thread (splitting costs more).
pub const SMALL_SCAN_ROWS: usize = 200_000;

/// Blocks to visit, with how they meet the viewport.
fn visits(shard: &Shard, plan: &Plan) -> Vec<(usize, Mode)> {
    shard
        .blocks
        .iter()
        .enumerate()
        .filter_map(|(b, blk)| {
            let mode = match &plan.viewport {
                None => Mode::In,
                Some(vp) => match blk.overlap(vp) {
                    Overlap::Inside => Mode::In,
                    Overlap::Partial => Mode::Check,
                    Overlap::Outside => Mode::Out,
                },
            };
            // Outside blocks contribute nothing when the viewport filters.
            (!(mode == Mode::Out && plan.viewport_filter)).then_some((b, mode))
        })
        .collect()
}

/// Answers the plan: a brushing plan's raster from the shard's brush index
/// (built on its first use), anything else by [`scan`].
pub fn answer(shard: &Shard, plan: &Plan) -> Counts {
    brush::answer(shard, plan).unwrap_or_else(|| scan(shard, plan))
}

/// [`answer`] for a server's shared shard: a brush index is built in the
/// background and the plan scanned meanwhile.
pub fn answer_shared(shard: &std::sync::Arc<Shard>, plan: &Plan) -> Counts {
    brush::answer_shared(shard, plan).unwrap_or_else(|| scan(shard, plan))
}

/// Scans running in this process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// One running scan, counted in [`RUNNING`] while it lives.
struct Running;

impl Running {
    /// Counts a scan in; returns it and how many others were running.
    fn enter() -> (Running, usize) {
        (Running, RUNNING.fetch_add(1, Ordering::Relaxed))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs the plan over the shard with the rayon pool of the caller.
pub fn scan(shard: &Shard, plan: &Plan) -> Counts {
    let work = visits(shard, plan);
    let rows: usize = work.iter().map(|&(b, _)| (shard.blocks[b].end - shard.blocks[b].start) as usize).sum();
    let threads = rayon::current_num_threads().max(1);
    let (_running, others) = Running::enter();
    // Threads other scans leave free: a busy worker runs its scans side by
    // side, each on one thread (one raster grid each, none to merge).
    let parts = if rows < SMALL_SCAN_ROWS { 1 } else { threads.saturating_sub(others).max(1) };
    // Contiguous parts of about equal rows.
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut acc_rows) = (0usize, 0usize);
    for (k, &(b, _)) in work.iter().enumerate() {
        acc_rows += (shard.blocks[b].end - shard.blocks[b].start) as usize;
        if acc_rows * parts >= rows * (ranges.len() + 1) && ranges.len() + 1 < parts {
            ranges.push(start..k + 1);
            start = k + 1;
        }
    }
    ranges.push(start..work.len());
    let ndims = shard.dims.len();
    let accs: Vec<Acc> = ranges
        .into_par_iter()
        .map(|r| {
            let mut acc = Acc::new(ndims, plan);
            for &(b, mode) in &work[r] {
                if plan.aggregable && mode != Mode::Check {
                    from_aggregates(shard, plan, b, mode, &mut acc);
                } else {
                    scan_block_dispatch(shard, plan, b, mode, &mut acc);
                }
            }
            finish_samples(shard, plan, &mut acc);
            acc
        })
        .collect();
    merge(shard, plan, accs)
}

fn merge(shard: &Shard, plan: &Plan, mut accs: Vec<Acc>) -> Counts {
    let mut hists: Vec<Vec<u64>> = shard.dims.iter().map(|d| vec![0u64; d.nbins() as usize + 1]).collect();
    let (mut selected, mut in_view) = (0, 0);
    let mut heap: BinaryHeap<(u64, u32)> = BinaryHeap::new();
    let mut grid: Option<raster::Grid> = None;
    for acc in accs.iter_mut() {
        for (d, h) in hists.iter_mut().enumerate() {
            for (code, slot) in h.iter_mut().enumerate() {
                *slot += acc.hists[d].iter().map(|lane| lane[code] as u64).sum::<u64>();
            }
        }
        selected += acc.selected;
        in_view += acc.in_view;
        match (&mut grid, acc.grid.take()) {
            (None, g) => grid = g,
            (Some(into), Some(mut g)) => into.absorb(&mut g),
            (Some(_), None) => {}
        }
        for item in acc.heap.drain() {
            heap.push(item);
            if heap.len() > plan.sample_limit {
                heap.pop();
            }
        }
    }
    let (pixels, cells) = grid.as_mut().map(raster::Grid::take_sparse).unwrap_or_default();
    let mut sample: Vec<u32> = heap.into_iter().map(|(_, r)| r).collect();
    if plan.sample_all_or_none && in_view > plan.sample_limit as u64 {
        sample.clear();
    }
    sample.sort_unstable();
    Counts { hists, selected, in_view, pixels, cells, sample }
}

/// Marks the pixels a block may count in (its bounding box within the viewport).
/// Returns the marked pixel rectangle `(r0, r1, c0, c1)`, if any.
fn mark_block(grid: &mut raster::Grid, pm: &PixelMap, blk: &crate::store::Block) -> Option<(u32, u32, u32, u32)> {
    let vp = pm.vp;
    let last = |n: u64| n.saturating_sub(1);
    // y: no wrap; clip to the viewport.
    let rows = pm.rows_of(blk.ymin, blk.ymax)?;
    let (r0, r1) = (rows.start, rows.end - 1);
    // x: modulo 2^32 from the west edge; a block straddling the west edge marks every column.
    let a = blk.xmin.wrapping_sub(vp.x0) as u64;
    let b = blk.xmax.wrapping_sub(vp.x0) as u64;
    let (c0, c1) = if a <= b {
        if a >= vp.wx {
            return None;
        }
        (pm.col(a), pm.col(b.min(last(vp.wx))))
    } else {
        (0, pm.width - 1)
    };
    grid.mark(r0, r1, c0, c1);
    Some((r0, r1, c0, c1))
}

/// A block whose rows all meet the viewport alike (`In`, or `Out` when the
/// viewport does not filter), under an aggregable plan: histograms and counts
/// from the pre-aggregates, sample candidates from the kept rows, the raster
/// from a lean pass over positions and categories.
fn from_aggregates(shard: &Shard, plan: &Plan, b: usize, mode: Mode, acc: &mut Acc) {
    let agg = &shard.aggregates;
    let cat = plan.cat_dim;
    let ncodes = agg.codes[cat];
    // The dimension whose codes decide which rows count (the category's when none filters).
    let f = plan.filtered.unwrap_or(cat);
    let passes = |code: usize| plan.fail[f][code] == 0;
    for d in 0..shard.dims.len() {
        let lane = &mut acc.hists[d][0];
        if d == f {
            for (slot, &n) in lane.iter_mut().zip(agg.marginal(b, d)) {
                *slot += n;
            }
        } else {
            agg.add_given(b, d, f, passes, &mut lane[..agg.codes[d]]);
        }
    }
    let selected: u64 =
        agg.marginal(b, f).iter().enumerate().filter(|&(code, _)| passes(code)).map(|(_, &n)| n as u64).sum();
    acc.selected += selected;
    if mode != Mode::In {
        return; // outside a viewport that does not filter: histograms only
    }
    acc.in_view += selected;
    if let (Some(pm), Some(grid)) = (&plan.raster, acc.grid.as_mut()) {
        match mark_block(grid, pm, &shard.blocks[b]) {
            // The whole block falls in one pixel (a dense city seen from afar):
            // its counts per category are the pixel's.
            Some((r0, r1, c0, c1)) if r0 == r1 && c0 == c1 => {
                // On the stack: this runs once per single-pixel block.
                let mut counts = [0u32; 256];
                let per_cat = &mut counts[..ncodes];
                if f == cat {
                    for (c, &n) in agg.marginal(b, cat).iter().enumerate().filter(|&(c, _)| passes(c)) {
                        per_cat[c] = n;
                    }
                } else {
                    agg.add_given(b, cat, f, passes, per_cat);
                }
                let counts = per_cat.iter().map(|&n| u16::try_from(n).expect("a block holds fewer than 65,536 rows"));
                add_to_pixel(grid, pm, (r0, c0), plan.ncat, counts.enumerate());
            }
            // Sub-blocks falling in one pixel add their counts per category
            // when those alone decide which rows count (no filter but the
            // category's); the rest are read.
            Some(_) if f == cat => {
                let pass = pass_table(plan, f);
                let per_sub = SUB_ROWS as u32;
                let blk = shard.blocks[b];
                for k in (blk.start / per_sub) as usize..blk.end.div_ceil(per_sub) as usize {
                    let sub = &agg.subs[k];
                    match mark_block(grid, pm, sub) {
                        Some((r0, r1, c0, c1)) if r0 == r1 && c0 == c1 => {
                            let counts = agg.sub_categories(k).iter().copied().enumerate().filter(|&(c, _)| passes(c));
                            add_to_pixel(grid, pm, (r0, c0), plan.ncat, counts);
                        }
                        _ => raster_rows(shard, plan, f, &pass, sub.start as usize..sub.end as usize, grid),
                    }
                }
            }
            _ => raster_rows(shard, plan, f, &pass_table(plan, f), blk_rows(&shard.blocks[b]), grid),
        }
    }
    let limit = acc.sample_limit(plan);
    if limit > 0 {
        // The kept rows that pass are the candidates; a full list may hide
        // rows of larger priority, which `finish_samples` reads if they could
        // still make the sample.
        let fcodes = &shard.codes[f];
        for c in (0..ncodes).filter(|&c| f != cat || passes(c)) {
            let mut last = None;
            let mut kept = 0;
            for row in agg.sample_rows(b, c) {
                let p = sample_priority(row, SAMPLE_SALT);
                last = Some(p);
                kept += 1;
                if p < acc.threshold && passes(fcodes[row as usize] as usize) {
                    offer(&mut acc.heap, &mut acc.threshold, p, row, limit);
                }
            }
            if let (Some(p), SAMPLE_KEEP) = (last, kept) {
                acc.unseen.push((b as u32, c as u8, p));
            }
        }
    }
}

/// After a thread's blocks: the rows pre-aggregates did not keep, read only
/// for the (block, category) lists whose last kept priority is below the
/// thread's sample threshold (otherwise none of them can enter the sample).
fn finish_samples(shard: &Shard, plan: &Plan, acc: &mut Acc) {
    if acc.sample_limit(plan) == 0 {
        acc.unseen.clear();
        return;
    }
    let cats = &shard.codes[plan.cat_dim];
    let f = plan.filtered.unwrap_or(plan.cat_dim);
    let fcodes = &shard.codes[f];
    for (b, c, last) in std::mem::take(&mut acc.unseen) {
        if last >= acc.threshold {
            continue;
        }
        let blk = shard.blocks[b as usize];
        for row in blk.start..blk.end {
            if cats[row as usize] == c && plan.fail[f][fcodes[row as usize] as usize] == 0 {
                let p = sample_priority(row, SAMPLE_SALT);
                if p > last && p < acc.threshold {
                    offer(&mut acc.heap, &mut acc.threshold, p, row, plan.sample_limit);
                }
            }
        }
    }
}

/// Adds `(category, count)` pairs (categories below `ncat`) to the pixel at
/// `(row, col)`: a block or sub-block whose rows all fall in it.
fn add_to_pixel(
    grid: &mut raster::Grid,
    pm: &PixelMap,
    (row, col): (u32, u32),
    ncat: usize,
    counts: impl Iterator<Item = (usize, u16)>,
) {
    let at = (row as usize * pm.width as usize + col as usize) * ncat;
    let mut cells = grid.cells_mut();
    for (c, n) in counts.take_while(|&(c, _)| c < ncat) {
        cells.add(at + c, n);
    }
}

fn blk_rows(blk: &crate::store::Block) -> std::ops::Range<usize> {
    blk.start as usize..blk.end as usize
}

/// 1 for the codes of dimension `f` that pass the plan's filter, else 0.
fn pass_table(plan: &Plan, f: usize) -> [u32; 256] {
    std::array::from_fn(|c| u32::from(plan.fail[f][c] == 0))
}

/// The raster of rows `rows` (of a block wholly inside the viewport),
/// counting the rows whose code of dimension `f` passes (`pass`, from
/// [`pass_table`]): positions, categories and that code only.
fn raster_rows(
    shard: &Shard,
    plan: &Plan,
    f: usize,
    pass: &[u32; 256],
    rows: std::ops::Range<usize>,
    grid: &mut raster::Grid,
) {
    let (s, e) = (rows.start, rows.end);
    let (xs, ys, cats, fcodes) =
        (&shard.xs[s..e], &shard.ys[s..e], &shard.codes[plan.cat_dim][s..e], &shard.codes[f][s..e]);
    let pm = plan.raster.expect("a raster view");
    let ncat = plan.ncat;
    let spare = grid.spare();
    let mut cells = grid.cells_mut();
    for i in 0..xs.len() {
        let hit = pass[fcodes[i] as usize];
        let p = pm.pixel_wrapping(xs[i], ys[i]) as usize * ncat + cats[i] as usize;
        let idx = if hit != 0 { p } else { spare + (i & 7) };
        cells.add(idx, hit as u16);
    }
}

fn scan_block_dispatch(shard: &Shard, plan: &Plan, b: usize, mode: Mode, acc: &mut Acc) {
    if mode != Mode::Out
        && let (Some(pm), Some(grid)) = (&plan.raster, acc.grid.as_mut())
    {
        let _ = mark_block(grid, pm, &shard.blocks[b]);
    }
    macro_rules! go {
        ($n:literal) => {{
            let cols: [&[u8]; $n] = std::array::from_fn(|d| shard.codes[d].as_slice());
            let fail: [&[u32; 256]; $n] = std::array::from_fn(|d| &plan.fail[d]);
            match (mode, plan.viewport_filter, plan.raster.is_some()) {
                (Mode::Check, false, false) => block::<$n, 0, false, false>(shard, plan, b, cols, fail, acc),
                (Mode::Check, false, true) => block::<$n, 0, false, true>(shard, plan, b, cols, fail, acc),
                (Mode::Check, true, false) => block::<$n, 0, true, false>(shard, plan, b, cols, fail, acc),
                (Mode::Check, true, true) => block::<$n, 0, true, true>(shard, plan, b, cols, fail, acc),
                (Mode::In, _, false) => block::<$n, 1, false, false>(shard, plan, b, cols, fail, acc),
                (Mode::In, _, true) => block::<$n, 1, false, true>(shard, plan, b, cols, fail, acc),
                (Mode::Out, _, _) => block::<$n, 2, false, false>(shard, plan, b, cols, fail, acc),
            }
        }};
    }
    match shard.dims.len() {
        1 => go!(1),
        2 => go!(2),
        3 => go!(3),
        4 => go!(4),
        5 => go!(5),
        6 => go!(6),
        7 => go!(7),
        8 => go!(8),
        n => unreachable!("plans reject {n} dimensions"),
    }
}

/// The inner loop over one block. `MODE`: 0 test each row against the
/// viewport, 1 all rows inside, 2 all rows outside. `VPF`: the viewport
/// filters histograms. `RASTER`: count pixels.
///
/// Everything the loop touches per row is a local or a fixed-size array, so
/// nothing is re-read through `acc` and no index is bounds-checked but the
/// raster's.
#[inline(always)]
fn block<const N: usize, const MODE: u8, const VPF: bool, const RASTER: bool>(
    shard: &Shard,
    plan: &Plan,
    b: usize,
    cols: [&[u8]; N],
    fail: [&[u32; 256]; N],
    acc: &mut Acc,
) {
    let blk = shard.blocks[b];
    let (s, e) = (blk.start as usize, blk.end as usize);
    let len = e - s;
    let xs = &shard.xs[s..e];
    let ys = &shard.ys[s..e];
    let cols: [&[u8]; N] = std::array::from_fn(|d| &cols[d][s..e]);
    let cat_col = cols[plan.cat_dim];
    let vp = plan.viewport.unwrap_or(QViewport::WORLD);
    let pm = plan.raster.unwrap_or(PixelMap::new(QViewport::WORLD, 1, 1));
    let ncat = plan.ncat;
    let sample = acc.sample_limit(plan);
    let mut selected = 0u64;
    let mut in_view = 0u64;
    let hists: &mut [[[u32; 256]; LANES]; N] = (&mut acc.hists[..N]).try_into().expect("one histogram per dimension");
    let mut no_spill = Vec::new();
    let (mut cells, spare) = match acc.grid.as_mut() {
        Some(g) if RASTER => {
            let spare = g.spare();
            (g.cells_mut(), spare)
        }
        _ => (raster::Cells { counters: &mut [], spill: &mut no_spill }, 0),
    };
    let heap = &mut acc.heap;
    let threshold = &mut acc.threshold;
    for i in 0..len {
        let c: [u8; N] = std::array::from_fn(|d| cols[d][i]);
        let mut m = 0u32;
        for d in 0..N {
            m |= fail[d][c[d] as usize];
        }
        let inside = match MODE {
            0 => vp.contains(xs[i], ys[i]),
            1 => true,
            _ => false,
        };
        if VPF && !inside {
            m |= VP_BIT;
        }
        let lane = i & (LANES - 1);
        // Branch-free crossfilter: a dimension counts the row when no other
        // bit is set (its own may be).
        for d in 0..N {
            let others = m & !(1u32 << d);
            hists[d][lane][c[d] as usize] += u32::from(others == 0);
        }
        let hit = u32::from(m == 0);
        selected += hit as u64;
        let hit_in = hit & u32::from(inside);
        in_view += hit_in as u64;
        if RASTER {
            // Rows that do not count add 0 to one of the spare counters past
            // the raster, so there is no branch to mispredict.
            let p = pm.pixel_wrapping(xs[i], ys[i]) as usize * ncat + cat_col[i] as usize;
            let idx = if hit_in != 0 { p } else { spare + (i & 7) };
            cells.add(idx, hit_in as u16);
        }
        if sample > 0 && hit_in != 0 {
            // Rare path: rows that match, when a sample is asked for.
            let row = (s + i) as u32;
            let p = sample_priority(row, SAMPLE_SALT);
            if p < *threshold {
                offer(heap, threshold, p, row, sample);
            }
        }
    }
    acc.selected += selected;
    acc.in_view += in_view;
}

/// One plain pass over the same columns the kernel reads (the floor a kernel
/// is measured against): sums every column with the same parallelism.
pub fn plain_pass(shard: &Shard) -> u64 {
    let n = shard.xs.len();
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads).max(1);
    (0..threads)
        .into_par_iter()
        .map(|t| {
            let (s, e) = ((t * chunk).min(n), ((t + 1) * chunk).min(n));
            let mut sum: u64 = 0;
            for &x in &shard.xs[s..e] {
                sum = sum.wrapping_add(x as u64);
            }
            for &y in &shard.ys[s..e] {
                sum = sum.wrapping_add(y as u64);
            }
            for c in &shard.codes {
                for &v in &c[s..e] {
                    sum = sum.wrapping_add(v as u64);
                }
            }
            sum
        })
        .reduce(|| 0, u64::wrapping_add)
}
