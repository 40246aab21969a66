//! Brushing without scanning: the map image of a viewport broken down by the
//! codes of one dimension, built once when that dimension starts being
//! brushed, so each further brush position sums codes instead of reading rows
//! (after Falcon, Moritz et al., CHI 2019).
//!
//! ```text
//! first query filtering dimension d (with a map image of viewport V):
//!   unfiltered raster of V  ─▶ entries: every non-empty (pixel, category)
//!   rows in V               ─▶ per entry, rows per code of d ─▶ prefix sums
//! every query filtering only d, same V and image size:
//!   per entry Σ over the passing runs of codes (prefix[hi] - prefix[lo])
//! ```
//!
//! Histograms, counts and samples still come from the scan (answered from
//! the shard's per-block pre-aggregates for such queries); only the raster,
//! which needs every row's position, comes from the index. Indexes live with
//! their shard (a new generation starts empty), least recently used first
//! out past a byte budget.

use std::sync::Arc;

use rayon::prelude::*;

use super::{Counts, Plan, scan};
use crate::store::{BrushIndex, BrushKey, Overlap, Shard};
/// Largest image (pixels × categories) an index is built for: building
/// needs a transient table of 4 bytes per cell.
pub const MAX_CELLS: usize = 1 << 24;

/// Builds the index of `pm`'s raster by the codes of dimension `dim`;
/// `None` when it would take more than `max_bytes` or the image is too
/// large. `plan` is a plan of the shard with this raster (its filters
/// are ignored).
pub fn build(shard: &Shard, plan: &Plan, dim: usize, max_bytes: usize) -> Option<BrushIndex> {
    let pm = plan.raster?;
    let ncat = plan.ncat;
    let cells = pm.width as usize * pm.height as usize * ncat;
    if cells > MAX_CELLS {
        return None;
    }
    // Every row in the viewport, whatever the filters: the entries.
    let mut unfiltered = plan.clone();
    for f in unfiltered.fail.iter_mut() {
        *f = [0; 256];
    }
    unfiltered.histograms.clear();
    unfiltered.sample_limit = 0;
    unfiltered.aggregable = true;
    unfiltered.filtered = None;
    let all = scan(shard, &unfiltered);
    let ncodes = shard.dims[dim].nbins() as usize + 1;
    let entries = all.cells.iter().filter(|&&n| n > 0).count();
    let bytes = entries * ((ncodes + 1) * 4 + 1) + all.pixels.len() * 8;
    if bytes > max_bytes {
        return None;
    }
    // Entry of each (pixel, category), plus one (0: none), and the per
    // pixel / per entry tables.
    let mut id = vec![0u32; cells];
    let mut first = Vec::with_capacity(all.pixels.len() + 1);
    let mut cats = Vec::with_capacity(entries);
    for (i, &p) in all.pixels.iter().enumerate() {
        first.push(cats.len() as u32);
        for c in 0..ncat {
            if all.cells[i * ncat + c] > 0 {
                cats.push(c as u8);
                id[p as usize * ncat + c] = cats.len() as u32;
            }
        }
    }
    first.push(cats.len() as u32);
    // Rows per (entry, code). The image is cut into bands of pixel rows
    // holding about equal rows, one per thread; a band owns its entries'
    // part of the table (entries run in pixel order), so threads count
    // without atomics, and each reads only the blocks reaching its rows.
    let mut counts = vec![0u32; entries * ncodes];
    let edges = band_edges(&all, pm.width, pm.height, ncat, rayon::current_num_threads());
    let mut bands = Vec::with_capacity(edges.len() - 1);
    let (mut rest, mut done) = (counts.as_mut_slice(), 0usize);
    for w in edges.windows(2) {
        let upto = first[all.pixels.partition_point(|&p| p < w[1] * pm.width)] as usize;
        let (mine, tail) = rest.split_at_mut((upto - done) * ncodes);
        bands.push((w[0]..w[1], done, mine));
        (rest, done) = (tail, upto);
    }
    let (cat_codes, codes) = (&shard.codes[plan.cat_dim], &shard.codes[dim]);
    bands.into_par_iter().for_each(|(rows, e0, mine)| {
        let pixels = rows.start * pm.width..rows.end * pm.width;
        for blk in &shard.blocks {
            let check = match blk.overlap(&pm.vp) {
                Overlap::Outside => continue,
                Overlap::Inside => false,
                Overlap::Partial => true,
            };
            match pm.rows_of(blk.ymin, blk.ymax) {
                Some(r) if r.start < rows.end && rows.start < r.end => {}
                _ => continue,
            }
            for r in blk.start as usize..blk.end as usize {
                let (x, y) = (shard.xs[r], shard.ys[r]);
                if check && !pm.vp.contains(x, y) {
                    continue;
                }
                let p = pm.pixel(x, y);
                if !pixels.contains(&p) {
                    continue;
                }
                let e = id[p as usize * ncat + cat_codes[r] as usize] as usize - 1 - e0;
                mine[e * ncodes + codes[r] as usize] += 1;
            }
        }
    });
    drop(id);
    let mut prefix = Vec::with_capacity(entries * (ncodes + 1));
    for e in 0..entries {
        let mut sum = 0u32;
        prefix.push(0);
        for c in 0..ncodes {
            sum += counts[e * ncodes + c];
            prefix.push(sum);
        }
    }
    Some(BrushIndex::from_parts(ncat, ncodes, all.pixels, first, cats, prefix))
}

/// Edges of `bands` bands of the image's pixel rows (`bands + 1` rows, from
/// 0 to `height`), each holding about the same rows of `all`'s raster.
fn band_edges(all: &Counts, width: u32, height: u32, ncat: usize, bands: usize) -> Vec<u32> {
    let mut per_row = vec![0u64; height as usize];
    for (i, &p) in all.pixels.iter().enumerate() {
        per_row[(p / width) as usize] += all.cells[i * ncat..(i + 1) * ncat].iter().map(|&n| n as u64).sum::<u64>();
    }
    let total: u64 = per_row.iter().sum();
    let bands = bands.max(1) as u64;
    let mut edges = vec![0u32];
    let mut acc = 0u64;
    for (r, n) in per_row.iter().enumerate() {
        acc += n;
        // Close a band once it holds its share of the rows.
        while (edges.len() as u64) < bands && acc * bands >= total * edges.len() as u64 && total > 0 {
            edges.push(r as u32 + 1);
        }
    }
    while edges.len() as u64 <= bands {
        edges.push(height);
    }
    *edges.last_mut().expect("edges") = height;
    edges
}

/// The dimension a plan brushes, when its raster can come from an index: a
/// map image is asked for and the only filter is on one dimension other than
/// the category (a category click is answered from pre-aggregates already).
pub fn brushed_dim(plan: &Plan) -> Option<usize> {
    let d = plan.filtered?;
    (plan.raster.is_some() && plan.aggregable && d != plan.cat_dim).then_some(d)
}

/// Answers a brushing plan with its raster from the shard's index for it
/// (built now if absent); `None` when the plan does not brush or no index fits.
pub fn answer(shard: &Shard, plan: &Plan) -> Option<Counts> {
    let d = brushed_dim(plan)?;
    let key = BrushKey::new(plan.raster.as_ref()?, d);
    let budget = shard.brushes.budget();
    let index = shard.brushes.get_or_build(key, || build(shard, plan, d, budget))?;
    Some(with_raster_from(shard, plan, d, &index))
}

/// Like [`answer`], but a missing index is built in the background (on the
/// rayon pool) while this plan is scanned: the first position of a brush
/// costs what it did without indexes, later ones find the index ready.
pub fn answer_shared(shard: &Arc<Shard>, plan: &Plan) -> Option<Counts> {
    let d = brushed_dim(plan)?;
    let key = BrushKey::new(plan.raster.as_ref()?, d);
    if let Some(index) = shard.brushes.get(key) {
        return Some(with_raster_from(shard, plan, d, &index));
    }
    if shard.brushes.claim(key) {
        let (shard, plan) = (shard.clone(), plan.clone());
        rayon::spawn(move || {
            let budget = shard.brushes.budget();
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(&shard, &plan, d, budget)));
            shard.brushes.deliver(key, built.ok().flatten());
        });
    }
    None
}

/// The plan's answer with the raster from `index` and the rest scanned.
fn with_raster_from(shard: &Shard, plan: &Plan, d: usize, index: &BrushIndex) -> Counts {
    let mut rest = plan.clone();
    rest.raster = None;
    let mut counts = scan(shard, &rest);
    (counts.pixels, counts.cells) = index.raster(|c| plan.fail[d][c] == 0);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raster of `width` columns with `rows[r]` rows in one pixel of each
    /// pixel row `r`, split over two categories.
    fn raster(width: u32, rows: &[u32]) -> Counts {
        let mut c = Counts { hists: vec![], selected: 0, in_view: 0, pixels: vec![], cells: vec![], sample: vec![] };
        for (r, &n) in rows.iter().enumerate().filter(|&(_, &n)| n > 0) {
            c.pixels.push(r as u32 * width + (r as u32 % width));
            c.cells.extend([n / 2, n - n / 2]);
        }
        c
    }

    #[test]
    fn bands_cover_every_pixel_row_once_with_about_equal_rows() {
        let cases: [&[u32]; 5] = [&[5, 0, 0, 7, 1, 1, 0, 9], &[0; 6], &[100, 0, 0, 0], &[1; 40], &[0, 0, 3]];
        for rows in cases {
            let height = rows.len() as u32;
            let total: u32 = rows.iter().sum();
            let largest = rows.iter().copied().max().unwrap_or(0);
            for bands in 1..6 {
                let edges = band_edges(&raster(7, rows), 7, height, 2, bands);
                assert_eq!(edges.len(), bands + 1, "{rows:?} in {bands}");
                assert_eq!((edges[0], edges[bands]), (0, height), "{rows:?} in {bands}");
                assert!(edges.windows(2).all(|w| w[0] <= w[1]), "{rows:?} in {bands}: {edges:?}");
                for w in edges.windows(2) {
                    let held: u32 = rows[w[0] as usize..w[1] as usize].iter().sum();
                    // A band closes at the first row reaching its share.
                    assert!(held <= total.div_ceil(bands as u32) + largest, "{rows:?} in {bands}: {edges:?}");
                }
            }
        }
    }
}
