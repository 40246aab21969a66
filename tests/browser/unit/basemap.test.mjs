// The offline basemap: encoder (dashboard/tools/build-basemap.mjs) and decoder
// (dashboard/static/basemap.js) agree, and the committed file is sound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { build, encodePolyline, simplify } from '../../../dashboard/tools/build-basemap.mjs';
import { decodeBasemap, decodePolyline } from '../../../dashboard/static/basemap.js';

test('polylines round trip through the encoding', () => {
  let seed = 7;
  const r = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (let n = 1; n < 200; n += 7) {
    const pts = [];
    for (let i = 0; i < n; i++) pts.push([Math.round(r() * 36000 - 18000), Math.round(r() * 18000 - 9000)]);
    const flat = decodePolyline(encodePolyline(pts), 1);
    assert.deepEqual(flat, pts.flat());
  }
});

test('simplify keeps the ends and drops points within the tolerance', () => {
  const line = [[0, 0], [1, 0.001], [2, 0], [3, 5], [4, 0]];
  const s = simplify(line, 0.01);
  assert.deepEqual(s[0], [0, 0]);
  assert.deepEqual(s[s.length - 1], [4, 0]);
  assert.ok(!s.some((p) => p[0] === 1), 'the near-collinear point stays');
  assert.ok(s.some((p) => p[0] === 3), 'the far point was dropped');
});

// A tiny topology: a square country crossing the antimeridian, and an
// "Antarctica" ring that goes round the south pole.
const topo = {
  type: 'Topology',
  arcs: [
    [[170, 10], [190 - 360, 10], [190 - 360, 20], [170, 20], [170, 10]],
    [[-180, -70], [-90, -75], [0, -70], [90, -75], [180, -70]],
  ],
  objects: {
    countries: { type: 'GeometryCollection', geometries: [{ type: 'Polygon', arcs: [[0]] }, { type: 'Polygon', arcs: [[1]] }] },
    land: { type: 'GeometryCollection', geometries: [{ type: 'MultiPolygon', arcs: [[[0]], [[1]]] }] },
  },
};

test('rings across the antimeridian are unwrapped and polar rings closed', () => {
  const { doc } = build(topo, { scale: 0.01, tolerance: 0, source: 'test' });
  const base = decodeBasemap(JSON.parse(JSON.stringify(doc)));
  // The square's outline is cut where it jumps across the antimeridian.
  for (const l of base.lines) {
    for (let i = 2; i < l.xy.length; i += 2) assert.ok(Math.abs(l.xy[i] - l.xy[i - 2]) <= 0.5, 'an outline jumps across the map');
  }
  assert.equal(base.lines.length, 3, 'the square is cut in two, the polar line stays whole');
  const [square, pole] = base.land;
  assert.ok(square.bbox[2] > 1, 'the square was not unwrapped past x = 1');
  assert.ok(Math.abs(square.bbox[2] - square.bbox[0] - 20 / 360) < 1e-6);
  // The polar ring ends on the south edge of the map (y = 1).
  assert.equal(pole.bbox[3], 1);
  assert.ok(Math.abs(pole.bbox[2] - pole.bbox[0] - 1) < 1e-9);
});

test('the committed countries.json decodes to sane outlines', () => {
  const text = readFileSync(new URL('../../../dashboard/static/countries.json', import.meta.url), 'utf8');
  assert.ok(text.length < 300 * 1024, `countries.json is ${text.length} bytes`);
  const base = decodeBasemap(JSON.parse(text));
  assert.ok(base.lines.length > 1000, `${base.lines.length} outlines`);
  assert.ok(base.land.length > 500, `${base.land.length} land rings`);
  for (const l of base.lines) {
    assert.ok(l.bbox[0] >= 0 && l.bbox[2] <= 1 && l.bbox[1] >= 0 && l.bbox[3] <= 1);
  }
  // Land covers a plausible share of the map (Mercator inflates the poles).
  let area = 0;
  for (const ring of base.land) {
    const xy = ring.xy;
    let a = 0;
    for (let i = 0, j = xy.length - 2; i < xy.length; j = i, i += 2) a += (xy[j] + xy[i]) * (xy[j + 1] - xy[i + 1]);
    area += Math.abs(a / 2);
  }
  assert.ok(area > 0.2 && area < 0.6, `land covers ${area} of the map`);
});
