#!/usr/bin/env node
// Builds dashboard/static/countries.json, the offline basemap, from a Natural
// Earth TopoJSON file of the npm package `world-atlas` (public domain data).
//
//   cd "$(mktemp -d)" && npm install world-atlas@2.0.2
//   node /path/to/dashboard/tools/build-basemap.mjs \
//        --input node_modules/world-atlas/countries-50m.json \
//        --out /path/to/dashboard/static/countries.json
//
// Output format `quiver-basemap-1` (decoded by static/basemap.js):
//   { "format": "quiver-basemap-1", "source": "...", "scale": 0.01,
//     "arcs": ["<polyline>", ...],      // lon/lat in units of `scale` degrees,
//                                       // delta-encoded, each number zigzag
//                                       // varint in 5-bit groups, chars 63..126
//     "borders": [i, ...],              // arcs shared by two countries
//     "land": [[a, ~b, ...], ...] }     // rings of land polygons as arc indices;
//                                       // ~i (= -i-1) means arc i reversed
// Arcs are simplified in Web Mercator space (Douglas-Peucker, endpoints kept so
// shared borders stay shared), which keeps the file small and the map fast.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

function parseArgs(argv) {
  const opts = { input: null, out: null, scale: 0.01, tolerance: 0.02 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--input') opts.input = next();
    else if (a === '--out') opts.out = next();
    else if (a === '--scale') opts.scale = Number(next());
    else if (a === '--tolerance') opts.tolerance = Number(next());
    else if (a === '--help' || a === '-h') {
      console.log('usage: build-basemap.mjs [--input countries-50m.json] [--out countries.json] [--scale DEG] [--tolerance DEG]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(opts.scale > 0) || !(opts.tolerance >= 0)) throw new Error('--scale must be > 0 and --tolerance >= 0');
  if (!opts.input) {
    // Resolve world-atlas from the current directory's node_modules.
    const require = createRequire(`${process.cwd()}/`);
    opts.input = require.resolve('world-atlas/countries-50m.json');
  }
  return opts;
}

/** Decodes a quantised TopoJSON topology's arcs into lon/lat arrays. */
export function decodeArcs(topo) {
  const t = topo.transform;
  return topo.arcs.map((arc) => {
    let x = 0;
    let y = 0;
    return arc.map(([dx, dy]) => {
      if (t) {
        x += dx;
        y += dy;
        return [x * t.scale[0] + t.translate[0], y * t.scale[1] + t.translate[1]];
      }
      return [dx, dy];
    });
  });
}

const MAX_LAT = 85.0511287798;
/** Mercator y in degree-like units, so a tolerance in degrees means the same everywhere on the map. */
function mercY(lat) {
  const l = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI / 180;
  return Math.log(Math.tan(Math.PI / 4 + l / 2)) * 180 / Math.PI;
}

/** Douglas-Peucker over points [lon, lat] measured in Mercator; keeps both ends. */
export function simplify(points, tolerance) {
  if (points.length <= 2 || tolerance <= 0) return points.slice();
  const proj = points.map(([lon, lat]) => [lon, mercY(lat)]);
  const keep = new Uint8Array(points.length);
  keep[0] = 1;
  keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  const tol2 = tolerance * tolerance;
  while (stack.length) {
    const [a, b] = stack.pop();
    const [ax, ay] = proj[a];
    const [bx, by] = proj[b];
    const dx = bx - ax;
    const dy = by - ay;
    const len2 = dx * dx + dy * dy;
    let worst = -1;
    let worstD = tol2;
    for (let i = a + 1; i < b; i++) {
      const [px, py] = proj[i];
      let d2;
      if (len2 === 0) {
        d2 = (px - ax) ** 2 + (py - ay) ** 2;
      } else {
        const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2));
        d2 = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2;
      }
      if (d2 > worstD) {
        worstD = d2;
        worst = i;
      }
    }
    if (worst >= 0) {
      keep[worst] = 1;
      stack.push([a, worst], [worst, b]);
    }
  }
  // A closed arc (a ring on its own) needs at least 4 points to stay a polygon.
  const out = points.filter((_, i) => keep[i]);
  if (out.length < 4 && points.length >= 4 && samePoint(points[0], points[points.length - 1])) {
    const third = Math.floor(points.length / 3);
    return [points[0], points[third], points[2 * third], points[points.length - 1]];
  }
  return out;
}

function samePoint(a, b) {
  return a[0] === b[0] && a[1] === b[1];
}

/** Encodes one signed integer as zigzag varint in 5-bit groups (chars 63..126). */
export function encodeInt(v) {
  let z = v < 0 ? (-v * 2) - 1 : v * 2;
  let s = '';
  while (z >= 0x20) {
    s += String.fromCharCode((0x20 | (z & 0x1f)) + 63);
    z = Math.floor(z / 32);
  }
  return s + String.fromCharCode(z + 63);
}

/** Encodes quantised points as deltas: lon0, lat0, dlon1, dlat1, ... */
export function encodePolyline(qpoints) {
  let px = 0;
  let py = 0;
  let s = '';
  for (const [x, y] of qpoints) {
    s += encodeInt(x - px) + encodeInt(y - py);
    px = x;
    py = y;
  }
  return s;
}

function ringsOf(geometry) {
  if (geometry.type === 'Polygon') return geometry.arcs;
  if (geometry.type === 'MultiPolygon') return geometry.arcs.flat();
  if (geometry.type === 'GeometryCollection') return geometry.geometries.flatMap(ringsOf);
  return [];
}

export function build(topo, { scale, tolerance, source }) {
  const arcs = decodeArcs(topo);
  const countries = topo.objects.countries;
  const land = topo.objects.land;
  if (!countries || !land) throw new Error('input has no "countries" and "land" objects: is it world-atlas countries-*.json?');

  // How many country rings use each arc: 2 means a border between countries.
  const uses = new Uint8Array(arcs.length);
  for (const ring of ringsOf(countries)) {
    for (const a of ring) uses[a < 0 ? ~a : a]++;
  }
  const encoded = [];
  let points = 0;
  for (const arc of arcs) {
    const simple = simplify(arc, tolerance);
    const q = [];
    for (const [lon, lat] of simple) {
      const p = [Math.round(lon / scale), Math.round(lat / scale)];
      const last = q[q.length - 1];
      if (!last || last[0] !== p[0] || last[1] !== p[1]) q.push(p);
    }
    if (q.length === 1) q.push(q[0]);
    points += q.length;
    encoded.push(encodePolyline(q));
  }
  const borders = [];
  uses.forEach((n, i) => {
    if (n >= 2) borders.push(i);
  });
  return {
    doc: {
      format: 'quiver-basemap-1',
      source,
      scale,
      arcs: encoded,
      borders,
      land: ringsOf(land),
    },
    points,
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const topo = JSON.parse(readFileSync(opts.input, 'utf8'));
  const name = opts.input.split('/').pop();
  const source = `Natural Earth (public domain) via world-atlas ${name}; simplified to ${opts.tolerance} deg, quantised to ${opts.scale} deg`;
  const { doc, points } = build(topo, { scale: opts.scale, tolerance: opts.tolerance, source });
  const text = JSON.stringify(doc);
  if (opts.out) {
    writeFileSync(opts.out, text);
    console.error(`wrote ${opts.out}: ${doc.arcs.length} arcs, ${points} points, ${doc.land.length} land rings, ${text.length} bytes`);
  } else {
    process.stdout.write(text);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    main();
  } catch (e) {
    console.error(`build-basemap: ${e.message}`);
    process.exit(1);
  }
}
