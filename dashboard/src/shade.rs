//! Datashader-style shading of merged counts into a transparent PNG (pure).
//!
//! ```text
//! counts per pixel per category ──▶ colour = categories' colours mixed by count
//!                               ──▶ alpha  = histogram equalisation of pixel totals,
//!                                            mapped to [min_alpha, 255]
//!                               ──▶ spread isolated pixels by 1-3 px when sparse
//!                               ──▶ RGBA, transparent where empty ──▶ PNG
//! ```
//! Colours come from [`category_colors`], which is also what the legend in
//! `/api/datasets` uses, so the map and the legend always agree.

use quiver_worker::bins::PALETTE;
use quiver_worker::protocol::Raster;

use crate::error::{Error, Result};

/// The colour of each raster category: the colour the legend shows for the bin
/// with that label (`legend_labels[i]` has `legend_colors[i]`, from the view
/// config via `DimBins::colors`), and for a label the view config does not
/// know, the palette continued past the known ones.
pub fn category_colors(legend_labels: &[String], legend_colors: &[[u8; 3]], labels: &[String]) -> Vec<[u8; 3]> {
    let mut unknown = 0;
    labels
        .iter()
        .map(|label| match legend_labels.iter().position(|l| l == label) {
            Some(i) if i < legend_colors.len() => legend_colors[i],
            _ => {
                unknown += 1;
                PALETTE[(legend_labels.len() + unknown - 1) % PALETTE.len()]
            }
        })
        .collect()
}

/// `#rrggbb` of a colour.
pub fn hex_color(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Shading parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShadeOptions {
    /// Alpha of the least dense non-empty pixels (the densest get 255).
    pub min_alpha: u8,
    /// Largest spreading radius, pixels.
    pub max_spread: u32,
    /// Spread only when fewer than this fraction of pixels are non-empty...
    pub spread_below_fill: f64,
    /// ...and at least this fraction of the non-empty pixels have no non-empty neighbour.
    pub spread_isolated: f64,
}

impl Default for ShadeOptions {
    fn default() -> Self {
        ShadeOptions { min_alpha: 40, max_spread: 3, spread_below_fill: 0.02, spread_isolated: 0.5 }
    }
}

/// An RGBA image, row 0 at the top.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes, RGBA, not premultiplied.
    pub rgba: Vec<u8>,
}

impl Image {
    /// The RGBA value of pixel `(x, y)`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2], self.rgba[i + 3]]
    }
}

/// Maps a pixel's total count to its alpha by histogram equalisation: a total's
/// alpha grows with the fraction of non-empty pixels whose total is at most it.
#[derive(Clone, Debug)]
pub struct AlphaMap {
    /// Alpha by total, for totals below `small.len()`.
    small: Vec<u8>,
    /// Distinct larger totals, ascending, with their alpha.
    large: Vec<(u64, u8)>,
}

/// Totals below this are counted in a table instead of sorted (256 KiB of counts).
const SMALL_TOTALS: usize = 65_536;

impl AlphaMap {
    /// Builds the map from the totals of the non-empty pixels (zeros are ignored).
    pub fn equalize(totals: &[u64], min_alpha: u8) -> AlphaMap {
        let max = totals.iter().copied().max().unwrap_or(0);
        let small_len = (max as usize + 1).min(SMALL_TOTALS);
        let mut small_counts = vec![0u32; small_len];
        let mut large: Vec<u64> = Vec::new();
        for &t in totals {
            if t == 0 {
                continue;
            }
            if (t as usize) < small_len {
                small_counts[t as usize] += 1;
            } else {
                large.push(t);
            }
        }
        large.sort_unstable();
        let n: u64 = small_counts.iter().map(|&c| u64::from(c)).sum::<u64>() + large.len() as u64;
        // Count of the lowest total: it maps to min_alpha, the highest to 255.
        let first = small_counts
            .iter()
            .copied()
            .find(|&c| c > 0)
            .map(u64::from)
            .unwrap_or_else(|| large.iter().take_while(|&&t| Some(&t) == large.first()).count() as u64);
        let span = f64::from(255 - min_alpha);
        let to_alpha = |cum: u64| -> u8 {
            let f = if n > first { (cum - first) as f64 / (n - first) as f64 } else { 1.0 };
            (f64::from(min_alpha) + (f * span).round()).min(255.0) as u8
        };
        let mut cum = 0u64;
        let mut small = vec![0u8; small_len];
        for (t, &c) in small_counts.iter().enumerate() {
            cum += u64::from(c);
            if t > 0 {
                small[t] = if cum == 0 { min_alpha } else { to_alpha(cum) };
            }
        }
        let mut large_map: Vec<(u64, u8)> = Vec::new();
        let mut i = 0;
        while i < large.len() {
            let v = large[i];
            while i < large.len() && large[i] == v {
                i += 1;
                cum += 1;
            }
            large_map.push((v, to_alpha(cum)));
        }
        AlphaMap { small, large: large_map }
    }

    /// Alpha of a total (0 for an empty pixel).
    pub fn alpha(&self, total: u64) -> u8 {
        if total == 0 {
            return 0;
        }
        if (total as usize) < self.small.len() {
            return self.small[total as usize];
        }
        match self.large.binary_search_by_key(&total, |&(v, _)| v) {
            Ok(i) => self.large[i].1,
            // A total not seen when building: take the alpha of the next lower one.
            Err(0) => self.small.last().copied().unwrap_or(255),
            Err(i) => self.large[i - 1].1,
        }
    }
}

/// Checks that a raster is well formed: pixels ascending and inside, counts sized right.
pub fn check_raster(r: &Raster) -> Result<()> {
    let area = u64::from(r.width) * u64::from(r.height);
    if area == 0 {
        return Err(Error::Internal(format!("raster of {}x{} pixels", r.width, r.height)));
    }
    if r.counts.len() != r.pixels.len() * r.categories.len() {
        return Err(Error::Internal(format!(
            "raster has {} counts for {} pixels of {} categories",
            r.counts.len(),
            r.pixels.len(),
            r.categories.len()
        )));
    }
    let mut prev: Option<u32> = None;
    for &p in &r.pixels {
        if u64::from(p) >= area || prev.is_some_and(|q| q >= p) {
            return Err(Error::Internal(format!(
                "raster pixel {p} is out of order or outside {}x{}",
                r.width, r.height
            )));
        }
        prev = Some(p);
    }
    Ok(())
}

/// Shades a raster. `colors[c]` is the colour of `raster.categories[c]`.
pub fn shade(raster: &Raster, colors: &[[u8; 3]], opts: &ShadeOptions) -> Result<Image> {
    check_raster(raster)?;
    if colors.len() != raster.categories.len() {
        return Err(Error::Internal(format!("{} colours for {} categories", colors.len(), raster.categories.len())));
    }
    let (w, h) = (raster.width, raster.height);
    let ncat = raster.categories.len();
    let n = raster.pixels.len();
    let mut totals = Vec::with_capacity(n);
    let mut mixed = Vec::with_capacity(n);
    for k in 0..n {
        let counts = &raster.counts[k * ncat..(k + 1) * ncat];
        let (mut t, mut r, mut g, mut b) = (0u64, 0u64, 0u64, 0u64);
        for (c, &count) in counts.iter().enumerate() {
            let count = u64::from(count);
            if count > 0 {
                let col = colors[c];
                t += count;
                r += count * u64::from(col[0]);
                g += count * u64::from(col[1]);
                b += count * u64::from(col[2]);
            }
        }
        totals.push(t);
        // Empty pixels (t == 0) are never drawn; max(1) only avoids the division by zero.
        let d = t.max(1);
        mixed.push([((r + d / 2) / d) as u8, ((g + d / 2) / d) as u8, ((b + d / 2) / d) as u8]);
    }
    let alpha = AlphaMap::equalize(&totals, opts.min_alpha);
    let mut rgba = vec![0u8; (w as usize) * (h as usize) * 4];
    for k in 0..n {
        if totals[k] == 0 {
            continue;
        }
        let i = raster.pixels[k] as usize * 4;
        let [r, g, b] = mixed[k];
        rgba[i..i + 4].copy_from_slice(&[r, g, b, alpha.alpha(totals[k])]);
    }
    let mut img = Image { width: w, height: h, rgba };
    let occupied: Vec<u32> = raster.pixels.iter().zip(&totals).filter(|&(_, &t)| t > 0).map(|(&p, _)| p).collect();
    let radius = spread_radius(&occupied, w, h, opts);
    if radius > 0 {
        spread(&mut img, &occupied, radius);
    }
    Ok(img)
}

/// How far to spread: 0 unless the image is sparse and most of its pixels are
/// isolated; then the smallest radius (at most `max_spread`) at which the spread
/// points would cover `spread_below_fill` of the image.
pub fn spread_radius(occupied: &[u32], width: u32, height: u32, opts: &ShadeOptions) -> u32 {
    let area = f64::from(width) * f64::from(height);
    let n = occupied.len() as f64;
    if occupied.is_empty() || opts.max_spread == 0 || n / area >= opts.spread_below_fill {
        return 0;
    }
    let (w, h) = (width as i64, height as i64);
    let mut mask = vec![false; (width as usize) * (height as usize)];
    for &p in occupied {
        mask[p as usize] = true;
    }
    let isolated = occupied
        .iter()
        .filter(|&&p| {
            let (x, y) = (p as i64 % w, p as i64 / w);
            !(-1..=1i64).any(|dy| {
                (-1..=1i64).any(|dx| {
                    let (nx, ny) = (x + dx, y + dy);
                    (dx, dy) != (0, 0) && nx >= 0 && ny >= 0 && nx < w && ny < h && mask[(ny * w + nx) as usize]
                })
            })
        })
        .count() as f64;
    if isolated / n < opts.spread_isolated {
        return 0;
    }
    (1..=opts.max_spread)
        .find(|&r| n * f64::from(2 * r + 1).powi(2) >= opts.spread_below_fill * area)
        .unwrap_or(opts.max_spread)
}

/// Grows each occupied pixel into a disk of `radius`, painting only pixels that
/// were empty; where disks overlap, the denser (more opaque) pixel wins.
pub fn spread(img: &mut Image, occupied: &[u32], radius: u32) {
    let (w, h) = (img.width as i64, img.height as i64);
    let r = radius as i64;
    let mut original = vec![false; (w * h) as usize];
    for &p in occupied {
        original[p as usize] = true;
    }
    let mut order: Vec<u32> = occupied.to_vec();
    order.sort_by_key(|&p| img.rgba[p as usize * 4 + 3]);
    for p in order {
        let src = p as usize * 4;
        let px: [u8; 4] = img.rgba[src..src + 4].try_into().expect("4 bytes");
        let (x, y) = (p as i64 % w, p as i64 / w);
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy > r * r + r {
                    continue;
                }
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w || ny >= h {
                    continue;
                }
                let q = (ny * w + nx) as usize;
                if !original[q] {
                    img.rgba[q * 4..q * 4 + 4].copy_from_slice(&px);
                }
            }
        }
    }
}

/// Encodes an image as an RGBA PNG with fast compression.
pub fn encode_png(img: &Image) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(img.rgba.len() / 8 + 1024);
    let mut enc = png::Encoder::new(&mut out, img.width, img.height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::Filter::Sub);
    let mut writer = enc.write_header().map_err(|e| Error::Internal(format!("png header: {e}")))?;
    writer.write_image_data(&img.rgba).map_err(|e| Error::Internal(format!("png data: {e}")))?;
    writer.finish().map_err(|e| Error::Internal(format!("png end: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: [u8; 3] = [255, 0, 0];
    const BLUE: [u8; 3] = [0, 0, 255];

    fn raster(w: u32, h: u32, cats: &[&str], cells: &[(u32, &[u32])]) -> Raster {
        Raster {
            width: w,
            height: h,
            categories: cats.iter().map(|s| s.to_string()).collect(),
            pixels: cells.iter().map(|c| c.0).collect(),
            counts: cells.iter().flat_map(|c| c.1.iter().copied()).collect(),
        }
    }

    fn no_spread() -> ShadeOptions {
        ShadeOptions { max_spread: 0, ..ShadeOptions::default() }
    }

    #[test]
    fn colours_mix_by_count() {
        let r = raster(2, 1, &["a", "b"], &[(0, &[3, 1]), (1, &[0, 5])]);
        let img = shade(&r, &[RED, BLUE], &no_spread()).unwrap();
        // 3 parts red, 1 part blue: (3*255 + 0)/4 = 191.25, (0 + 255)/4 = 63.75.
        let p = img.pixel(0, 0);
        assert_eq!(&p[..3], &[191, 0, 64]);
        assert_eq!(&img.pixel(1, 0)[..3], &BLUE);
    }

    #[test]
    fn empty_pixels_are_transparent() {
        let r = raster(3, 2, &["a"], &[(4, &[7])]);
        let img = shade(&r, &[RED], &no_spread()).unwrap();
        for y in 0..2 {
            for x in 0..3 {
                let p = img.pixel(x, y);
                if (x, y) == (1, 1) {
                    assert_eq!(p[3], 255, "the only pixel is the densest");
                } else {
                    assert_eq!(p, [0, 0, 0, 0], "pixel {x},{y}");
                }
            }
        }
    }

    #[test]
    fn equalised_alpha_is_monotonic_from_min_alpha_to_opaque() {
        // Totals spread over small and large values, deterministic pseudo-random.
        let mut s: u64 = 12345;
        let totals: Vec<u64> = (0..5000)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let v = (s >> 33) % 1000;
                1 + v * v * ((s >> 20) % 7)
            })
            .collect();
        let m = AlphaMap::equalize(&totals, 40);
        let mut sorted = totals.clone();
        sorted.sort_unstable();
        let alphas: Vec<u8> = sorted.iter().map(|&t| m.alpha(t)).collect();
        assert!(alphas.windows(2).all(|w| w[0] <= w[1]), "alpha must not decrease with the total");
        assert_eq!(alphas[0], 40);
        assert_eq!(*alphas.last().unwrap(), 255);
        assert_eq!(m.alpha(0), 0);
    }

    #[test]
    fn equalisation_spreads_skewed_totals_evenly() {
        // 99 pixels with 1..=99 and one with a million: a linear map would make all
        // but one nearly transparent; equalisation gives the median pixel half the range.
        let mut totals: Vec<u64> = (1..=99).collect();
        totals.push(1_000_000);
        let m = AlphaMap::equalize(&totals, 0);
        let mid = m.alpha(50);
        assert!((120..=136).contains(&mid), "median alpha {mid}");
        assert_eq!(m.alpha(1_000_000), 255);
    }

    #[test]
    fn equal_totals_are_all_opaque() {
        let m = AlphaMap::equalize(&[5, 5, 5], 40);
        assert_eq!(m.alpha(5), 255);
    }

    #[test]
    fn raster_colours_are_the_legend_colours_by_label() {
        let legend: Vec<String> = ["GSM", "LTE", "Other"].iter().map(|s| s.to_string()).collect();
        let colors = [[0, 255, 0], [1, 2, 3], [9, 9, 9]];
        // The raster lists categories in another order, plus one the legend lacks.
        let labels: Vec<String> = ["Other", "GSM", "NEW", "LTE"].iter().map(|s| s.to_string()).collect();
        let c = category_colors(&legend, &colors, &labels);
        assert_eq!(c, vec![[9, 9, 9], [0, 255, 0], PALETTE[3], [1, 2, 3]]);
        assert_eq!(hex_color(c[1]), "#00ff00");
    }

    #[test]
    fn isolated_points_in_a_sparse_image_are_spread() {
        // Two lone pixels in 100x100: far below 2% fill, all isolated.
        let r = raster(100, 100, &["a"], &[(10 * 100 + 10, &[9]), (50 * 100 + 50, &[1])]);
        let opts = ShadeOptions::default();
        assert_eq!(spread_radius(&r.pixels, 100, 100, &opts), 3);
        let img = shade(&r, &[RED], &opts).unwrap();
        let centre = img.pixel(50, 50);
        assert_eq!(img.pixel(53, 50), centre, "3 px to the side is painted");
        assert_eq!(img.pixel(52, 52), centre, "inside the disk");
        assert_eq!(img.pixel(53, 53)[3], 0, "the disk's corner stays empty");
        assert_eq!(img.pixel(54, 50)[3], 0, "beyond the radius stays empty");
        assert_eq!(img.pixel(10, 13), img.pixel(10, 10));
    }

    #[test]
    fn spreading_never_overwrites_data_and_the_denser_pixel_wins() {
        // Two isolated pixels 2 apart; the gap pixel between them is painted by the denser.
        let r = raster(50, 50, &["a", "b"], &[(25 * 50 + 20, &[1, 0]), (25 * 50 + 22, &[0, 50])]);
        let img = shade(&r, &[RED, BLUE], &ShadeOptions::default()).unwrap();
        assert_eq!(&img.pixel(20, 25)[..3], &RED, "original pixel kept");
        assert_eq!(&img.pixel(22, 25)[..3], &BLUE);
        assert_eq!(&img.pixel(21, 25)[..3], &BLUE, "denser neighbour wins");
    }

    #[test]
    fn dense_or_clustered_images_are_not_spread() {
        let opts = ShadeOptions::default();
        // 10% fill.
        let dense: Vec<u32> = (0..1000).map(|i| i * 10).collect();
        assert_eq!(spread_radius(&dense, 100, 100, &opts), 0);
        // Sparse but contiguous: a line of pixels has neighbours.
        let line: Vec<u32> = (0..100).map(|x| 5000 + x).collect();
        assert_eq!(spread_radius(&line, 1000, 1000, &opts), 0);
        // Moderately sparse isolated points need a smaller radius than very sparse ones.
        // Spaced 499 apart in a 1000-wide image: no two are neighbours.
        let some: Vec<u32> = (0..2000).map(|i| i * 499).collect();
        let r = spread_radius(&some, 1000, 1000, &opts);
        assert!((1..3).contains(&r), "radius {r}");
    }

    #[test]
    fn malformed_rasters_are_refused() {
        let r = raster(2, 2, &["a"], &[(4, &[1])]);
        assert!(shade(&r, &[RED], &no_spread()).is_err(), "pixel outside");
        let r = raster(2, 2, &["a"], &[(1, &[1]), (0, &[1])]);
        assert!(shade(&r, &[RED], &no_spread()).is_err(), "pixels out of order");
        let r = raster(2, 2, &["a"], &[(1, &[1])]);
        assert!(shade(&r, &[RED, BLUE], &no_spread()).is_err(), "colour count");
    }

    #[test]
    fn png_round_trips() {
        let r = raster(4, 3, &["a", "b"], &[(0, &[1, 0]), (5, &[2, 2]), (11, &[0, 9])]);
        let img = shade(&r, &[RED, BLUE], &no_spread()).unwrap();
        let bytes = encode_png(&img).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 3));
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(&buf[..info.buffer_size()], &img.rgba[..]);
    }
}
