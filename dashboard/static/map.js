// The map: a Web Mercator view that pans (drag, touch, arrow keys) and zooms
// (wheel around the cursor, pinch, +/- keys and buttons), draws the offline
// basemap (and optional XYZ tiles) on a canvas, places the server's data image
// exactly over the viewport it was computed for (transformed with the map while
// a new one is on its way), and draws sampled points with hover details.
//
// It owns no query logic: it fires a `view` event ({detail: {settled}}) when
// the view changes; `settled` is false while a gesture is still going on.

import {
  TILE,
  clampView,
  latToY,
  lonToX,
  visibleViewport,
  worldSize,
  xToLon,
  yToLat,
  zoomBounds,
} from './mercator.js';
import { drawBasemap } from './basemap.js';
import { tileLayerState } from './tiles.js';

const THEME = {
  ocean: '#0b1117',
  land: '#1a2430',
  sea: '#0e151d',
  coast: '#3b4c60',
  coastWidth: 0.8,
  border: '#2c394a',
  borderWidth: 0.6,
  graticule: 'rgba(120, 140, 160, 0.08)',
};

const TILE_ALPHA = 0.62;
const WHEEL_ZOOM_PER_PIXEL = 1 / 240;
const KEY_PAN_PX = 120;

export class QuiverMap extends EventTarget {
  /** `surface` is the element that receives gestures and holds the layers. */
  constructor(surface) {
    super();
    this.surface = surface;
    this.width = Math.max(1, surface.clientWidth);
    this.height = Math.max(1, surface.clientHeight);
    this.view = clampView({ lon: 0, lat: 20, zoom: 0 }, this.width, this.height);
    this.basemap = null;
    this.tileUrl = null;
    this.tiles = new Map();
    this.pointers = new Map();
    this.gesture = null;
    this.frameRequested = false;
    this.animation = null;
    this.points = null;
    this.hoverIndex = -1;
    this.imageFrame = null;
    this.baseCache = null;
    this.cacheTimer = null;

    this.baseCanvas = document.createElement('canvas');
    this.baseCanvas.className = 'map-layer map-base';
    this.baseCanvas.setAttribute('aria-hidden', 'true');
    this.image = document.createElement('img');
    this.image.className = 'map-layer map-data';
    this.image.alt = 'Density of the selected rows';
    this.image.dataset.testid = 'map-image';
    this.image.draggable = false;
    this.image.hidden = true;
    this.pointCanvas = document.createElement('canvas');
    this.pointCanvas.className = 'map-layer map-points';
    this.pointCanvas.dataset.testid = 'map-points';
    this.pointCanvas.setAttribute('aria-hidden', 'true');
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'tooltip map-tooltip';
    this.tooltip.setAttribute('role', 'tooltip');
    this.tooltip.dataset.testid = 'point-tooltip';
    this.tooltip.hidden = true;
    surface.append(this.baseCanvas, this.image, this.pointCanvas, this.tooltip);

    this.bindGestures();
    new ResizeObserver(() => this.resize()).observe(surface);
    this.resize();
  }

  // ----- state -----

  getView() {
    return { ...this.view };
  }

  /** Sets the view (clamped and rounded); fires `view` unless `silent`. */
  setView(view, { silent = false, settled = true } = {}) {
    const next = clampView(view, this.width, this.height);
    const changed = next.lon !== this.view.lon || next.lat !== this.view.lat || next.zoom !== this.view.zoom;
    this.view = next;
    this.requestFrame();
    if (changed && !silent) this.fire(settled);
    return changed;
  }

  fire(settled) {
    this.dispatchEvent(new CustomEvent('view', { detail: { settled } }));
  }

  /** What the map shows now, for a query: unit frame, API viewport, pixel size. */
  visible() {
    return visibleViewport(this.view, this.width, this.height);
  }

  setBasemap(base) {
    this.basemap = base;
    if (this.baseCache) this.baseCache.stale = true;
    this.requestFrame();
  }

  /** The detailed offline basemap (basemap-detail.js DetailBasemap), drawn when tiles are not shown. */
  setDetailBasemap(detail) {
    this.detail = detail;
    if (this.baseCache) this.baseCache.stale = true;
    this.requestFrame();
  }

  setTileUrl(url) {
    this.tileUrl = url || null;
    this.tiles.clear();
    this.tileCounts = { loaded: 0, failed: 0 };
    this.tileState = this.tileUrl ? 'trying' : 'off';
    if (this.baseCache) this.baseCache.stale = true;
    this.requestFrame();
  }

  /** Shows a data image computed for `frame` (unit x0, x1, y0, y1). Resolves once it is on screen. */
  async setImage(src, frame, isCurrent = () => true) {
    if (!src) {
      this.image.hidden = true;
      this.image.removeAttribute('src');
      this.imageFrame = null;
      return;
    }
    const loader = new Image();
    loader.src = src;
    try {
      await loader.decode();
    } catch {
      // An undecodable image is reported by the caller's next query; keep the old one.
      return;
    }
    if (!isCurrent()) return;
    this.image.src = src;
    this.image.width = loader.naturalWidth;
    this.image.height = loader.naturalHeight;
    this.imageFrame = { ...frame, w: loader.naturalWidth, h: loader.naturalHeight };
    this.image.hidden = this.points !== null;
    this.placeImage();
  }

  /** Draws individual rows instead of the raster; `null` goes back to the raster. */
  setPoints(rows, colorOf) {
    if (!rows) {
      this.points = null;
      this.image.hidden = !this.imageFrame;
      this.hideTooltip();
    } else {
      this.points = rows.map((r) => ({
        row: r,
        x: lonToX(r.lon),
        y: latToY(r.lat),
        color: colorOf(r.category),
      }));
      this.image.hidden = true;
    }
    this.surface.dataset.mode = this.points ? 'points' : 'raster';
    this.hoverIndex = -1;
    this.requestFrame();
  }

  // ----- movement -----

  /** Zooms by `dz` keeping the point under screen position (px, py) fixed. */
  zoomAround(dz, px, py, opts) {
    const S = worldSize(this.view.zoom);
    const { min, max } = zoomBounds(this.width, this.height);
    const zoom = Math.max(min, Math.min(max, this.view.zoom + dz));
    const S2 = worldSize(zoom);
    const cx = lonToX(this.view.lon);
    const cy = latToY(this.view.lat);
    const ux = cx + (px - this.width / 2) / S;
    const uy = cy + (py - this.height / 2) / S;
    const ncx = ux - (px - this.width / 2) / S2;
    const ncy = uy - (py - this.height / 2) / S2;
    return this.setView({ lon: xToLon(ncx), lat: yToLat(ncy), zoom }, opts);
  }

  panBy(dx, dy, opts) {
    const S = worldSize(this.view.zoom);
    const cx = lonToX(this.view.lon) - dx / S;
    const cy = latToY(this.view.lat) - dy / S;
    return this.setView({ lon: xToLon(cx), lat: yToLat(cy), zoom: this.view.zoom }, opts);
  }

  /** Animated zoom about the centre (buttons, keys). */
  zoomStep(dz) {
    const start = this.view.zoom;
    const { min, max } = zoomBounds(this.width, this.height);
    const target = Math.max(min, Math.min(max, Math.round((start + dz) * 4) / 4));
    if (target === start) return;
    this.animate(200, (t) => {
      const z = start + (target - start) * t;
      this.zoomAround(z - this.view.zoom, this.width / 2, this.height / 2, { settled: t >= 1 });
    });
  }

  /** The whole world across the map's width (or height, on a tall map). */
  defaultView() {
    const { min } = zoomBounds(this.width, this.height);
    const zoom = Math.max(min, Math.floor(Math.log2(this.width / TILE) * 100) / 100);
    return clampView({ lon: 0, lat: 20, zoom }, this.width, this.height);
  }

  resetView() {
    this.cancelAnimation();
    this.setView(this.defaultView());
  }

  animate(ms, step) {
    this.cancelAnimation();
    if (window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches) {
      step(1);
      return;
    }
    const t0 = performance.now();
    const tick = (now) => {
      const t = Math.min(1, (now - t0) / ms);
      const eased = 1 - (1 - t) ** 3;
      step(t >= 1 ? 1 : eased);
      this.animation = t < 1 ? requestAnimationFrame(tick) : null;
    };
    this.animation = requestAnimationFrame(tick);
  }

  cancelAnimation() {
    if (this.animation !== null) cancelAnimationFrame(this.animation);
    this.animation = null;
  }

  resize() {
    const w = Math.max(1, this.surface.clientWidth);
    const h = Math.max(1, this.surface.clientHeight);
    const dpr = window.devicePixelRatio || 1;
    for (const c of [this.baseCanvas, this.pointCanvas]) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
    }
    const changed = w !== this.width || h !== this.height;
    this.width = w;
    this.height = h;
    if (this.baseCache) this.baseCache.stale = true;
    this.view = clampView(this.view, w, h);
    this.render();
    // A new size is a new viewport: ask for a fresh image once it settles.
    if (changed) this.fire(true);
  }

  // ----- gestures -----

  bindGestures() {
    const s = this.surface;
    s.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 && e.pointerType === 'mouse') return;
      this.cancelAnimation();
      s.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      this.gesture = this.startGesture();
      s.classList.add('dragging');
      this.hideTooltip();
    });
    const end = (e) => {
      if (!this.pointers.has(e.pointerId)) return;
      this.pointers.delete(e.pointerId);
      const moved = this.gesture && this.gesture.moved;
      this.gesture = this.pointers.size ? this.startGesture() : null;
      if (!this.pointers.size) {
        s.classList.remove('dragging');
        if (moved) this.fire(true);
      }
    };
    s.addEventListener('pointerup', end);
    s.addEventListener('pointercancel', end);
    s.addEventListener('pointermove', (e) => {
      if (!this.pointers.has(e.pointerId)) {
        if (e.pointerType === 'mouse') this.hover(e);
        return;
      }
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      this.moveGesture();
    });
    s.addEventListener('pointerleave', () => {
      if (!this.pointers.size) this.hideTooltip();
    });
    s.addEventListener(
      'wheel',
      (e) => {
        // When the page itself scrolls (a narrow window stacks the charts
        // under the map), a plain wheel scrolls the page and Ctrl/Cmd + wheel
        // zooms, so the map does not trap the scrolling.
        if (!e.ctrlKey && !e.metaKey && pageScrolls()) {
          this.showWheelHint();
          return;
        }
        e.preventDefault();
        this.cancelAnimation();
        const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? this.height : 1;
        const delta = Math.max(-300, Math.min(300, e.deltaY * unit));
        const r = s.getBoundingClientRect();
        this.zoomAround(-delta * WHEEL_ZOOM_PER_PIXEL, e.clientX - r.left, e.clientY - r.top);
      },
      { passive: false },
    );
    s.addEventListener('dblclick', (e) => {
      const r = s.getBoundingClientRect();
      const dz = e.shiftKey ? -1 : 1;
      const px = e.clientX - r.left;
      const py = e.clientY - r.top;
      const start = this.view.zoom;
      this.animate(220, (t) => {
        this.zoomAround(start + dz * t - this.view.zoom, px, py, { settled: t >= 1 });
      });
    });
    s.addEventListener('keydown', (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const pan = {
        ArrowLeft: [KEY_PAN_PX, 0],
        ArrowRight: [-KEY_PAN_PX, 0],
        ArrowUp: [0, KEY_PAN_PX],
        ArrowDown: [0, -KEY_PAN_PX],
      }[e.key];
      if (pan) {
        this.panBy(pan[0], pan[1]);
      } else if (e.key === '+' || e.key === '=') {
        this.zoomStep(1);
      } else if (e.key === '-' || e.key === '_') {
        this.zoomStep(-1);
      } else if (e.key === '0' || e.key === 'Home') {
        this.resetView();
      } else {
        return;
      }
      e.preventDefault();
    });
  }

  /** Snapshot of the pointers and view at the start of a gesture (or when a finger is added). */
  startGesture() {
    const pts = [...this.pointers.values()];
    const r = this.surface.getBoundingClientRect();
    const mid = centroid(pts);
    return {
      view: { ...this.view },
      mid: { x: mid.x - r.left, y: mid.y - r.top },
      spread: spread(pts),
      moved: false,
      rect: r,
    };
  }

  moveGesture() {
    const g = this.gesture;
    if (!g) return;
    const pts = [...this.pointers.values()];
    const mid = centroid(pts);
    const mx = mid.x - g.rect.left;
    const my = mid.y - g.rect.top;
    if (!g.moved && Math.abs(mx - g.mid.x) + Math.abs(my - g.mid.y) < 2 && pts.length === 1) return;
    g.moved = true;
    // Recompute from the gesture's start so rounding never accumulates.
    const S0 = worldSize(g.view.zoom);
    let zoom = g.view.zoom;
    if (pts.length >= 2 && g.spread > 0) {
      zoom += Math.log2(spread(pts) / g.spread);
    }
    const { min, max } = zoomBounds(this.width, this.height);
    zoom = Math.max(min, Math.min(max, zoom));
    const S1 = worldSize(zoom);
    const cx0 = lonToX(g.view.lon);
    const cy0 = latToY(g.view.lat);
    // The unit point under the gesture's start midpoint follows the midpoint.
    const ux = cx0 + (g.mid.x - this.width / 2) / S0;
    const uy = cy0 + (g.mid.y - this.height / 2) / S0;
    const cx = ux - (mx - this.width / 2) / S1;
    const cy = uy - (my - this.height / 2) / S1;
    this.setView({ lon: xToLon(cx), lat: yToLat(cy), zoom }, { settled: false });
  }

  // ----- drawing -----

  requestFrame() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.render();
    });
  }

  /** Screen transform of the current view: world size and where unit (0, 0) lands. */
  transform() {
    const S = worldSize(this.view.zoom);
    const cx = lonToX(this.view.lon);
    const cy = latToY(this.view.lat);
    const ox = this.width / 2 - cx * S;
    const oy = this.height / 2 - cy * S;
    // World copies that intersect the screen (longitudes wrap).
    // When the whole world fits across the map it is shown once, centred.
    const copies = [];
    const first = S <= this.width ? 0 : Math.floor(-ox / S);
    const last = S <= this.width ? 0 : Math.floor((this.width - ox) / S);
    for (let k = first; k <= last; k++) copies.push(k);
    return { S, ox, oy, width: this.width, height: this.height, copies };
  }

  render() {
    const t = this.transform();
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.baseCanvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = THEME.ocean;
    ctx.fillRect(0, 0, this.width, this.height);
    this.drawCachedBase(ctx, t);
    if (this.tilesShown()) this.drawTiles(ctx, t);
    this.placeImage(t);
    this.drawPoints(t);
  }

  /**
   * The basemap is drawn into an off-screen canvas a margin larger than the
   * map, then copied for each frame: panning only moves the copy, a zoom
   * gesture scales it, and it is redrawn when the view leaves it or a zoom
   * has settled. (Drawing all outlines takes tens of ms at world scale.)
   */
  drawCachedBase(ctx, t) {
    let c = this.baseCache;
    let pos = c && !c.stale ? this.cachePosition(c, t) : null;
    const covers = pos && pos.x <= 0 && pos.y <= 0 && pos.x + pos.w >= this.width && pos.y + pos.h >= this.height;
    if (!pos || (c.S === t.S && !covers)) {
      c = this.buildBaseCache(t);
      pos = this.cachePosition(c, t);
    } else if (c.S !== t.S) {
      clearTimeout(this.cacheTimer);
      this.cacheTimer = setTimeout(() => {
        if (this.baseCache) this.baseCache.stale = true;
        this.requestFrame();
      }, 150);
    }
    ctx.drawImage(c.canvas, pos.x, pos.y, pos.w, pos.h);
  }

  /** Where the cached basemap lands on screen now (the copy of the world nearest the centre). */
  cachePosition(c, t) {
    const f = t.S / c.S;
    let k = 0;
    if (t.S > this.width) {
      const centre = (this.width / 2 - t.ox) / t.S;
      k = Math.round(centre - (c.ux0 + c.w / 2 / c.S));
    }
    return { x: t.ox + (c.ux0 + k) * t.S, y: t.oy + c.uy0 * t.S, w: c.w * f, h: c.h * f };
  }

  buildBaseCache(t) {
    const mx = Math.round(this.width * 0.35);
    const my = Math.round(this.height * 0.35);
    const w = this.width + 2 * mx;
    const h = this.height + 2 * my;
    const scale = Math.min(window.devicePixelRatio || 1, 1.5);
    const prev = this.baseCache;
    const canvas = prev ? prev.canvas : document.createElement('canvas');
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    const tc = { S: t.S, ox: t.ox + mx, oy: t.oy + my, width: w, height: h };
    tc.copies = [];
    const first = t.S <= this.width ? 0 : Math.floor(-tc.ox / t.S);
    const last = t.S <= this.width ? 0 : Math.floor((w - tc.ox) / t.S);
    for (let k = first; k <= last; k++) tc.copies.push(k);
    ctx.fillStyle = THEME.ocean;
    ctx.fillRect(0, 0, w, h);
    // The world's extent, visible when zoomed out.
    ctx.fillStyle = THEME.sea;
    const top = Math.max(0, tc.oy);
    const bottom = Math.min(h, tc.oy + t.S);
    for (const k of tc.copies) ctx.fillRect(tc.ox + k * t.S, top, t.S, bottom - top);
    this.drawGraticule(ctx, tc);
    // Online tiles draw over the land; until they load (or when they
    // cannot), the offline map is drawn whole: the detailed one where the
    // view's tiles have come, else the coarse outlines.
    const online = this.tileState === 'online';
    const prepared = this.detail && !online ? this.detail.prepare(tc, this.view.zoom) : null;
    const detailed = !!(prepared && prepared.ready);
    if (detailed) {
      this.detail.draw(ctx, tc, prepared);
    } else if (this.basemap) {
      const theme = online ? { ...THEME, coast: 'rgba(0,0,0,0)', border: 'rgba(0,0,0,0)' } : THEME;
      drawBasemap(ctx, this.basemap, tc, theme);
    }
    const labels = this.detail && !online ? this.detail.drawLabels(ctx, tc, this.view.zoom, detailed ? prepared : null) : [];
    // What the offline map shows, for tests and for a person reading the DOM.
    this.surface.dataset.basemapLevel = detailed ? `z${prepared.level.z}` : this.basemap ? 'coarse' : 'none';
    this.surface.dataset.labels = String(labels.length);
    this.surface.dataset.labelNames = labels.slice(0, 40).map((l) => l.name).join('|');
    this.baseCache = { canvas, S: t.S, w, h, ux0: -tc.ox / t.S, uy0: -tc.oy / t.S, stale: false };
    return this.baseCache;
  }

  drawGraticule(ctx, t) {
    const step = t.S < 1024 ? 30 : t.S < 4096 ? 10 : null;
    if (!step) return;
    ctx.strokeStyle = THEME.graticule;
    ctx.lineWidth = 1;
    ctx.beginPath();
    const top = Math.max(0, t.oy);
    const bottom = Math.min(t.height, t.oy + t.S);
    for (const k of t.copies) {
      for (let lon = -180; lon < 180; lon += step) {
        const x = Math.round(t.ox + (lonToX(lon) + k) * t.S) + 0.5;
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
      }
    }
    for (let lat = -80; lat <= 80; lat += step === 30 ? 20 : 10) {
      const y = Math.round(t.oy + latToY(lat) * t.S) + 0.5;
      ctx.moveTo(Math.max(0, t.ox + t.copies[0] * t.S), y);
      ctx.lineTo(Math.min(t.width, t.ox + (t.copies[t.copies.length - 1] + 1) * t.S), y);
    }
    ctx.stroke();
  }

  drawTiles(ctx, t) {
    const tz = Math.max(0, Math.min(19, Math.round(this.view.zoom)));
    // Tiles dimmed over the dark ground, so the data's colours stay on top.
    ctx.globalAlpha = TILE_ALPHA;
    const n = 2 ** tz;
    const size = t.S / n;
    const x0 = Math.floor((-t.ox) / size);
    const x1 = Math.floor((this.width - t.ox) / size);
    const y0 = Math.max(0, Math.floor(-t.oy / size));
    const y1 = Math.min(n - 1, Math.floor((this.height - t.oy) / size));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const xm = ((x % n) + n) % n;
        const img = this.tile(tz, xm, y);
        if (img && img.complete && img.naturalWidth > 0) {
          // Half a pixel of overlap hides seams between scaled tiles.
          ctx.drawImage(img, t.ox + x * size, t.oy + y * size, size + 0.5, size + 0.5);
        }
      }
    }
    ctx.globalAlpha = 1;
  }

  /** Whether tiles are drawn: a tile URL is set and its host has not proven unreachable. */
  tilesShown() {
    return !!this.tileUrl && this.tileState !== 'offline';
  }

  /** Follows the tile layer's reachability; when it fails, the offline basemap is drawn whole again. */
  noteTileState() {
    const next = tileLayerState(this.tileCounts);
    if (next === this.tileState) return;
    this.tileState = next;
    this.surface.dataset.basemap = next === 'offline' ? 'offline' : next === 'online' ? 'tiles' : 'trying';
    if (this.baseCache) this.baseCache.stale = true;
    this.requestFrame();
    this.dispatchEvent(new CustomEvent('basemap', { detail: { state: next } }));
  }

  tile(z, x, y) {
    const key = `${z}/${x}/${y}`;
    let img = this.tiles.get(key);
    if (img) {
      // Refresh its place in the LRU order.
      this.tiles.delete(key);
      this.tiles.set(key, img);
      return img;
    }
    if (img === null) return null;
    img = new Image();
    img.decoding = 'async';
    // Tile servers (OpenStreetMap's usage policy) want to know the site asking: its origin, no path.
    img.referrerPolicy = 'strict-origin';
    img.onload = () => {
      this.tileCounts.loaded++;
      this.noteTileState();
      this.requestFrame();
    };
    img.onerror = () => {
      this.tiles.set(key, null);
      this.tileCounts.failed++;
      this.noteTileState();
    };
    img.src = this.tileUrl
      .replace('{z}', z)
      .replace('{x}', x)
      .replace('{y}', y)
      .replace('{s}', 'abc'[(x + y) % 3]);
    this.tiles.set(key, img);
    while (this.tiles.size > 400) this.tiles.delete(this.tiles.keys().next().value);
    return img;
  }

  placeImage(t = this.transform()) {
    const f = this.imageFrame;
    if (!f) return;
    // The copy of the frame nearest the centre (it was computed around the then centre).
    const cx = (this.width / 2 - t.ox) / t.S;
    const k = Math.round(cx - (f.x0 + f.x1) / 2);
    const left = t.ox + (f.x0 + k) * t.S;
    const top = t.oy + f.y0 * t.S;
    const sx = ((f.x1 - f.x0) * t.S) / f.w;
    const sy = ((f.y1 - f.y0) * t.S) / f.h;
    this.image.style.transform = `translate(${left}px, ${top}px) scale(${sx}, ${sy})`;
  }

  drawPoints(t) {
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.pointCanvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    if (!this.points) return;
    const r = this.points.length > 2000 ? 2.5 : 3.5;
    ctx.lineWidth = 1;
    ctx.strokeStyle = 'rgba(5, 8, 12, 0.85)';
    for (const k of t.copies) {
      for (const p of this.points) {
        const x = t.ox + (p.x + k) * t.S;
        const y = t.oy + p.y * t.S;
        if (x < -r || y < -r || x > this.width + r || y > this.height + r) continue;
        ctx.beginPath();
        ctx.arc(x, y, r, 0, 2 * Math.PI);
        ctx.fillStyle = p.color;
        ctx.fill();
        ctx.stroke();
      }
    }
    const h = this.points[this.hoverIndex];
    if (h) {
      const k = Math.round((this.width / 2 - t.ox) / t.S - h.x);
      ctx.beginPath();
      ctx.arc(t.ox + (h.x + k) * t.S, t.oy + h.y * t.S, r + 3, 0, 2 * Math.PI);
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 2;
      ctx.stroke();
    }
  }

  /** Shows the nearest sampled point's values under the mouse. */
  hover(e) {
    if (!this.points || !this.points.length) return;
    const r = this.surface.getBoundingClientRect();
    const px = e.clientX - r.left;
    const py = e.clientY - r.top;
    const t = this.transform();
    let best = -1;
    let bestD = 64; // 8 px
    this.points.forEach((p, i) => {
      const k = Math.round((px - t.ox) / t.S - p.x);
      const dx = t.ox + (p.x + k) * t.S - px;
      const dy = t.oy + p.y * t.S - py;
      const d = dx * dx + dy * dy;
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    });
    if (best !== this.hoverIndex) {
      this.hoverIndex = best;
      this.requestFrame();
    }
    if (best < 0) {
      this.hideTooltip();
      return;
    }
    const row = this.points[best].row;
    const tip = this.tooltip;
    tip.replaceChildren();
    const head = document.createElement('div');
    head.className = 'tooltip-title';
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = this.points[best].color;
    head.append(sw, document.createTextNode(row.category));
    const dl = document.createElement('dl');
    const entries = this.describeRow
      ? this.describeRow(row)
      : [['lon, lat', `${row.lon.toFixed(5)}, ${row.lat.toFixed(5)}`], ...Object.entries(row.values || {})];
    for (const [k, v] of entries) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
    }
    tip.append(head, dl);
    tip.hidden = false;
    const tw = tip.offsetWidth;
    const th = tip.offsetHeight;
    const x = px + 14 + tw > this.width ? px - 14 - tw : px + 14;
    const y = Math.min(Math.max(4, py - th / 2), this.height - th - 4);
    tip.style.transform = `translate(${Math.max(4, x)}px, ${y}px)`;
  }

  showWheelHint() {
    if (!this.wheelHint) {
      this.wheelHint = document.createElement('div');
      this.wheelHint.className = 'wheel-hint';
      this.wheelHint.dataset.testid = 'wheel-hint';
      this.wheelHint.textContent = /Mac|iPhone|iPad/.test(navigator.platform) ? 'Use ⌘ + scroll to zoom the map' : 'Use Ctrl + scroll to zoom the map';
      this.surface.append(this.wheelHint);
    }
    this.wheelHint.hidden = false;
    clearTimeout(this.wheelHintTimer);
    this.wheelHintTimer = setTimeout(() => {
      this.wheelHint.hidden = true;
    }, 1200);
  }

  hideTooltip() {
    this.tooltip.hidden = true;
    if (this.hoverIndex !== -1) {
      this.hoverIndex = -1;
      this.requestFrame();
    }
  }
}

/** Whether the document is taller than the window (the page scrolls). */
function pageScrolls() {
  const el = document.scrollingElement || document.documentElement;
  return el.scrollHeight > window.innerHeight + 1;
}

function centroid(pts) {
  const n = pts.length || 1;
  return {
    x: pts.reduce((a, p) => a + p.x, 0) / n,
    y: pts.reduce((a, p) => a + p.y, 0) / n,
  };
}

function spread(pts) {
  if (pts.length < 2) return 0;
  const [a, b] = pts;
  return Math.hypot(a.x - b.x, a.y - b.y);
}

export { TILE };
