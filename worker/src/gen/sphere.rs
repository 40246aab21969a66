//! Spherical geometry for the generators: unit vectors, great-circle legs,
//! bearings and local offsets, on a sphere of the Earth's mean radius.

/// Mean Earth radius, km.
pub(super) const EARTH_KM: f64 = 6371.0088;

/// A point as a unit vector (x towards 0°E on the equator, z towards the north pole).
pub(super) type V3 = [f64; 3];

#[inline]
pub(super) fn to_v3(lat: f64, lon: f64) -> V3 {
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    let c = la.cos();
    [c * lo.cos(), c * lo.sin(), la.sin()]
}

#[inline]
pub(super) fn to_latlon(v: V3) -> (f64, f64) {
    let lat = v[2].clamp(-1.0, 1.0).asin().to_degrees();
    let lon = v[1].atan2(v[0]).to_degrees();
    (lat, lon)
}

#[inline]
pub(super) fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub(super) fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

#[inline]
pub(super) fn normalize(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    if n == 0.0 { a } else { [a[0] / n, a[1] / n, a[2] / n] }
}

/// Angle between two unit vectors, radians (stable for small angles).
#[inline]
pub(super) fn angle(a: V3, b: V3) -> f64 {
    let c = cross(a, b);
    dot(c, c).sqrt().atan2(dot(a, b))
}

/// Great-circle distance, km.
pub(super) fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    angle(to_v3(lat1, lon1), to_v3(lat2, lon2)) * EARTH_KM
}

/// The point a fraction `t` of the way along the great circle from `a` to `b`,
/// whose angle is `omega` (radians).
#[inline]
pub(super) fn slerp(a: V3, b: V3, omega: f64, t: f64) -> V3 {
    if omega < 1e-12 {
        return a;
    }
    let s = omega.sin();
    let wa = ((1.0 - t) * omega).sin() / s;
    let wb = (t * omega).sin() / s;
    normalize([wa * a[0] + wb * b[0], wa * a[1] + wb * b[1], wa * a[2] + wb * b[2]])
}

/// Unit tangent at `p` pointing along the great circle towards `b`.
#[inline]
pub(super) fn tangent(p: V3, b: V3) -> V3 {
    let d = dot(p, b);
    normalize([b[0] - d * p[0], b[1] - d * p[1], b[2] - d * p[2]])
}

/// Compass bearing (degrees clockwise from north, in [0, 360)) of tangent `t` at `p`.
#[inline]
pub(super) fn bearing_of(p: V3, t: V3) -> f64 {
    // East is z × p and north is p × east, both scaled by cos(lat): no trigonometry
    // needed, and the common scale cancels in atan2.
    let east = [-p[1], p[0], 0.0];
    let north = [-p[2] * p[0], -p[2] * p[1], p[0] * p[0] + p[1] * p[1]];
    let b = dot(t, east).atan2(dot(t, north)).to_degrees();
    if b < 0.0 { b + 360.0 } else { b }
}

/// Moves `p` by `km` along unit tangent direction `dir` (perpendicular to `p`).
#[inline]
pub(super) fn offset_along(p: V3, dir: V3, km: f64) -> V3 {
    let a = km / EARTH_KM;
    // Offsets are a few km: the small-angle form is exact to well under a metre.
    let (s, c) = if a.abs() < 0.01 { (a, 1.0 - 0.5 * a * a) } else { a.sin_cos() };
    normalize([c * p[0] + s * dir[0], c * p[1] + s * dir[1], c * p[2] + s * dir[2]])
}

#[cfg(test)]
/// The point `km` away from (lat, lon) on compass bearing `bearing_deg`.
pub(super) fn destination(lat: f64, lon: f64, bearing_deg: f64, km: f64) -> (f64, f64) {
    let p = to_v3(lat, lon);
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    let east = [-lo.sin(), lo.cos(), 0.0];
    let north = [-la.sin() * lo.cos(), -la.sin() * lo.sin(), la.cos()];
    let (sb, cb) = bearing_deg.to_radians().sin_cos();
    let dir = [cb * north[0] + sb * east[0], cb * north[1] + sb * east[1], cb * north[2] + sb * east[2]];
    to_latlon(offset_along(p, dir, km))
}

#[cfg(test)]
/// Initial compass bearing from one point to another, degrees in [0, 360).
pub(super) fn bearing(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let p = to_v3(lat1, lon1);
    bearing_of(p, tangent(p, to_v3(lat2, lon2)))
}

#[cfg(test)]
/// Distance (km) from a point to the great-circle segment `a`–`b`.
pub(super) fn distance_to_segment_km(p: V3, a: V3, b: V3) -> f64 {
    let n = cross(a, b);
    let nn = dot(n, n).sqrt();
    if nn < 1e-15 {
        return angle(p, a) * EARTH_KM;
    }
    let n = [n[0] / nn, n[1] / nn, n[2] / nn];
    // Foot of the perpendicular on the great circle; inside the segment when it
    // lies on the short arc between a and b.
    let d = dot(p, n);
    let foot = normalize([p[0] - d * n[0], p[1] - d * n[1], p[2] - d * n[2]]);
    let ab = angle(a, b);
    if (angle(a, foot) + angle(foot, b) - ab).abs() < 1e-9 {
        d.abs().asin() * EARTH_KM
    } else {
        angle(p, a).min(angle(p, b)) * EARTH_KM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances_and_bearings() {
        // London to Paris is about 344 km, heading south-east.
        let d = distance_km(51.5074, -0.1278, 48.8566, 2.3522);
        assert!((d - 343.5).abs() < 2.0, "{d}");
        let b = bearing(51.5074, -0.1278, 48.8566, 2.3522);
        assert!((b - 148.1).abs() < 1.0, "{b}");
        // Due east along the equator.
        assert!((bearing(0.0, 0.0, 0.0, 10.0) - 90.0).abs() < 1e-9);
        assert!((bearing(0.0, 0.0, -10.0, 0.0) - 180.0).abs() < 1e-9);
    }

    #[test]
    fn bearing_matches_the_spherical_trigonometry_formula() {
        let pts: [(f64, f64); 6] =
            [(51.5, -0.1), (-33.9, 151.2), (1.3, 103.8), (-54.8, -68.3), (64.1, -21.9), (35.7, 139.7)];
        for &(la1, lo1) in &pts {
            for &(la2, lo2) in &pts {
                if (la1, lo1) == (la2, lo2) {
                    continue;
                }
                let (p1, p2, dl) = (la1.to_radians(), la2.to_radians(), (lo2 - lo1).to_radians());
                let y = dl.sin() * p2.cos();
                let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
                let want = y.atan2(x).to_degrees().rem_euclid(360.0);
                let got = bearing(la1, lo1, la2, lo2);
                let d = (got - want).rem_euclid(360.0);
                assert!(d.min(360.0 - d) < 1e-9, "({la1},{lo1})->({la2},{lo2}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn destination_inverts_distance_and_bearing() {
        let (lat, lon) = destination(35.0, 139.0, 60.0, 100.0);
        assert!((distance_km(35.0, 139.0, lat, lon) - 100.0).abs() < 1e-6);
        assert!((bearing(35.0, 139.0, lat, lon) - 60.0).abs() < 1e-6);
    }

    #[test]
    fn slerp_crosses_the_antimeridian_on_the_short_way() {
        let a = to_v3(20.0, 170.0);
        let b = to_v3(20.0, -170.0);
        let (lat, lon) = to_latlon(slerp(a, b, angle(a, b), 0.5));
        assert!(lon.abs() > 179.9 && lat > 20.0, "{lat} {lon}");
    }

    #[test]
    fn segment_distance_uses_the_perpendicular_or_an_end() {
        let a = to_v3(0.0, 0.0);
        let b = to_v3(0.0, 10.0);
        let mid = distance_to_segment_km(to_v3(1.0, 5.0), a, b);
        assert!((mid - 111.19).abs() < 0.1, "{mid}");
        let beyond = distance_to_segment_km(to_v3(0.0, 12.0), a, b);
        assert!((beyond - 2.0 * 111.19).abs() < 0.2, "{beyond}");
    }
}
