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

const plainNumber = new Intl.NumberFormat('en-US', { maximumFractionDigits: 20, useGrouping: false });
const groupedNumber = new Intl.NumberFormat('en-US', { maximumFractionDigits: 20 });

function two(n) {
  return String(n).padStart(2, '0');
}

/** Unix seconds → "2015-03-04 12:34:56 UTC" (the exact second, in UTC). */
export function formatInstant(secs) {
  if (!Number.isFinite(secs)) return '–';
  const d = new Date(secs * 1000);
  if (Number.isNaN(d.getTime())) return String(secs);
  const date = `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`;
  return `${date} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC`;
}

/**
 * A detail column's exact value as text. `column` is the sample's column
 * description ({ kind: int|float|time|text, unit }). Quantities (a unit)
 * are grouped and followed by their unit ("5,620 m", "12.3 kn", "245.5°");
 * identifiers and counts without one are plain digits ("208", "366123456").
 */
export function formatDetail(column, v) {
  if (v === null || v === undefined) return '–';
  const unit = column.unit || '';
  const suffix = !unit ? '' : unit === '°' ? '°' : ` ${unit}`;
  switch (column.kind) {
    case 'time':
      return formatInstant(v);
    case 'int':
    case 'float':
      if (typeof v !== 'number') return String(v);
      return `${(unit ? groupedNumber : plainNumber).format(v)}${suffix}`;
    default:
      return v === '' ? '(empty)' : String(v);
  }
}

/**
 * A sampled row's details for its tooltip, as [title, text] pairs: the
 * position, then the row's exact values of the sample's detail `columns`
 * (the worker's detail columns, in their order, under their titles), then
 * the bins of dimensions no detail column covers, in the dataset's order.
 * Values the row does not carry are left out; bin values the dataset does
 * not describe come last under their names.
 */
export function rowDetails(dataset, row, columns = []) {
  const out = [['Position', formatPosition(row.lon, row.lat)]];
  const details = row.details || {};
  const exact = new Set();
  for (const col of columns) {
    exact.add(col.dimension || col.column);
    if (details[col.column] === undefined) continue;
    out.push([col.title || col.column, formatDetail(col, details[col.column])]);
  }
  const values = row.values || {};
  const seen = new Set();
  for (const dim of dataset.dimensions) {
    if (dim.name === dataset.category) continue;
    seen.add(dim.name);
    if (values[dim.name] === undefined || exact.has(dim.name)) continue;
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

/**
 * For the status summary, from `/api/status`'s `replicas` (one entry per
 * shard, each listing its replicas): ' × 2 replicas (loaded per shard: 2, 1)'
 * when some shard has several replicas, else ''.
 */
export function replicaSummary(shards) {
  const list = Array.isArray(shards) ? shards : [];
  const most = Math.max(0, ...list.map((r) => (r.replicas || []).length));
  if (most < 2) return '';
  const loaded = list.map((r) => (r.replicas || []).filter((x) => x.loaded).length);
  return ` × ${most} replicas (loaded per shard: ${loaded.join(', ')})`;
}
