// Number and text formatting for the UI. Pure functions.

const exact = new Intl.NumberFormat('en-US');

/** 1234567 → "1,234,567". */
export function formatCount(n) {
  return Number.isFinite(n) ? exact.format(n) : '–';
}

/**
 * n in thousands, millions, billions or trillions with 3 significant
 * digits ("1.23M", "25.0k"; "25k" with `trim`), or null below 1000.
 */
export function withUnit(n, trim = false) {
  const a = Math.abs(n);
  for (const [v, s] of [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= v) {
      const x = n / v;
      const text = x.toFixed(Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
      return `${trim ? Number(text) : text}${s}`;
    }
  }
  return null;
}

/** 1234567 → "1.23M"; small numbers stay exact. */
export function formatCompact(n) {
  if (!Number.isFinite(n)) return '–';
  if (Math.abs(n) < 10000) return exact.format(n);
  return withUnit(n) ?? exact.format(n);
}

/** Milliseconds, with precision that matches their size. */
export function formatMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

export function formatBytes(b) {
  if (!Number.isFinite(b)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * Percent with one decimal ("99.7%", "3.3%"), "100%" only when the part is the
 * whole and "0%" only when it is nothing: "<0.1%" and ">99.9%" at the edges.
 */
export function formatShare(part, whole) {
  if (!whole) return '–';
  if (part === whole) return '100%';
  if (!part) return '0%';
  const p = (100 * part) / whole;
  if (p > 0 && p < 0.1) return '<0.1%';
  if (p < 100 && p > 99.9) return '>99.9%';
  return `${p.toFixed(1).replace(/\.0$/, '')}%`;
}

/** "48.85000° N, 2.35000° E". */
export function formatPosition(lon, lat) {
  if (!Number.isFinite(lon) || !Number.isFinite(lat)) return '–';
  const ns = lat < 0 ? 'S' : 'N';
  const ew = lon < 0 ? 'W' : 'E';
  return `${Math.abs(lat).toFixed(5)}° ${ns}, ${Math.abs(lon).toFixed(5)}° ${ew}`;
}

/**
 * A sampled row's details for its tooltip, as [title, text] pairs: the
 * position, then each dimension of the dataset other than the category, in
 * the dataset's order, under its title. Values the row does not carry are
 * left out; columns the dataset does not describe come last under their names.
 */
export function rowDetails(dataset, row) {
  const out = [['Position', formatPosition(row.lon, row.lat)]];
  const values = row.values || {};
  const seen = new Set();
  for (const dim of dataset.dimensions) {
    if (dim.name === dataset.category) continue;
    seen.add(dim.name);
    if (values[dim.name] === undefined) continue;
    out.push([dim.title || dim.name, values[dim.name]]);
  }
  for (const [k, v] of Object.entries(values)) if (!seen.has(k)) out.push([k, v]);
  return out;
}

/** Label of a numeric or temporal bin range, from the first and last bins' labels. */
export function rangeLabel(dim, first, last) {
  const a = dim.bins[first];
  const b = dim.bins[last];
  if (!a || !b) return '';
  if (first === last) return a.label;
  if (dim.kind === 'temporal') return `${a.label} – ${b.label}`;
  const lo = a.label.split('–')[0];
  const hiParts = b.label.split('–');
  const hi = hiParts[hiParts.length - 1];
  return `${lo}–${hi}`;
}
