// A dataset's extent, for fitting the map to it when the dataset is opened:
// read from a density image of the whole world (the pixels with any row), and
// the view that shows that box. Pure functions.

import { TILE, xToLon, yToLat } from './mercator.js';

/** The most a fit zooms in (a dataset in one town still shows the town). */
export const FIT_MAX_ZOOM = 14;

/**
 * The box of non-transparent pixels of an RGBA image covering the unit
 * Mercator square, in unit coordinates {x0, x1, y0, y1}; null when empty.
 */
export function extentOfImage(rgba, width, height) {
  let x0 = width;
  let x1 = -1;
  let y0 = height;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width * 4;
    for (let x = 0; x < width; x++) {
      if (rgba[row + x * 4 + 3] === 0) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  if (x1 < 0) return null;
  return { x0: x0 / width, x1: (x1 + 1) / width, y0: y0 / height, y1: (y1 + 1) / height };
}

/**
 * The view {lon, lat, zoom} that shows a unit box on a `width`×`height` map
 * with `pad` pixels to spare on each side (zoom rounded down to 1/100).
 */
export function fitView(box, width, height, pad = 32) {
  const bw = Math.max(1e-9, box.x1 - box.x0);
  const bh = Math.max(1e-9, box.y1 - box.y0);
  const scale = Math.min(Math.max(1, width - 2 * pad) / bw, Math.max(1, height - 2 * pad) / bh);
  const zoom = Math.min(FIT_MAX_ZOOM, Math.floor(Math.log2(scale / TILE) * 100) / 100);
  return { lon: xToLon((box.x0 + box.x1) / 2), lat: yToLat((box.y0 + box.y1) / 2), zoom };
}
