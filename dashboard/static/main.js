// The Quiver app: owns the view state (dataset, map view, filters, toggles),
// keeps it in the URL hash, asks /api/query for each state (debounced while
// the map moves, latest request wins), and hands the answer to the map, the
// histograms, the counters and the partial-result and error banners. The
// cluster's status, and reloads and resumes, are banners.js's.

import { api, ApiError, toLogin } from './api.js';
import { bannerTitle, clusterBannerShown, setupBanners } from './banners.js';
import { decodeBasemap } from './basemap.js';
import { DetailBasemap } from './basemap-detail.js';
import { formatCompact, formatCount, formatMs, formatShare, rowDetails } from './format.js';
import { decodeHash, encodeHash, filtersForDataset } from './hash.js';
import { Histogram } from './histogram.js';
import { historyStep } from './history.js';
import { QuiverMap } from './map.js';
import { extentOfImage, fitView } from './extent.js';
import { setupExport } from './export.js';
import { MAX_LAT, fitImageSize } from './mercator.js';

/**
 * The map draws rows one by one when at most this many match in view. Every
 * query asks for them all-or-none: the rows when they all fit, else just
 * their count, so one request serves either way and no worker assembles rows
 * the map would not draw.
 */
const SAMPLE_LIMIT = 5000;
const MOVE_DEBOUNCE_MS = 60;
const HASH_DEBOUNCE_MS = 150;

const $ = (sel) => document.querySelector(sel);

const ui = {
  dataset: $('#dataset'),
  selected: $('[data-testid="selected-count"]'),
  total: $('[data-testid="total-count"]'),
  share: $('#share'),
  scope: $('#scope'),
  timings: $('[data-testid="timings"]'),
  partial: $('[data-testid="partial-banner"]'),
  error: $('[data-testid="error-banner"]'),
  progress: $('[data-testid="loading"]'),
  vf: $('[data-testid="viewport-filter"]'),
  legend: $('[data-testid="legend"]'),
  charts: $('#charts'),
  resetAll: $('[data-testid="reset-all"]'),
  filterSummary: $('#filter-summary'),
  mode: $('[data-testid="map-mode"]'),
  attribution: $('#attribution'),
  empty: $('[data-testid="empty-state"]'),
  counterClear: $('[data-testid="counter-clear"]'),
};

const state = {
  datasets: [],
  dataset: null,
  filters: {},
  /** A brush being dragged: {name, filter} asked for but not committed (live brushing). */
  preview: null,
  viewportFilter: true,
  log: new Set(),
};

const charts = new Map();
const query = {
  timer: null,
  controller: null,
  seq: 0,
  /** A brush moved while a query was in flight: ask again when it returns. */
  previewPending: false,
  /** Answers applied while a brush was dragged. */
  liveUpdates: 0,
  applied: 0,
  inFlight: false,
  /** Fitting the map to a dataset's extent before its first query. */
  fitting: 0,
  baselineKey: null,
  baseline: {},
};
let hashTimer = null;
/** The history entry the page stands on: {kind: 'state' | 'map', at}, for historyStep. */
let historyLast = null;
let map;

// ---------- boot ----------

async function boot() {
  map = new QuiverMap($('#map'));
  map.addEventListener('view', () => {
    scheduleQuery(MOVE_DEBOUNCE_MS);
    scheduleHash();
  });
  bindControls();
  loadBasemap();
  loadTileConfig();
  setupBanners({ showError, onReloaded: loadDatasets });

  // Back / Forward (and a hash typed into the address bar): show that state.
  window.addEventListener('hashchange', () => {
    if (state.dataset && window.location.hash !== encodeHash(currentState())) {
      historyLast = { kind: 'state', at: performance.now() };
      applyState(decodeHash(window.location.hash), {});
    }
  });
  await loadDatasets();
}

let datasetsRetry = null;

/**
 * Reads the datasets (at start, after a reload or a resume). The first time,
 * the state comes from the URL hash; later the current state is kept where
 * it still fits. Retries while the cluster cannot answer.
 */
async function loadDatasets() {
  clearTimeout(datasetsRetry);
  let payload;
  try {
    payload = await api.datasets();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    showError(e);
    datasetsRetry = setTimeout(loadDatasets, 5000);
    setBusy();
    return;
  }
  const list = (payload && payload.datasets) || [];
  if (!list.length) {
    showError(new Error('The cluster serves no datasets yet. Check the status panel, or reload the data.'));
    datasetsRetry = setTimeout(loadDatasets, 5000);
    setBusy();
    return;
  }
  hideError();
  state.datasets = list;
  fillDatasetSelect();
  if (!state.dataset) {
    applyState(decodeHash(window.location.hash), { initial: true });
    return;
  }
  const ds = state.datasets.find((d) => d.name === state.dataset.name) || state.datasets[0];
  selectDataset(ds, { keepFilters: true });
  state.filters = filtersForDataset(state.filters, ds);
  refreshCharts();
  writeHash({ replace: true });
  scheduleQuery(0);
}

/** Applies a (partial) state from a URL hash: dataset, filters, toggles, map view. */
function applyState(s, { initial }) {
  const ds = state.datasets.find((d) => d.name === s.dataset) || (initial || !state.dataset ? state.datasets[0] : state.dataset);
  if (!state.dataset || ds.name !== state.dataset.name) selectDataset(ds, { keepFilters: true });
  state.filters = filtersForDataset(s.filters || {}, ds);
  state.viewportFilter = s.viewportFilter !== undefined ? s.viewportFilter : true;
  state.log = new Set((s.log || []).filter((n) => ds.dimensions.some((d) => d.name === n)));
  if (!s.log) {
    // By default, log-binned dimensions get a log axis too.
    for (const d of ds.dimensions) if (d.kind === 'log') state.log.add(d.name);
  }
  ui.vf.checked = state.viewportFilter;
  map.setView(s.view || (initial ? map.defaultView() : map.getView()), { silent: true });
  refreshCharts();
  const done = () => {
    // The state came from the URL: normalise it in place. A map adjustment
    // right after opening (the layout settling) is part of the same entry.
    writeHash({ replace: true });
    if (initial) historyLast = { kind: 'map', at: performance.now() };
    scheduleQuery(0);
  };
  // Opening a dataset without a map view in the URL shows where its rows are.
  if (initial && !s.view) fitToDataset(ds).then(done);
  else done();
}

const EXTENT_PX = 512;
const extents = new Map();

/**
 * The unit box holding a dataset's rows, from a density image of the whole
 * world with no filters (asked once per dataset and page); null when unknown.
 */
async function datasetExtent(ds) {
  if (extents.has(ds.name)) return extents.get(ds.name);
  const res = await api.query({
    dataset: ds.name,
    filters: {},
    viewport: { west: -180, south: -MAX_LAT, east: 180, north: MAX_LAT },
    viewportFilter: false,
    histograms: [],
    image: { width: EXTENT_PX, height: EXTENT_PX },
  });
  if (!res || !res.image) return null;
  const img = new Image();
  img.src = res.image;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = EXTENT_PX;
  canvas.height = EXTENT_PX;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(img, 0, 0, EXTENT_PX, EXTENT_PX);
  const box = extentOfImage(g.getImageData(0, 0, EXTENT_PX, EXTENT_PX).data, EXTENT_PX, EXTENT_PX);
  extents.set(ds.name, box);
  return box;
}

/** Moves the map (silently) to show the dataset's rows; keeps the view when the extent cannot be had. */
async function fitToDataset(ds) {
  query.fitting++;
  setBusy();
  try {
    const box = await datasetExtent(ds);
    if (box && state.dataset === ds) {
      map.setView(fitView(box, map.width, map.height), { silent: true });
    }
  } catch (e) {
    console.warn('dataset extent unavailable:', e.message);
  } finally {
    query.fitting--;
    setBusy();
  }
}

function currentState() {
  return {
    dataset: state.dataset && state.dataset.name,
    view: map.getView(),
    filters: state.filters,
    viewportFilter: state.viewportFilter,
    log: [...state.log],
  };
}

/**
 * Puts the state in the URL: a new history entry per committed change, one
 * per burst of map movement (history.js); `replace` rewrites the entry the
 * page stands on.
 */
function writeHash({ replace = false } = {}) {
  clearTimeout(hashTimer);
  hashTimer = null;
  const h = encodeHash(currentState());
  const now = performance.now();
  const step = historyStep(window.location.hash, h, historyLast, now);
  if (step.action === 'none') return;
  if (step.action === 'push' && !replace) history.pushState(null, '', h);
  else history.replaceState(null, '', h);
  historyLast = { kind: replace && historyLast ? historyLast.kind : step.kind, at: now };
  document.body.dataset.historyEntries = String(history.length);
}

function scheduleHash() {
  clearTimeout(hashTimer);
  hashTimer = setTimeout(writeHash, HASH_DEBOUNCE_MS);
}

async function loadBasemap() {
  try {
    const res = await fetch('/static/countries.json');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    map.setBasemap(decodeBasemap(await res.json()));
  } catch (e) {
    console.warn('basemap unavailable:', e.message);
  }
}

/** Credit for the offline map's data (Natural Earth is public domain; GeoNames asks for attribution, CC BY 4.0). */
const OFFLINE_CREDIT = 'Natural Earth · GeoNames';

/**
 * The map's layers as the server configures them (GET /api/config): online
 * XYZ tiles (by default OpenStreetMap's) with their attribution, falling
 * back to the offline map when they cannot be reached, and the detailed
 * offline basemap when this build has it. A <meta name="quiver-tile-url">
 * tag, when the page has one, names the tiles instead.
 */
async function loadTileConfig() {
  const meta = document.querySelector('meta[name="quiver-tile-url"]');
  let cfg = null;
  try {
    cfg = await api.config();
  } catch {
    cfg = null; // no config endpoint: the offline basemap alone
  }
  const url = meta && meta.content ? meta.content : cfg && cfg.tileUrl;
  if (cfg && cfg.basemap) loadDetailBasemap(cfg.basemap);
  if (url && /^https?:\/\/|^\//.test(url) && url.includes('{z}')) {
    let host = url;
    try {
      host = new URL(url.replace(/[{}]/g, ''), window.location.href).host;
    } catch {
      // keep the raw text
    }
    const credit = (cfg && cfg.tileAttribution) || host;
    map.addEventListener('basemap', (e) => {
      // Tiles that cannot be reached: the offline map alone, and the map says so.
      if (e.detail.state === 'offline') setAttribution(`Tiles unreachable: offline map · ${OFFLINE_CREDIT}`);
      else if (e.detail.state === 'online') setAttribution('Tiles: ', credit, /openstreetmap/i.test(credit) ? 'https://www.openstreetmap.org/copyright' : null);
    });
    map.setTileUrl(url);
    setAttribution('Tiles: ', credit, /openstreetmap/i.test(credit) ? 'https://www.openstreetmap.org/copyright' : null);
  } else {
    setAttribution(`Offline map: ${OFFLINE_CREDIT}`);
  }
}

/** The attribution line: text, then optionally a credit (a link when `href`). */
function setAttribution(text, credit, href) {
  const el = ui.attribution;
  el.replaceChildren(document.createTextNode(text));
  if (credit) {
    const a = document.createElement(href ? 'a' : 'span');
    a.textContent = credit;
    if (href) {
      a.href = href;
      a.target = '_blank';
      a.rel = 'noopener';
    }
    el.append(a);
  }
}

/** The detailed offline basemap, fetched once the page is idle (the first paint does not wait for it). */
async function loadDetailBasemap(indexUrl) {
  await new Promise((resolve) => (window.requestIdleCallback ? window.requestIdleCallback(resolve, { timeout: 1500 }) : setTimeout(resolve, 200)));
  try {
    const res = await fetch(indexUrl);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const index = await res.json();
    const detail = new DetailBasemap(index, indexUrl.replace(/\/index\.json$/, ''), () => map.setDetailBasemap(detail));
    map.setDetailBasemap(detail);
  } catch (e) {
    console.warn('detailed basemap unavailable, drawing coarse outlines:', e.message);
  }
}

// ---------- datasets and charts ----------

function fillDatasetSelect() {
  ui.dataset.replaceChildren(
    ...state.datasets.map((d) => {
      const o = document.createElement('option');
      o.value = d.name;
      o.textContent = `${d.name} · ${formatCompact(d.rows)} rows`;
      return o;
    }),
  );
}

function selectDataset(ds, { keepFilters }) {
  state.dataset = ds;
  ui.dataset.value = ds.name;
  if (!keepFilters) state.filters = {};
  query.baselineKey = null;
  query.baseline = {};
  charts.clear();
  ui.charts.replaceChildren();
  for (const dim of ds.dimensions) {
    const chart = new Histogram(dim, { onFilter: setFilter, onLogToggle: setLog, onPreview: previewFilter });
    charts.set(dim.name, chart);
    ui.charts.append(chart.el);
  }
  buildLegend();
  // Point tooltips name the values by their dimensions' titles.
  // Point tooltips show the row's exact values (the sample's detail columns)
  // under their titles, and the bins of dimensions no detail column covers.
  map.describeRow = (row) => rowDetails(ds, row, query.detailColumns || []);
  ui.total.textContent = formatCount(ds.rows);
}

function categoryDim() {
  return state.dataset.dimensions.find((d) => d.name === state.dataset.category && d.kind === 'categorical');
}

function colorOf(label) {
  const dim = categoryDim();
  const bin = dim && dim.bins.find((b) => b.label === label);
  return (bin && bin.color) || '#9aa5b1';
}

function buildLegend() {
  const dim = categoryDim();
  ui.legend.replaceChildren();
  if (!dim) {
    ui.legend.hidden = true;
    return;
  }
  ui.legend.hidden = false;
  const title = document.createElement('div');
  title.className = 'legend-title';
  title.textContent = dim.title || dim.name;
  ui.legend.append(title);
  const list = document.createElement('ul');
  for (const bin of dim.bins) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'legend-item';
    b.dataset.label = bin.label;
    b.dataset.testid = 'legend-item';
    b.title = 'Click to show only this category; shift-click to add or remove it';
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = bin.color || '#9aa5b1';
    b.append(sw, document.createTextNode(bin.label));
    b.addEventListener('click', (e) => {
      const chart = charts.get(dim.name);
      chart.clickCategory(dim.bins.indexOf(bin), e.shiftKey || e.ctrlKey || e.metaKey);
    });
    li.append(b);
    list.append(li);
  }
  ui.legend.append(list);
  paintLegend();
}

function paintLegend() {
  const dim = categoryDim();
  if (!dim) return;
  const f = state.filters[dim.name];
  for (const b of ui.legend.querySelectorAll('.legend-item')) {
    const on = !f || f.categories.includes(b.dataset.label);
    b.classList.toggle('off', !on);
    b.setAttribute('aria-pressed', String(!!f && on));
  }
}

/**
 * Live brushing: while a brush is dragged, the other views follow the range
 * under it. At most one query is in flight; a move during it marks the
 * latest range to ask next, when it returns (no abort, so answers keep
 * coming however fast the pointer moves). `filter === undefined` ends the
 * preview (a cancelled drag); release commits through setFilter.
 */
function previewFilter(name, filter) {
  state.preview = filter === undefined ? null : { name, filter };
  if (query.inFlight) query.previewPending = true;
  else scheduleQuery(0);
}

/** The filters a query asks for: the committed ones, with a dragged brush's range over them. */
function queryFilters() {
  if (!state.preview) return state.filters;
  const { name, filter } = state.preview;
  if (filter) return { ...state.filters, [name]: filter };
  const { [name]: _, ...rest } = state.filters;
  return rest;
}

function setFilter(name, filter) {
  state.preview = null;
  query.previewPending = false;
  if (filter) state.filters = { ...state.filters, [name]: filter };
  else {
    const { [name]: _, ...rest } = state.filters;
    state.filters = rest;
  }
  refreshCharts();
  writeHash();
  scheduleQuery(0);
}

/** After a change of filters: repaint, record it in the URL, ask for it. */
function commitChange() {
  state.preview = null;
  query.previewPending = false;
  refreshCharts();
  writeHash();
  scheduleQuery(0);
}

function setLog(name, on) {
  if (on) state.log.add(name);
  else state.log.delete(name);
  refreshCharts();
  writeHash();
}

/** Repaints charts and legend from the state (filters, log axes) without new data. */
function refreshCharts() {
  for (const [name, chart] of charts) {
    chart.update({ filter: state.filters[name], log: state.log.has(name), missing: chart.missing });
  }
  paintLegend();
  const n = Object.keys(state.filters).length;
  ui.resetAll.disabled = n === 0;
  ui.filterSummary.textContent = n ? `${n} active` : 'none active';
}

// ---------- querying ----------

function scheduleQuery(delay) {
  clearTimeout(query.timer);
  query.timer = setTimeout(() => {
    query.timer = null;
    runQuery();
  }, delay);
  setBusy();
}

function setBusy() {
  const busy = query.timer !== null || query.inFlight || query.fitting > 0;
  document.body.dataset.busy = String(busy);
  ui.progress.hidden = !query.inFlight;
}

async function runQuery() {
  if (!state.dataset) {
    setBusy();
    return;
  }
  const ds = state.dataset;
  const vis = map.visible();
  const image = fitImageSize(vis.pixelWidth, vis.pixelHeight);
  const baselineKey = `${ds.name}|${state.viewportFilter ? JSON.stringify(vis.viewport) : 'all'}`;
  const wantBaseline = baselineKey !== query.baselineKey;
  const live = state.preview !== null;
  const body = {
    dataset: ds.name,
    filters: queryFilters(),
    viewport: vis.viewport,
    viewportFilter: state.viewportFilter,
    histograms: ds.dimensions.map((d) => d.name),
    baseline: wantBaseline,
    image,
    sample: { limit: SAMPLE_LIMIT, allOrNone: true },
  };
  if (query.controller) query.controller.abort();
  const controller = new AbortController();
  query.controller = controller;
  const seq = ++query.seq;
  query.inFlight = true;
  setBusy();
  const t0 = performance.now();
  try {
    const res = await api.query(body, controller.signal);
    if (seq !== query.seq) return; // a newer query superseded this one
    const rtt = performance.now() - t0;
    if (wantBaseline && res.baseline) {
      query.baselineKey = baselineKey;
      query.baseline = res.baseline;
    }
    await applyResult(res, body, vis, rtt, () => seq === query.seq);
    if (seq !== query.seq) return;
    hideError();
    query.applied = seq;
    document.body.dataset.appliedSeq = String(seq);
    if (live) {
      query.liveUpdates += 1;
      document.body.dataset.liveUpdates = String(query.liveUpdates);
    }
  } catch (e) {
    if (e.name === 'AbortError' || seq !== query.seq) return;
    showError(e);
  } finally {
    if (seq === query.seq) {
      query.inFlight = false;
      query.controller = null;
      setBusy();
      if (query.previewPending) {
        // The brush moved while this one ran: ask for where it is now.
        query.previewPending = false;
        runQuery();
      }
    }
  }
}

async function applyResult(res, body, vis, rtt, isCurrent) {
  const ds = state.dataset;
  // Decode the image first, so everything below changes in the same frame.
  const frame = { x0: vis.x0, x1: vis.x1, y0: vis.y0, y1: vis.y1 };
  await map.setImage(res.image, frame, isCurrent);
  if (!isCurrent()) return;
  // Counts
  ui.selected.textContent = formatCount(res.selected);
  ui.selected.dataset.value = String(res.selected);
  ui.total.textContent = formatCount(res.total);
  ui.total.dataset.value = String(res.total);
  ui.share.textContent = formatShare(res.selected, res.total);
  ui.scope.textContent = body.viewportFilter ? 'in map view' : 'whole dataset';
  renderEmpty(res, body);
  const t = res.timings || {};
  const parts = [`query ${formatMs(t.totalMs)}`];
  if (Number.isFinite(t.workersMs)) {
    parts.push(`workers ${formatMs(t.workersMs)}${Number.isFinite(t.kernelMs) ? ` (kernels ${formatMs(t.kernelMs)})` : ''}`);
  }
  if (Number.isFinite(t.shadeMs)) parts.push(`shading ${formatMs(t.shadeMs)}`);
  parts.push(`round trip ${formatMs(rtt)}`);
  ui.timings.textContent = parts.join(' · ');
  ui.timings.title = 'Query time: server total, worker kernels, image shading, and the whole round trip seen by the browser';

  // Histograms
  for (const dim of ds.dimensions) {
    const chart = charts.get(dim.name);
    const h = res.histograms && res.histograms[dim.name];
    const base = query.baseline[dim.name];
    chart.update({
      counts: h ? h.bins.map((b) => b.count) : null,
      baseline: base ? base.bins.map((b) => b.count) : null,
      missing: h ? h.missing : 0,
      filter: state.filters[dim.name],
      log: state.log.has(dim.name),
    });
  }

  // Partial results
  const shards = res.shards || {};
  if (res.partial) {
    const missing = (shards.missing || []).length;
    const msg =
      shards.message ||
      (shards.consistent === false
        ? 'Workers answered from different versions of the data.'
        : `${missing} of ${shards.expected} shards did not answer.`);
    // The server's message says which shards and why; without one, say what the counts mean.
    const stop = /[.!?]$/.test(msg) ? '' : '.';
    const tail = shards.message ? '' : ' Counts cover only the shards that answered.';
    ui.partial.replaceChildren(bannerTitle('Partial result.'), document.createTextNode(` ${msg}${stop}${tail}`));
    ui.partial.hidden = false;
  } else {
    ui.partial.hidden = true;
  }

  // Map: points when few enough rows match in view, else the raster.
  const sample = res.sample;
  const points = sample && sample.matched <= SAMPLE_LIMIT && sample.rows.length >= sample.matched ? sample.rows : null;
  query.detailColumns = (sample && sample.columns) || [];
  map.setPoints(points, colorOf);
  if (points) {
    // No points at all: the empty state says so.
    ui.mode.textContent = `${formatCount(points.length)} ${points.length === 1 ? 'row' : 'rows'} in view, drawn individually · hover a point for details`;
    ui.mode.hidden = points.length === 0;
  } else {
    ui.mode.hidden = true;
  }
}

/** Rows in the map view before any filter, from the baseline histograms (null when unknown). */
function rowsInViewUnfiltered() {
  const h = Object.values(query.baseline || {})[0];
  if (!h || !h.bins) return null;
  return h.bins.reduce((a, b) => a + b.count, 0) + (h.missing || 0);
}

/**
 * An answer with no rows says so on the map and next to the counter, with
 * what would bring rows back: clearing the filters, or (when the view itself
 * holds no rows) showing the whole world.
 */
function renderEmpty(res, body) {
  const empty = res.selected === 0;
  const filtered = Object.keys(body.filters || {}).length > 0;
  document.querySelector('.counts').classList.toggle('none', empty);
  ui.counterClear.hidden = !(empty && filtered);
  ui.empty.hidden = !empty;
  if (!empty) return;
  const inView = body.viewportFilter ? rowsInViewUnfiltered() : res.total;
  const viewEmpty = body.viewportFilter && inView === 0;
  const title = ui.empty.querySelector('.empty-title');
  const text = ui.empty.querySelector('.empty-text');
  const actions = ui.empty.querySelector('.empty-actions');
  const action = (label, testid, fn) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn btn-small';
    b.dataset.testid = testid;
    b.textContent = label;
    b.addEventListener('click', fn);
    return b;
  };
  const buttons = [];
  if (filtered && !viewEmpty) {
    title.textContent = 'No rows match these filters';
    const n = Object.keys(body.filters).length;
    text.textContent = body.viewportFilter
      ? `${formatCount(inView ?? res.total)} rows are in this view, but none pass the ${n === 1 ? 'filter' : `${n} filters`} together.`
      : `None of the ${formatCount(res.total)} rows pass the ${n === 1 ? 'filter' : `${n} filters`} together.`;
  } else if (viewEmpty) {
    title.textContent = 'No rows in this part of the map';
    text.textContent = filtered ? 'Nothing here, even before the filters. Move the map or show the whole world.' : 'Move the map or show the whole world.';
  } else {
    title.textContent = 'No rows';
    text.textContent = 'The dataset holds no rows.';
  }
  if (filtered) buttons.push(action('Clear filters', 'empty-clear', clearFilters));
  if (viewEmpty) buttons.push(action('Show the whole world', 'empty-world', () => map.resetView()));
  actions.replaceChildren(...buttons);
}

function clearFilters() {
  // A shift-click before may have left text selected in the charts.
  const sel = window.getSelection && window.getSelection();
  if (sel) sel.removeAllRanges();
  state.filters = {};
  commitChange();
}

function showError(e) {
  if (e instanceof ApiError && e.status === 401) {
    toLogin();
    return;
  }
  if (e instanceof ApiError && e.status === 503 && clusterBannerShown()) {
    // The cluster banner already says why nothing answers.
    ui.error.hidden = true;
    return;
  }
  const what = e instanceof ApiError && e.status >= 500 ? 'Server error' : e instanceof ApiError && e.status ? 'Request rejected' : 'Error';
  const retry = document.createElement('button');
  retry.type = 'button';
  retry.className = 'link';
  retry.textContent = 'Retry';
  retry.addEventListener('click', () => scheduleQuery(0));
  ui.error.replaceChildren(bannerTitle(what), document.createTextNode(` ${e.message} `), retry);
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
}

// ---------- controls ----------

function bindControls() {
  ui.dataset.addEventListener('change', () => {
    const ds = state.datasets.find((d) => d.name === ui.dataset.value);
    if (!ds) return;
    selectDataset(ds, { keepFilters: false });
    state.log = new Set(ds.dimensions.filter((d) => d.kind === 'log').map((d) => d.name));
    refreshCharts();
    // The new dataset's rows may lie elsewhere: show them (one history entry with the switch).
    fitToDataset(ds).then(() => {
      if (state.dataset !== ds) return;
      writeHash();
      scheduleQuery(0);
    });
  });
  ui.vf.addEventListener('change', () => {
    state.viewportFilter = ui.vf.checked;
    writeHash();
    scheduleQuery(0);
  });
  ui.resetAll.addEventListener('click', clearFilters);
  ui.counterClear.addEventListener('click', clearFilters);
  $('[data-testid="zoom-in"]').addEventListener('click', () => map.zoomStep(1));
  $('[data-testid="zoom-out"]').addEventListener('click', () => map.zoomStep(-1));
  $('[data-testid="zoom-reset"]').addEventListener('click', () => map.resetView());
  // Export: the rows the counter counts (filters, and the map view when it filters).
  setupExport(ui.vf.closest('label'), () => {
    if (!state.dataset) return null;
    return {
      request: {
        dataset: state.dataset.name,
        filters: queryFilters(),
        viewport: map.visible().viewport,
        viewportFilter: state.viewportFilter,
      },
      selected: Number(ui.selected.dataset.value),
    };
  });
}

boot();
