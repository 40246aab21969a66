//! Raster scratch: the dense per-thread count grids of a scan, reused across
//! queries, so a scan neither page-faults nor zeroes a fresh grid of
//! W×H×categories counters, and everything after the scan (the merge of the
//! threads' grids, the sparse extraction, the zeroing for the next query)
//! costs what the scan touched, not the pixel count.
//!
//! The grid is row-major (`(row · W + col) · ncat + category`, the order of
//! the protocol's sparse pixels). What a scan touched is tracked in tiles of
//! [`TILE`]×[`TILE`] pixels, marked once per block from its bounding box, not
//! per row. Grids live in a small pool and are all zero whenever they are in it.
//!
//! Counters are 16 bits: a 1400×800 map of 6 categories is 13 MB a thread
//! instead of 27, so the two threads' grids fit a 32 MiB L3 together (and
//! the pool). A counter that wraps logs its index in the grid's spill list
//! (each entry is 65,536 more), a branch taken once per 65,536 increments.

use std::sync::Mutex;

/// Side of a tracking tile, pixels.
pub const TILE: u32 = 32;
/// Counters past the grid that rows which do not count add 0 to (so the
/// inner loop has no branch).
pub const SPARE: usize = 8;
/// Bytes of grids kept for reuse at most (a 1400×800 map of 6 categories
/// is 13 MB): what a worker holds beyond its data between queries.
const KEEP_MAX_BYTES: usize = 48 << 20;
/// Grids kept for reuse at most (two scans of two threads at once).
const KEEP_MAX: usize = 4;

static POOL: Mutex<Vec<Vec<u16>>> = Mutex::new(Vec::new());

/// A zeroed grid of at least `len` counters, from the pool when one fits.
fn take(len: usize) -> Vec<u16> {
    let reused = {
        let mut pool = POOL.lock().expect("raster pool");
        // The smallest kept grid that is large enough, else the largest (grown below).
        let fit = pool.iter().enumerate().filter(|(_, b)| b.len() >= len).min_by_key(|(_, b)| b.len()).map(|(i, _)| i);
        let pick = fit.or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.len()).map(|(i, _)| i));
        pick.map(|i| pool.swap_remove(i))
    };
    match reused {
        Some(b) if b.len() >= len => {
            check_zero(&b);
            b
        }
        Some(b) if b.capacity() >= len => {
            let mut b = b;
            b.resize(len, 0);
            b
        }
        _ => fresh(len),
    }
}

/// A new zeroed grid. Large grids ask for transparent huge pages before their
/// first touch (many machines enable them only on request): a scan's random
/// increments then cost no TLB misses.
fn fresh(len: usize) -> Vec<u16> {
    let v = vec![0u16; len];
    crate::mem::advise_huge_pages(&v);
    v
}

/// With debug assertions, small grids are checked to be all zero where the
/// pool promises it (large ones would slow the optimised test build).
fn check_zero(cells: &[u16]) {
    if cfg!(debug_assertions) && cells.len() <= 1 << 20 {
        assert!(cells.iter().all(|&c| c == 0), "a raster count outside the tiles marked as touched");
    }
}

/// Puts a zeroed grid back, within [`KEEP_MAX`] grids and [`KEEP_MAX_BYTES`]
/// (larger grids first: they serve every smaller query too).
fn give(b: Vec<u16>) {
    let mut pool = POOL.lock().expect("raster pool");
    pool.push(b);
    pool.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let (mut kept, mut kept_bytes) = (0, 0);
    pool.retain(|p| {
        let size = std::mem::size_of_val(p.as_slice());
        let fits = kept < KEEP_MAX && kept_bytes + size <= KEEP_MAX_BYTES;
        if fits {
            kept += 1;
            kept_bytes += size;
        }
        fits
    });
}

/// Added to a counter whose index is in a spill list, once per entry.
pub const WRAP: u32 = 1 << 16;

/// A grid's counters and spill list, borrowed together for a counting loop.
pub struct Cells<'a> {
    /// The 16-bit counters.
    pub counters: &'a mut [u16],
    /// Indices of counters that wrapped, once per wrap.
    pub spill: &'a mut Vec<usize>,
}

impl Cells<'_> {
    /// Adds `by` to counter `idx`, logging a wrap.
    #[inline(always)]
    pub fn add(&mut self, idx: usize, by: u16) {
        let (v, wrapped) = self.counters[idx].overflowing_add(by);
        self.counters[idx] = v;
        if wrapped {
            self.spill.push(idx);
        }
    }
}

/// One thread's counts of a raster view.
pub struct Grid {
    cells: Vec<u16>,
    /// Indices of counters that wrapped past `u16::MAX`, once per wrap.
    spill: Vec<usize>,
    width: u32,
    height: u32,
    ncat: usize,
    tiles_w: u32,
    /// One bit per tile, row-major.
    touched: Vec<u64>,
}

impl std::fmt::Debug for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grid")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("ncat", &self.ncat)
            .finish()
    }
}

impl Grid {
    /// A zeroed grid of `width`×`height` pixels of `ncat` counters.
    pub fn new(width: u32, height: u32, ncat: usize) -> Grid {
        let len = width as usize * height as usize * ncat + SPARE;
        let tiles_w = width.div_ceil(TILE);
        let tiles = tiles_w as usize * height.div_ceil(TILE) as usize;
        Grid { cells: take(len), spill: vec![], width, height, ncat, tiles_w, touched: vec![0; tiles.div_ceil(64)] }
    }

    /// The counters: `(row · W + col) · ncat + category`, then [`SPARE`] more.
    /// Callers must [`Grid::mark`] every pixel they add to.
    #[inline(always)]
    pub fn cells_mut(&mut self) -> Cells<'_> {
        let n = self.len();
        Cells { counters: &mut self.cells[..n], spill: &mut self.spill }
    }

    fn len(&self) -> usize {
        self.width as usize * self.height as usize * self.ncat + SPARE
    }

    /// Index of the first spare counter.
    pub fn spare(&self) -> usize {
        self.len() - SPARE
    }

    /// Marks the pixels of rows `r0..=r1`, columns `c0..=c1` as possibly counted.
    pub fn mark(&mut self, r0: u32, r1: u32, c0: u32, c1: u32) {
        let (r1, c1) = (r1.min(self.height - 1), c1.min(self.width - 1));
        if r0 > r1 || c0 > c1 {
            return;
        }
        for tr in r0 / TILE..=r1 / TILE {
            for tc in c0 / TILE..=c1 / TILE {
                let t = (tr * self.tiles_w + tc) as usize;
                self.touched[t / 64] |= 1 << (t % 64);
            }
        }
    }

    /// Tiles marked, as (tile row, tile col), row-major.
    fn tiles(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let tw = self.tiles_w;
        self.touched.iter().enumerate().flat_map(move |(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    let t = w as u32 * 64 + b;
                    (t / tw, t % tw)
                })
            })
        })
    }

    /// The counter ranges of a tile: one contiguous run per pixel row.
    fn runs(&self, tr: u32, tc: u32) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let (w, ncat) = (self.width as usize, self.ncat);
        let c0 = (tc * TILE) as usize;
        let c1 = (c0 + TILE as usize).min(w);
        let r0 = tr * TILE;
        let r1 = (r0 + TILE).min(self.height);
        (r0..r1).map(move |r| {
            let base = r as usize * w;
            (base + c0) * ncat..(base + c1) * ncat
        })
    }

    /// Adds another thread's counts of the same raster, leaving `other`
    /// zero (its counters are cleared as they are read, while in cache, so
    /// dropping it clears nothing more).
    pub fn absorb(&mut self, other: &mut Grid) {
        debug_assert_eq!((self.width, self.height, self.ncat), (other.width, other.height, other.ncat));
        for (tr, tc) in other.tiles().collect::<Vec<_>>() {
            for run in other.runs(tr, tc) {
                let start = run.start;
                let src = &mut other.cells[run.clone()];
                if !any_nonzero(src) {
                    continue;
                }
                for (i, (a, b)) in self.cells[run].iter_mut().zip(src.iter_mut()).enumerate() {
                    let (v, wrapped) = a.overflowing_add(*b);
                    *a = v;
                    *b = 0;
                    if wrapped {
                        self.spill.push(start + i);
                    }
                }
            }
            let t = (tr * self.tiles_w + tc) as usize;
            self.touched[t / 64] |= 1 << (t % 64);
        }
        other.touched.fill(0);
        self.spill.append(&mut other.spill);
    }

    /// The non-empty pixels (ascending `row · W + col`) and their counts per
    /// category, leaving the grid zero (each run of counters is cleared as
    /// it is read, so dropping the grid clears nothing more).
    pub fn take_sparse(&mut self) -> (Vec<u32>, Vec<u32>) {
        let (w, ncat) = (self.width as usize, self.ncat);
        let mut pixels = vec![];
        let mut counts: Vec<u32> = vec![];
        let mut spill = std::mem::take(&mut self.spill);
        spill.sort_unstable();
        let mut e = 0;
        // Row-major over pixels: tile rows, then pixel rows, then the marked tiles of that row.
        let tiles: Vec<(u32, u32)> = self.tiles().collect();
        let mut k = 0;
        while k < tiles.len() {
            let tr = tiles[k].0;
            let end = k + tiles[k..].iter().take_while(|t| t.0 == tr).count();
            let r0 = tr * TILE;
            for r in r0..(r0 + TILE).min(self.height) {
                for &(_, tc) in &tiles[k..end] {
                    let c0 = (tc * TILE) as usize;
                    let c1 = (c0 + TILE as usize).min(w);
                    let base = r as usize * w;
                    let run = (base + c0) * ncat..(base + c1) * ncat;
                    let wraps_here = spill.get(e).is_some_and(|&i| i < run.end);
                    if !wraps_here && !any_nonzero(&self.cells[run.clone()]) {
                        continue;
                    }
                    for p in base + c0..base + c1 {
                        let (lo, hi) = (p * ncat, (p + 1) * ncat);
                        let cell = &self.cells[lo..hi];
                        debug_assert!(spill.get(e).is_none_or(|&i| i >= lo), "a wrap outside the marked tiles");
                        let wrapped = spill.get(e).is_some_and(|&i| i < hi);
                        if wrapped || cell.iter().any(|&c| c != 0) {
                            pixels.push(p as u32);
                            let at = counts.len();
                            counts.extend(cell.iter().map(|&c| u32::from(c)));
                            while let Some(&i) = spill.get(e).filter(|&&i| i < hi) {
                                counts[at + i - lo] += WRAP;
                                e += 1;
                            }
                        }
                    }
                    self.cells[run].fill(0);
                }
            }
            k = end;
        }
        self.touched.fill(0);
        (pixels, counts)
    }

    /// The counts as one dense vector (tests and small rasters).
    pub fn dense(&self) -> Vec<u32> {
        let mut d: Vec<u32> = self.cells[..self.spare()].iter().map(|&c| u32::from(c)).collect();
        for &i in &self.spill {
            d[i] += WRAP;
        }
        d
    }
}

/// Whether any counter of `run` is not zero (an OR over the run, which the
/// compiler vectorises; most runs of a sparse map are all zero).
#[inline]
fn any_nonzero(run: &[u16]) -> bool {
    run.iter().fold(0u16, |acc, &c| acc | c) != 0
}

impl Drop for Grid {
    fn drop(&mut self) {
        // Back to zero where this scan may have counted, then back to the pool.
        for (tr, tc) in self.tiles().collect::<Vec<_>>() {
            for run in self.runs(tr, tc) {
                self.cells[run].fill(0);
            }
        }
        let spare = self.spare();
        self.cells[spare..spare + SPARE].fill(0);
        check_zero(&self.cells);
        give(std::mem::take(&mut self.cells));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two threads' grids of one raster, and its expected dense counts (zero).
    fn two_grids(w: u32, h: u32, ncat: usize) -> (Grid, Grid, Vec<u32>) {
        (Grid::new(w, h, ncat), Grid::new(w, h, ncat), vec![0u32; (w * h) as usize * ncat])
    }

    /// Adds `b` into `a`, checks the dense counts and the sparse extraction
    /// (pixels ascending) against `want`; returns the non-empty pixels.
    fn merge_and_check(a: &mut Grid, b: &mut Grid, want: &[u32], ncat: usize) -> Vec<u32> {
        a.absorb(b);
        assert_eq!(a.dense(), want);
        let (pixels, counts) = a.take_sparse();
        assert!(pixels.windows(2).all(|p| p[0] < p[1]), "ascending");
        let mut rebuilt = vec![0u32; want.len()];
        for (i, &p) in pixels.iter().enumerate() {
            rebuilt[p as usize * ncat..(p as usize + 1) * ncat].copy_from_slice(&counts[i * ncat..(i + 1) * ncat]);
        }
        assert_eq!(rebuilt, want);
        pixels
    }

    #[test]
    fn counts_come_back_sparse_in_pixel_order_and_the_grid_comes_back_zero() {
        let (w, h, ncat) = (100u32, 70u32, 3usize);
        let (mut a, mut b, mut want) = two_grids(w, h, ncat);
        let mut rng = 12345u64;
        for k in 0..2000 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (r, c, cat) = ((rng >> 40) as u32 % h, (rng >> 20) as u32 % w, (rng >> 8) as usize % ncat);
            let g = if k % 2 == 0 { &mut a } else { &mut b };
            g.mark(r, r, c, c);
            g.cells_mut().add(((r * w + c) as usize) * ncat + cat, 1);
            want[((r * w + c) as usize) * ncat + cat] += 1;
        }
        merge_and_check(&mut a, &mut b, &want, ncat);
        drop(a);
        drop(b);
        // Whatever the pool hands out next is zero, also for another shape.
        let g = Grid::new(w + 7, h, ncat);
        assert!(g.dense().iter().all(|&c| c == 0));
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_bytes() {
        for _ in 0..3 * KEEP_MAX {
            give(vec![0u16; 8 << 20]); // 16 MiB each
        }
        let pool = POOL.lock().unwrap();
        let bytes: usize = pool.iter().map(|p| std::mem::size_of_val(p.as_slice())).sum();
        assert!(pool.len() <= KEEP_MAX && bytes <= KEEP_MAX_BYTES, "{} grids, {bytes} bytes", pool.len());
    }

    #[test]
    fn counters_that_wrap_past_16_bits_count_exactly() {
        let (w, h, ncat) = (40u32, 30u32, 2usize);
        let (mut a, mut b, mut want) = two_grids(w, h, ncat);
        // A few hot counters (wrapping several times, split over two threads'
        // grids), one counter ending exactly on a multiple of 65,536, and
        // bulk additions like a single-pixel block's.
        let hot = [(3u32, 5u32, 1usize, 200_000u32), (29, 39, 0, 65_536), (0, 0, 1, 70_000)];
        for (k, &(r, c, cat, n)) in hot.iter().enumerate() {
            let idx = ((r * w + c) as usize) * ncat + cat;
            let mut left = n;
            while left > 0 {
                let step = left.min(if k == 2 { 16_384 } else { 1 });
                let g = if left % 2 == 0 { &mut a } else { &mut b };
                g.mark(r, r, c, c);
                g.cells_mut().add(idx, step as u16);
                left -= step;
            }
            want[idx] += n;
        }
        let pixels = merge_and_check(&mut a, &mut b, &want, ncat);
        assert_eq!(pixels.len(), 3, "the pixel whose counter wrapped to 0 is not empty");
    }

    #[test]
    fn marks_are_clipped_to_the_grid() {
        let mut g = Grid::new(40, 40, 1);
        g.mark(35, 1000, 0, 1000);
        g.mark(5, 2, 0, 0); // empty
        let tiles: Vec<_> = g.tiles().collect();
        assert_eq!(tiles, vec![(1, 0), (1, 1)]);
    }
}
