//! A naive reference for the kernels: one row at a time, no blocks, no
//! threads, no lanes. Tests compare the real kernels against it.

use crate::geo::{PixelMap, QViewport};

use super::Plan;

/// Rows as plain vectors, in any order.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    /// Quantised x.
    pub xs: Vec<u32>,
    /// Quantised y.
    pub ys: Vec<u32>,
    /// Codes per dimension.
    pub codes: Vec<Vec<u8>>,
}

/// What the reference computes.
#[derive(Clone, Debug, PartialEq)]
pub struct RefCounts {
    /// Per dimension, per code (`nbins + 1` entries).
    pub hists: Vec<Vec<u64>>,
    /// Rows passing every filter (and the viewport when it filters).
    pub selected: u64,
    /// Rows passing every filter and inside the viewport.
    pub in_view: u64,
    /// Dense raster.
    pub raster: Vec<u32>,
}

fn passes(plan: &Plan, d: usize, code: u8) -> bool {
    plan.fail[d][code as usize] == 0
}

/// Evaluates the plan row by row. `nbins[d]` is each dimension's bin count.
pub fn evaluate(rows: &Rows, nbins: &[u32], plan: &Plan) -> RefCounts {
    let ndims = rows.codes.len();
    let mut hists: Vec<Vec<u64>> = nbins.iter().map(|&n| vec![0; n as usize + 1]).collect();
    let mut selected = 0;
    let mut in_view = 0;
    let raster_len = plan.raster.map_or(0, |r| (r.width * r.height) as usize * plan.ncat);
    let mut raster = vec![0u32; raster_len];
    for i in 0..rows.xs.len() {
        let (x, y) = (rows.xs[i], rows.ys[i]);
        let inside = plan.viewport.is_none_or(|vp: QViewport| inside_slow(&vp, x, y));
        let vp_ok = !plan.viewport_filter || inside;
        let ok: Vec<bool> = (0..ndims).map(|d| passes(plan, d, rows.codes[d][i])).collect();
        let all = ok.iter().all(|&b| b) && vp_ok;
        if all {
            selected += 1;
        }
        for (d, h) in hists.iter_mut().enumerate() {
            // Counted when every other filter passes.
            let others = vp_ok && (0..ndims).all(|e| e == d || ok[e]);
            if others {
                h[rows.codes[d][i] as usize] += 1;
            }
        }
        if all && inside {
            in_view += 1;
            if let Some(pm) = plan.raster {
                let p = pixel_slow(&pm, x, y);
                raster[p * plan.ncat + rows.codes[plan.cat_dim][i] as usize] += 1;
            }
        }
    }
    RefCounts { hists, selected, in_view, raster }
}

/// Viewport test written without wrapping arithmetic.
fn inside_slow(vp: &QViewport, x: u32, y: u32) -> bool {
    let (x, y) = (x as u64, y as u64);
    let x0 = vp.x0 as u64;
    let in_x = if x >= x0 { x - x0 < vp.wx } else { x + (1u64 << 32) - x0 < vp.wx };
    let in_y = y >= vp.y0 as u64 && y < vp.y0 as u64 + vp.hy;
    in_x && in_y
}

/// Pixel of a point, computed with 128-bit arithmetic from the definition
/// `col = ⌊dx · ⌊W·2³²/wx⌋ / 2³²⌋`.
fn pixel_slow(pm: &PixelMap, x: u32, y: u32) -> usize {
    let vp = pm.vp;
    let dx = ((x as u64 + (1u64 << 32)) - vp.x0 as u64) % (1u64 << 32);
    let dy = y as u64 - vp.y0 as u64;
    let sx = ((pm.width as u128) << 32) / vp.wx as u128;
    let sy = ((pm.height as u128) << 32) / vp.hy as u128;
    let col = (dx as u128 * sx) >> 32;
    let row = (dy as u128 * sy) >> 32;
    assert!(col < pm.width as u128 && row < pm.height as u128, "pixel inside the raster");
    row as usize * pm.width as usize + col as usize
}
