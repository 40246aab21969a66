// Pure map maths of dashboard/static/mercator.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_LAT,
  clampView,
  fitImageSize,
  latToY,
  lonToX,
  visibleViewport,
  worldSize,
  xToLon,
  yToLat,
  zoomBounds,
} from '../../../dashboard/static/mercator.js';

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a * 1664525 + 1013904223) >>> 0;
    return a / 4294967296;
  };
}

test('projection round trips and fixed points', () => {
  assert.equal(lonToX(-180), 0);
  assert.equal(lonToX(180), 1);
  assert.equal(latToY(0), 0.5);
  assert.ok(Math.abs(latToY(MAX_LAT)) < 1e-9);
  assert.ok(Math.abs(latToY(-MAX_LAT) - 1) < 1e-9);
  const r = rng(1);
  for (let i = 0; i < 1000; i++) {
    const lon = r() * 360 - 180;
    const lat = (r() * 2 - 1) * 85;
    assert.ok(Math.abs(xToLon(lonToX(lon)) - lon) < 1e-9);
    assert.ok(Math.abs(yToLat(latToY(lat)) - lat) < 1e-9);
  }
  // Beyond the Mercator world, latitudes clamp to its edge.
  assert.equal(latToY(89), latToY(MAX_LAT));
  assert.ok(yToLat(-0.1) <= MAX_LAT);
});

test('clampView is idempotent and keeps the map inside the world', () => {
  const r = rng(2);
  for (let i = 0; i < 2000; i++) {
    const w = 100 + Math.floor(r() * 2500);
    const h = 100 + Math.floor(r() * 1500);
    const v = { lon: r() * 1000 - 500, lat: r() * 200 - 100, zoom: r() * 25 - 2 };
    const a = clampView(v, w, h);
    const b = clampView(a, w, h);
    assert.deepEqual(b, a, `not idempotent for ${JSON.stringify(v)} at ${w}x${h}`);
    const { min, max } = zoomBounds(w, h);
    assert.ok(a.zoom >= min && a.zoom <= max);
    assert.ok(a.lon >= -180 && a.lon < 180);
    const S = worldSize(a.zoom);
    if (S > h) {
      const cy = latToY(a.lat);
      // Within rounding (1e-6 degrees) of the world's top and bottom edges.
      assert.ok(cy - h / 2 / S > -1e-6 && cy + h / 2 / S < 1 + 1e-6, `map leaves the world: ${JSON.stringify(a)}`);
    } else {
      assert.equal(a.lat, 0);
    }
  }
});

test('a hash round trip through text gives back the same view', () => {
  const r = rng(3);
  for (let i = 0; i < 500; i++) {
    const a = clampView({ lon: r() * 360 - 180, lat: r() * 160 - 80, zoom: r() * 18 }, 1200, 800);
    const text = `${a.zoom}/${a.lat}/${a.lon}`;
    const [zoom, lat, lon] = text.split('/').map(Number);
    assert.deepEqual(clampView({ lon, lat, zoom }, 1200, 800), a);
  }
});

test('visible viewports are valid API viewports with the map pixel size', () => {
  const r = rng(4);
  for (let i = 0; i < 3000; i++) {
    const w = 50 + Math.floor(r() * 2000);
    const h = 50 + Math.floor(r() * 1200);
    const view = clampView({ lon: r() * 360 - 180, lat: r() * 170 - 85, zoom: r() * 20 }, w, h);
    const vis = visibleViewport(view, w, h);
    const v = vis.viewport;
    for (const k of ['west', 'east']) assert.ok(v[k] >= -180 && v[k] <= 180, `${k} ${v[k]}`);
    for (const k of ['south', 'north']) assert.ok(Math.abs(v[k]) <= 85.05112877980659, `${k} ${v[k]}`);
    assert.ok(v.south < v.north, JSON.stringify(v));
    assert.notEqual(v.west, v.east, JSON.stringify({ view, w, h, v }));
    const S = worldSize(view.zoom);
    if (S > w) assert.ok(Math.abs(vis.pixelWidth - w) <= 1, `${vis.pixelWidth} vs ${w}`);
    if (S > h) assert.ok(Math.abs(vis.pixelHeight - h) <= 1, `${vis.pixelHeight} vs ${h}`);
    const crosses = vis.x0 < 0 || vis.x1 > 1;
    assert.equal(v.west > v.east, crosses, JSON.stringify({ vis }));
  }
});

test('a view across the antimeridian asks for west > east', () => {
  const vis = visibleViewport({ lon: 180 - 1e-6, lat: 0, zoom: 4 }, 1000, 600);
  assert.ok(vis.viewport.west > 0 && vis.viewport.east < 0, JSON.stringify(vis.viewport));
  assert.ok(Math.abs(vis.viewport.west - (180 - 1000 / 2 / worldSize(4) * 360)) < 1e-6);
});

test('the whole world fits: one copy of it is queried', () => {
  const vis = visibleViewport({ lon: 0, lat: 0, zoom: 0 }, 1000, 600);
  assert.deepEqual([vis.viewport.west, vis.viewport.east], [-180, 180]);
  assert.equal(vis.pixelWidth, 256);
  assert.equal(vis.pixelHeight, 256);
});

test('image sizes stay inside the API limits', () => {
  for (const [w, h] of [[800, 500], [5000, 100], [3000, 3000], [1, 1], [4096, 1024]]) {
    const s = fitImageSize(w, h);
    assert.ok(s.width >= 1 && s.height >= 1 && s.width <= 4096 && s.height <= 4096);
    assert.ok(s.width * s.height <= 4194304);
    if (w <= 4096 && h <= 4096 && w * h <= 4194304) assert.deepEqual(s, { width: w, height: h });
  }
});
