// Y-axis ticks of a count histogram, linear or log. Pure functions: the
// histogram draws what they return.

import { withUnit } from './format.js';

/**
 * Where a count sits on the y axis, as a fraction of the plot height (0 at the
 * bottom, 1 at `max`). The log scale is log10(1 + v), so 0 stays at the bottom.
 */
export function yFraction(v, max, log) {
  if (!max || !v) return 0;
  if (log) return Math.log10(1 + v) / Math.log10(1 + max);
  return v / max;
}

/** The smallest of 1, 2, 2.5, 5 × 10^k (2.5 only from 25 up, so steps stay whole) that is at least `raw`. */
export function niceStep(raw) {
  if (!(raw > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of p >= 10 ? [1, 2, 2.5, 5, 10] : [1, 2, 5, 10]) {
    if (m * p >= raw) return m * p;
  }
  return 10 * p;
}

/**
 * Ticks for counts 0..max on a plot `height` pixels tall, no two closer than
 * `minGap` pixels: [{value, y}] from the bottom up, `y` as a fraction of the
 * height. Linear: multiples of a 1-2-2.5-5 step. Log: 0 and the powers of ten
 * first, then 5× and 2× between them where they fit.
 */
export function yTicks(max, { log = false, height = 90, minGap = 18 } = {}) {
  const top = Math.max(1, Math.floor(max));
  if (!log) {
    const room = Math.max(1, Math.floor(height / minGap));
    const step = niceStep(top / room);
    const out = [];
    for (let v = 0; v <= top; v += step) out.push({ value: v, y: yFraction(v, top, false) });
    return out;
  }
  const decades = [0];
  const fives = [];
  const twos = [];
  for (let p = 1; p <= top; p *= 10) {
    decades.push(p);
    if (5 * p <= top) fives.push(5 * p);
    if (2 * p <= top) twos.push(2 * p);
  }
  const kept = [];
  for (const value of [...decades, ...fives, ...twos]) {
    const y = yFraction(value, top, true);
    if (kept.every((t) => Math.abs(t.y - y) * height >= minGap)) kept.push({ value, y });
  }
  return kept.sort((a, b) => a.value - b.value);
}

/** A short tick label: 0, 500, 1k, 1.5k, 25k, 2M, 1.2B. */
export function formatTick(n) {
  if (!Number.isFinite(n)) return '';
  return withUnit(n, true) ?? String(Math.round(n));
}
