//! The in-memory layout the kernels scan.
//!
//! A shard holds, per row, quantised Web Mercator `x`/`y` (`u32` each) and one
//! bin code (`u8`) per dimension: 11 bytes a row for the cell-tower preset.
//! Rows are sorted along a Hilbert curve and cut into blocks of
//! [`BLOCK_ROWS`] rows with bounding boxes, so a zoomed viewport skips blocks
//! that cannot match and treats blocks wholly inside it without per-row tests.

mod aggregates;
mod brush;
mod build;
pub mod detail;
mod registry;

pub use aggregates::{Aggregates, SAMPLE_KEEP, SUB_ROWS};
pub use brush::{BrushIndex, BrushIndexes, BrushKey};
pub(crate) use build::phase;
pub use build::{
    Builder, DetailMeta, MAX_RECORD_DIMS, SEAL_ROWS, hilbert_key, hilbert_point, peak_bytes_per_row,
    peak_bytes_per_row_with_details,
};
pub use detail::{DetailInfo, DetailKind, Details};
pub use registry::{Registry, Slot, SlotStatus};

use crate::bins::DimBins;
use crate::geo::QViewport;
use crate::protocol::ShardInfo;
use crate::spec::ViewConfig;

/// Rows per block.
pub const BLOCK_ROWS: usize = 16_384;

/// Salt of the sample priorities.
pub const SAMPLE_SALT: u64 = 0x5157_4956_4552;

/// The sample priority of a row: a fixed pseudo-random permutation, so the
/// `k` rows of smallest priority are a uniform sample that merges across
/// threads and shards.
#[inline(always)]
pub fn sample_priority(row: u32, salt: u64) -> u64 {
    let mut z = (row as u64) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bounding box of a block, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// First row.
    pub start: u32,
    /// One past the last row.
    pub end: u32,
    /// Smallest x.
    pub xmin: u32,
    /// Largest x.
    pub xmax: u32,
    /// Smallest y.
    pub ymin: u32,
    /// Largest y.
    pub ymax: u32,
}

/// Cuts rows (in store order) into blocks of `rows_per_block` with their
/// bounding boxes: the blocks of [`BLOCK_ROWS`], and the pre-aggregates'
/// sub-blocks.
fn cut_blocks(xs: &[u32], ys: &[u32], rows_per_block: usize) -> Vec<Block> {
    use rayon::prelude::*;
    let n = xs.len();
    (0..n.div_ceil(rows_per_block))
        .into_par_iter()
        .map(|b| {
            let (s, e) = (b * rows_per_block, ((b + 1) * rows_per_block).min(n));
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

/// How a block relates to a viewport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// No row can be inside.
    Outside,
    /// Every row is inside.
    Inside,
    /// Rows must be tested one by one.
    Partial,
}

impl Block {
    /// Classifies the block against a viewport (handles the antimeridian wrap).
    pub fn overlap(&self, vp: &QViewport) -> Overlap {
        // y: plain interval test.
        let y0 = vp.y0 as u64;
        let y1 = y0 + vp.hy; // exclusive
        let (bymin, bymax) = (self.ymin as u64, self.ymax as u64);
        if bymax < y0 || bymin >= y1 {
            return Overlap::Outside;
        }
        let y_inside = bymin >= y0 && bymax < y1;
        // x: the viewport is [x0, x0 + wx) modulo 2^32. Shift so x0 is at 0; the
        // block's [xmin, xmax] stays an interval unless it straddles x0.
        if vp.full_width() {
            return if y_inside { Overlap::Inside } else { Overlap::Partial };
        }
        let a = self.xmin.wrapping_sub(vp.x0) as u64;
        let b = self.xmax.wrapping_sub(vp.x0) as u64;
        let x_inside = if a <= b {
            // Block does not straddle x0 after shifting.
            if a >= vp.wx {
                return Overlap::Outside;
            }
            b < vp.wx
        } else {
            // Straddles the seam at x0: contains x0 itself, so it overlaps.
            false
        };
        if x_inside && y_inside { Overlap::Inside } else { Overlap::Partial }
    }
}

/// One dataset's rows on this worker, ready for the kernels.
#[derive(Debug)]
pub struct Shard {
    /// Dataset name.
    pub name: String,
    /// The effective view config.
    pub view: ViewConfig,
    /// Compiled binning, in the view's dimension order.
    pub dims: Vec<DimBins>,
    /// Index in `dims` of the dimension that colours the map.
    pub category_dim: usize,
    /// Quantised x per row.
    pub xs: Vec<u32>,
    /// Quantised y per row.
    pub ys: Vec<u32>,
    /// Bin codes per dimension per row.
    pub codes: Vec<Vec<u8>>,
    /// Blocks over the rows.
    pub blocks: Vec<Block>,
    /// Which shard this is and of what snapshot.
    pub info: ShardInfo,
    /// Rows dropped at load because they had no position.
    pub dropped_rows: u64,
    /// Per-block pre-aggregates.
    pub aggregates: Aggregates,
    /// Map images by the codes of a brushed dimension, built by queries.
    pub brushes: BrushIndexes,
    /// The rows' exact values of the dataset's detail columns (cold: read
    /// only for the rows a sample or an export returns).
    pub details: Details,
}

impl Shard {
    /// Number of rows.
    pub fn rows(&self) -> u64 {
        self.xs.len() as u64
    }

    /// Bytes held by the row data, the block index, the pre-aggregates and
    /// the detail columns.
    pub fn bytes(&self) -> u64 {
        let cols =
            (self.xs.capacity() + self.ys.capacity()) * 4 + self.codes.iter().map(|c| c.capacity()).sum::<usize>();
        (cols + self.blocks.capacity() * std::mem::size_of::<Block>() + self.aggregates.bytes() + self.details.bytes())
            as u64
    }

    /// Position of a dimension by name.
    pub fn dim_index(&self, name: &str) -> Option<usize> {
        self.dims.iter().position(|d| d.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(xmin: u32, xmax: u32, ymin: u32, ymax: u32) -> Block {
        Block { start: 0, end: 1, xmin, xmax, ymin, ymax }
    }

    #[test]
    fn overlap_classifies_plain_viewports() {
        let vp = QViewport { x0: 100, wx: 100, y0: 1000, hy: 100 };
        assert_eq!(block(120, 150, 1010, 1050).overlap(&vp), Overlap::Inside);
        assert_eq!(block(50, 150, 1010, 1050).overlap(&vp), Overlap::Partial);
        assert_eq!(block(200, 250, 1010, 1050).overlap(&vp), Overlap::Outside);
        assert_eq!(block(120, 150, 1100, 1150).overlap(&vp), Overlap::Outside);
        assert_eq!(block(120, 199, 1000, 1099).overlap(&vp), Overlap::Inside);
    }

    #[test]
    fn overlap_handles_the_antimeridian() {
        // Viewport from x = 2^32 - 50 wrapping to x = 50.
        let vp = QViewport { x0: u32::MAX - 49, wx: 100, y0: 0, hy: 10 };
        assert_eq!(block(0, 40, 0, 5).overlap(&vp), Overlap::Inside);
        assert_eq!(block(u32::MAX - 10, u32::MAX, 0, 5).overlap(&vp), Overlap::Inside);
        assert_eq!(block(60, 1000, 0, 5).overlap(&vp), Overlap::Outside);
        assert_eq!(block(10, u32::MAX, 0, 5).overlap(&vp), Overlap::Partial);
    }
}
