//! Synthetic MarineCadastre AIS positions for January 2024: ocean-going ships
//! sail the sea-lane network between real ports (each MMSI is a track of
//! reports every few minutes, course along the lane, speed by ship type),
//! while fishing boats, tugs, pleasure and service craft work near their port.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow_schema::SchemaRef;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::sea::{LEGS, LOCAL_FLAGS, NAME_WORDS, OCEAN_FLAGS, PORTS, SMALL_NAME_WORDS, WAYPOINTS};
use super::sphere::{self, V3};
use super::towers::pick;

/// The MarineCadastre AIS schema, columns in published order. `BaseDateTime`
/// is text (`2024-01-15T13:45:07`) in CSV and Parquet alike.
pub fn ais_schema() -> SchemaRef {
    crate::source::presets::schema(crate::spec::Preset::Ais)
}

/// Seconds in January 2024; timestamps run from 2024-01-01T00:00:00 to 2024-01-31T23:59:59.
pub(super) const MONTH_SECONDS: u32 = 31 * 86_400;
const KNOT_KM_PER_S: f64 = 1.852 / 3600.0;
/// "Heading not available" in AIS.
const NO_HEADING: i32 = 511;

/// How a kind of vessel moves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Motion {
    /// Sails a route between two ports; `short` prefers nearby destinations.
    Transit { short: bool },
    /// Works within `radius_km` of a spot up to `reach_km` out along its port's approach.
    Loiter { radius_km: f64, reach_km: f64 },
}

/// One kind of vessel and the facts that go with it.
pub(super) struct Kind {
    share: f64,
    types: &'static [i32],
    class_a: f64,
    /// Length range in metres (log-uniform) and length/width ratio.
    length: (f64, f64),
    beam_ratio: f64,
    draft: Option<(f64, f64)>,
    /// Cruising speed in knots: mean, sd, min, max.
    speed: (f64, f64, f64, f64),
    motion: Motion,
    imo_share: f64,
}

/// The vessel mix (shares of vessels, not of reports).
pub(super) const KINDS: &[Kind] = &[
    // Cargo ships
    Kind {
        share: 28.0,
        types: &[70, 70, 70, 70, 70, 70, 71, 72, 74, 79],
        class_a: 1.0,
        length: (90.0, 400.0),
        beam_ratio: 6.5,
        draft: Some((6.0, 16.0)),
        speed: (14.0, 2.5, 9.0, 22.0),
        motion: Motion::Transit { short: false },
        imo_share: 0.97,
    },
    // Tankers
    Kind {
        share: 14.0,
        types: &[80, 80, 80, 80, 80, 81, 82, 84, 89],
        class_a: 1.0,
        length: (100.0, 350.0),
        beam_ratio: 5.5,
        draft: Some((6.0, 21.0)),
        speed: (12.5, 1.5, 8.0, 16.0),
        motion: Motion::Transit { short: false },
        imo_share: 0.97,
    },
    // Passenger ships and ferries
    Kind {
        share: 6.0,
        types: &[60, 60, 60, 61, 69],
        class_a: 1.0,
        length: (40.0, 330.0),
        beam_ratio: 7.0,
        draft: Some((2.5, 9.0)),
        speed: (17.0, 3.0, 10.0, 25.0),
        motion: Motion::Transit { short: true },
        imo_share: 0.95,
    },
    // Fishing vessels
    Kind {
        share: 15.0,
        types: &[30],
        class_a: 0.6,
        length: (12.0, 75.0),
        beam_ratio: 3.8,
        draft: Some((2.0, 7.0)),
        speed: (3.5, 0.6, 0.0, 6.0),
        motion: Motion::Loiter { radius_km: 10.0, reach_km: 150.0 },
        imo_share: 0.4,
    },
    // Tugs and towing
    Kind {
        share: 8.0,
        types: &[52, 52, 52, 52, 31, 32],
        class_a: 1.0,
        length: (20.0, 40.0),
        beam_ratio: 2.8,
        draft: Some((3.0, 6.0)),
        speed: (6.0, 3.0, 0.0, 12.0),
        motion: Motion::Loiter { radius_km: 2.0, reach_km: 10.0 },
        imo_share: 0.5,
    },
    // Pleasure craft and sailing yachts
    Kind {
        share: 13.0,
        types: &[37, 37, 36],
        class_a: 0.05,
        length: (8.0, 40.0),
        beam_ratio: 3.3,
        draft: None,
        speed: (5.5, 1.5, 2.0, 9.0),
        motion: Motion::Loiter { radius_km: 5.0, reach_km: 30.0 },
        imo_share: 0.0,
    },
    // High speed craft
    Kind {
        share: 2.0,
        types: &[40, 40, 41, 49],
        class_a: 1.0,
        length: (20.0, 100.0),
        beam_ratio: 3.5,
        draft: Some((1.5, 4.0)),
        speed: (30.0, 4.0, 22.0, 42.0),
        motion: Motion::Transit { short: true },
        imo_share: 0.6,
    },
    // Pilot, search and rescue, port tenders, law enforcement
    Kind {
        share: 4.0,
        types: &[50, 50, 51, 53, 55],
        class_a: 0.9,
        length: (12.0, 60.0),
        beam_ratio: 3.6,
        draft: Some((1.5, 5.0)),
        speed: (8.0, 4.0, 0.0, 20.0),
        motion: Motion::Loiter { radius_km: 5.0, reach_km: 40.0 },
        imo_share: 0.1,
    },
    // Military
    Kind {
        share: 1.0,
        types: &[35],
        class_a: 1.0,
        length: (40.0, 250.0),
        beam_ratio: 8.0,
        draft: Some((3.0, 10.0)),
        speed: (16.0, 3.0, 8.0, 28.0),
        motion: Motion::Transit { short: false },
        imo_share: 0.0,
    },
    // Other types
    Kind {
        share: 5.0,
        types: &[90, 90, 91, 99],
        class_a: 0.9,
        length: (20.0, 200.0),
        beam_ratio: 4.5,
        draft: Some((2.0, 10.0)),
        speed: (10.0, 3.0, 4.0, 18.0),
        motion: Motion::Transit { short: true },
        imo_share: 0.6,
    },
    // Type not given
    Kind {
        share: 4.0,
        types: &[0],
        class_a: 0.5,
        length: (10.0, 120.0),
        beam_ratio: 4.0,
        draft: None,
        speed: (6.0, 3.0, 0.0, 15.0),
        motion: Motion::Loiter { radius_km: 5.0, reach_km: 40.0 },
        imo_share: 0.1,
    },
];

/// Length range (metres) for an AIS ship type code, from the vessel mix.
#[cfg(test)]
pub(super) fn length_range(vessel_type: i32) -> Option<(f64, f64)> {
    KINDS.iter().find(|k| k.types.contains(&vessel_type)).map(|k| k.length)
}

struct Port {
    node: usize,
    attach: usize,
    weight: f64,
    flag: (u32, &'static str),
}

/// Precomputed lane network and routes; shared by all chunk generators.
pub(super) struct Ais {
    nodes: Vec<V3>,
    latlon: Vec<(f64, f64)>,
    ports: Vec<Port>,
    port_cdf: Vec<f64>,
    /// Per origin port: predecessor of each node on the shortest path from it.
    pred: Vec<Vec<usize>>,
    /// Per origin port: destination CDFs for long and short voyages.
    dest_long: Vec<Vec<f64>>,
    dest_short: Vec<Vec<f64>>,
    kind_cdf: Vec<f64>,
    flag_cdf: Vec<f64>,
}

#[derive(PartialEq)]
struct Visit(f64, usize);
impl Eq for Visit {}
impl PartialOrd for Visit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Visit {
    // Min-heap on distance; ties broken by node so the order is deterministic.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then_with(|| other.1.cmp(&self.1))
    }
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    if acc > 0.0 {
        for x in &mut v {
            *x /= acc;
        }
    }
    v
}

/// The lane network as `(lat, lon)` segments (waypoint legs and port approaches),
/// for tests that check positions stay on it.
#[cfg(test)]
pub(super) fn network_segments() -> Result<Vec<[(f64, f64); 2]>, String> {
    let ais = Ais::new()?;
    let mut segs = Vec::new();
    for (a, nbrs) in ais.adjacency().iter().enumerate() {
        for &(b, _) in nbrs {
            if a < b {
                segs.push([ais.latlon[a], ais.latlon[b]]);
            }
        }
    }
    Ok(segs)
}

impl Ais {
    /// Builds the network; fails only if the static tables are inconsistent.
    pub(super) fn new() -> Result<Ais, String> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut latlon: Vec<(f64, f64)> = Vec::new();
        for &(name, lat, lon) in WAYPOINTS {
            if index.insert(name, latlon.len()).is_some() {
                return Err(format!("waypoint {name} is listed twice"));
            }
            latlon.push((lat, lon));
        }
        let mut ports = Vec::new();
        for &(name, cc, lat, lon, wp, weight) in PORTS {
            let attach = *index.get(wp).ok_or_else(|| format!("port {name}: unknown waypoint {wp}"))?;
            let flag = LOCAL_FLAGS
                .iter()
                .find(|f| f.0 == cc)
                .map(|f| (f.1, f.2))
                .ok_or_else(|| format!("port {name}: no flag for country {cc}"))?;
            ports.push(Port { node: latlon.len(), attach, weight, flag });
            latlon.push((lat, lon));
        }
        let nodes: Vec<V3> = latlon.iter().map(|&(la, lo)| sphere::to_v3(la, lo)).collect();
        let mut ais = Ais {
            nodes,
            latlon,
            ports,
            port_cdf: Vec::new(),
            pred: Vec::new(),
            dest_long: Vec::new(),
            dest_short: Vec::new(),
            kind_cdf: cdf(KINDS.iter().map(|k| k.share)),
            flag_cdf: cdf(OCEAN_FLAGS.iter().map(|f| f.2)),
        };
        let adj = ais.adjacency_checked(&index)?;
        let np = ais.ports.len();
        let mut dist_to_ports = Vec::with_capacity(np);
        for port in &ais.ports {
            let (dist, pred) = dijkstra(&adj, port.node);
            dist_to_ports.push(ais.ports.iter().map(|p| dist[p.node]).collect::<Vec<f64>>());
            ais.pred.push(pred);
        }
        for (o, row) in dist_to_ports.iter().enumerate() {
            if let Some(d) = row.iter().position(|km| !km.is_finite()) {
                return Err(format!("no sea route from {} to {}", PORTS[o].0, PORTS[d].0));
            }
            let w = |d: usize, f: &dyn Fn(f64) -> f64| {
                if d == o { 0.0 } else { ais.ports[d].weight * f(row[d]) }
            };
            ais.dest_long.push(cdf((0..np).map(|d| w(d, &|km| 1.0 / (1.0 + km / 6000.0)))));
            ais.dest_short.push(cdf((0..np).map(|d| w(d, &|km| (-km / 400.0).exp()))));
        }
        ais.port_cdf = cdf(ais.ports.iter().map(|p| p.weight));
        Ok(ais)
    }

    fn adjacency_checked(&self, index: &HashMap<&str, usize>) -> Result<Vec<Vec<(usize, f64)>>, String> {
        let mut adj = vec![Vec::new(); self.latlon.len()];
        let mut add = |a: usize, b: usize| {
            let km = sphere::angle(self.nodes[a], self.nodes[b]) * sphere::EARTH_KM;
            adj[a].push((b, km));
            adj[b].push((a, km));
        };
        for &(a, b) in LEGS {
            let ia = *index.get(a).ok_or_else(|| format!("leg {a}-{b}: unknown waypoint {a}"))?;
            let ib = *index.get(b).ok_or_else(|| format!("leg {a}-{b}: unknown waypoint {b}"))?;
            add(ia, ib);
        }
        for p in &self.ports {
            add(p.node, p.attach);
        }
        Ok(adj)
    }

    #[cfg(test)]
    fn adjacency(&self) -> Vec<Vec<(usize, f64)>> {
        let index: HashMap<&str, usize> = WAYPOINTS.iter().enumerate().map(|(i, w)| (w.0, i)).collect();
        self.adjacency_checked(&index).expect("checked at construction")
    }

    /// One chunk of `rows` position reports, made of whole or truncated tracks.
    pub(super) fn batch(&self, rng: &mut ChaCha8Rng, rows: usize) -> RecordBatch {
        let mut out = Columns::with_capacity(rows);
        while out.len() < rows {
            let vessel = self.vessel(rng);
            let remaining = rows - out.len();
            match vessel.kind.motion {
                Motion::Transit { short } => self.transit(rng, &vessel, short, remaining, &mut out),
                Motion::Loiter { radius_km, reach_km } => {
                    self.loiter(rng, &vessel, radius_km, reach_km, remaining, &mut out)
                }
            }
        }
        out.finish()
    }

    fn vessel(&self, rng: &mut ChaCha8Rng) -> Vessel {
        let kind = &KINDS[pick(&self.kind_cdf, rng.random::<f64>())];
        let vessel_type = kind.types[rng.random_range(0..kind.types.len())];
        let class_a = rng.random::<f64>() < kind.class_a;
        let home = pick(&self.port_cdf, rng.random::<f64>());
        let ocean_going = matches!(kind.motion, Motion::Transit { short: false });
        let (mid, prefix) = if ocean_going && rng.random::<f64>() < 0.75 {
            let f = &OCEAN_FLAGS[pick(&self.flag_cdf, rng.random::<f64>())];
            (f.0, f.1)
        } else {
            self.ports[home].flag
        };
        let mmsi = mid as i64 * 1_000_000 + rng.random_range(0..1_000_000i64);
        let (lo, hi) = kind.length;
        let length = (lo * (hi / lo).powf(rng.random::<f64>())).round();
        let beam = (length / kind.beam_ratio * (0.92 + 0.16 * rng.random::<f64>())).round().clamp(2.0, 70.0);
        let dims_known = class_a || rng.random::<f64>() < 0.75;
        let draft = kind
            .draft
            .filter(|_| class_a && rng.random::<f64>() < 0.9)
            .map(|(lo, hi)| ((lo + (hi - lo) * rng.random::<f64>()) * 10.0).round() / 10.0);
        let words = if length >= 80.0 { NAME_WORDS } else { SMALL_NAME_WORDS };
        let name = (rng.random::<f64>() >= 0.03).then(|| {
            let mut n = format!(
                "{} {}",
                words.0[rng.random_range(0..words.0.len())],
                words.1[rng.random_range(0..words.1.len())]
            );
            if rng.random::<f64>() < 0.2 {
                n.push_str(&format!(" {}", rng.random_range(1..20)));
            }
            n
        });
        let imo = (class_a && rng.random::<f64>() < kind.imo_share).then(|| imo_number(rng));
        let call_sign = (class_a || rng.random::<f64>() < 0.9).then(|| call_sign(prefix, rng));
        let (m, sd, lo_s, hi_s) = kind.speed;
        let speed = (m + sd * rng.sample::<f64, _>(StandardNormal)).clamp(lo_s, hi_s);
        let no_heading = rng.random::<f64>() < if class_a { 0.05 } else { 0.6 };
        let cargo = (class_a && vessel_type != 0 && rng.random::<f64>() < 0.6).then_some(vessel_type);
        Vessel {
            kind,
            vessel_type,
            class_a,
            home,
            mmsi,
            length: dims_known.then_some(length),
            width: dims_known.then_some(beam),
            draft,
            name,
            imo,
            call_sign,
            speed,
            no_heading,
            cargo,
        }
    }

    /// Track length in reports and the base interval between them.
    fn schedule(&self, rng: &mut ChaCha8Rng, v: &Vessel, median: f64) -> (usize, f64) {
        let n = (median * (0.9 * rng.sample::<f64, _>(StandardNormal)).exp()).clamp(20.0, 6000.0) as usize;
        let choices: &[f64] = if v.class_a { &[60.0, 120.0, 180.0, 300.0] } else { &[180.0, 300.0, 600.0] };
        (n, choices[rng.random_range(0..choices.len())])
    }

    fn route(&self, from: usize, to: usize) -> Route {
        let pred = &self.pred[from];
        let mut path = vec![self.ports[to].node];
        let start = self.ports[from].node;
        while *path.last().expect("path starts non-empty") != start {
            let prev = pred[*path.last().expect("non-empty")];
            path.push(prev);
        }
        path.reverse();
        let pts: Vec<V3> = path.iter().map(|&n| self.nodes[n]).collect();
        let mut cum = vec![0.0];
        let mut omega = Vec::with_capacity(pts.len());
        for w in pts.windows(2) {
            let a = sphere::angle(w[0], w[1]);
            omega.push(a);
            cum.push(cum.last().copied().unwrap_or(0.0) + a * sphere::EARTH_KM);
        }
        Route { pts, cum, omega }
    }

    fn transit(&self, rng: &mut ChaCha8Rng, v: &Vessel, short: bool, remaining: usize, out: &mut Columns) {
        let from = v.home;
        let dests = if short { &self.dest_short[from] } else { &self.dest_long[from] };
        let mut to = pick(dests, rng.random::<f64>());
        if to == from {
            to = (from + 1) % self.ports.len();
        }
        let route = self.route(from, to);
        let total = route.total();
        let (n, base_dt) = self.schedule(rng, v, 700.0);
        let departing = rng.random::<f64>() < 0.25;
        let mut s = if departing { 0.0 } else { total * 0.95 * rng.random::<f64>() };
        let mut t = track_start(rng, n, base_dt);
        let mut emitted = 0;
        let lane_offset = (1.5 * rng.sample::<f64, _>(StandardNormal)).clamp(-5.0, 5.0);
        let mut moored_left = if departing { rng.random_range(1..12) } else { 0 };
        let mut arrived_left = 3 + rng.random_range(0..20);
        let anchor_on_arrival = rng.random::<f64>() < 0.4;
        let mut seg = 0;
        let mut last_cog = 0.0;
        let heading_noise = 2.0;
        for _ in 0..n {
            if t >= MONTH_SECONDS as f64 {
                break;
            }
            let (lat, lon, sog, cog, status);
            let mut underway = false;
            if moored_left > 0 {
                moored_left -= 1;
                let (la, lo) = sphere::to_latlon(route.pts[0]);
                (lat, lon, sog, status) = (la, lo, 0.0, 5);
                cog = (route.bearing_at(0, 0.0) + 10.0 * rng.sample::<f64, _>(StandardNormal)).rem_euclid(360.0);
            } else if s >= total {
                if arrived_left == 0 {
                    break;
                }
                arrived_left -= 1;
                // Moored at the berth, or at anchor off the port waiting for one.
                let end = *route.pts.last().expect("routes have two ends");
                let p = if anchor_on_arrival {
                    let k = route.pts.len() - 2;
                    sphere::slerp(end, route.pts[k], route.omega[k], 0.3)
                } else {
                    end
                };
                let (la, lo) = sphere::to_latlon(p);
                (lat, lon) = (la, lo);
                sog = if anchor_on_arrival { 0.3 * rng.random::<f64>() } else { 0.0 };
                status = if anchor_on_arrival { 1 } else { 5 };
                cog = (last_cog + 20.0 * rng.sample::<f64, _>(StandardNormal)).rem_euclid(360.0);
            } else {
                while seg + 1 < route.omega.len() && s > route.cum[seg + 1] {
                    seg += 1;
                }
                let len = route.cum[seg + 1] - route.cum[seg];
                let frac = if len > 0.0 { ((s - route.cum[seg]) / len).clamp(0.0, 1.0) } else { 0.0 };
                let p = sphere::slerp(route.pts[seg], route.pts[seg + 1], route.omega[seg], frac);
                let dir = sphere::tangent(p, route.pts[seg + 1]);
                // Ships keep to their side of the lane, joining its centre near the ports.
                let taper = (s.min(total - s) / 30.0).min(1.0);
                let side = sphere::normalize(sphere::cross(p, dir));
                let q = sphere::offset_along(p, side, lane_offset * taper);
                let (la, lo) = sphere::to_latlon(q);
                (lat, lon) = (la, lo);
                let b = sphere::bearing_of(p, dir);
                cog = (b + rng.sample::<f64, _>(StandardNormal)).rem_euclid(360.0);
                sog = (v.speed * (1.0 + 0.03 * rng.sample::<f64, _>(StandardNormal))).max(0.0);
                status = 0;
                underway = true;
            }
            last_cog = cog;
            let heading = if v.no_heading {
                NO_HEADING
            } else {
                (cog + heading_noise * rng.sample::<f64, _>(StandardNormal)).round().rem_euclid(360.0) as i32
            };
            if t >= 0.0 {
                out.push(v, t as u32, lat, lon, sog, cog, heading, status);
                emitted += 1;
                if emitted == remaining {
                    break;
                }
            }
            let dt = base_dt * (0.9 + 0.2 * rng.random::<f64>());
            if underway {
                s += sog * KNOT_KM_PER_S * dt;
            }
            t += dt;
        }
    }

    fn loiter(
        &self,
        rng: &mut ChaCha8Rng,
        v: &Vessel,
        radius_km: f64,
        reach_km: f64,
        remaining: usize,
        out: &mut Columns,
    ) {
        let port = &self.ports[v.home];
        let (pv, av) = (self.nodes[port.node], self.nodes[port.attach]);
        let approach_km = sphere::angle(pv, av) * sphere::EARTH_KM;
        // A working spot out along the port's approach; the circle is small near the
        // coast so the craft stays on the water.
        let along = (reach_km * (0.05 + 0.95 * rng.random::<f64>())).min(0.9 * approach_km);
        let spot = sphere::slerp(pv, av, sphere::angle(pv, av), along / approach_km.max(1e-9));
        let radius = radius_km.min(0.3 * along + 0.3);
        let (lat0, lon0) = sphere::to_latlon(spot);
        let km_lat = sphere::EARTH_KM.to_radians();
        let km_lon = km_lat * lat0.to_radians().cos().max(0.05);
        let (n, base_dt) = self.schedule(rng, v, 300.0);
        let mut t = track_start(rng, n, base_dt);
        let mut emitted = 0;
        let (mut x, mut y) = (0.0f64, 0.0f64);
        let mut h = 360.0 * rng.random::<f64>();
        let mut working = rng.random::<f64>() < 0.6;
        for _ in 0..n {
            if t >= MONTH_SECONDS as f64 {
                break;
            }
            if rng.random::<f64>() < 0.03 {
                working = !working;
            }
            let (sm, sd, lo, hi) = v.kind.speed;
            let sog: f64 = if working {
                (v.speed + 0.15 * sd * rng.sample::<f64, _>(StandardNormal)).clamp(lo, hi)
            } else {
                (0.5 * rng.random::<f64>()).min(sm)
            };
            let dist = (x * x + y * y).sqrt();
            h = if dist > radius {
                // Head back towards the spot.
                let back = (-x).atan2(-y).to_degrees();
                back + 15.0 * rng.sample::<f64, _>(StandardNormal)
            } else {
                let turn = if v.vessel_type == 30 { 8.0 } else { 25.0 };
                h + turn * rng.sample::<f64, _>(StandardNormal)
            }
            .rem_euclid(360.0);
            let lat = lat0 + y / km_lat;
            let lon = lon0 + x / km_lon;
            let status = match (v.class_a, v.vessel_type, working) {
                (false, _, _) => None,
                (true, 0, _) => Some(15),
                (true, 30, true) => Some(7),
                (true, 36, true) => Some(8),
                (true, _, true) => Some(0),
                (true, 30 | 31 | 32 | 52, false) => Some(0),
                (true, _, false) => Some(1),
            };
            let heading = if v.no_heading {
                NO_HEADING
            } else {
                (h + 4.0 * rng.sample::<f64, _>(StandardNormal)).round().rem_euclid(360.0) as i32
            };
            if t >= 0.0 {
                out.push_opt_status(v, t as u32, lat, lon, sog, h, heading, status);
                emitted += 1;
                if emitted == remaining {
                    break;
                }
            }
            let dt = base_dt * (0.9 + 0.2 * rng.random::<f64>());
            let step = sog * KNOT_KM_PER_S * dt;
            let (sh, ch) = h.to_radians().sin_cos();
            x += step * sh;
            y += step * ch;
            t += dt;
        }
    }
}

/// When a track starts, seconds from 2024-01-01T00:00:00. Tracks may begin before
/// the month (their early reports are not emitted) so that every day of January
/// sees the same traffic, not a ramp-up from an empty sea on the 1st.
fn track_start(rng: &mut ChaCha8Rng, reports: usize, interval: f64) -> f64 {
    let span = reports as f64 * interval;
    -span + (MONTH_SECONDS as f64 + span) * rng.random::<f64>()
}

fn dijkstra(adj: &[Vec<(usize, f64)>], start: usize) -> (Vec<f64>, Vec<usize>) {
    let mut dist = vec![f64::INFINITY; adj.len()];
    let mut pred = vec![usize::MAX; adj.len()];
    let mut heap = BinaryHeap::new();
    dist[start] = 0.0;
    pred[start] = start;
    heap.push(Visit(0.0, start));
    while let Some(Visit(d, u)) = heap.pop() {
        if d > dist[u] {
            continue;
        }
        for &(w, km) in &adj[u] {
            let nd = d + km;
            if nd < dist[w] {
                dist[w] = nd;
                pred[w] = u;
                heap.push(Visit(nd, w));
            }
        }
    }
    (dist, pred)
}

struct Route {
    pts: Vec<V3>,
    cum: Vec<f64>,
    omega: Vec<f64>,
}

impl Route {
    fn total(&self) -> f64 {
        self.cum.last().copied().unwrap_or(0.0)
    }
    fn bearing_at(&self, seg: usize, frac: f64) -> f64 {
        let p = sphere::slerp(self.pts[seg], self.pts[seg + 1], self.omega[seg], frac);
        sphere::bearing_of(p, sphere::tangent(p, self.pts[seg + 1]))
    }
}

struct Vessel {
    kind: &'static Kind,
    vessel_type: i32,
    class_a: bool,
    home: usize,
    mmsi: i64,
    length: Option<f64>,
    width: Option<f64>,
    draft: Option<f64>,
    name: Option<String>,
    imo: Option<String>,
    call_sign: Option<String>,
    speed: f64,
    no_heading: bool,
    cargo: Option<i32>,
}

/// An IMO number with its check digit: the six digits weighted 7..2, summed, mod 10.
fn imo_number(rng: &mut ChaCha8Rng) -> String {
    let six: u32 = if rng.random::<f64>() < 0.7 {
        rng.random_range(900_000..1_000_000)
    } else {
        rng.random_range(700_000..900_000)
    };
    let digits: Vec<u32> = six.to_string().bytes().map(|b| (b - b'0') as u32).collect();
    let check: u32 = digits.iter().zip((2..=7).rev()).map(|(d, w)| d * w).sum::<u32>() % 10;
    format!("IMO{six}{check}")
}

fn call_sign(prefix: &str, rng: &mut ChaCha8Rng) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = rng.random_range(5..=7usize).max(prefix.len() + 2);
    let mut s = String::with_capacity(len);
    s.push_str(prefix);
    while s.len() < len {
        s.push(ALNUM[rng.random_range(0..ALNUM.len())] as char);
    }
    s
}

/// Formats seconds since 2024-01-01T00:00:00 as `2024-01-DDTHH:MM:SS`.
pub(super) fn january_2024(secs: u32, buf: &mut [u8; 19]) {
    let day = secs / 86_400 + 1;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    buf.copy_from_slice(b"2024-01-00T00:00:00");
    let put = |b: &mut [u8; 19], at: usize, v: u32| {
        b[at] = b'0' + (v / 10) as u8;
        b[at + 1] = b'0' + (v % 10) as u8;
    };
    put(buf, 8, day);
    put(buf, 11, h);
    put(buf, 14, m);
    put(buf, 17, s);
}

struct Columns {
    mmsi: Vec<i64>,
    time: StringBuilder,
    lat: Vec<f64>,
    lon: Vec<f64>,
    sog: Vec<f64>,
    cog: Vec<f64>,
    heading: Vec<i32>,
    name: StringBuilder,
    imo: StringBuilder,
    call_sign: StringBuilder,
    vessel_type: Vec<i32>,
    status: Vec<Option<i32>>,
    length: Vec<Option<f64>>,
    width: Vec<Option<f64>>,
    draft: Vec<Option<f64>>,
    cargo: Vec<Option<i32>>,
    class: StringBuilder,
}

impl Columns {
    fn with_capacity(n: usize) -> Columns {
        Columns {
            mmsi: Vec::with_capacity(n),
            time: StringBuilder::with_capacity(n, n * 19),
            lat: Vec::with_capacity(n),
            lon: Vec::with_capacity(n),
            sog: Vec::with_capacity(n),
            cog: Vec::with_capacity(n),
            heading: Vec::with_capacity(n),
            name: StringBuilder::with_capacity(n, n * 14),
            imo: StringBuilder::with_capacity(n, n * 10),
            call_sign: StringBuilder::with_capacity(n, n * 6),
            vessel_type: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            length: Vec::with_capacity(n),
            width: Vec::with_capacity(n),
            draft: Vec::with_capacity(n),
            cargo: Vec::with_capacity(n),
            class: StringBuilder::with_capacity(n, n),
        }
    }

    fn len(&self) -> usize {
        self.mmsi.len()
    }

    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, v: &Vessel, t: u32, lat: f64, lon: f64, sog: f64, cog: f64, heading: i32, status: i32) {
        let status = v.class_a.then_some(status);
        self.push_opt_status(v, t, lat, lon, sog, cog, heading, status);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_opt_status(
        &mut self,
        v: &Vessel,
        t: u32,
        lat: f64,
        lon: f64,
        sog: f64,
        cog: f64,
        heading: i32,
        status: Option<i32>,
    ) {
        let mut buf = [0u8; 19];
        january_2024(t.min(MONTH_SECONDS - 1), &mut buf);
        self.mmsi.push(v.mmsi);
        self.time.append_value(std::str::from_utf8(&buf).expect("ASCII timestamp"));
        self.lat.push((lat * 1e5).round() / 1e5);
        self.lon.push((lon * 1e5).round() / 1e5);
        self.sog.push((sog * 10.0).round() / 10.0);
        self.cog.push(((cog * 10.0).round() / 10.0).rem_euclid(360.0));
        self.heading.push(heading);
        self.name.append_option(v.name.as_deref());
        self.imo.append_option(v.imo.as_deref());
        self.call_sign.append_option(v.call_sign.as_deref());
        self.vessel_type.push(v.vessel_type);
        self.status.push(status);
        self.length.push(v.length);
        self.width.push(v.width);
        self.draft.push(v.draft);
        self.cargo.push(v.cargo);
        self.class.append_value(if v.class_a { "A" } else { "B" });
    }

    fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.mmsi)),
            Arc::new(self.time.finish()),
            Arc::new(Float64Array::from(self.lat)),
            Arc::new(Float64Array::from(self.lon)),
            Arc::new(Float64Array::from(self.sog)),
            Arc::new(Float64Array::from(self.cog)),
            Arc::new(Int32Array::from(self.heading)),
            Arc::new(self.name.finish()),
            Arc::new(self.imo.finish()),
            Arc::new(self.call_sign.finish()),
            Arc::new(Int32Array::from(self.vessel_type)),
            Arc::new(Int32Array::from(self.status)),
            Arc::new(Float64Array::from(self.length)),
            Arc::new(Float64Array::from(self.width)),
            Arc::new(Float64Array::from(self.draft)),
            Arc::new(Int32Array::from(self.cargo)),
            Arc::new(self.class.finish()),
        ];
        RecordBatch::try_new(ais_schema(), cols).expect("columns match the AIS schema")
    }
}
