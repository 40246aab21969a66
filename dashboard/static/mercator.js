// Web Mercator in "unit" coordinates: x and y in [0, 1], y = 0 at the north
// edge (85.0511°N), like map tiles and like the worker's quantised grid.
// Pure functions, shared by the map, the basemap and the tests.

/** Latitude of the square Web Mercator world's edges, kept a hair inside the
 * worker's limit so a viewport at the edge is never rejected. */
export const MAX_LAT = 85.0511287798;
export const TILE = 256;

export function lonToX(lon) {
  return (lon + 180) / 360;
}

export function latToY(lat) {
  const l = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
  const s = Math.sin((l * Math.PI) / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
}

export function xToLon(x) {
  return x * 360 - 180;
}

export function yToLat(y) {
  const n = Math.PI * (1 - 2 * y);
  const lat = (Math.atan(Math.sinh(n)) * 180) / Math.PI;
  return Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
}

/** Wraps a longitude into [-180, 180). */
export function wrapLon(lon) {
  const w = ((((lon + 180) % 360) + 360) % 360) - 180;
  return w;
}

export function worldSize(zoom) {
  return TILE * 2 ** zoom;
}

/** Rounds to `digits` decimals; the map keeps its state rounded so a URL
 * reproduces exactly the viewport (and so the counts) it was copied from. */
export function roundTo(v, digits) {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Zoom bounds for a map of `width`×`height` CSS pixels. */
export function zoomBounds(width, height) {
  const min = Math.max(0, Math.log2(Math.max(1, Math.min(width, height)) / TILE) - 0.25);
  return { min: roundTo(min, 4), max: 20 };
}

/**
 * Brings a view {lon, lat, zoom} inside what a `width`×`height` map can show:
 * zoom within bounds; when the world is narrower than the map it is centred,
 * otherwise longitudes wrap; latitude keeps the map inside the world.
 * The result is rounded (6 decimals for degrees, 4 for zoom) and applying
 * `clampView` again returns it unchanged.
 */
export function clampView(view, width, height) {
  const { min, max } = zoomBounds(width, height);
  let zoom = roundTo(Math.max(min, Math.min(max, Number.isFinite(view.zoom) ? view.zoom : min)), 4);
  zoom = Math.max(min, Math.min(max, zoom));
  const S = worldSize(zoom);
  let lon = Number.isFinite(view.lon) ? view.lon : 0;
  let lat = Number.isFinite(view.lat) ? view.lat : 0;
  lon = S <= width ? 0 : wrapLon(lon);
  let cy = latToY(lat);
  if (S <= height) {
    cy = 0.5;
  } else {
    const half = height / 2 / S;
    cy = Math.max(half, Math.min(1 - half, cy));
  }
  lat = S <= height ? 0 : yToLat(cy);
  lon = roundTo(lon, 6);
  lat = roundTo(lat, 6);
  if (lon >= 180) lon -= 360;
  if (Object.is(lon, -0)) lon = 0;
  if (Object.is(lat, -0)) lat = 0;
  return { lon, lat, zoom };
}

/**
 * What a `width`×`height` map showing `view` covers: the visible part of the
 * world in unit coordinates (`x0` may be negative or `x1` above 1 when the
 * map crosses the antimeridian), the geographic viewport for the API (west >
 * east when crossing), and the pixel size of that part.
 */
export function visibleViewport(view, width, height) {
  const S = worldSize(view.zoom);
  const cx = lonToX(view.lon);
  const cy = latToY(view.lat);
  let x0 = cx - width / 2 / S;
  let x1 = cx + width / 2 / S;
  if (x1 - x0 >= 1) {
    // The whole world is in view: query exactly one copy of it.
    x0 = Math.max(0, x0);
    x1 = Math.min(1, x1);
    if (x1 - x0 >= 1) {
      x0 = 0;
      x1 = 1;
    }
  }
  const y0 = Math.max(0, cy - height / 2 / S);
  const y1 = Math.min(1, cy + height / 2 / S);
  let west = xToLon(x0 - Math.floor(x0));
  let east = xToLon(x1 - Math.floor(x1));
  if (x1 - x0 >= 1) {
    west = -180;
    east = 180;
  } else if (x1 === Math.floor(x1) && x1 > x0) {
    east = 180; // ends exactly at the antimeridian
  }
  const viewport = {
    west: clampDeg(west, 180),
    south: yToLat(y1),
    east: clampDeg(east, 180),
    north: yToLat(y0),
  };
  return {
    x0,
    x1,
    y0,
    y1,
    viewport,
    pixelWidth: Math.max(1, Math.round((x1 - x0) * S)),
    pixelHeight: Math.max(1, Math.round((y1 - y0) * S)),
  };
}

function clampDeg(v, m) {
  return Math.max(-m, Math.min(m, v));
}

/** Scales a pixel size down to the API's limits (4096 per side, 4,194,304 pixels). */
export function fitImageSize(w, h) {
  let s = Math.min(1, 4096 / w, 4096 / h, Math.sqrt(4194304 / (w * h)));
  let W = Math.max(1, Math.floor(w * s));
  let H = Math.max(1, Math.floor(h * s));
  return { width: W, height: H };
}
