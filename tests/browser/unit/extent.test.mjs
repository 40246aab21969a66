import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FIT_MAX_ZOOM, extentOfImage, fitView } from '../../../dashboard/static/extent.js';
import { latToY, lonToX, worldSize } from '../../../dashboard/static/mercator.js';

function image(w, h, lit) {
  const px = new Uint8ClampedArray(w * h * 4);
  for (const [x, y] of lit) px[(y * w + x) * 4 + 3] = 255;
  return px;
}

test('the extent is the box of the pixels with rows, in unit coordinates', () => {
  assert.equal(extentOfImage(image(8, 8, []), 8, 8), null);
  assert.deepEqual(extentOfImage(image(8, 8, [[2, 3]]), 8, 8), { x0: 0.25, x1: 0.375, y0: 0.375, y1: 0.5 });
  assert.deepEqual(extentOfImage(image(8, 4, [[1, 0], [6, 2]]), 8, 4), { x0: 0.125, x1: 0.875, y0: 0, y1: 0.75 });
});

test('the fitted view shows the whole box inside the padding, centred on it', () => {
  // The North Sea: about 0..10 E, 50..60 N.
  const box = { x0: lonToX(0), x1: lonToX(10), y0: latToY(60), y1: latToY(50) };
  const v = fitView(box, 900, 600, 32);
  const S = worldSize(v.zoom);
  assert.ok((box.x1 - box.x0) * S <= 900 - 64 + 1e-6);
  assert.ok((box.y1 - box.y0) * S <= 600 - 64 + 1e-6);
  // Tight: one more step of zoom would not fit.
  const S2 = worldSize(v.zoom + 0.02);
  assert.ok((box.x1 - box.x0) * S2 > 900 - 64 || (box.y1 - box.y0) * S2 > 600 - 64);
  assert.ok(Math.abs(v.lon - 5) < 1e-9);
  assert.ok(Math.abs(lonToX(v.lon) - (box.x0 + box.x1) / 2) < 1e-12);
  assert.ok(Math.abs(latToY(v.lat) - (box.y0 + box.y1) / 2) < 1e-12);
});

test('a dataset in one spot is not zoomed in without end', () => {
  const x = lonToX(4.5);
  const y = latToY(51.9);
  assert.equal(fitView({ x0: x, x1: x + 1e-9, y0: y, y1: y + 1e-9 }, 800, 600).zoom, FIT_MAX_ZOOM);
});
