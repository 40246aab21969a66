// The detailed offline basemap: its builder (dashboard/basemap/build.mjs, pure
// parts; no npm packages needed) and the front end's decoder, level of
// detail, tile choice and label placement (dashboard/static/basemap-detail.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LEVELS, buildTiles, clipLine, clipRing, encodePolyline, project, simplify, stamp } from '../../../dashboard/basemap/build.mjs';
import { decodeTile, levelFor, minPopulation, placeLabels, tilesInView } from '../../../dashboard/static/basemap-detail.js';
import { latToY, lonToX } from '../../../dashboard/static/mercator.js';

function area(ring) {
  let a = 0;
  for (let i = 0; i < ring.length; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[(i + 1) % ring.length];
    a += x0 * y1 - x1 * y0;
  }
  return Math.abs(a) / 2;
}

test('the builder projects like the front end (Web Mercator, the tiles of XYZ servers)', () => {
  for (const [lon, lat] of [[2.3522, 48.8566], [4.47917, 51.9225], [-74, 40.7], [151.2, -33.9], [0, 0]]) {
    const [x, y] = project([lon, lat]);
    assert.ok(Math.abs(x - lonToX(lon)) < 1e-12 && Math.abs(y - latToY(lat)) < 1e-12);
  }
});

test('a ring clipped to a rectangle keeps the part inside; one around it becomes the rectangle', () => {
  const half = clipRing([[0, 0], [2, 0], [2, 2], [0, 2]], 1, 0, 3, 2);
  assert.equal(area(half), 2);
  const around = clipRing([[-5, -5], [5, -5], [5, 5], [-5, 5]], 0, 0, 1, 1);
  assert.equal(area(around), 1);
  assert.deepEqual(clipRing([[3, 3], [4, 3], [4, 4]], 0, 0, 1, 1), []);
});

test('a line clipped to a rectangle is cut at its edges, in pieces where it leaves and comes back', () => {
  const pieces = clipLine([[-1, 0.5], [0.5, 0.5], [2, 0.5], [2, 0.8], [0.5, 0.8]], 0, 0, 1, 1);
  assert.deepEqual(pieces, [
    [[0, 0.5], [0.5, 0.5], [1, 0.5]],
    [[1, 0.8], [0.5, 0.8]],
  ]);
  assert.deepEqual(clipLine([[2, 2], [3, 3]], 0, 0, 1, 1), []);
});

test('simplify drops points closer than the tolerance and keeps the shape', () => {
  const line = [];
  for (let i = 0; i <= 100; i++) line.push([i, Math.sin(i / 10) + (i % 2 ? 1e-4 : 0)]);
  const s = simplify(line, 0.01);
  assert.ok(s.length < 40, `${s.length} points left`);
  assert.deepEqual(s[0], line[0]);
  assert.deepEqual(s[s.length - 1], line[100]);
});

test('tiles decode back to the places and shapes they were built from, within a grid step', () => {
  const paris = [2.3522, 48.8566];
  const square = [[1, 48], [4, 48], [4, 50], [1, 50], [1, 48]];
  const src = {
    rings: [square],
    coast: [square],
    border: [[[2, 47], [2, 51]]],
    admin: [],
    roads: [[[1.5, 48.5], [3.5, 49.5]]],
    cities: [{ name: 'Paris', lon: paris[0], lat: paris[1], population: 2138551 }, { name: 'Tiny', lon: 3, lat: 49, population: 10 }],
  };
  for (const level of LEVELS) {
    const tiles = buildTiles(src, level);
    const n = 2 ** level.z;
    const [ux, uy] = project(paris);
    const key = `${Math.floor(ux * n)}/${Math.floor(uy * n)}`;
    assert.ok(tiles.has(key), `z${level.z}: Paris's tile ${key} built`);
    const t = tiles.get(key);
    const doc = JSON.parse(JSON.stringify({ land: t.land, coast: t.coast, border: t.border, roads: t.roads, places: t.places }));
    const d = decodeTile(doc, level.z, t.x, t.y, level.q);
    assert.equal(d.places.length, 1, 'cities below the level\'s population are left out');
    assert.equal(d.places[0].name, 'Paris');
    const step = 1 / (n * level.q);
    assert.ok(Math.abs(d.places[0].x - ux) <= step && Math.abs(d.places[0].y - uy) <= step);
    assert.ok(d.land.length >= 1 && d.coast.length >= 1 && d.border.length >= 1 && d.roads.length >= 1);
    // Every decoded point lies in the tile (with its small overlap).
    for (const xy of [...d.land, ...d.coast, ...d.border, ...d.roads]) {
      for (let i = 0; i < xy.length; i += 2) {
        assert.ok(xy[i] >= (t.x - 0.02) / n && xy[i] <= (t.x + 1.02) / n && xy[i + 1] >= (t.y - 0.02) / n && xy[i + 1] <= (t.y + 1.02) / n);
      }
    }
  }
});

test('the encoding round trips tile-local integers, negative ones too', () => {
  const ints = [0, 0, 16384, 16384, -100, 16500, 5, -7];
  const d = decodeTile({ coast: [encodePolyline(ints)] }, 0, 0, 0, 1);
  assert.deepEqual([...d.coast[0]], ints);
});

test('level of detail: coarse outlines below the first level, then simplified, then full detail', () => {
  const index = { levels: [{ z: 3, fromZoom: 4 }, { z: 6, fromZoom: 7 }] };
  assert.equal(levelFor(index, 2.5), null);
  assert.equal(levelFor(index, 4).z, 3);
  assert.equal(levelFor(index, 6.99).z, 3);
  assert.equal(levelFor(index, 11).z, 6);
  let last = Infinity;
  for (let z = 0; z <= 20; z += 0.5) {
    const m = minPopulation(z);
    assert.ok(m <= last, 'more cities as the map zooms in');
    last = m;
  }
  assert.ok(minPopulation(1) >= 1e6 && minPopulation(12) <= 1000);
});

test('only the tiles in view that exist are asked for, in each world copy shown', () => {
  const level = { z: 2 };
  const t = { S: 1024, ox: -300, oy: -100, width: 600, height: 400, copies: [0] };
  const all = tilesInView(level, t, null);
  assert.deepEqual(
    all.map((w) => `${w.x}/${w.y}`).sort(),
    ['1/0', '1/1', '2/0', '2/1', '3/0', '3/1'].sort(),
  );
  const some = tilesInView(level, t, new Set(['2/1']));
  assert.deepEqual(some, [{ x: 2, y: 1, k: 0 }]);
  const wrapped = tilesInView(level, { S: 1024, ox: -900, oy: 0, width: 300, height: 100, copies: [0, 1] }, null);
  assert.ok(wrapped.some((w) => w.k === 1 && w.x === 0), 'the next copy of the world starts again at x 0');
});

test('labels go largest city first, never overlap, and stay in the frame', () => {
  const cands = [
    { name: 'Small', sx: 105, sy: 100, population: 2000 },
    { name: 'Big', sx: 100, sy: 100, population: 2e6 },
    { name: 'Edge', sx: 598, sy: 50, population: 1e5 },
    { name: 'Far', sx: 300, sy: 300, population: 5000 },
  ];
  const placed = placeLabels(cands, { width: 600, height: 400, measure: (n) => n.length * 7 });
  const names = placed.map((p) => p.name);
  assert.equal(names[0], 'Big');
  assert.ok(!names.includes('Small'), 'the smaller city next to a bigger one has no label');
  assert.ok(names.includes('Far'));
  const edge = placed.find((p) => p.name === 'Edge');
  assert.ok(edge && edge.side === -1, 'a label at the right edge goes left of its point');
  for (const p of placed) assert.ok(p.tx >= 0 && p.tx + p.name.length * 7 <= 600);
});

test('a dense region keeps at most a few labels per square, leaving room for a sparse one', () => {
  const cands = [];
  for (let i = 0; i < 40; i++) cands.push({ name: `D${i}`, sx: 10 + (i % 5) * 40, sy: 20 + Math.floor(i / 5) * 25, population: 1e6 - i });
  cands.push({ name: 'Lonely', sx: 400, sy: 300, population: 10 });
  const placed = placeLabels(cands, { width: 600, height: 400, measure: () => 20, cell: 256, perCell: 3 });
  assert.equal(placed.filter((p) => p.name.startsWith('D')).length, 3);
  assert.ok(placed.some((p) => p.name === 'Lonely'));
});

test('the build stamp is FNV-1a 64 over the inputs (what dashboard/build.rs compares)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quiver-stamp-'));
  writeFileSync(join(dir, 'a'), 'a');
  assert.equal(stamp([join(dir, 'a')]), 'af63dc4c8601ec8c');
});

test('online tiles, offline tiles and the data share one projection: tile x/y of the XYZ scheme from mercator.js', () => {
  // The XYZ ("slippy map") tile formulas, as tile servers such as OpenStreetMap's use them.
  const slippy = (lon, lat, z) => {
    const n = 2 ** z;
    const r = (lat * Math.PI) / 180;
    return [((lon + 180) / 360) * n, ((1 - Math.asinh(Math.tan(r)) / Math.PI) / 2) * n];
  };
  for (const [lon, lat] of [[2.3522, 48.8566], [-74.0, 40.6], [4.47917, 51.9225], [151.2, -33.9], [-179.9, 84.9], [0, 0]]) {
    for (const z of [0, 3, 6, 11, 19]) {
      const [sx, sy] = slippy(lon, lat, z);
      const n = 2 ** z;
      assert.ok(Math.abs(lonToX(lon) * n - sx) < 1e-6 && Math.abs(latToY(lat) * n - sy) < 1e-6, `${lon}, ${lat} at z${z}`);
      const [bx, by] = project([lon, lat]);
      assert.ok(Math.abs(bx * n - sx) < 1e-6 && Math.abs(by * n - sy) < 1e-6, `the basemap builder: ${lon}, ${lat} at z${z}`);
    }
  }
});
