//! Web Mercator quantisation: longitude/latitude to 32-bit integer map
//! coordinates, and viewports to integer rectangles with exact pixel mapping.
//!
//! `x = floor((lon + 180) / 360 · 2³²)`, `y = floor(mercator_y · 2³²)` with
//! `y = 0` at the north edge (85.0511°N) like map tiles. One unit is under a
//! centimetre, so quantised coordinates are as good as the source's.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest latitude of the square Web Mercator world, degrees.
pub const MAX_LAT: f64 = 85.051_128_779_806_59;
const TWO32: f64 = 4_294_967_296.0;

/// A geographic viewport in degrees. `west > east` crosses the antimeridian.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Viewport {
    /// Western edge, longitude in [-180, 180].
    pub west: f64,
    /// Southern edge, latitude in [-85.0511, 85.0511].
    pub south: f64,
    /// Eastern edge, longitude in [-180, 180].
    pub east: f64,
    /// Northern edge, latitude in [-85.0511, 85.0511].
    pub north: f64,
}

impl Viewport {
    /// The whole Web Mercator world.
    pub const WORLD: Viewport = Viewport { west: -180.0, south: -MAX_LAT, east: 180.0, north: MAX_LAT };

    /// Checks bounds: finite, inside the Mercator world, north above south.
    pub fn check(&self) -> Result<()> {
        let Viewport { west, south, east, north } = *self;
        let finite = [west, south, east, north].iter().all(|v| v.is_finite());
        if !finite {
            return Err(Error::InvalidQuery("viewport bounds must be finite numbers".into()));
        }
        if !(-180.0..=180.0).contains(&west) || !(-180.0..=180.0).contains(&east) {
            return Err(Error::InvalidQuery(format!("viewport longitudes {west}, {east} must lie in [-180, 180]")));
        }
        let m = MAX_LAT;
        if !(-m..=m).contains(&south) || !(-m..=m).contains(&north) {
            return Err(Error::InvalidQuery(format!("viewport latitudes {south}, {north} must lie in [-{m}, {m}]")));
        }
        if south >= north {
            return Err(Error::InvalidQuery(format!("viewport south {south} must be below north {north}")));
        }
        if west == east {
            return Err(Error::InvalidQuery("viewport has zero width".into()));
        }
        Ok(())
    }
}

/// Quantised x of a longitude (clamped to [-180, 180]).
#[inline]
pub fn lon_to_x(lon: f64) -> u32 {
    let t = (lon + 180.0) / 360.0 * TWO32;
    t.clamp(0.0, u32::MAX as f64) as u32
}

/// Quantised y of a latitude (clamped to the Mercator world).
#[inline]
pub fn lat_to_y(lat: f64) -> u32 {
    let t = mercator_unit_y(lat) * TWO32;
    t.clamp(0.0, u32::MAX as f64) as u32
}

/// Mercator y in [0, 1], 0 at the north edge.
#[inline]
pub fn mercator_unit_y(lat: f64) -> f64 {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT);
    let s = lat.to_radians().sin();
    0.5 - ((1.0 + s) / (1.0 - s)).ln() / (4.0 * std::f64::consts::PI)
}

/// Longitude of a quantised x (the west edge of its cell).
#[inline]
pub fn x_to_lon(x: u32) -> f64 {
    x as f64 / TWO32 * 360.0 - 180.0
}

/// Latitude of a quantised y (the north edge of its cell).
#[inline]
pub fn y_to_lat(y: u32) -> f64 {
    let n = std::f64::consts::PI * (1.0 - 2.0 * (y as f64 / TWO32));
    n.sinh().atan().to_degrees()
}

/// A viewport in quantised coordinates: `x` in `[x0, x0 + wx)` modulo 2³²
/// (so a viewport may cross the antimeridian) and `y` in `[y0, y0 + hy)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QViewport {
    /// West edge.
    pub x0: u32,
    /// Width in x units, 1 to 2³².
    pub wx: u64,
    /// North edge.
    pub y0: u32,
    /// Height in y units, 1 to 2³² - y0.
    pub hy: u64,
}

impl QViewport {
    /// The whole world.
    pub const WORLD: QViewport = QViewport { x0: 0, wx: 1 << 32, y0: 0, hy: 1 << 32 };

    /// Quantises a checked viewport. `east = 180` reaches the end of the world.
    pub fn from_viewport(v: &Viewport) -> QViewport {
        let x0 = lon_to_x(v.west);
        let xe: u64 = if v.east >= 180.0 { 1 << 32 } else { lon_to_x(v.east) as u64 };
        let wx = if v.east > v.west { xe.saturating_sub(x0 as u64) } else { (1u64 << 32) - x0 as u64 + xe }
            .clamp(1, 1 << 32);
        let y0 = lat_to_y(v.north);
        let ye: u64 = if v.south <= -MAX_LAT { 1 << 32 } else { lat_to_y(v.south) as u64 };
        let hy = ye.saturating_sub(y0 as u64).max(1);
        QViewport { x0, wx, y0, hy }
    }

    /// True when the point lies inside.
    #[inline(always)]
    pub fn contains(&self, x: u32, y: u32) -> bool {
        (x.wrapping_sub(self.x0) as u64) < self.wx && (y.wrapping_sub(self.y0) as u64) < self.hy
    }

    /// True when the viewport covers the whole x range (no wrap test needed).
    pub fn full_width(&self) -> bool {
        self.wx == 1 << 32
    }
}

/// Exact integer mapping of quantised points to the pixels of a W×H raster
/// over a viewport: `col = (dx · sx) >> 32` with `sx = ⌊W · 2³² / wx⌋`, which
/// is always `< W` for points inside the viewport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelMap {
    /// The viewport.
    pub vp: QViewport,
    /// Raster width.
    pub width: u32,
    /// Raster height.
    pub height: u32,
    sx: u64,
    sy: u64,
}

impl PixelMap {
    /// Builds the mapping for a raster of `width`×`height` (both ≥ 1).
    pub fn new(vp: QViewport, width: u32, height: u32) -> PixelMap {
        let sx = ((width as u128) << 32) / vp.wx as u128;
        let sy = ((height as u128) << 32) / vp.hy as u128;
        PixelMap { vp, width, height, sx: sx as u64, sy: sy as u64 }
    }

    /// Like [`PixelMap::pixel`] for points inside the viewport; for points
    /// outside it returns some number without panicking (the caller discards it).
    #[inline(always)]
    pub fn pixel_wrapping(&self, x: u32, y: u32) -> u32 {
        let dx = x.wrapping_sub(self.vp.x0) as u64;
        let dy = y.wrapping_sub(self.vp.y0) as u64;
        let col = (dx.wrapping_mul(self.sx) >> 32) as u32;
        let row = (dy.wrapping_mul(self.sy) >> 32) as u32;
        row.wrapping_mul(self.width).wrapping_add(col)
    }

    /// Column of an x offset `dx < wx` from the west edge.
    pub fn col(&self, dx: u64) -> u32 {
        ((dx as u128 * self.sx as u128) >> 32) as u32
    }

    /// Row of a y offset `dy < hy` from the north edge.
    pub fn row(&self, dy: u64) -> u32 {
        ((dy as u128 * self.sy as u128) >> 32) as u32
    }

    /// The pixel rows (half-open) that points with `ymin ≤ y ≤ ymax` inside
    /// the viewport fall in; `None` when that range misses the viewport.
    pub fn rows_of(&self, ymin: u32, ymax: u32) -> Option<std::ops::Range<u32>> {
        let vp = self.vp;
        let (lo, hi) = (ymin.max(vp.y0) as u64, (ymax as u64).min(vp.y0 as u64 + vp.hy.saturating_sub(1)));
        (lo <= hi).then(|| self.row(lo - vp.y0 as u64)..self.row(hi - vp.y0 as u64) + 1)
    }

    /// Pixel index (`row * width + col`) of a point inside the viewport.
    #[inline(always)]
    pub fn pixel(&self, x: u32, y: u32) -> u32 {
        let dx = x.wrapping_sub(self.vp.x0) as u64;
        let dy = y.wrapping_sub(self.vp.y0) as u64;
        let col = (dx * self.sx) >> 32;
        let row = (dy * self.sy) >> 32;
        (row as u32) * self.width + col as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_round_trips_to_a_centimetre() {
        for &(lon, lat) in &[(0.0, 0.0), (2.3522, 48.8566), (-179.999, -85.0), (151.2093, -33.8688)] {
            let (x, y) = (lon_to_x(lon), lat_to_y(lat));
            assert!((x_to_lon(x) - lon).abs() < 1e-6, "lon {lon}");
            assert!((y_to_lat(y) - lat).abs() < 1e-6, "lat {lat}");
        }
    }

    #[test]
    fn north_is_small_y() {
        assert!(lat_to_y(60.0) < lat_to_y(0.0));
        assert_eq!(lat_to_y(90.0), 0);
        assert_eq!(lat_to_y(-90.0), u32::MAX);
    }

    #[test]
    fn antimeridian_viewport_wraps() {
        let vp = QViewport::from_viewport(&Viewport { west: 170.0, south: -20.0, east: -170.0, north: 0.0 });
        assert!(vp.contains(lon_to_x(175.0), lat_to_y(-10.0)));
        assert!(vp.contains(lon_to_x(-175.0), lat_to_y(-10.0)));
        assert!(!vp.contains(lon_to_x(0.0), lat_to_y(-10.0)));
        let pm = PixelMap::new(vp, 20, 10);
        let left = pm.pixel(lon_to_x(171.0), lat_to_y(-1.0)) % 20;
        let right = pm.pixel(lon_to_x(-171.0), lat_to_y(-1.0)) % 20;
        assert!(left < 10 && right >= 10, "{left} {right}");
    }

    #[test]
    fn pixels_stay_inside_the_raster_at_the_edges() {
        let vp = QViewport::from_viewport(&Viewport::WORLD);
        for &(w, h) in &[(1, 1), (800, 500), (4096, 1024), (3, 7)] {
            let pm = PixelMap::new(vp, w, h);
            assert_eq!(pm.pixel(0, 0), 0);
            assert_eq!(pm.pixel(u32::MAX, u32::MAX), w * h - 1);
        }
    }
}
