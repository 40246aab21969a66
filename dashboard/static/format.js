// Number and text formatting for the UI. Pure functions.

const exact = new Intl.NumberFormat('en-US');

/** 1234567 → "1,234,567". */
export function formatCount(n) {
  return Number.isFinite(n) ? exact.format(n) : '–';
}

/** 1234567 → "1.23M"; small numbers stay exact. */
export function formatCompact(n) {
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a < 10000) return exact.format(n);
  const units = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [v, s] of units) {
    if (a >= v) {
      const x = n / v;
      const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
      return `${x.toFixed(digits)}${s}`;
    }
  }
  return exact.format(n);
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
