#!/usr/bin/env node
// A stand-in for `quiver-dashboard` to develop the front end and its browser
// test without workers: it serves dashboard/static/ and answers the HTTP API
// of dashboard/API.md from synthetic in-memory data (crossfilter histograms,
// a shaded PNG of the viewport, samples), with the same login flow.
//
//   node dashboard/tools/mock-server.mjs [--port 8050] [--host 127.0.0.1]
//        [--token mock-token] [--rows 200000] [--delay MS] [--partial]
//        [--tile-url URL|self] [--suspended] [--static DIR]
//
// `--tile-url self` serves debug tiles (a grid with each tile's z/x/y
// parity) at /tiles/{z}/{x}/{y}.png, to check the tile layer's registration.
//
// It prints `listening on http://HOST:PORT` once ready (port 0 picks a free one).
// Nothing here is used by the real server; it only has to follow the contract.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { extname, join, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = {
    port: 8050,
    host: '127.0.0.1',
    token: 'mock-token',
    rows: 200000,
    delay: 0,
    partial: false,
    suspended: false,
    tileUrl: null,
    staticDir: join(here, '..', 'static'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (argv[i + 1] === undefined) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--host') o.host = v();
    else if (a === '--token') o.token = v();
    else if (a === '--rows') o.rows = Number(v());
    else if (a === '--delay') o.delay = Number(v());
    else if (a === '--partial') o.partial = true;
    else if (a === '--suspended') o.suspended = true;
    else if (a === '--tile-url') o.tileUrl = v();
    else if (a === '--static') o.staticDir = v();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.rows) || o.rows < 1) throw new Error('--rows must be a positive integer');
  return o;
}

// ---------- synthetic data ----------

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function gauss(r) {
  return Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
}
function pick(r, weights) {
  const total = weights.reduce((a, b) => a + b, 0);
  let x = r() * total;
  for (let i = 0; i < weights.length; i++) {
    x -= weights[i];
    if (x < 0) return i;
  }
  return weights.length - 1;
}

const CITIES = [
  [-74.0, 40.7, 9], [-118.2, 34.05, 7], [-87.6, 41.9, 5], [-95.4, 29.8, 4], [-122.4, 37.8, 4],
  [-0.13, 51.5, 7], [2.35, 48.85, 7], [13.4, 52.5, 5], [12.5, 41.9, 4], [-3.7, 40.4, 4],
  [37.6, 55.75, 6], [28.97, 41.0, 5], [31.2, 30.05, 5], [3.4, 6.45, 5], [36.8, -1.3, 3],
  [28.0, -26.2, 4], [77.2, 28.6, 9], [72.9, 19.1, 8], [88.4, 22.6, 6], [90.4, 23.8, 6],
  [116.4, 39.9, 8], [121.5, 31.2, 9], [114.1, 22.5, 7], [139.7, 35.7, 9], [126.98, 37.57, 6],
  [106.8, -6.2, 7], [100.5, 13.75, 5], [103.8, 1.35, 4], [151.2, -33.9, 4], [144.96, -37.8, 3],
  [-46.6, -23.55, 8], [-43.2, -22.9, 5], [-58.4, -34.6, 5], [-77.0, -12.05, 4], [-74.1, 4.7, 4],
  [-99.1, 19.4, 8], [-79.4, 43.65, 4], [-123.1, 49.25, 2], [174.8, -36.85, 1.5], [-157.85, 21.3, 1],
];
const YEAR0 = 2003;
const YEARS = 23; // 2003 .. 2025
const yearStart = (y) => Date.UTC(y, 0, 1) / 1000;

function fmtNum(v) {
  const a = Math.abs(v);
  const [x, s] = a >= 1e9 ? [v / 1e9, 'G'] : a >= 1e6 ? [v / 1e6, 'M'] : a >= 1e3 ? [v / 1e3, 'k'] : [v, ''];
  let t;
  if (Math.abs(x - Math.round(x)) < 1e-9) t = String(Math.round(x));
  else if (Math.abs(x) >= 100) t = x.toFixed(0);
  else if (Math.abs(x) >= 10) t = x.toFixed(1);
  else t = x.toFixed(2);
  if (t.includes('.')) t = t.replace(/0+$/, '').replace(/\.$/, '');
  return t + s;
}

/** Dimension definitions in the API's shape, plus a coder from a raw value to a bin index. */
function categorical(name, title, cats) {
  const bins = cats.map(([label, color]) => ({ label, color }));
  return { name, title, kind: 'categorical', bins, code: (v) => v };
}
function numeric(name, title, kind, min, max, n) {
  const edges = [];
  for (let i = 0; i <= n; i++) {
    edges.push(kind === 'log' ? 10 ** (Math.log10(min) + ((Math.log10(max) - Math.log10(min)) * i) / n) : min + ((max - min) * i) / n);
  }
  const bins = [];
  for (let i = 0; i < n; i++) bins.push({ label: `${fmtNum(edges[i])}–${fmtNum(edges[i + 1])}`, lo: edges[i], hi: edges[i + 1] });
  const code = (v) => {
    const t = kind === 'log' ? (Math.log10(Math.max(v, 1e-300)) - Math.log10(min)) / (Math.log10(max) - Math.log10(min)) : (v - min) / (max - min);
    return Math.max(0, Math.min(n - 1, Math.floor(t * n)));
  };
  return { name, title, kind, bins, code };
}
function temporal(name, title, edges, label) {
  const bins = [];
  for (let i = 0; i + 1 < edges.length; i++) bins.push({ label: label(edges[i]), lo: edges[i], hi: edges[i + 1] });
  const code = (v) => {
    let k = 0;
    while (k + 1 < edges.length - 1 && edges[k + 1] <= v) k++;
    return k;
  };
  return { name, title, kind: 'temporal', bins, code };
}

function makeCelltowers(n, seed) {
  const r = rng(seed);
  const radios = [['GSM', '#4e79a7'], ['UMTS', '#f28e2b'], ['CDMA', '#e15759'], ['LTE', '#59a14f'], ['NR', '#b07aa1'], ['Other', '#999999']];
  const dims = [
    categorical('radio', 'Radio', radios),
    numeric('range', 'Range (m)', 'log', 10, 100000, 32),
    numeric('samples', 'Samples', 'log', 1, 10000, 24),
    temporal('created', 'Year built', Array.from({ length: YEARS + 1 }, (_, i) => yearStart(YEAR0 + i)), (t) => String(new Date(t * 1000).getUTCFullYear())),
  ];
  const lon = new Float64Array(n);
  const lat = new Float64Array(n);
  const codes = dims.map(() => new Uint8Array(n));
  const values = [];
  const weights = CITIES.map((c) => c[2]);
  for (let i = 0; i < n; i++) {
    const c = CITIES[pick(r, weights)];
    const spread = r() < 0.7 ? 0.35 : 2.5;
    lon[i] = Math.max(-179.99, Math.min(179.99, c[0] + gauss(r) * spread));
    lat[i] = Math.max(-84, Math.min(84, c[1] + gauss(r) * spread * 0.8));
    const year = YEAR0 + Math.min(YEARS - 1, Math.floor(YEARS * Math.sqrt(r())));
    const created = yearStart(year) + Math.floor(r() * 365 * 86400);
    let radio = year < 2008 ? pick(r, [7, 1, 2, 0, 0, 0.1]) : year < 2014 ? pick(r, [4, 4, 1, 2, 0, 0.1]) : year < 2020 ? pick(r, [2, 3, 0.5, 7, 0.2, 0.1]) : pick(r, [1, 1, 0.2, 6, 4, 0.1]);
    const range = Math.max(10, Math.exp(7 + gauss(r) * 1.2));
    const samples = Math.max(1, Math.floor(Math.exp(2 + Math.abs(gauss(r)) * 1.6)));
    codes[0][i] = radio;
    codes[1][i] = dims[1].code(range);
    codes[2][i] = dims[2].code(samples);
    codes[3][i] = dims[3].code(created);
    values.push([range, samples, created, 200 + Math.floor(r() * 700)]);
  }
  const rowValues = (i) => {
    const [range, samples, created, mcc] = values[i];
    return {
      mcc: String(mcc),
      range: String(Math.round(range)),
      samples: String(samples),
      created: new Date(created * 1000).toISOString().slice(0, 19) + 'Z',
    };
  };
  return { name: 'celltowers', x: 'lon', y: 'lat', category: 'radio', dims, lon, lat, codes, rowValues, n };
}

const PORTS = [
  [-74.05, 40.6], [-76.3, 36.9], [-80.1, 26.1], [-90.05, 29.9], [-94.8, 29.3],
  [-118.25, 33.7], [-122.35, 37.8], [-122.4, 47.6], [-70.95, 42.35], [-81.1, 32.05],
  [-157.9, 21.3], [-149.9, 61.2], [-66.1, 18.45],
];
const LANES = [[0, 1], [1, 2], [2, 3], [3, 4], [5, 6], [6, 7], [0, 8], [1, 9], [9, 2], [6, 10], [7, 11], [2, 12]];

function makeAis(n, seed) {
  const r = rng(seed);
  const groups = [['Cargo', '#4e79a7'], ['Tanker', '#e15759'], ['Passenger', '#76b7b2'], ['Fishing', '#59a14f'], ['Tug/Tow', '#edc948'], ['Pleasure', '#b07aa1'], ['Other', '#999999']];
  const t0 = Date.UTC(2024, 0, 1) / 1000;
  const days = Array.from({ length: 32 }, (_, i) => t0 + i * 86400);
  const dims = [
    categorical('vesselGroup', 'Vessel type', groups),
    numeric('sog', 'Speed (knots)', 'linear', 0, 30, 30),
    numeric('length', 'Length (m)', 'linear', 0, 400, 40),
    temporal('time', 'Time', days, (t) => new Date(t * 1000).toISOString().slice(0, 10)),
  ];
  const lon = new Float64Array(n);
  const lat = new Float64Array(n);
  const codes = dims.map(() => new Uint8Array(n));
  const values = [];
  for (let i = 0; i < n; i++) {
    const g = pick(r, [5, 2, 1, 2, 1.5, 2, 0.5]);
    let x;
    let y;
    if (g === 3 || g === 5 || r() < 0.15) {
      const p = PORTS[Math.floor(r() * PORTS.length)];
      x = p[0] + gauss(r) * 0.6;
      y = p[1] + gauss(r) * 0.4;
    } else {
      const [a, b] = LANES[Math.floor(r() * LANES.length)];
      const t = r();
      x = PORTS[a][0] + (PORTS[b][0] - PORTS[a][0]) * t + gauss(r) * 0.08;
      y = PORTS[a][1] + (PORTS[b][1] - PORTS[a][1]) * t + gauss(r) * 0.08;
    }
    lon[i] = x;
    lat[i] = y;
    const sog = Math.max(0, g === 5 ? Math.abs(gauss(r)) * 6 : 8 + gauss(r) * 5);
    const length = Math.max(5, g <= 1 ? 150 + gauss(r) * 60 : 20 + Math.abs(gauss(r)) * 25);
    const time = t0 + Math.floor(r() * 31 * 86400);
    codes[0][i] = g;
    codes[1][i] = dims[1].code(sog);
    codes[2][i] = dims[2].code(length);
    codes[3][i] = dims[3].code(time);
    values.push([sog, length, time, 200000000 + Math.floor(r() * 700000000)]);
  }
  const rowValues = (i) => {
    const [sog, length, time, mmsi] = values[i];
    return {
      MMSI: String(mmsi),
      SOG: sog.toFixed(1),
      Length: String(Math.round(length)),
      BaseDateTime: new Date(time * 1000).toISOString().slice(0, 19),
    };
  };
  return { name: 'ais', x: 'LON', y: 'LAT', category: 'vesselGroup', dims, lon, lat, codes, rowValues, n };
}

// ---------- query engine ----------

const MAX_LAT = 85.05112877980659;
const lonToX = (lon) => (lon + 180) / 360;
function latToY(lat) {
  const s = Math.sin((Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
}

class BadRequest extends Error {}

function checkViewport(v) {
  if (!v || typeof v !== 'object') throw new BadRequest('viewport must be an object with west, south, east, north');
  const { west, south, east, north } = v;
  if (![west, south, east, north].every(Number.isFinite)) throw new BadRequest('viewport bounds must be finite numbers');
  if (west < -180 || west > 180 || east < -180 || east > 180) throw new BadRequest(`viewport longitudes ${west}, ${east} must lie in [-180, 180]`);
  if (south < -MAX_LAT || north > MAX_LAT || north < -MAX_LAT || south > MAX_LAT) throw new BadRequest(`viewport latitudes ${south}, ${north} must lie in [-${MAX_LAT}, ${MAX_LAT}]`);
  if (south >= north) throw new BadRequest(`viewport south ${south} must be below north ${north}`);
  if (west === east) throw new BadRequest('viewport has zero width');
}

function runQuery(ds, q, opts) {
  const t0 = performance.now();
  const known = new Set(['dataset', 'filters', 'viewport', 'viewportFilter', 'histograms', 'baseline', 'image', 'sample']);
  for (const k of Object.keys(q)) if (!known.has(k)) throw new BadRequest(`unknown field ${JSON.stringify(k)}`);
  const needsViewport = q.image || q.sample || q.viewportFilter;
  if (needsViewport && !q.viewport) throw new BadRequest('viewport is required with image, sample or viewportFilter');
  if (q.viewport) checkViewport(q.viewport);
  if (q.image) {
    const { width, height } = q.image;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 4096 || height > 4096 || width * height > 4194304) {
      throw new BadRequest(`image size ${width}x${height} is outside 1x1..4096x4096 and 4194304 pixels`);
    }
  }
  if (q.sample && !(Number.isInteger(q.sample.limit) && q.sample.limit >= 0 && q.sample.limit <= 10000)) {
    throw new BadRequest(`sample limit ${q.sample.limit} exceeds the limit of 10000 rows`);
  }
  const dimIndex = new Map(ds.dims.map((d, i) => [d.name, i]));
  const hists = q.histograms || [];
  for (const h of hists) if (!dimIndex.has(h)) throw new BadRequest(`dataset ${ds.name} has no dimension ${JSON.stringify(h)}`);
  // Pass tables per filtered dimension.
  const filters = [];
  for (const [name, f] of Object.entries(q.filters || {})) {
    const di = dimIndex.get(name);
    if (di === undefined) throw new BadRequest(`dataset ${ds.name} has no dimension ${JSON.stringify(name)}`);
    const dim = ds.dims[di];
    const pass = new Uint8Array(256);
    if (f.categories) {
      if (dim.kind !== 'categorical') throw new BadRequest(`dimension ${name} is not categorical; filter it with a range`);
      for (const c of f.categories) {
        const i = dim.bins.findIndex((b) => b.label === c);
        if (i < 0) throw new BadRequest(`dimension ${name} has no category ${JSON.stringify(c)}`);
        pass[i] = 1;
      }
    } else if (f.range) {
      if (dim.kind === 'categorical') throw new BadRequest(`dimension ${name} is categorical; filter it with categories`);
      const { min, max } = f.range;
      if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) throw new BadRequest(`filter on ${name}: bad range ${min}..${max}`);
      dim.bins.forEach((b, i) => {
        pass[i] = b.lo >= min && b.lo < max ? 1 : 0;
      });
    } else if (f.bins) {
      for (const b of f.bins) pass[b] = 1;
    } else {
      throw new BadRequest(`filter on ${name} must have categories, range or bins`);
    }
    filters.push({ di, pass });
  }

  // Viewport in unit coordinates; columns wrap when west > east.
  let vp = null;
  if (q.viewport) {
    const v = q.viewport;
    const x0 = lonToX(v.west);
    let wx = v.east > v.west ? lonToX(v.east) - x0 : 1 - x0 + lonToX(v.east);
    if (v.west === -180 && v.east === 180) wx = 1;
    const y0 = latToY(v.north);
    const hy = latToY(v.south) - y0;
    vp = { x0, wx, y0, hy };
  }
  const inView = (i) => {
    let dx = lonToX(ds.lon[i]) - vp.x0;
    if (dx < 0) dx += 1;
    const dy = latToY(ds.lat[i]) - vp.y0;
    return dx >= 0 && dx < vp.wx && dy >= 0 && dy < vp.hy;
  };

  const histIdx = hists.map((h) => dimIndex.get(h));
  const counts = ds.dims.map((d) => new Float64Array(d.bins.length));
  const base = ds.dims.map((d) => new Float64Array(d.bins.length));
  const ncat = ds.dims.find((d) => d.name === ds.category).bins.length;
  const catCodes = ds.codes[dimIndex.get(ds.category)];
  const W = q.image ? q.image.width : 0;
  const H = q.image ? q.image.height : 0;
  const raster = q.image ? new Uint32Array(W * H * ncat) : null;
  const matchedRows = [];
  let selected = 0;
  let total = 0;
  const shardOf = (i) => i % 2;
  for (let i = 0; i < ds.n; i++) {
    if (opts.partial && shardOf(i) === 1) continue;
    total++;
    let visible = true;
    if (vp) visible = inView(i);
    if (q.viewportFilter && !visible) continue;
    if (q.baseline) for (const di of histIdx) base[di][ds.codes[di][i]]++;
    let failed = -1;
    let fails = 0;
    for (const f of filters) {
      if (!f.pass[ds.codes[f.di][i]]) {
        fails++;
        failed = f.di;
        if (fails > 1) break;
      }
    }
    if (fails === 0) {
      selected++;
      for (const di of histIdx) counts[di][ds.codes[di][i]]++;
      if (visible && vp) {
        matchedRows.push(i);
        if (raster) {
          let dx = lonToX(ds.lon[i]) - vp.x0;
          if (dx < 0) dx += 1;
          const col = Math.min(W - 1, Math.floor((dx / vp.wx) * W));
          const row = Math.min(H - 1, Math.floor(((latToY(ds.lat[i]) - vp.y0) / vp.hy) * H));
          raster[(row * W + col) * ncat + catCodes[i]]++;
        }
      }
    } else if (fails === 1 && histIdx.includes(failed)) {
      counts[failed][ds.codes[failed][i]]++;
    }
  }
  const workersMs = performance.now() - t0;
  const histJson = (arr) => {
    const out = {};
    for (const di of histIdx) {
      out[ds.dims[di].name] = { bins: ds.dims[di].bins.map((b, k) => ({ label: b.label, ...(b.lo !== undefined ? { lo: b.lo, hi: b.hi } : {}), count: arr[di][k] })), missing: 0 };
    }
    return out;
  };
  const t1 = performance.now();
  const image = raster ? shade(raster, W, H, ds.dims[dimIndex.get(ds.category)].bins.map((b) => b.color)) : undefined;
  const shadeMs = performance.now() - t1;
  let sample;
  if (q.sample) {
    const limit = q.sample.limit;
    const stride = matchedRows.length > limit ? matchedRows.length / limit : 1;
    const rows = [];
    for (let k = 0; k < Math.min(limit, matchedRows.length); k++) {
      const i = matchedRows[Math.floor(k * stride)];
      rows.push({ lon: ds.lon[i], lat: ds.lat[i], category: ds.dims[dimIndex.get(ds.category)].bins[catCodes[i]].label, values: ds.rowValues(i) });
    }
    sample = { matched: matchedRows.length, rows };
  }
  const res = {
    total,
    selected,
    histograms: histJson(counts),
    shards: opts.partial
      ? { expected: 2, answered: [0], missing: [1], consistent: true, message: 'shard 1 (http://127.0.0.1:8816) did not answer: connection refused' }
      : { expected: 2, answered: [0, 1], missing: [], consistent: true, message: null },
    partial: !!opts.partial,
    timings: { totalMs: performance.now() - t0, workersMs, shadeMs },
  };
  if (q.baseline) res.baseline = histJson(base);
  if (image) res.image = image;
  if (sample) res.sample = sample;
  return res;
}

// ---------- PNG ----------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function encodePng(rgba, w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((w * 4 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 4 + 1)] = 0;
    rgba.copy(raw, y * (w * 4 + 1) + 1, y * w * 4, (y + 1) * w * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Colours mixed by count per category, alpha by log of the total. */
function shade(raster, w, h, colors) {
  const ncat = colors.length;
  const rgb = colors.map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  let max = 0;
  const totals = new Uint32Array(w * h);
  for (let p = 0; p < w * h; p++) {
    let t = 0;
    for (let c = 0; c < ncat; c++) t += raster[p * ncat + c];
    totals[p] = t;
    if (t > max) max = t;
  }
  const out = Buffer.alloc(w * h * 4);
  const lmax = Math.log1p(max) || 1;
  for (let p = 0; p < w * h; p++) {
    const t = totals[p];
    if (!t) continue;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let c = 0; c < ncat; c++) {
      const k = raster[p * ncat + c];
      if (k) {
        r += rgb[c][0] * k;
        g += rgb[c][1] * k;
        b += rgb[c][2] * k;
      }
    }
    out[p * 4] = r / t;
    out[p * 4 + 1] = g / t;
    out[p * 4 + 2] = b / t;
    out[p * 4 + 3] = Math.round(255 * (0.45 + 0.55 * (Math.log1p(t) / lmax)));
  }
  return `data:image/png;base64,${encodePng(out, w, h).toString('base64')}`;
}

/** A 256×256 debug tile: translucent fill by (x + y) parity, opaque 1-px border. */
function debugTile(z, x, y) {
  const n = 256;
  const px = Buffer.alloc(n * n * 4);
  const shade = (x + y + z) % 2 ? [90, 140, 220, 40] : [220, 160, 90, 40];
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      const edge = i === 0 || j === 0;
      const c = edge ? [255, 255, 255, 160] : shade;
      px.set(c, (j * n + i) * 4);
    }
  }
  return encodePng(px, n, n);
}

// ---------- HTTP ----------

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const datasets = [makeCelltowers(opts.rows, 1), makeAis(Math.max(1, Math.floor(opts.rows / 2)), 2)];
  console.error(`generated ${datasets.map((d) => `${d.name}: ${d.n} rows`).join(', ')} in ${Date.now() - t0} ms`);
  const sessions = new Set();
  let failures = 0;
  let reloadUntil = 0;
  let queries = 0;

  const tokenOk = (t) => {
    const a = Buffer.from(String(t || ''));
    const b = Buffer.from(opts.token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const authed = (req) => {
    const auth = req.headers.authorization || '';
    if (auth.startsWith('Bearer ') && tokenOk(auth.slice(7))) return true;
    const m = /(?:^|;\s*)quiver_session=([^;]+)/.exec(req.headers.cookie || '');
    return !!m && sessions.has(m[1]);
  };
  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'Cache-Control': 'no-store', ...headers });
    res.end(body);
  };
  const json = (res, status, obj) => send(res, status, JSON.stringify(obj), { 'Content-Type': 'application/json' });
  const readBody = (req) =>
    new Promise((resolve, reject) => {
      const parts = [];
      let size = 0;
      req.on('data', (c) => {
        size += c.length;
        if (size > 1 << 20) reject(new BadRequest('request body over 1 MiB'));
        parts.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
      req.on('error', reject);
    });
  const serveFile = async (res, name) => {
    const path = normalize(join(opts.staticDir, name));
    if (!path.startsWith(normalize(opts.staticDir))) return send(res, 404, 'not found');
    try {
      const body = await readFile(path);
      send(res, 200, body, { 'Content-Type': TYPES[extname(path)] || 'application/octet-stream' });
    } catch {
      send(res, 404, 'not found', { 'Content-Type': 'text/plain' });
    }
  };
  const datasetJson = (d) => ({
    name: d.name,
    rows: d.n,
    x: d.x,
    y: d.y,
    category: d.category,
    dimensions: d.dims.map(({ name, title, kind, bins }) => ({ name, title, kind, bins })),
  });
  let suspended = opts.suspended;
  const status = () => {
    if (suspended) return { shards: 0, complete: false, consistent: true, suspended: true, workers: [] };
    const loading = Date.now() < reloadUntil;
    const progress = loading ? 1 - (reloadUntil - Date.now()) / 3000 : 1;
    const workers = [0, 1].map((shard) => ({
      endpoint: `http://127.0.0.1:${8815 + shard}`,
      ok: !(opts.partial && shard === 1),
      shard,
      shards: 2,
      queries,
      lastQueryTime: new Date().toISOString(),
      error: opts.partial && shard === 1 ? 'connection refused' : null,
      datasets: datasets.map((d) => ({
        name: d.name,
        state: loading && progress < (shard ? 0.9 : 0.5) ? 'loading' : 'ready',
        rows: Math.floor(d.n / 2),
        bytes: d.n * 8,
        generation: 'mock-1',
        error: null,
        reloading: loading && progress < (shard ? 0.9 : 0.5),
      })),
    }));
    return { shards: 2, complete: !opts.partial, consistent: true, workers };
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const path = url.pathname;
    try {
      if (path === '/login' && req.method === 'GET') return serveFile(res, 'login.html');
      if (path === '/login' && req.method === 'POST') {
        const body = await readBody(req);
        const isJson = (req.headers['content-type'] || '').includes('json');
        const token = isJson ? JSON.parse(body || '{}').token : new URLSearchParams(body).get('token');
        if (failures >= 10) {
          return isJson ? json(res, 429, { error: 'too many failed logins' }) : send(res, 303, '', { Location: '/login?error=rate', 'Retry-After': '60' });
        }
        if (!tokenOk(token)) {
          failures++;
          return isJson ? json(res, 401, { error: 'wrong token' }) : send(res, 303, '', { Location: '/login?error=1' });
        }
        const sid = randomBytes(18).toString('hex');
        sessions.add(sid);
        const cookie = `quiver_session=${sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200`;
        return isJson ? send(res, 204, '', { 'Set-Cookie': cookie }) : send(res, 303, '', { 'Set-Cookie': cookie, Location: '/' });
      }
      if (path === '/logout' && req.method === 'POST') {
        const m = /(?:^|;\s*)quiver_session=([^;]+)/.exec(req.headers.cookie || '');
        if (m) sessions.delete(m[1]);
        return send(res, 303, '', { 'Set-Cookie': 'quiver_session=; Path=/; Max-Age=0', Location: '/login' });
      }
      if (path.startsWith('/static/')) return serveFile(res, path.slice('/static/'.length));
      if (path === '/healthz' || path === '/readyz') return send(res, 200, 'ok');
      const tile = /^\/tiles\/(\d+)\/(\d+)\/(\d+)\.png$/.exec(path);
      if (tile) return send(res, 200, debugTile(...tile.slice(1).map(Number)), { 'Content-Type': 'image/png' });
      if (path === '/') {
        if (!authed(req)) return send(res, 303, '', { Location: '/login' });
        return serveFile(res, 'index.html');
      }
      if (!path.startsWith('/api/')) return send(res, 404, 'not found');
      if (!authed(req)) return json(res, 401, { error: 'not logged in' });
      if (opts.delay) await new Promise((r) => setTimeout(r, opts.delay));
      if (path === '/api/datasets' && req.method === 'GET') return json(res, 200, { datasets: datasets.map(datasetJson) });
      if (path === '/api/config' && req.method === 'GET') return json(res, 200, { tileUrl: opts.tileUrl });
      if (path === '/api/status' && req.method === 'GET') return json(res, 200, status());
      if (path === '/api/resume' && req.method === 'POST') {
        suspended = false;
        reloadUntil = Date.now() + 3000;
        return json(res, 202, { resumed: true });
      }
      if (suspended && path !== '/api/status' && path !== '/api/config') {
        return json(res, 503, { error: 'the cluster is suspended; resume it to query' });
      }
      if (path === '/api/reload' && req.method === 'POST') {
        reloadUntil = Date.now() + 3000;
        return json(res, 202, { workers: status().workers.map((w) => ({ endpoint: w.endpoint, ok: w.ok, error: w.error })) });
      }
      if (path === '/api/query' && req.method === 'POST') {
        let q;
        try {
          q = JSON.parse(await readBody(req));
        } catch {
          throw new BadRequest('request body is not valid JSON');
        }
        const ds = datasets.find((d) => d.name === q.dataset);
        if (!ds) throw new BadRequest(`unknown dataset ${JSON.stringify(q.dataset)}`);
        queries++;
        return json(res, 200, runQuery(ds, q, opts));
      }
      return json(res, 404, { error: `no route ${req.method} ${path}` });
    } catch (e) {
      if (e instanceof BadRequest) return json(res, 400, { error: e.message });
      console.error(e);
      return json(res, 500, { error: 'internal error' });
    }
  });
  server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    if (opts.tileUrl === 'self') opts.tileUrl = `http://${opts.host}:${port}/tiles/{z}/{x}/{y}.png`;
    console.log(`listening on http://${opts.host}:${port}`);
  });
}

try {
  main();
} catch (e) {
  console.error(`mock-server: ${e.message}`);
  process.exit(2);
}
