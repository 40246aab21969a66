// The view state in the URL hash, so a link reproduces a view:
//   #dataset=celltowers&map=3.25/48.85/2.35&vf=1&log=range,created
//    &f=<JSON of the filters, as sent to /api/query>
// `map` is zoom/lat/lon like other web maps. Pure functions.

/** Serialises a state {dataset, view: {lon, lat, zoom}, filters, viewportFilter, log: string[]}. */
export function encodeHash(state) {
  const p = [];
  p.set = (k, v) => p.push(`${k}=${encodePart(v)}`);
  if (state.dataset) p.set('dataset', state.dataset);
  if (state.view) {
    const { zoom, lat, lon } = state.view;
    p.set('map', `${zoom}/${lat}/${lon}`);
  }
  p.set('vf', state.viewportFilter === false ? '0' : '1');
  // Always written (even empty), so "no log axes" survives a reload.
  p.set('log', [...(state.log || [])].sort().join(','));
  const filters = state.filters || {};
  const names = Object.keys(filters).sort();
  if (names.length) {
    const ordered = {};
    for (const n of names) ordered[n] = filters[n];
    p.set('f', JSON.stringify(ordered));
  }
  return `#${p.join('&')}`;
}

/** Percent-encodes a hash value, leaving the characters that read well and are safe in a fragment. */
function encodePart(v) {
  return encodeURIComponent(v).replace(/%2F/g, '/').replace(/%2C/g, ',').replace(/%3A/g, ':');
}

/**
 * Parses a hash into a partial state; anything malformed is left out (and
 * named in `problems`) rather than thrown, so a mangled link still opens.
 */
export function decodeHash(hash) {
  const out = { problems: [] };
  const text = (hash || '').replace(/^#/, '');
  if (!text) return out;
  const p = new URLSearchParams(text);
  const dataset = p.get('dataset');
  if (dataset) out.dataset = dataset;
  const map = p.get('map');
  if (map !== null) {
    const parts = map.split('/').map(Number);
    if (parts.length === 3 && parts.every(Number.isFinite)) {
      out.view = { zoom: parts[0], lat: parts[1], lon: parts[2] };
    } else {
      out.problems.push(`map=${map}`);
    }
  }
  const vf = p.get('vf');
  if (vf !== null) out.viewportFilter = vf !== '0';
  const log = p.get('log');
  if (log !== null) out.log = log.split(',').filter(Boolean);
  const f = p.get('f');
  if (f !== null) {
    try {
      const parsed = JSON.parse(f);
      out.filters = {};
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const [name, filter] of Object.entries(parsed)) {
          const clean = cleanFilter(filter);
          if (clean) out.filters[name] = clean;
          else out.problems.push(`filter ${name}`);
        }
      } else {
        out.problems.push('f');
      }
    } catch {
      out.problems.push('f');
    }
  }
  return out;
}

/** A filter in API form, or null when it is not one. */
export function cleanFilter(f) {
  if (!f || typeof f !== 'object') return null;
  if (Array.isArray(f.categories)) {
    const cats = f.categories.filter((c) => typeof c === 'string');
    return cats.length ? { categories: cats } : null;
  }
  if (f.range && Number.isFinite(f.range.min) && Number.isFinite(f.range.max) && f.range.min <= f.range.max) {
    return { range: { min: f.range.min, max: f.range.max } };
  }
  return null;
}

/**
 * Keeps the filters that fit a dataset's dimensions: categories it knows,
 * ranges aligned to its bin edges (snapped outward to whole bins).
 */
export function filtersForDataset(filters, dataset) {
  const out = {};
  for (const [name, f] of Object.entries(filters || {})) {
    const dim = dataset.dimensions.find((d) => d.name === name);
    if (!dim) continue;
    if (dim.kind === 'categorical' && f.categories) {
      const known = new Set(dim.bins.map((b) => b.label));
      const cats = f.categories.filter((c) => known.has(c));
      if (cats.length) out[name] = { categories: cats };
    } else if (dim.kind !== 'categorical' && f.range) {
      const r = binRangeOf(dim, f.range);
      if (r) out[name] = { range: { min: dim.bins[r[0]].lo, max: dim.bins[r[1]].hi } };
    }
  }
  return out;
}

/** Indices [first, last] of the bins a range filter selects (bins whose lower edge lies in [min, max)), or null. */
export function binRangeOf(dim, range) {
  let first = -1;
  let last = -1;
  dim.bins.forEach((b, i) => {
    if (b.lo >= range.min && b.lo < range.max) {
      if (first < 0) first = i;
      last = i;
    }
  });
  return first < 0 ? null : [first, last];
}
