// The detailed offline basemap: tiles of Natural Earth 1:10m land,
// coastlines, country and first-level admin borders (and roads when the
// asset has them), and GeoNames city labels, built by dashboard/basemap/
// (format `quiver-basemap-tiles-1`) and served under /static/basemap/.
// Loaded lazily: the index after the first paint, a tile when the view
// reaches it. Level of detail by zoom: below the first level's zoom the
// coarse outlines (basemap.js) are drawn, then simplified z3 tiles, then full
// detail. Labels are placed by population, largest first, never overlapping.

import { decodePolyline } from './basemap.js';

export const FORMAT = 'quiver-basemap-tiles-1';

/** The smallest population labelled at a view zoom. */
export function minPopulation(zoom) {
  const table = [
    [3, 5e6],
    [4, 2e6],
    [5, 7e5],
    [6, 3e5],
    [7, 1.5e5],
    [8, 6e4],
    [9, 2.5e4],
    [10, 1e4],
    [11, 4e3],
  ];
  for (const [below, pop] of table) if (zoom < below) return pop;
  return 1000;
}

/** The level of detail drawn at a view zoom: the last whose `fromZoom` is reached, else null (coarse outlines). */
export function levelFor(index, zoom) {
  let best = null;
  for (const l of index.levels) if (zoom >= l.fromZoom && (!best || l.fromZoom > best.fromZoom)) best = l;
  return best;
}

/** Decodes one tile's layers into unit coordinates (x, y in [0, 1] of the Mercator world). */
export function decodeTile(doc, z, x, y, q) {
  const n = 2 ** z;
  const toUnit = (text) => {
    const v = decodePolyline(text, 1);
    const xy = new Float64Array(v.length);
    for (let i = 0; i < v.length; i += 2) {
      xy[i] = (x + v[i] / q) / n;
      xy[i + 1] = (y + v[i + 1] / q) / n;
    }
    return xy;
  };
  const out = { z, x, y };
  for (const layer of ['land', 'coast', 'border', 'admin', 'roads']) out[layer] = (doc[layer] || []).map(toUnit);
  out.places = (doc.places || []).map(([name, qx, qy, population]) => ({ name, x: (x + qx / q) / n, y: (y + qy / q) / n, population }));
  return out;
}

/**
 * Tiles of `level` that the screen transform `t` ({S, ox, oy, width, height,
 * copies}) shows, as {x, y, k} (k: the world copy), restricted to the tiles
 * that exist (`have`, a Set of "x/y"): open sea has none.
 */
export function tilesInView(level, t, have) {
  const n = 2 ** level.z;
  const size = t.S / n;
  const out = [];
  const y0 = Math.max(0, Math.floor(-t.oy / size));
  const y1 = Math.min(n - 1, Math.floor((t.height - t.oy) / size));
  for (const k of t.copies) {
    const left = t.ox + k * t.S;
    const x0 = Math.max(0, Math.floor(-left / size));
    const x1 = Math.min(n - 1, Math.floor((t.width - left) / size));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) if (!have || have.has(`${x}/${y}`)) out.push({ x, y, k });
    }
  }
  return out;
}

/**
 * Greedy label placement: candidates ({name, sx, sy, population}, screen
 * positions) in order of population, each placed right of its point (else
 * left) when its box overlaps no placed box and lies inside the frame, and
 * at most `perCell` in each `cell`-px square from `origin` (so a dense region
 * does not take the labels of a sparse one). `measure(name)` gives a label's
 * width in px. Returns the placed labels.
 */
export function placeLabels(cands, { width, height, measure, fontSize = 11, pad = 8, max = 400, cell = 256, perCell = 3, origin = [0, 0] }) {
  const sorted = [...cands].sort((a, b) => b.population - a.population || (a.name < b.name ? -1 : 1));
  const boxes = [];
  const placed = [];
  const overlaps = (b) => boxes.some((o) => b.x0 < o.x1 && b.x1 > o.x0 && b.y0 < o.y1 && b.y1 > o.y0);
  const inCell = new Map();
  for (const c of sorted) {
    if (placed.length >= max) break;
    const key = `${Math.floor((c.sx - origin[0]) / cell)}/${Math.floor((c.sy - origin[1]) / cell)}`;
    if ((inCell.get(key) || 0) >= perCell) continue;
    const w = measure(c.name);
    const h = fontSize + 2;
    const dot = { x0: c.sx - 3, x1: c.sx + 3, y0: c.sy - 3, y1: c.sy + 3 };
    for (const side of [1, -1]) {
      const x0 = side > 0 ? c.sx + 5 : c.sx - 5 - w;
      const box = { x0: x0 - pad, x1: x0 + w + pad, y0: c.sy - h / 2 - pad, y1: c.sy + h / 2 + pad };
      if (x0 < 0 || c.sy - h / 2 < 0 || x0 + w > width || c.sy + h / 2 > height) continue;
      if (overlaps(box) || overlaps(dot)) continue;
      boxes.push(box, dot);
      inCell.set(key, (inCell.get(key) || 0) + 1);
      placed.push({ ...c, tx: x0, side });
      break;
    }
  }
  return placed;
}

export const DETAIL_THEME = {
  land: '#1a2430',
  coast: '#4d627a',
  coastWidth: 0.9,
  border: '#6b7f96',
  borderWidth: 1.1,
  admin: 'rgba(125, 145, 170, 0.55)',
  adminWidth: 0.7,
  adminDash: [3, 3],
  roads: 'rgba(170, 150, 115, 0.55)',
  roadsWidth: 0.9,
  label: 'rgba(205, 215, 226, 0.82)',
  labelMajor: 'rgba(240, 244, 248, 0.95)',
  labelHalo: 'rgba(11, 17, 23, 0.9)',
  dot: 'rgba(215, 225, 235, 0.85)',
  font: '11px system-ui, -apple-system, "Segoe UI", sans-serif',
  fontMajor: '600 12px system-ui, -apple-system, "Segoe UI", sans-serif',
};

/** Loads the index and the tiles, keeps the decoded tiles (bounded), and draws them. */
export class DetailBasemap {
  /** `index`: the decoded index.json; `base`: where tiles are (e.g. /static/basemap); `onTile`: called when a tile arrives. */
  constructor(index, base, onTile) {
    if (!index || index.format !== FORMAT) throw new Error(`basemap: unknown format ${index && index.format}`);
    this.index = index;
    this.base = base;
    this.onTile = onTile;
    this.have = new Map(index.levels.map((l) => [l.z, new Set(l.tiles)]));
    this.tiles = new Map();
    this.pending = new Set();
    this.failed = new Set();
    this.major = (index.major || []).map(([name, lon, lat, population]) => {
      const s = Math.sin((Math.max(-85.05, Math.min(85.05, lat)) * Math.PI) / 180);
      return { name, x: (lon + 180) / 360, y: 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI), population };
    });
    this.minZoom = Math.min(...index.levels.map((l) => l.fromZoom));
  }

  tile(level, x, y) {
    const key = `${level.z}/${x}/${y}`;
    const t = this.tiles.get(key);
    if (t) {
      this.tiles.delete(key);
      this.tiles.set(key, t);
      return t;
    }
    if (!this.pending.has(key) && !this.failed.has(key)) {
      this.pending.add(key);
      fetch(`${this.base}/${key}.json`)
        .then((r) => {
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          return r.json();
        })
        .then((doc) => {
          this.tiles.set(key, decodeTile(doc, level.z, x, y, level.q));
          while (this.tiles.size > 160) this.tiles.delete(this.tiles.keys().next().value);
        })
        .catch((e) => {
          this.failed.add(key);
          console.warn(`basemap tile ${key}: ${e.message}`);
        })
        .finally(() => {
          this.pending.delete(key);
          this.onTile();
        });
    }
    return null;
  }

  /** The tiles a view needs at its level: {level, tiles: [{tile, k}], ready} (null below the first level). */
  prepare(t, zoom) {
    const level = levelFor(this.index, zoom);
    if (!level) return null;
    const wanted = tilesInView(level, t, this.have.get(level.z));
    const tiles = [];
    let ready = true;
    for (const w of wanted) {
      const tile = this.tile(level, w.x, w.y);
      if (tile) tiles.push({ tile, k: w.k });
      else if (!this.failed.has(`${level.z}/${w.x}/${w.y}`)) ready = false;
    }
    return { level, tiles, ready };
  }

  /** Land and lines of prepared tiles. */
  draw(ctx, t, prepared, theme = DETAIL_THEME) {
    const each = (layer, fn) => {
      for (const { tile, k } of prepared.tiles) for (const xy of tile[layer]) fn(xy, k);
    };
    const trace = (xy, k, close) => {
      ctx.moveTo(t.ox + (xy[0] + k) * t.S, t.oy + xy[1] * t.S);
      for (let i = 2; i < xy.length; i += 2) ctx.lineTo(t.ox + (xy[i] + k) * t.S, t.oy + xy[i + 1] * t.S);
      if (close) ctx.closePath();
    };
    ctx.fillStyle = theme.land;
    for (const { tile, k } of prepared.tiles) {
      // One path per tile: lakes inside a tile's land are even-odd holes.
      ctx.beginPath();
      for (const xy of tile.land) trace(xy, k, true);
      ctx.fill('evenodd');
    }
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    const stroke = (layer, color, width, dash) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.setLineDash(dash || []);
      ctx.beginPath();
      each(layer, (xy, k) => trace(xy, k, false));
      ctx.stroke();
    };
    stroke('admin', theme.admin, theme.adminWidth, theme.adminDash);
    stroke('roads', theme.roads, theme.roadsWidth);
    stroke('coast', theme.coast, theme.coastWidth);
    stroke('border', theme.border, theme.borderWidth);
    ctx.setLineDash([]);
  }

  /** City labels for the view: from the level's tiles, or the major cities below the first level. Returns the placed labels. */
  drawLabels(ctx, t, zoom, prepared, theme = DETAIL_THEME) {
    const min = minPopulation(zoom);
    const cands = [];
    const add = (p, k) => {
      if (p.population < min) return;
      const sx = t.ox + (p.x + k) * t.S;
      const sy = t.oy + p.y * t.S;
      if (sx < -50 || sy < -20 || sx > t.width + 50 || sy > t.height + 20) return;
      cands.push({ name: p.name, sx, sy, population: p.population });
    };
    if (prepared) {
      for (const { tile, k } of prepared.tiles) for (const p of tile.places) add(p, k);
    } else {
      for (const k of t.copies) for (const p of this.major) add(p, k);
    }
    // The largest cities in view stand out: four times the smallest labelled, or labelled four zooms earlier.
    const major = Math.max(4 * minPopulation(zoom), minPopulation(zoom - 5));
    const widths = new Map();
    const measure = (name) => {
      let w = widths.get(name);
      if (w === undefined) {
        w = ctx.measureText(name).width;
        widths.set(name, w);
      }
      return w;
    };
    ctx.font = theme.fontMajor;
    // At most 3 labels in each 256-px square, squares fixed to the world (the
    // same labels while the map pans): a map to orient by, not a gazetteer.
    const placed = placeLabels(cands, { width: t.width, height: t.height, measure: (n) => measure(n) + 1, origin: [t.ox, t.oy] });
    ctx.textBaseline = 'middle';
    ctx.lineJoin = 'round';
    for (const p of placed) {
      ctx.fillStyle = theme.dot;
      ctx.beginPath();
      ctx.arc(p.sx, p.sy, p.population >= major ? 2.5 : 1.8, 0, 2 * Math.PI);
      ctx.fill();
      ctx.font = p.population >= major ? theme.fontMajor : theme.font;
      ctx.strokeStyle = theme.labelHalo;
      ctx.lineWidth = 3;
      ctx.strokeText(p.name, p.tx, p.sy);
      ctx.fillStyle = p.population >= major ? theme.labelMajor : theme.label;
      ctx.fillText(p.name, p.tx, p.sy);
    }
    return placed;
  }
}
