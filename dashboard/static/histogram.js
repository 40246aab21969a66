// One linked histogram: SVG bars of the crossfiltered counts over the faint
// unfiltered (baseline) distribution. Numeric and temporal dimensions are
// brushed (drag; snapped to whole bins), categorical ones are clicked
// (shift/ctrl/cmd-click for several). Linear or log y axis, hover details,
// keyboard control, per-chart reset. Numeric charts have a y axis with
// gridlines. It only reports filters through
// `onFilter(name, filter|null)`; the app owns the state.

import { formatTick, yFraction, yTicks } from './axis.js';
import { formatCompact, formatCount, formatShare, rangeLabel } from './format.js';
import { binRangeOf } from './hash.js';

const NS = 'http://www.w3.org/2000/svg';
/** Numeric charts' height: shorter in short windows, so more of them fit beside the map. */
function numHeight() {
  const h = typeof window === 'undefined' ? 1000 : window.innerHeight;
  return h < 800 ? 84 : h < 960 ? 100 : 118;
}
// The left pad holds the y-axis labels (at most five characters: "2.5M").
const NUM_PAD = { left: 34, right: 4, top: 8, bottom: 20 };
const Y_TICK_GAP = 18;
/** Height of a category row: a little tighter in short windows. */
const CAT_ROW = typeof window !== 'undefined' && window.innerHeight < 800 ? 19 : 22;
const CAT_LABEL = 92;
const CAT_COUNT = 52;

function svgEl(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function htmlEl(tag, attrs = {}, text) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v);
  }
  if (text !== undefined) el.textContent = text;
  return el;
}

let nextId = 0;

export class Histogram {
  constructor(dim, { onFilter, onLogToggle, onPreview = null }) {
    this.dim = dim;
    this.onFilter = onFilter;
    /** Called while a brush is dragged, with the range under it (live brushing). */
    this.onPreview = onPreview;
    this.onLogToggle = onLogToggle;
    this.categorical = dim.kind === 'categorical';
    this.counts = null;
    this.baseline = null;
    this.filter = null;
    this.log = dim.kind === 'log';
    this.drag = null;
    this.cursor = null; // keyboard focus bin
    this.width = 320;
    this.numHeight = numHeight();
    const id = `hist-${++nextId}`;

    const el = htmlEl('section', {
      class: `hist hist-${this.categorical ? 'cat' : 'num'}`,
      'data-testid': `hist-${dim.name}`,
      'data-dimension': dim.name,
      'data-kind': dim.kind,
      'aria-labelledby': `${id}-title`,
    });
    const head = htmlEl('header', { class: 'hist-head' });
    const title = htmlEl('h3', { id: `${id}-title`, class: 'hist-title' }, dim.title || dim.name);
    this.selLabel = htmlEl('span', { class: 'hist-selection', 'data-testid': 'hist-selection', 'aria-live': 'polite' });
    this.logButton = htmlEl(
      'button',
      {
        type: 'button',
        class: 'chip',
        'data-testid': 'hist-log',
        'aria-pressed': 'false',
        title: 'Logarithmic y axis',
        'aria-label': `${dim.title || dim.name}: logarithmic y axis`,
      },
      'log',
    );
    this.logButton.addEventListener('click', () => this.onLogToggle(dim.name, !this.log));
    this.resetButton = htmlEl(
      'button',
      {
        type: 'button',
        class: 'chip chip-reset',
        'data-testid': 'hist-reset',
        title: 'Clear this filter',
        'aria-label': `Clear the ${dim.title || dim.name} filter`,
      },
      'reset',
    );
    this.resetButton.hidden = true;
    this.resetButton.addEventListener('click', () => this.onFilter(dim.name, null));
    const tools = htmlEl('div', { class: 'hist-tools' });
    tools.append(this.resetButton, this.logButton);
    head.append(title, this.selLabel, tools);

    this.svg = svgEl('svg', { class: 'hist-svg', role: 'group', tabindex: '0' });
    this.svg.setAttribute(
      'aria-label',
      this.categorical
        ? `${dim.title || dim.name}: click a category to filter, shift-click to add more`
        : `${dim.title || dim.name}: drag to select a range; arrow keys move it, shift and arrows resize it, Escape clears`,
    );
    this.tooltip = htmlEl('div', { class: 'tooltip hist-tooltip', role: 'tooltip', 'data-testid': 'hist-tooltip' });
    this.tooltip.hidden = true;
    const plot = htmlEl('div', { class: 'hist-plot' });
    plot.append(this.svg, this.tooltip);
    this.foot = htmlEl('div', { class: 'hist-foot' });
    el.append(head, plot, this.foot);
    this.el = el;
    this.plot = plot;

    this.build();
    this.bindKeys();
    new ResizeObserver(() => {
      const w = Math.floor(plot.clientWidth);
      if (w > 0 && w !== this.width) {
        this.width = w;
        this.layout();
      }
    }).observe(plot);
  }

  /** Creates the bars once; `layout` places them and `paint` sizes them. */
  build() {
    const n = this.dim.bins.length;
    this.bars = [];
    if (this.categorical) {
      this.dim.bins.forEach((bin, i) => {
        const g = svgEl('g', {
          class: 'cat-row',
          role: 'button',
          tabindex: i === 0 ? '0' : '-1',
          'data-testid': 'bar',
          'data-index': i,
          'data-label': bin.label,
          'aria-pressed': 'false',
        });
        const hit = svgEl('rect', { class: 'cat-hit', height: CAT_ROW });
        const label = svgEl('text', { class: 'cat-label', x: 0, y: CAT_ROW / 2 + 4 });
        label.textContent = bin.label;
        const base = svgEl('rect', { class: 'bar-base', height: CAT_ROW - 8, y: 4, rx: 2 });
        const sel = svgEl('rect', { class: 'bar-sel', height: CAT_ROW - 8, y: 4, rx: 2, fill: bin.color || '#6aa3ff' });
        const count = svgEl('text', { class: 'cat-count', y: CAT_ROW / 2 + 4, 'text-anchor': 'end' });
        g.append(hit, label, base, sel, count);
        g.addEventListener('click', (e) => this.clickCategory(i, e.shiftKey || e.ctrlKey || e.metaKey));
        // Shift-click adds a category; it must not select page text.
        g.addEventListener('mousedown', (e) => {
          if (e.shiftKey) e.preventDefault();
        });
        g.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            this.clickCategory(i, true);
          }
        });
        g.addEventListener('pointerenter', () => this.showTip(i));
        g.addEventListener('pointerleave', () => this.hideTip());
        g.addEventListener('focus', () => this.showTip(i));
        g.addEventListener('blur', () => this.hideTip());
        this.svg.append(g);
        this.bars.push({ g, base, sel, count });
      });
      this.svg.setAttribute('role', 'group');
      this.svg.removeAttribute('tabindex');
    } else {
      this.gBase = svgEl('g', { class: 'bars-base' });
      this.gSel = svgEl('g', { class: 'bars-sel' });
      for (let i = 0; i < n; i++) {
        const base = svgEl('rect', { class: 'bar-base' });
        const sel = svgEl('rect', { class: 'bar-sel', 'data-testid': 'bar', 'data-index': i });
        this.gBase.append(base);
        this.gSel.append(sel);
        this.bars.push({ base, sel });
      }
      this.axis = svgEl('g', { class: 'axis' });
      this.yAxis = svgEl('g', { class: 'y-axis', 'data-testid': 'y-axis', 'aria-hidden': 'true' });
      this.brushRect = svgEl('rect', { class: 'brush', 'data-testid': 'brush' });
      this.hoverRect = svgEl('rect', { class: 'hover-bin' });
      this.area = svgEl('rect', { class: 'brush-area', 'data-testid': 'brush-area', fill: 'transparent' });
      this.svg.append(this.yAxis, this.hoverRect, this.gBase, this.gSel, this.brushRect, this.axis, this.area);
      this.bindBrush();
    }
    this.layout();
  }

  /** Positions everything for the current width. */
  layout() {
    const w = this.width;
    if (this.categorical) {
      const h = this.bars.length * CAT_ROW;
      this.svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
      this.svg.setAttribute('width', w);
      this.svg.setAttribute('height', h);
      this.bars.forEach((b, i) => {
        b.g.setAttribute('transform', `translate(0, ${i * CAT_ROW})`);
        b.g.querySelector('.cat-hit').setAttribute('width', w);
        b.count.setAttribute('x', w);
      });
    } else {
      this.numHeight = numHeight();
      const h = this.numHeight;
      this.svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
      this.svg.setAttribute('width', w);
      this.svg.setAttribute('height', h);
      const pw = w - NUM_PAD.left - NUM_PAD.right;
      this.area.setAttribute('x', NUM_PAD.left);
      this.area.setAttribute('y', 0);
      this.area.setAttribute('width', pw);
      this.area.setAttribute('height', h - NUM_PAD.bottom + 4);
      this.drawAxis();
    }
    this.paint();
  }

  binWidth() {
    return (this.width - NUM_PAD.left - NUM_PAD.right) / this.dim.bins.length;
  }

  drawAxis() {
    const n = this.dim.bins.length;
    const bw = this.binWidth();
    const y = this.numHeight - NUM_PAD.bottom;
    this.axis.replaceChildren();
    this.axis.append(svgEl('line', { x1: NUM_PAD.left, x2: this.width - NUM_PAD.right, y1: y + 0.5, y2: y + 0.5, class: 'axis-line' }));
    // Label as many bin starts as fit, evenly, never overlapping.
    const charW = 6;
    let longest = 0;
    for (let i = 0; i < n; i++) longest = Math.max(longest, this.tickLabel(i).length);
    const every = Math.max(1, Math.ceil((n * (longest * charW + 12)) / (this.width - 8)));
    let lastEnd = -Infinity;
    for (let i = 0; i < n; i += every) {
      const text = this.tickLabel(i);
      const x = NUM_PAD.left + i * bw;
      const w = text.length * charW;
      const start = i === 0 ? x : x - w / 2;
      if (start < lastEnd + 8 || start + w > this.width) continue;
      lastEnd = start + w;
      const t = svgEl('text', { x, y: y + 14, class: 'axis-label', 'text-anchor': i === 0 ? 'start' : 'middle' });
      t.textContent = text;
      this.axis.append(t);
      this.axis.append(svgEl('line', { x1: x + 0.5, x2: x + 0.5, y1: y, y2: y + 3, class: 'axis-tick' }));
    }
  }

  /** The lower edge of bin i as a short label. */
  tickLabel(i) {
    const b = this.dim.bins[i];
    if (this.dim.kind !== 'temporal') return b.label.split('–')[0];
    if (i === 0) return b.label;
    // Later ticks drop the leading parts they share with the first bin
    // ("2024-01-05" after "2024-01-01" reads "01-05"), keeping two parts.
    const parts = b.label.split(/([-T: ])/);
    const first = this.dim.bins[0].label.split(/([-T: ])/);
    let k = 0;
    while (k + 4 < parts.length && parts[k] === first[k] && parts[k + 1] === first[k + 1]) k += 2;
    return parts.slice(k).join('');
  }

  /** Feeds new data: counts by bin index, the baseline (or null), the current filter, log axis. */
  update({ counts, baseline, missing, filter, log }) {
    if (counts) this.counts = counts;
    if (baseline !== undefined) this.baseline = baseline;
    this.filter = filter || null;
    this.log = !!log;
    this.missing = missing || 0;
    this.paint();
  }

  /** Bins selected by the current filter, as a boolean per bin (null when unfiltered). */
  selectedBins() {
    const f = this.filter;
    if (!f) return null;
    if (f.categories) {
      const set = new Set(f.categories);
      return this.dim.bins.map((b) => set.has(b.label));
    }
    if (f.range) {
      const r = binRangeOf(this.dim, f.range);
      return this.dim.bins.map((_, i) => !!r && i >= r[0] && i <= r[1]);
    }
    return null;
  }

  scale(v, max) {
    return yFraction(v, max, this.log);
  }

  /** Gridlines and count labels for counts 0..max on the current scale. */
  drawYAxis(max) {
    const ph = this.numHeight - NUM_PAD.top - NUM_PAD.bottom;
    const y0 = NUM_PAD.top + ph;
    this.yAxis.replaceChildren();
    this.yAxis.dataset.scale = this.log ? 'log' : 'linear';
    this.yAxis.dataset.max = String(max);
    if (!this.counts) return;
    // Short charts (short windows) space their 10 px labels a little closer.
    const minGap = ph < 70 ? Y_TICK_GAP - 4 : Y_TICK_GAP;
    for (const t of yTicks(max, { log: this.log, height: ph, minGap })) {
      const y = Math.round(y0 - t.y * ph) + 0.5;
      if (t.value > 0) {
        this.yAxis.append(svgEl('line', { x1: NUM_PAD.left, x2: this.width - NUM_PAD.right, y1: y, y2: y, class: 'grid-line' }));
      }
      this.yAxis.append(svgEl('line', { x1: NUM_PAD.left - 3, x2: NUM_PAD.left, y1: y, y2: y, class: 'axis-tick' }));
      const label = svgEl('text', { x: NUM_PAD.left - 5, y: y + 3.5, class: 'axis-label', 'text-anchor': 'end', 'data-testid': 'y-tick', 'data-value': t.value });
      label.textContent = formatTick(t.value);
      this.yAxis.append(label);
    }
    this.yAxis.append(svgEl('line', { x1: NUM_PAD.left + 0.5, x2: NUM_PAD.left + 0.5, y1: NUM_PAD.top, y2: y0, class: 'axis-line' }));
  }

  paint() {
    const counts = this.counts || [];
    const base = this.baseline || [];
    const max = Math.max(1, ...counts, ...base);
    const sel = this.selectedBins();
    this.logButton.setAttribute('aria-pressed', String(this.log));
    this.resetButton.hidden = !this.filter;
    this.el.classList.toggle('filtered', !!this.filter);
    this.selLabel.textContent = this.selectionText();
    if (this.categorical) {
      const trackX = CAT_LABEL;
      const trackW = Math.max(10, this.width - CAT_LABEL - CAT_COUNT - 6);
      this.bars.forEach((b, i) => {
        const c = counts[i] || 0;
        const on = !sel || sel[i];
        b.base.setAttribute('x', trackX);
        b.base.setAttribute('width', Math.max(0, this.scale(base[i] || 0, max) * trackW));
        b.sel.setAttribute('x', trackX);
        b.sel.setAttribute('width', Math.max(c > 0 ? 1 : 0, this.scale(c, max) * trackW));
        b.count.textContent = this.counts ? formatCompact(c) : '';
        b.g.setAttribute('data-count', c);
        b.g.setAttribute('aria-pressed', String(!!sel && !!sel[i]));
        b.g.setAttribute('aria-label', `${this.dim.bins[i].label}: ${formatCount(c)} rows${sel && sel[i] ? ', selected' : ''}`);
        b.g.classList.toggle('out', !on);
        b.g.classList.toggle('on', !!sel && !!sel[i]);
      });
    } else {
      const bw = this.binWidth();
      const ph = this.numHeight - NUM_PAD.top - NUM_PAD.bottom;
      const gap = bw > 4 ? 1 : 0;
      this.bars.forEach((b, i) => {
        const x = NUM_PAD.left + i * bw + gap / 2;
        const w = Math.max(0.5, bw - gap);
        const c = counts[i] || 0;
        const hb = this.scale(base[i] || 0, max) * ph;
        const hs = Math.max(c > 0 ? 1 : 0, this.scale(c, max) * ph);
        const y0 = NUM_PAD.top + ph;
        b.base.setAttribute('x', x);
        b.base.setAttribute('width', w);
        b.base.setAttribute('y', y0 - hb);
        b.base.setAttribute('height', hb);
        b.sel.setAttribute('x', x);
        b.sel.setAttribute('width', w);
        b.sel.setAttribute('y', y0 - hs);
        b.sel.setAttribute('height', hs);
        b.sel.setAttribute('data-count', c);
        b.sel.classList.toggle('out', !!sel && !sel[i]);
      });
      this.paintBrush();
      this.drawYAxis(max);
    }
    // A tooltip on screen follows the new numbers (it may say "loading…").
    if (!this.tooltip.hidden && this.tipIndex !== undefined) this.showTip(this.tipIndex);
    const parts = [];
    if (this.missing) parts.push(`${formatCount(this.missing)} missing`);
    if (this.counts) parts.push(`max ${formatCompact(Math.max(0, ...counts))}${this.log ? ' · log scale' : ''}`);
    this.foot.textContent = parts.join(' · ');
  }

  /** The brush: the pending drag if any, else the filter's bins. */
  paintBrush() {
    let range = null;
    if (this.drag && this.drag.moved) {
      range = [Math.min(this.drag.start, this.drag.cur), Math.max(this.drag.start, this.drag.cur)];
    } else if (this.filter && this.filter.range) {
      range = binRangeOf(this.dim, this.filter.range);
    }
    if (!range) {
      this.brushRect.setAttribute('visibility', 'hidden');
      return;
    }
    const bw = this.binWidth();
    this.brushRect.setAttribute('visibility', 'visible');
    this.brushRect.setAttribute('x', NUM_PAD.left + range[0] * bw);
    this.brushRect.setAttribute('width', (range[1] - range[0] + 1) * bw);
    this.brushRect.setAttribute('y', 1);
    this.brushRect.setAttribute('height', this.numHeight - NUM_PAD.bottom - 1);
  }

  selectionText() {
    const f = this.filter;
    if (!f) return '';
    if (f.categories) {
      return f.categories.length <= 2 ? f.categories.join(', ') : `${f.categories.length} selected`;
    }
    const r = binRangeOf(this.dim, f.range);
    return r ? rangeLabel(this.dim, r[0], r[1]) : '';
  }

  // ----- interaction -----

  clickCategory(i, multi) {
    const label = this.dim.bins[i].label;
    const current = this.filter && this.filter.categories ? this.filter.categories : [];
    let next;
    if (multi) {
      next = current.includes(label) ? current.filter((c) => c !== label) : [...current, label];
    } else {
      next = current.length === 1 && current[0] === label ? [] : [label];
    }
    // Keep the dimension's order so equal selections give equal URLs.
    const order = this.dim.bins.map((b) => b.label);
    next.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    this.onFilter(this.dim.name, next.length ? { categories: next } : null);
  }

  binAt(clientX) {
    const r = this.svg.getBoundingClientRect();
    const scale = r.width / this.width || 1;
    const x = (clientX - r.left) / scale - NUM_PAD.left;
    return Math.max(0, Math.min(this.dim.bins.length - 1, Math.floor(x / this.binWidth())));
  }

  bindBrush() {
    this.area.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      this.area.setPointerCapture(e.pointerId);
      const i = this.binAt(e.clientX);
      this.drag = { start: i, cur: i, x: e.clientX, moved: false, id: e.pointerId };
    });
    this.area.addEventListener('pointermove', (e) => {
      const i = this.binAt(e.clientX);
      if (this.drag && this.drag.id === e.pointerId) {
        if (Math.abs(e.clientX - this.drag.x) > 3) this.drag.moved = true;
        const changed = this.drag.cur !== i;
        this.drag.cur = i;
        this.paintBrush();
        if (changed && this.drag.moved && this.onPreview) {
          const [a, b] = [Math.min(this.drag.start, i), Math.max(this.drag.start, i)];
          const bins = this.dim.bins;
          this.onPreview(this.dim.name, { range: { min: bins[a].lo, max: bins[b].hi } });
        }
      }
      this.showTip(i);
    });
    const finish = (e, cancelled) => {
      const d = this.drag;
      if (!d || d.id !== e.pointerId) return;
      this.drag = null;
      if (cancelled) {
        this.paintBrush();
        if (this.onPreview) this.onPreview(this.dim.name, undefined); // back to the committed filters
        return;
      }
      if (d.moved && d.start !== d.cur) {
        this.setRange(Math.min(d.start, d.cur), Math.max(d.start, d.cur));
      } else {
        // A click: select that bin, or clear when it is already the whole selection.
        const r = this.filter && this.filter.range ? binRangeOf(this.dim, this.filter.range) : null;
        if (r && r[0] <= d.start && d.start <= r[1]) this.onFilter(this.dim.name, null);
        else this.setRange(d.start, d.start);
      }
    };
    this.area.addEventListener('pointerup', (e) => finish(e, false));
    this.area.addEventListener('pointercancel', (e) => finish(e, true));
    this.area.addEventListener('pointerleave', () => {
      if (!this.drag) this.hideTip();
    });
  }

  setRange(first, last) {
    const bins = this.dim.bins;
    this.onFilter(this.dim.name, { range: { min: bins[first].lo, max: bins[last].hi } });
  }

  bindKeys() {
    if (this.categorical) {
      // Arrow keys move focus between category rows (roving tabindex).
      this.svg.addEventListener('keydown', (e) => {
        const rows = this.bars.map((b) => b.g);
        const at = rows.indexOf(document.activeElement);
        if (at < 0) return;
        let next = at;
        if (e.key === 'ArrowDown' || e.key === 'ArrowRight') next = Math.min(rows.length - 1, at + 1);
        else if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') next = Math.max(0, at - 1);
        else if (e.key === 'Escape') {
          this.onFilter(this.dim.name, null);
          return;
        } else return;
        e.preventDefault();
        rows[at].setAttribute('tabindex', '-1');
        rows[next].setAttribute('tabindex', '0');
        rows[next].focus();
      });
      return;
    }
    this.svg.addEventListener('keydown', (e) => {
      const n = this.dim.bins.length;
      const r = this.filter && this.filter.range ? binRangeOf(this.dim, this.filter.range) : null;
      let first = r ? r[0] : null;
      let last = r ? r[1] : null;
      if (e.key === 'Escape') {
        if (r) this.onFilter(this.dim.name, null);
        return;
      }
      const dir = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!dir) return;
      e.preventDefault();
      if (first === null) {
        first = last = dir > 0 ? 0 : n - 1;
      } else if (e.shiftKey) {
        last = Math.max(first, Math.min(n - 1, last + dir));
      } else if ((dir > 0 && last < n - 1) || (dir < 0 && first > 0)) {
        first += dir;
        last += dir;
      }
      this.setRange(first, last);
      this.showTip(dir > 0 ? last : first);
    });
    this.svg.addEventListener('blur', () => this.hideTip());
  }

  showTip(i) {
    const bin = this.dim.bins[i];
    if (!bin) return;
    this.tipIndex = i;
    const c = this.counts ? this.counts[i] || 0 : null;
    const b = this.baseline ? this.baseline[i] : null;
    this.tooltip.replaceChildren();
    const title = htmlEl('div', { class: 'tooltip-title' }, bin.label);
    const line = htmlEl('div', {}, c === null ? 'loading…' : `${formatCount(c)} rows`);
    this.tooltip.append(title, line);
    if (b !== null && b !== undefined && c !== null) {
      this.tooltip.append(htmlEl('div', { class: 'muted' }, `of ${formatCount(b)} unfiltered (${formatShare(c, b)})`));
    }
    this.tooltip.hidden = false;
    const tw = this.tooltip.offsetWidth;
    let x;
    let y;
    if (this.categorical) {
      x = Math.min(this.width - tw, CAT_LABEL + 8);
      y = (i + 1) * CAT_ROW + 2;
    } else {
      const bw = this.binWidth();
      x = NUM_PAD.left + (i + 0.5) * bw - tw / 2;
      x = Math.max(0, Math.min(this.width - tw, x));
      y = -this.tooltip.offsetHeight - 4;
      this.hoverRect.setAttribute('x', NUM_PAD.left + i * bw);
      this.hoverRect.setAttribute('width', bw);
      this.hoverRect.setAttribute('y', 0);
      this.hoverRect.setAttribute('height', this.numHeight - NUM_PAD.bottom);
      this.hoverRect.setAttribute('visibility', 'visible');
    }
    this.tooltip.style.transform = `translate(${x}px, ${y}px)`;
  }

  hideTip() {
    this.tooltip.hidden = true;
    if (this.hoverRect) this.hoverRect.setAttribute('visibility', 'hidden');
  }
}
