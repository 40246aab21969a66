//! Synthetic OpenCelliD cell towers: clustered around real cities (more towers
//! and a wider, heavy-tailed spread for bigger cities), with rural towers along
//! the roads between neighbouring cities of a country; radio generations,
//! ranges, sample counts and dates distributed like the published export.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::cities::{CITIES, MCC};
use super::sphere;

/// The OpenCelliD schema, columns in published order.
pub fn celltowers_schema() -> SchemaRef {
    crate::source::presets::schema(crate::spec::Preset::Celltowers)
}

const GSM: usize = 0;
const UMTS: usize = 1;
const LTE: usize = 2;
const CDMA: usize = 3;

/// Radio generations and their shares of towers (indexed by the constants above; NR last).
pub(super) const RADIOS: [(&str, f64); 5] =
    [("GSM", 0.40), ("UMTS", 0.25), ("LTE", 0.30), ("CDMA", 0.03), ("NR", 0.02)];

/// Share of towers placed along roads between cities rather than around one.
pub(super) const RURAL_SHARE: f64 = 0.12;
/// Neighbouring cities (same country) closer than this get rural towers between them.
pub(super) const RURAL_LINK_MAX_KM: f64 = 500.0;
/// Rural towers stay within this distance of the road between two cities.
pub(super) const RURAL_OFFSET_MAX_KM: f64 = 20.0;
/// No urban tower is farther than this from its city centre.
pub(super) const URBAN_MAX_KM: f64 = 150.0;

/// 2003-01-01T00:00:00Z, the earliest `created`.
pub(super) const T_2003: i64 = 1_041_379_200;
const T_2006: i64 = 1_136_073_600;
/// 2010-01-01, LTE's first year.
pub(super) const T_2010: i64 = 1_262_304_000;
/// 2019-01-01, NR's first year (and after CDMA's last).
pub(super) const T_2019: i64 = 1_546_300_800;
/// 2021-12-31T23:59:59Z, the latest `created` and `updated`.
pub(super) const T_END: i64 = 1_640_995_199;

/// Radial spread (standard deviation, km) of a city's towers: grows with size.
pub(super) fn city_sigma_km(pop_k: u32) -> f64 {
    1.0 + 1.6 * (pop_k as f64 / 1000.0).powf(0.45)
}

/// Farthest an urban tower may be from its city centre, km.
pub(super) fn city_cap_km(pop_k: u32) -> f64 {
    (20.0 * city_sigma_km(pop_k)).min(URBAN_MAX_KM)
}

struct City {
    lat: f64,
    lon: f64,
    sigma_km: f64,
    cap_km: f64,
    mccs: &'static [u16],
    area_base: i32,
    /// Indices of up to three nearest same-country cities within reach.
    links: Vec<usize>,
}

/// Precomputed city tables; cheap to build, shared by all chunk generators.
pub(super) struct Towers {
    cities: Vec<City>,
    urban_cdf: Vec<f64>,
    rural_cdf: Vec<f64>,
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    let total = acc;
    for x in &mut v {
        *x /= total;
    }
    v
}

#[inline]
pub(super) fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

impl Towers {
    pub(super) fn new() -> Towers {
        let mut cities: Vec<City> = CITIES
            .iter()
            .enumerate()
            .map(|(i, &(_, cc, lat, lon, pop))| City {
                lat,
                lon,
                sigma_km: city_sigma_km(pop),
                cap_km: city_cap_km(pop),
                mccs: MCC.iter().find(|(c, _)| *c == cc).map(|(_, m)| *m).unwrap_or(&[901]),
                // Location areas are 16-bit; leave room for the sector and ring offsets.
                area_base: 1 + ((i as i64 * 7919 + lat.abs() as i64 * 131) % 60_000) as i32,
                links: Vec::new(),
            })
            .collect();
        for i in 0..CITIES.len() {
            let mut near: Vec<(f64, usize)> = (0..CITIES.len())
                .filter(|&j| j != i && CITIES[j].1 == CITIES[i].1)
                .map(|j| (sphere::distance_km(CITIES[i].2, CITIES[i].3, CITIES[j].2, CITIES[j].3), j))
                .filter(|(d, _)| *d <= RURAL_LINK_MAX_KM)
                .collect();
            near.sort_by(|a, b| a.0.total_cmp(&b.0));
            cities[i].links = near.into_iter().take(3).map(|(_, j)| j).collect();
        }
        let urban_cdf = cdf(CITIES.iter().map(|c| (c.4 as f64).powf(0.8)));
        let rural_cdf = cdf(CITIES
            .iter()
            .enumerate()
            .map(|(i, c)| if cities[i].links.is_empty() { 0.0 } else { (c.4 as f64).sqrt() }));
        Towers { cities, urban_cdf, rural_cdf }
    }

    /// One chunk of `rows` towers.
    pub(super) fn batch(&self, rng: &mut ChaCha8Rng, rows: usize) -> RecordBatch {
        let mut radio = Vec::with_capacity(rows);
        let mut mcc = Vec::with_capacity(rows);
        let mut net = Vec::with_capacity(rows);
        let mut area = Vec::with_capacity(rows);
        let mut cell = Vec::with_capacity(rows);
        let mut unit: Vec<Option<i32>> = Vec::with_capacity(rows);
        let mut lon = Vec::with_capacity(rows);
        let mut lat = Vec::with_capacity(rows);
        let mut range = Vec::with_capacity(rows);
        let mut samples = Vec::with_capacity(rows);
        let mut changeable = Vec::with_capacity(rows);
        let mut created = Vec::with_capacity(rows);
        let mut updated = Vec::with_capacity(rows);
        let mut signal = Vec::with_capacity(rows);
        let radio_cdf = cdf(RADIOS.iter().map(|r| r.1));

        for _ in 0..rows {
            let r = pick(&radio_cdf, rng.random::<f64>());
            let (pos, city, sub_area, rural) = self.place(rng);
            let c = &self.cities[city];
            let m = c.mccs[rng.random_range(0..c.mccs.len())] as i32;
            radio.push(RADIOS[r].0);
            mcc.push(m);
            net.push(pick_net(m, rng));
            area.push(c.area_base + sub_area);
            cell.push(cell_id(r, rng));
            unit.push(unit_code(r, rng));
            lat.push(round6(pos.0));
            lon.push(round6(pos.1));
            let median = if rural { 5000.0 } else { 1400.0 };
            let sigma = if rural { 1.1 } else { 1.2 };
            let rg = (median * (sigma * rng.sample::<f64, _>(StandardNormal)).exp()).round();
            range.push(rg.clamp(1.0, 100_000.0) as i64);
            let smed: f64 = if rural { 3.0 } else { 7.0 };
            let s = (smed.ln() + 1.5 * rng.sample::<f64, _>(StandardNormal)).exp().floor() + 1.0;
            samples.push(s.min(500_000.0) as i64);
            changeable.push(if rng.random::<f64>() < 0.93 { 1 } else { 0 });
            let cr = created_time(r, rng);
            created.push(cr);
            // Skewed towards recent updates: 1 - (1 - u)^3.
            let v = 1.0 - rng.random::<f64>();
            let up = cr + ((T_END - cr) as f64 * (1.0 - v * v * v)) as i64;
            updated.push(up.min(T_END));
            signal.push(average_signal(r, rng));
        }

        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(radio)),
            Arc::new(Int32Array::from(mcc)),
            Arc::new(Int32Array::from(net)),
            Arc::new(Int32Array::from(area)),
            Arc::new(Int64Array::from(cell)),
            Arc::new(Int32Array::from(unit)),
            Arc::new(Float64Array::from(lon)),
            Arc::new(Float64Array::from(lat)),
            Arc::new(Int64Array::from(range)),
            Arc::new(Int64Array::from(samples)),
            Arc::new(Int32Array::from(changeable)),
            Arc::new(Int64Array::from(created)),
            Arc::new(Int64Array::from(updated)),
            Arc::new(Int32Array::from(signal)),
        ];
        RecordBatch::try_new(celltowers_schema(), cols).expect("columns match the celltowers schema")
    }

    /// A tower position: `((lat, lon), city index, area offset, rural?)`.
    fn place(&self, rng: &mut ChaCha8Rng) -> ((f64, f64), usize, i32, bool) {
        if rng.random::<f64>() < RURAL_SHARE {
            let a = pick(&self.rural_cdf, rng.random::<f64>());
            let links = &self.cities[a].links;
            if !links.is_empty() {
                let b = links[rng.random_range(0..links.len())];
                let (ca, cb) = (&self.cities[a], &self.cities[b]);
                let (va, vb) = (sphere::to_v3(ca.lat, ca.lon), sphere::to_v3(cb.lat, cb.lon));
                let t = 0.05 + 0.9 * rng.random::<f64>();
                let p = sphere::slerp(va, vb, sphere::angle(va, vb), t);
                let side = sphere::normalize(sphere::cross(p, sphere::tangent(p, vb)));
                let off = (6.0 * rng.sample::<f64, _>(StandardNormal)).clamp(-RURAL_OFFSET_MAX_KM, RURAL_OFFSET_MAX_KM);
                let q = sphere::offset_along(p, side, off);
                return (sphere::to_latlon(q), a, 64 + (t * 16.0) as i32, true);
            }
        }
        let city = pick(&self.urban_cdf, rng.random::<f64>());
        let c = &self.cities[city];
        // East and north offsets in km. Flat geometry is exact enough within a city's
        // reach and avoids trigonometry per tower.
        let (x, y, r) = loop {
            let gx: f64 = rng.sample(StandardNormal);
            let gy: f64 = rng.sample(StandardNormal);
            let (x, y) = if rng.random::<f64>() < 0.75 {
                // Dense core: a 2-D Gaussian.
                (c.sigma_km * gx, c.sigma_km * gy)
            } else {
                // Heavy tail: Pareto-distributed radius for suburbs and outskirts.
                let r = c.sigma_km * 1.2 * ((1.0 - rng.random::<f64>()).powf(-1.0 / 1.6) - 1.0);
                let g = (gx * gx + gy * gy).sqrt().max(1e-12);
                (r * gx / g, r * gy / g)
            };
            let r = (x * x + y * y).sqrt();
            if r <= c.cap_km {
                break (x, y, r);
            }
        };
        let lat = c.lat + y / KM_PER_DEGREE;
        let lon = c.lon + x / (KM_PER_DEGREE * ((c.lat + lat) * 0.5).to_radians().cos());
        let ring = ((r / c.sigma_km.max(2.0)) as i32).min(6);
        ((lat, lon), city, octant(x, y) + 8 * ring, false)
    }
}

/// Kilometres per degree of latitude.
const KM_PER_DEGREE: f64 = sphere::EARTH_KM * std::f64::consts::PI / 180.0;

/// Which eighth of the compass (0 = north-north-east, clockwise) an offset points to.
#[inline]
fn octant(x: f64, y: f64) -> i32 {
    match (x >= 0.0, y >= 0.0, x.abs() >= y.abs()) {
        (true, true, false) => 0,
        (true, true, true) => 1,
        (true, false, true) => 2,
        (true, false, false) => 3,
        (false, false, false) => 4,
        (false, false, true) => 5,
        (false, true, true) => 6,
        (false, true, false) => 7,
    }
}

#[inline]
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn pick_net(mcc: i32, rng: &mut ChaCha8Rng) -> i32 {
    let nets: &[i32] = match mcc {
        460 => &[0, 1, 11, 0, 1],
        310..=316 => &[410, 260, 480, 120, 410],
        404 | 405 => &[10, 20, 45, 86, 10],
        _ => &[1, 2, 3, 10, 1],
    };
    nets[rng.random_range(0..nets.len())]
}

fn cell_id(radio: usize, rng: &mut ChaCha8Rng) -> i64 {
    match radio {
        // 16-bit cell identity
        GSM | CDMA => rng.random_range(1..65_536),
        // RNC id << 16 | cell id
        UMTS => (rng.random_range(1..4096i64) << 16) | rng.random_range(1..65_536i64),
        // eNodeB id << 8 | sector
        LTE => (rng.random_range(1..1_048_576i64) << 8) | rng.random_range(1..4i64),
        // 36-bit NR cell identity: gNB id << 12 | cell
        _ => (rng.random_range(1..16_777_216i64) << 12) | rng.random_range(0..4i64),
    }
}

fn unit_code(radio: usize, rng: &mut ChaCha8Rng) -> Option<i32> {
    let u = rng.random::<f64>();
    match radio {
        GSM | CDMA => {
            if u < 0.6 {
                Some(0)
            } else if u < 0.75 {
                Some(-1)
            } else {
                None
            }
        }
        // Primary scrambling code
        UMTS => (u < 0.65).then(|| rng.random_range(0..512)),
        // Physical cell id
        LTE => {
            if u < 0.75 {
                Some(rng.random_range(0..504))
            } else if u < 0.8 {
                Some(-1)
            } else {
                None
            }
        }
        _ => (u < 0.8).then(|| rng.random_range(0..1008)),
    }
}

/// When a tower was first seen: radio generations arrive in their own eras.
fn created_time(radio: usize, rng: &mut ChaCha8Rng) -> i64 {
    let u = rng.random::<f64>();
    // Where in its era a tower appears: GSM and CDMA lean early, LTE and NR late.
    let (start, end, f) = match radio {
        GSM => (T_2003, T_END, u * (0.7 + 0.3 * u)),
        UMTS => (T_2006, T_END, u),
        LTE => (T_2010, T_END, u.sqrt()),
        CDMA => (T_2003, T_2019 - 1, u * (0.6 + 0.4 * u)),
        _ => (T_2019, T_END, u.sqrt()),
    };
    start + ((end - start) as f64 * f) as i64
}

fn average_signal(radio: usize, rng: &mut ChaCha8Rng) -> i32 {
    if rng.random::<f64>() < 0.85 {
        return 0;
    }
    let (mean, sd, lo, hi) = match radio {
        GSM => (-85.0, 12.0, -113.0, -51.0),
        UMTS => (-95.0, 10.0, -120.0, -50.0),
        LTE => (-100.0, 10.0, -140.0, -44.0),
        CDMA => (-90.0, 10.0, -120.0, -50.0),
        _ => (-95.0, 12.0, -140.0, -44.0),
    };
    (mean + sd * rng.sample::<f64, _>(StandardNormal)).clamp(lo, hi).round() as i32
}
