#!/usr/bin/env node
// Real-browser test of the Quiver dashboard: Debian chromium driven by
// playwright-core, against a real dashboard (`quiver-dashboard demo`, or the
// in-process stack of tests/tests/browser.rs).
//
//   node tests/browser/run.mjs --url http://127.0.0.1:8050 --token TOKEN --out target/browser
//        [--chromium /usr/bin/chromium] [--timeout-ms 30000] [--headed]
//
// Steps (a screenshot of each lands in --out): login redirect, sign in, map
// image and histograms render, brush the `created` histogram (count changes),
// zoom in (new image), toggle a category, the URL hash follows the state, the
// same hash in a fresh page restores the same count, log out. Any failure or
// any console error in the page exits non-zero with a message naming the step.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

async function loadChromium() {
  try {
    return (await import('playwright-core')).chromium;
  } catch (e) {
    throw new Error(`playwright-core is not installed (${e.code || e.message}): run \`npm ci --prefix ${here}\``);
  }
}

function parseArgs(argv) {
  const o = { url: null, token: null, out: 'target/browser', chromium: '/usr/bin/chromium', timeout: 30000, headed: false, brushDim: 'created' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (argv[i + 1] === undefined) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--url') o.url = v();
    else if (a === '--token') o.token = v();
    else if (a === '--out') o.out = v();
    else if (a === '--chromium') o.chromium = v();
    else if (a === '--timeout-ms') o.timeout = Number(v());
    else if (a === '--brush') o.brushDim = v();
    else if (a === '--headed') o.headed = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: node tests/browser/run.mjs --url URL --token TOKEN [--out DIR] [--chromium PATH] [--timeout-ms N] [--brush DIM]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!o.url) throw new Error('--url is required (e.g. http://127.0.0.1:8050)');
  let u;
  try {
    u = new URL(o.url);
  } catch {
    throw new Error(`--url ${o.url} is not a URL`);
  }
  // A login URL as printed by `quiver-dashboard demo` may carry the token
  // (`?token=` or `#token=`): use it when --token is not given.
  const inUrl = u.searchParams.get('token') || new URLSearchParams(u.hash.replace(/^#/, '')).get('token');
  if (!o.token && inUrl) o.token = inUrl;
  o.url = u.origin;
  if (!o.token) o.token = process.env.QUIVER_DASHBOARD_TOKEN || null;
  if (!o.token) throw new Error('--token is required (or QUIVER_DASHBOARD_TOKEN)');
  if (!(o.timeout > 0)) throw new Error('--timeout-ms must be a positive number');
  return o;
}

class StepError extends Error {}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(opts.chromium)) {
    throw new Error(`no chromium at ${opts.chromium}: install it (apt-get install chromium) or pass --chromium PATH`);
  }
  const chromium = await loadChromium();
  const out = resolve(opts.out);
  mkdirSync(out, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'quiver-browser-'));
  const consoleErrors = [];
  let step = 'launch chromium';
  let shot = 0;
  let context;
  let page;

  const log = (msg) => console.log(`[browser] ${msg}`);
  const screenshot = async (name) => {
    shot++;
    const file = join(out, `${String(shot).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    log(`  screenshot ${file}`);
  };
  const fail = (msg) => {
    throw new StepError(msg);
  };
  const watch = (p) => {
    p.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${p.url()}: ${m.text()}`);
    });
    p.on('pageerror', (e) => consoleErrors.push(`${p.url()}: uncaught ${e.message}`));
  };
  const checkConsole = () => {
    if (consoleErrors.length) fail(`the page logged console errors:\n  ${consoleErrors.join('\n  ')}`);
  };

  /** Waits until the app has no query pending or in flight. */
  const settle = async (p = page) => {
    await p.waitForFunction(() => document.body.dataset.busy === 'false', null, { timeout: opts.timeout });
  };
  const selectedCount = async (p = page) => {
    const v = await p.getAttribute('[data-testid="selected-count"]', 'data-value');
    if (v === null || !/^\d+$/.test(v)) fail(`the selected count is not shown (data-value=${v})`);
    return Number(v);
  };
  const appError = async (p = page) => {
    const banner = p.locator('[data-testid="error-banner"]');
    return (await banner.isVisible()) ? (await banner.textContent()).trim() : null;
  };
  const expectNoAppError = async (p = page) => {
    const e = await appError(p);
    if (e) fail(`the app shows an error: ${e}`);
  };

  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      headless: !opts.headed,
      args: [
        '--no-sandbox',
        ...(opts.headed ? [] : ['--headless']),
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
      viewport: { width: 1440, height: 900 },
      timeout: opts.timeout,
    });
    context.setDefaultTimeout(opts.timeout);
    page = context.pages()[0] || (await context.newPage());
    watch(page);

    step = 'open the dashboard and be sent to the login page';
    log(step);
    await page.goto(`${opts.url}/`);
    if (new URL(page.url()).pathname !== '/login') fail(`expected to land on /login, got ${page.url()}`);
    await page.waitForSelector('input[name="token"]');
    // Password managers file the token under a username: the form has a hidden one.
    const username = page.locator('form input[autocomplete="username"]');
    if ((await username.count()) !== 1 || (await username.isVisible())) fail('the login form lacks a hidden username field for password managers');
    await screenshot('login');

    step = 'log in with the token';
    log(step);
    await page.fill('input[name="token"]', opts.token);
    await Promise.all([
      page.waitForURL((u) => new URL(u).pathname === '/' || new URL(u).searchParams.has('error')),
      page.click('[data-testid="login-submit"]'),
    ]);
    const landed = new URL(page.url());
    if (landed.pathname !== '/') {
      const shown = await page.locator('[data-testid="login-error"]').textContent();
      fail(`the login was refused (${landed.pathname}${landed.search}); the page says: ${shown.trim()}`);
    }

    step = 'see the map image and the histograms';
    log(step);
    await page.waitForFunction(
      () => {
        const img = document.querySelector('[data-testid="map-image"]');
        return img && (img.getAttribute('src') || '').startsWith('data:image/png') && img.naturalWidth > 0;
      },
      null,
      { timeout: opts.timeout },
    );
    await settle();
    await expectNoAppError();
    const charts = await page.$$eval('[data-testid^="hist-"][data-dimension]', (els) =>
      els.map((e) => ({ name: e.dataset.dimension, kind: e.dataset.kind, bars: e.querySelectorAll('[data-testid="bar"]').length, nonzero: [...e.querySelectorAll('[data-testid="bar"]')].filter((b) => Number(b.getAttribute('data-count')) > 0).length })),
    );
    if (!charts.length) fail('no histograms were rendered');
    const empty = charts.filter((c) => c.bars === 0 || c.nonzero === 0);
    if (empty.length) fail(`histograms without data: ${empty.map((c) => c.name).join(', ')}`);
    log(`  histograms: ${charts.map((c) => `${c.name} (${c.kind}, ${c.bars} bins)`).join(', ')}`);
    const initial = await selectedCount();
    const total = Number(await page.getAttribute('[data-testid="total-count"]', 'data-value'));
    log(`  selected ${initial} of ${total}`);
    if (!(initial > 0)) fail(`expected rows selected at the start, got ${initial}`);
    const initialHash = await page.evaluate(() => window.location.hash);
    await screenshot('loaded');

    step = 'numeric histograms have y axes with ticks and gridlines, linear and log';
    log(step);
    /** Each numeric chart's y axis as drawn: scale, ticks and where they and the bars sit. */
    const yAxes = () =>
      page.$$eval('[data-testid^="hist-"][data-kind]:not([data-kind="categorical"])', (els) =>
        els.map((e) => {
          const axis = e.querySelector('[data-testid="y-axis"]');
          const bottom = Math.max(...[...e.querySelectorAll('[data-testid="bar"]')].map((b) => Number(b.getAttribute('y')) + Number(b.getAttribute('height'))));
          return {
            name: e.dataset.dimension,
            scale: axis && axis.dataset.scale,
            max: axis && Number(axis.dataset.max),
            grid: axis ? axis.querySelectorAll('.grid-line').length : 0,
            ticks: axis ? [...axis.querySelectorAll('[data-testid="y-tick"]')].map((t) => ({ value: Number(t.dataset.value), text: t.textContent, y: Number(t.getAttribute('y')) - 3.5 })) : [],
            bars: [...e.querySelectorAll('[data-testid="bar"]')].map((b) => ({ count: Number(b.dataset.count), h: Number(b.getAttribute('height')) })),
            bottom,
          };
        }),
      );
    const fraction = (v, max, log) => (!v ? 0 : log ? Math.log10(1 + v) / Math.log10(1 + max) : v / max);
    const checkAxis = (a, scale) => {
      if (a.scale !== scale) fail(`${a.name}: the y axis is ${a.scale}, expected ${scale}`);
      if (a.ticks.length < 3) fail(`${a.name}: ${a.ticks.length} y ticks (${a.ticks.map((t) => t.text).join(', ')}), expected at least 3`);
      if (a.grid < a.ticks.length - 1) fail(`${a.name}: ${a.grid} gridlines for ${a.ticks.length} ticks`);
      if (a.ticks[0].value !== 0) fail(`${a.name}: the y axis does not start at 0`);
      const top = a.ticks[a.ticks.length - 1].value;
      if (!(top <= a.max && top * 10 >= a.max)) fail(`${a.name}: top tick ${top} for counts up to ${a.max}`);
      // The plot's height: the tallest bar is `max` high when it is the maximum.
      const tallest = a.bars.reduce((m, b) => (b.count > m.count ? b : m), a.bars[0]);
      const ph = tallest.h / fraction(tallest.count, a.max, scale === 'log');
      for (const t of a.ticks) {
        const want = a.bottom - fraction(t.value, a.max, scale === 'log') * ph;
        if (Math.abs(t.y - want) > 1.5) fail(`${a.name}: tick ${t.text} drawn at y ${t.y}, a bar of ${t.value} rows reaches ${want.toFixed(1)}`);
        if (scale === 'log' && t.value > 0 && !/^[125]0*$/.test(String(t.value))) fail(`${a.name}: log tick ${t.value} is not 1, 2 or 5 times a power of ten`);
      }
      for (let i = 1; i < a.ticks.length; i++) {
        if (!(a.ticks[i].value > a.ticks[i - 1].value)) fail(`${a.name}: y ticks out of order: ${a.ticks.map((t) => t.text).join(', ')}`);
      }
    };
    const axesBefore = await yAxes();
    if (!axesBefore.length) fail('no numeric histogram to check');
    for (const a of axesBefore) checkAxis(a, charts.find((c) => c.name === a.name).kind === 'log' ? 'log' : 'linear');
    log(`  ${axesBefore.map((a) => `${a.name} ${a.scale}: ${a.ticks.map((t) => t.text).join(' ')}`).join('; ')}`);
    // Switch one chart's scale with its "log" button, and back.
    const flip = axesBefore[0];
    const flipped = flip.scale === 'log' ? 'linear' : 'log';
    await page.click(`[data-testid="hist-${flip.name}"] [data-testid="hist-log"]`);
    await page.waitForFunction(
      ([n, s]) => document.querySelector(`[data-testid="hist-${n}"] [data-testid="y-axis"]`).dataset.scale === s,
      [flip.name, flipped],
    );
    const flippedAxis = (await yAxes()).find((a) => a.name === flip.name);
    checkAxis(flippedAxis, flipped);
    log(`  ${flip.name} switched to ${flipped}: ${flippedAxis.ticks.map((t) => t.text).join(' ')}`);
    await page.locator('aside.side').screenshot({ path: join(out, 'y-axes.png') });
    await screenshot('y-axes');
    await page.click(`[data-testid="hist-${flip.name}"] [data-testid="hist-log"]`);
    await page.waitForFunction(
      ([n, s]) => document.querySelector(`[data-testid="hist-${n}"] [data-testid="y-axis"]`).dataset.scale === s,
      [flip.name, flip.scale],
    );

    step = `brush the ${opts.brushDim} histogram`;
    log(step);
    const brushChart = charts.find((c) => c.name === opts.brushDim);
    if (!brushChart) fail(`no histogram for dimension ${opts.brushDim}; have ${charts.map((c) => c.name).join(', ')}`);
    if (brushChart.kind === 'categorical') fail(`${opts.brushDim} is categorical and cannot be brushed`);
    const area = page.locator(`[data-testid="hist-${opts.brushDim}"] [data-testid="brush-area"]`);
    await area.scrollIntoViewIfNeeded();
    const box = await area.boundingBox();
    if (!box) fail('the brush area has no size');
    const y = box.y + box.height * 0.6;
    const historyLength = () => page.evaluate(() => window.history.length);
    const entriesBeforeBrush = await historyLength();
    await page.mouse.move(box.x + box.width * 0.55, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, y, { steps: 4 });
    // Live brushing: before the button is released, the counter and the other
    // views already follow the range under the brush; the URL does not (yet).
    const liveCount = () => page.evaluate(() => Number(document.body.dataset.liveUpdates || 0));
    await page.waitForFunction(() => Number(document.body.dataset.liveUpdates || 0) >= 1, null, { timeout: opts.timeout });
    const during = await selectedCount();
    const liveFirst = await liveCount();
    log(`  while dragging: ${liveFirst} live update(s), selected ${initial} → ${during}`);
    if (during === initial) fail(`dragging a brush over ${opts.brushDim} did not update the selected count before release`);
    const dragHash = await page.evaluate(() => decodeURIComponent(window.location.hash));
    if (dragHash.includes(`"${opts.brushDim}"`)) fail(`the URL took the ${opts.brushDim} range before the brush was released`);
    await screenshot('brushing-live');
    await page.mouse.move(box.x + box.width * 0.92, y, { steps: 4 });
    await page.waitForFunction((n) => Number(document.body.dataset.liveUpdates || 0) > n, liveFirst, { timeout: opts.timeout });
    log(`  after moving on: ${await liveCount()} live updates`);
    await page.mouse.up();
    await settle();
    await expectNoAppError();
    const brushed = await selectedCount();
    log(`  selected ${initial} → ${brushed}`);
    if (brushed === initial) fail(`brushing ${opts.brushDim} did not change the selected count (${initial})`);
    if (brushed > initial) fail(`brushing ${opts.brushDim} raised the selected count from ${initial} to ${brushed}`);
    const brushHash = await page.evaluate(() => decodeURIComponent(window.location.hash));
    if (!brushHash.includes(`"${opts.brushDim}"`)) fail(`the URL hash does not hold the ${opts.brushDim} filter: ${brushHash}`);
    const brushEntries = (await historyLength()) - entriesBeforeBrush;
    if (brushEntries !== 1) fail(`a brush drag with live updates added ${brushEntries} history entries, expected 1`);
    await screenshot('brushed');

    step = 'zoom the map in';
    log(step);
    const srcBefore = await page.getAttribute('[data-testid="map-image"]', 'src');
    const hashBeforeZoom = await page.evaluate(() => window.location.hash);
    await page.click('[data-testid="zoom-in"]');
    await page.waitForFunction((before) => document.querySelector('[data-testid="map-image"]').getAttribute('src') !== before, srcBefore, {
      timeout: opts.timeout,
    });
    await settle();
    await expectNoAppError();
    const zoomed = await selectedCount();
    log(`  new image; selected ${zoomed}`);
    await page.waitForFunction((h) => window.location.hash !== h, hashBeforeZoom, { timeout: opts.timeout }).catch(() => fail('the URL hash did not change after zooming'));
    // The animation's frames write the URL once, after the last one: one entry for the zoom.
    const zoomEntries = (await historyLength()) - entriesBeforeBrush - 1;
    if (zoomEntries !== 1) fail(`one zoom added ${zoomEntries} history entries, expected 1`);
    const hashAfterZoom = await page.evaluate(() => window.location.hash);
    await screenshot('zoomed');

    step = 'toggle a category';
    log(step);
    const catChart = charts.find((c) => c.kind === 'categorical');
    if (!catChart) fail('no categorical histogram to click');
    const bars = page.locator(`[data-testid="hist-${catChart.name}"] [data-testid="bar"]`);
    const counts = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));
    // The biggest category that is not everything, so the count must drop.
    const order = counts.map((c, i) => [c, i]).filter(([c]) => c > 0 && c < zoomed).sort((a, b) => b[0] - a[0]);
    if (!order.length) fail(`no category of ${catChart.name} has rows to select (counts ${counts.join(', ')})`);
    const [expected, index] = order[0];
    const label = await bars.nth(index).getAttribute('data-label');
    await bars.nth(index).click();
    await settle();
    await expectNoAppError();
    const pressed = await bars.nth(index).getAttribute('aria-pressed');
    if (pressed !== 'true') fail(`category ${label} is not shown as selected after clicking it`);
    const categoryCount = await selectedCount();
    log(`  ${catChart.name} = ${label}: selected ${zoomed} → ${categoryCount}`);
    if (categoryCount !== expected) fail(`selecting ${label} should select the ${expected} rows its bar showed, got ${categoryCount}`);
    await screenshot('category');

    step = 'Back and Forward walk the analysis';
    log(step);
    const hashWithCategory = await page.evaluate(() => window.location.hash);
    /** Goes back or forward one entry and waits for the app to show it. */
    const walk = async (dir, wantHash, wantCount, what) => {
      await page.evaluate((d) => (d < 0 ? window.history.back() : window.history.forward()), dir);
      await page.waitForFunction((h) => window.location.hash === h, wantHash).catch(async () =>
        fail(`${dir < 0 ? 'Back' : 'Forward'} should show ${what}; the URL is ${decodeURIComponent(await page.evaluate(() => window.location.hash))}`),
      );
      await settle();
      await expectNoAppError();
      const n = await selectedCount();
      if (n !== wantCount) fail(`${dir < 0 ? 'Back' : 'Forward'} to ${what}: ${n} rows selected, expected ${wantCount}`);
      log(`  ${dir < 0 ? 'Back' : 'Forward'}: ${what}, selected ${n}`);
    };
    await walk(-1, hashAfterZoom, zoomed, 'the zoomed view without the category');
    if ((await bars.nth(index).getAttribute('aria-pressed')) === 'true') fail(`Back left ${label} selected`);
    await walk(-1, hashBeforeZoom, brushed, 'the brushed view before the zoom');
    await screenshot('history-back');
    await walk(1, hashAfterZoom, zoomed, 'the zoom again');
    await walk(1, hashWithCategory, categoryCount, 'the category again');
    if ((await bars.nth(index).getAttribute('aria-pressed')) !== 'true') fail(`Forward did not select ${label} again`);

    step = 'the URL hash holds the view';
    log(step);
    const hash = await page.evaluate(() => window.location.hash);
    if (!hash || hash === initialHash) fail(`the URL hash did not change (${hash})`);
    const decoded = decodeURIComponent(hash);
    for (const needle of [`"${opts.brushDim}"`, `"${catChart.name}"`, label, 'map=']) {
      if (!decoded.includes(needle)) fail(`the URL hash misses ${needle}: ${decoded}`);
    }
    log(`  ${decoded}`);

    step = 'open the same hash in a new page and get the same count';
    log(step);
    const page2 = await context.newPage();
    watch(page2);
    await page2.goto(`${opts.url}/${hash}`);
    await page2.waitForFunction(() => document.body.dataset.appliedSeq !== undefined, null, { timeout: opts.timeout });
    await settle(page2);
    await expectNoAppError(page2);
    const restored = await selectedCount(page2);
    const restoredHash = await page2.evaluate(() => window.location.hash);
    log(`  restored selected ${restored}`);
    if (restored !== categoryCount) fail(`the link restored ${restored} selected rows, expected ${categoryCount}`);
    if (restoredHash !== hash) fail(`the restored page rewrote the hash:\n  was ${hash}\n  now ${restoredHash}`);
    const restoredPressed = await page2.getAttribute(`[data-testid="hist-${catChart.name}"] [data-testid="bar"][data-label="${label}"]`, 'aria-pressed');
    if (restoredPressed !== 'true') fail(`the restored page does not show ${label} selected`);
    const swap = page;
    page = page2;
    await screenshot('restored');

    step = 'reload the page keeps the view, and a tooltip shown while loading fills in';
    log(step);
    // Hold the queries until the pointer rests on a chart, so its tooltip opens before the numbers.
    let release;
    const held = new Promise((r) => {
      release = r;
    });
    await page2.route('**/api/query', async (route) => {
      await held;
      await route.continue();
    });
    await page2.reload();
    const firstRow = page2.locator(`[data-testid="hist-${catChart.name}"] [data-testid="bar"]`).first();
    await firstRow.hover();
    const tip = page2.locator(`[data-testid="hist-${catChart.name}"] [data-testid="hist-tooltip"]`);
    await tip.waitFor({ state: 'visible' });
    const tipBefore = (await tip.textContent()).trim();
    release();
    await page2.waitForFunction(() => document.body.dataset.appliedSeq !== undefined, null, { timeout: opts.timeout });
    await settle(page2);
    await page2.unroute('**/api/query');
    await page2
      .waitForFunction((n) => /\d rows/.test(document.querySelector(`[data-testid="hist-${n}"] [data-testid="hist-tooltip"]`).textContent), catChart.name)
      .catch(async () => fail(`a tooltip opened while loading ("${tipBefore}") still says "${(await tip.textContent()).trim()}" after the data came`));
    log(`  tooltip: "${tipBefore}" → "${(await tip.textContent()).trim()}"`);
    const reloaded = await selectedCount(page2);
    if (reloaded !== categoryCount) fail(`after a reload the page shows ${reloaded} selected rows, expected ${categoryCount}`);
    await page2.close();
    page = swap;

    step = 'shift-click adds a category without selecting page text';
    log(step);
    {
      const other = counts.map((c, i) => [c, i]).find(([c, i]) => i !== index && c > 0);
      if (!other) fail(`${catChart.name} has no second category with rows`);
      await bars.nth(other[1]).click({ modifiers: ['Shift'] });
      await settle();
      const both = await bars.evaluateAll((els) => els.filter((e) => e.getAttribute('aria-pressed') === 'true').length);
      if (both !== 2) fail(`shift-click should select a second category; ${both} are selected`);
      const selectedText = await page.evaluate(() => window.getSelection().toString());
      if (selectedText) fail(`shift-click selected page text: "${selectedText.slice(0, 60)}"`);
      await bars.nth(other[1]).click({ modifiers: ['Shift'] });
      await settle();
      if ((await selectedCount()) !== categoryCount) fail('shift-click again did not remove the second category');
    }

    step = 'a filter that matches nothing says so, and offers to clear';
    log(step);
    // A numeric bar with no rows under the other filters: selecting it alone matches nothing.
    const zeroBar = await page.$$eval('[data-testid^="hist-"][data-kind]:not([data-kind="categorical"])', (els) => {
      for (const e of els) {
        const bars = [...e.querySelectorAll('[data-testid="bar"]')];
        const i = bars.findIndex((b) => Number(b.dataset.count) === 0);
        if (i >= 0) return { name: e.dataset.dimension, x: Number(bars[i].getAttribute('x')) + Number(bars[i].getAttribute('width')) / 2 };
      }
      return null;
    });
    if (!zeroBar) fail('no numeric bin is empty under the current filters, so the test cannot pick a filter that matches nothing');
    const zsvg = await page.locator(`[data-testid="hist-${zeroBar.name}"] svg.hist-svg`).boundingBox();
    await page.mouse.click(zsvg.x + zeroBar.x, zsvg.y + zsvg.height / 2);
    await settle();
    await expectNoAppError();
    const none = await selectedCount();
    if (none !== 0) fail(`selecting an empty bin of ${zeroBar.name} left ${none} rows selected`);
    await page.locator('[data-testid="empty-state"]').waitFor({ state: 'visible' });
    const emptyTitle = (await page.textContent('[data-testid="empty-title"]')).trim();
    if (!/no rows match/i.test(emptyTitle)) fail(`the map says "${emptyTitle}" for a filter that matches nothing`);
    if (!(await page.locator('[data-testid="counter-clear"]').isVisible())) fail('the counter offers no way to clear the filters when nothing matches');
    log(`  ${zeroBar.name} empty bin: selected 0, the map says "${emptyTitle}"`);
    await screenshot('empty-result');
    await page.click('[data-testid="empty-clear"]');
    await settle();
    const cleared = await selectedCount();
    if (!(cleared > 0)) fail(`clearing the filters from the empty state left ${cleared} rows selected`);
    if (await page.locator('[data-testid="empty-state"]').isVisible()) fail('the empty state stays after clearing the filters');
    if (/[#&]f=/.test(decodeURIComponent(await page.evaluate(() => window.location.hash)))) fail('the URL keeps filters after clearing them');
    log(`  cleared: selected ${cleared}`);

    step = 'a map view without rows says so, and offers the whole world';
    log(step);
    await page.evaluate(() => {
      window.location.hash = window.location.hash.replace(/map=[^&]*/, 'map=7/-40/-130');
    });
    await page.waitForFunction(() => window.location.hash.includes('map=7/-40/-130'));
    await settle();
    await page.locator('[data-testid="empty-state"]').waitFor({ state: 'visible' });
    const viewTitle = (await page.textContent('[data-testid="empty-title"]')).trim();
    if (!/no rows in this part of the map/i.test(viewTitle)) fail(`an empty map view says "${viewTitle}"`);
    await screenshot('empty-view');
    await page.click('[data-testid="empty-world"]');
    await settle();
    if (!((await selectedCount()) > 0)) fail('"Show the whole world" did not bring rows back');

    step = "a point tooltip shows the row's exact values under their titles";
    log(step);
    {
      // Few enough rows to draw them one by one: the smallest category, then a year of it.
      const catCounts = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));
      const smallest = catCounts.map((c, i) => [c, i]).filter(([c]) => c > 0).sort((a, b) => a[0] - b[0])[0];
      await bars.nth(smallest[1]).click();
      await settle();
      const numeric = charts.find((c) => c.kind !== 'categorical');
      const pick = await page.$$eval(`[data-testid="hist-${numeric.name}"] [data-testid="bar"]`, (els) => {
        const i = els.findIndex((b) => Number(b.dataset.count) > 0 && Number(b.dataset.count) <= 3000);
        return i < 0 ? null : { x: Number(els[i].getAttribute('x')) + Number(els[i].getAttribute('width')) / 2 };
      });
      if (!pick) fail(`no ${numeric.name} bin holds between 1 and 3000 rows of the smallest category`);
      const nbox = await page.locator(`[data-testid="hist-${numeric.name}"] svg.hist-svg`).boundingBox();
      await page.mouse.click(nbox.x + pick.x, nbox.y + nbox.height / 2);
      await settle();
      await page.waitForFunction(() => document.querySelector('#map').dataset.mode === 'points').catch(() => fail('the map did not switch to drawing points'));
      // The lit pixel of the points layer nearest the map's centre (clear of the overlays).
      const spot = await page.evaluate(() => {
        const c = document.querySelector('[data-testid="map-points"]');
        const g = c.getContext('2d');
        const { data } = g.getImageData(0, 0, c.width, c.height);
        const scale = c.width / c.clientWidth;
        let best = null;
        for (let y = 0; y < c.height; y += 2) {
          for (let x = 0; x < c.width; x += 2) {
            if (data[(y * c.width + x) * 4 + 3] < 200) continue;
            const d = (x - c.width / 2) ** 2 + (y - c.height / 2) ** 2;
            if (!best || d < best.d) best = { x, y, d };
          }
        }
        if (!best) return null;
        const r = c.getBoundingClientRect();
        return { x: r.left + best.x / scale, y: r.top + best.y / scale };
      });
      if (!spot) fail('the points layer is empty');
      await page.mouse.move(spot.x, spot.y);
      const tipEl = page.locator('[data-testid="point-tooltip"]');
      await tipEl.waitFor({ state: 'visible' });
      const names = await tipEl.locator('dt').allTextContents();
      const texts = await tipEl.locator('dd').allTextContents();
      // The row's exact values (the workers' detail columns) under their titles, not bin labels.
      const wanted = ['Position', 'Radio', 'MCC', 'MNC', 'Signal range', 'Created'];
      if (JSON.stringify(names) !== JSON.stringify(wanted)) fail(`the point tooltip lists ${names.join(', ')}; expected ${wanted.join(', ')}`);
      const value = (t) => texts[names.indexOf(t)];
      if (!/^\d[\d,]* m$/.test(value('Signal range'))) fail(`the tooltip's range is ${value('Signal range')}, not an exact number of metres`);
      if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(value('Created'))) fail(`the tooltip's creation time is ${value('Created')}`);
      if (!/^\d+$/.test(value('MCC')) || !/^\d+$/.test(value('MNC'))) fail(`the tooltip's MCC/MNC are ${value('MCC')}/${value('MNC')}`);
      log(`  tooltip: ${names.map((n, i) => `${n}: ${texts[i]}`).join('; ')}`);
      await screenshot('point-tooltip');
      await page.click('[data-testid="reset-all"]');
      await settle();
    }

    step = 'export downloads the counted rows as CSV; copy as Python gives a pyarrow.flight program';
    log(step);
    {
      // The smallest category, whole map: a few thousand rows.
      const catCounts = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count'))));
      const smallest = catCounts.map((c, i) => [c, i]).filter(([c]) => c > 0).sort((a, b) => a[0] - b[0])[0];
      await bars.nth(smallest[1]).click();
      await settle();
      const counted = await selectedCount();
      if (!(counted > 0)) fail('the export step selected no rows');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export-csv"]')]);
      const file = join(out, 'export.csv');
      await download.saveAs(file);
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
      const header = lines[0];
      log(`  export: ${download.suggestedFilename()}, ${lines.length - 1} rows (counter ${counted}); header ${header}`);
      if (lines.length - 1 !== counted) fail(`the CSV export holds ${lines.length - 1} rows; the counter says ${counted}`);
      if (!header.startsWith('lon,lat,radio,') || !header.includes('range') || !header.includes('mcc')) fail(`the CSV header is ${header}`);
      await page.locator('[data-testid="export-message"]').waitFor({ state: 'visible' });
      await screenshot('export');
      await page.click('[data-testid="copy-python"]');
      await page.waitForFunction(() => (document.querySelector('[data-testid="copy-python"]').dataset.snippet || '').length > 0);
      const snippet = await page.getAttribute('[data-testid="copy-python"]', 'data-snippet');
      if (!snippet.includes('import pyarrow.flight') || !snippet.includes('\\"type\\":\\"rows\\"') || !snippet.includes('WORKERS = ["grpc+tcp://')) {
        fail(`the Python snippet is not a pyarrow.flight program of a rows ticket:\n${snippet}`);
      }
      log(`  copy as Python: ${snippet.split('\n').length} lines, ${await page.textContent('[data-testid="export-message"]')}`);
      await page.click('[data-testid="reset-all"]');
      await settle();
    }

    step = 'switching dataset shows where its rows are';
    log(step);
    {
      const other = (await (await context.request.get(`${opts.url}/api/datasets`)).json()).datasets.find((d) => d.name !== 'celltowers');
      if (!other) fail('the demo serves a single dataset; switching needs two');
      // Far out at sea, where no rows of either dataset lie.
      await page.evaluate(() => {
        window.location.hash = window.location.hash.replace(/map=[^&]*/, 'map=8/-45/-120');
      });
      await page.waitForFunction(() => window.location.hash.includes('map=8/-45/-120'));
      await settle();
      if ((await selectedCount()) !== 0) fail('the test expected no rows at 45°S 120°W');
      const seaHash = await page.evaluate(() => window.location.hash);
      await page.selectOption('[data-testid="dataset-select"]', other.name);
      await page.waitForFunction((n) => window.location.hash.includes(`dataset=${n}`), other.name);
      await settle();
      await expectNoAppError();
      const shown = await selectedCount();
      const all = Number(await page.getAttribute('[data-testid="total-count"]', 'data-value'));
      const fitted = await page.evaluate(() => new URLSearchParams(window.location.hash.slice(1)).get('map'));
      log(`  ${other.name}: map ${fitted}, selected ${shown} of ${all} in view`);
      if (await page.locator('[data-testid="viewport-filter"]').isChecked().then((c) => !c)) fail('the viewport filter was expected on');
      if (shown !== all) fail(`after switching to ${other.name} the map view holds ${shown} of its ${all} rows; it should fit them all`);
      if (fitted === '8/-45/-120') fail('switching dataset kept the old map view');
      await screenshot('dataset-fitted');
      // Back returns to the other dataset where it was.
      await page.evaluate(() => window.history.back());
      await page.waitForFunction((h) => window.location.hash === h, seaHash);
      await settle();
      if ((await selectedCount()) !== 0) fail('Back after a dataset switch did not return to the view before it');
      // A link with a map view keeps it.
      const p = await context.newPage();
      watch(p);
      await p.goto(`${opts.url}/#dataset=${other.name}&map=6/52/4`);
      await p.waitForFunction(() => document.body.dataset.appliedSeq !== undefined);
      await settle(p);
      const kept = await p.evaluate(() => new URLSearchParams(window.location.hash.slice(1)).get('map'));
      if (kept !== '6/52/4') fail(`a link to ${other.name} at map=6/52/4 opened at ${kept}`);
      await p.close();
      // Back to the world view for what follows.
      await page.click('[data-testid="zoom-reset"]');
      await settle();
    }

    step = 'laptop windows keep the header, the counts, the timings and the charts in view';
    log(step);
    const listing = await (await context.request.get(`${opts.url}/api/datasets`)).json();
    const towers = listing.datasets.find((d) => d.name === 'celltowers') || listing.datasets[0];
    const timeDim = towers.dimensions.find((d) => d.kind === 'temporal') || towers.dimensions.find((d) => d.kind !== 'categorical');
    // All rows but the first bin's, over the whole dataset: a share just under 100%.
    const most = { [timeDim.name]: { range: { min: timeDim.bins[1].lo, max: timeDim.bins[timeDim.bins.length - 1].hi } } };
    const mostHash = `#dataset=${towers.name}&vf=0&f=${encodeURIComponent(JSON.stringify(most))}`;
    const swapBack = page;
    for (const [width, height] of [
      [1280, 720],
      [900, 700],
    ]) {
      const p = await context.newPage();
      watch(p);
      page = p;
      await p.setViewportSize({ width, height });
      await p.goto(`${opts.url}/${mostHash}`);
      await p.waitForFunction(() => document.body.dataset.appliedSeq !== undefined);
      await settle(p);
      await expectNoAppError(p);
      const seen = await p.evaluate(() => {
        const box = (sel) => {
          const e = document.querySelector(sel);
          if (!e) return null;
          const r = e.getBoundingClientRect();
          const st = getComputedStyle(e);
          return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, w: r.width, h: r.height, shown: st.display !== 'none' && st.visibility !== 'hidden' && r.width > 0 && r.height > 0, text: e.textContent.trim() };
        };
        const el = document.scrollingElement || document.documentElement;
        return {
          scrolls: el.scrollHeight > window.innerHeight + 1,
          header: box('.topbar'),
          count: box('[data-testid="selected-count"]'),
          share: box('#share'),
          scope: box('[data-testid="scope"]'),
          timings: box('[data-testid="timings"]'),
          map: box('#map'),
          charts: [...document.querySelectorAll('[data-testid^="hist-"][data-dimension]')].map((c) => {
            const r = c.querySelector('svg').getBoundingClientRect();
            return { name: c.dataset.dimension, top: r.top, bottom: r.bottom, left: r.left, right: r.right };
          }),
          total: Number(document.querySelector('[data-testid="total-count"]').dataset.value),
          selected: Number(document.querySelector('[data-testid="selected-count"]').dataset.value),
          vw: window.innerWidth,
          vh: window.innerHeight,
        };
      });
      const where = `at ${width}×${height}`;
      if (seen.scrolls) fail(`${where} the page scrolls (the map and charts should fit the window)`);
      if (!seen.header.shown || seen.header.top !== 0) fail(`${where} the header is not at the top`);
      for (const [what, b] of [
        ['the selected count', seen.count],
        ['the share', seen.share],
        ['the scope label', seen.scope],
        ['the timings', seen.timings],
      ]) {
        if (!b || !b.shown || !b.text) fail(`${where} ${what} is not shown`);
        if (b.right > seen.vw || b.bottom > seen.header.bottom) fail(`${where} ${what} lies outside the header`);
      }
      if (!/^query \d/.test(seen.timings.text)) fail(`${where} the timings read "${seen.timings.text}"`);
      if (seen.map.h < 300 || seen.map.w < 400) fail(`${where} the map is only ${seen.map.w}×${seen.map.h}`);
      const inView = seen.charts.filter((c) => c.top >= 0 && c.bottom <= seen.vh && c.right <= seen.vw);
      if (inView.length < 2 || !inView.some((c) => towers.dimensions.find((d) => d.name === c.name).kind !== 'categorical')) {
        fail(`${where} only ${inView.map((c) => c.name).join(', ') || 'no chart'} fit(s) in the window`);
      }
      if (!(seen.selected < seen.total)) fail(`${where} the filter on ${timeDim.name} should leave some rows out (${seen.selected} of ${seen.total})`);
      const pct = (100 * seen.selected) / seen.total;
      const want = pct > 99.9 ? '>99.9%' : `${pct.toFixed(1).replace(/\.0$/, '')}%`;
      if (seen.share.text !== want) fail(`${where} ${seen.selected} of ${seen.total} rows read "${seen.share.text}", expected "${want}"`);
      log(`  ${where}: ${inView.length} of ${seen.charts.length} charts in view, share ${seen.share.text}, scope "${seen.scope.text}", timings "${seen.timings.text}"`);
      await screenshot(`layout-${width}x${height}`);
      await p.close();
    }

    step = 'in a narrow window the page scrolls under the wheel over the map, the header stays';
    log(step);
    {
      const p = await context.newPage();
      watch(p);
      page = p;
      await p.setViewportSize({ width: 640, height: 800 });
      await p.goto(`${opts.url}/${mostHash}`);
      await p.waitForFunction(() => document.body.dataset.appliedSeq !== undefined);
      await settle(p);
      const mapBox = await p.locator('#map').boundingBox();
      const zoomOf = () => p.evaluate(() => new URLSearchParams(window.location.hash.slice(1)).get('map'));
      const before = await zoomOf();
      await p.mouse.move(mapBox.x + mapBox.width / 2, mapBox.y + mapBox.height / 2);
      await p.mouse.wheel(0, 400);
      await p.waitForFunction(() => window.scrollY > 0).catch(() => fail('a wheel over the map did not scroll the page'));
      await p.locator('[data-testid="wheel-hint"]').waitFor({ state: 'visible' });
      await settle(p);
      if ((await zoomOf()) !== before) fail('a plain wheel over the map zoomed it while the page scrolls');
      const headerTop = await p.evaluate(() => document.querySelector('.topbar').getBoundingClientRect().top);
      if (headerTop !== 0) fail(`the header scrolled away (top ${headerTop})`);
      await screenshot('layout-narrow-scrolled');
      // Ctrl + wheel still zooms the map.
      const box2 = await p.locator('#map').boundingBox();
      await p.mouse.move(box2.x + box2.width / 2, Math.max(box2.y, 0) + 120);
      await p.keyboard.down('Control');
      await p.mouse.wheel(0, -300);
      await p.keyboard.up('Control');
      await p.waitForFunction((b) => new URLSearchParams(window.location.hash.slice(1)).get('map') !== b, before).catch(() => fail('Ctrl + wheel did not zoom the map'));
      await settle(p);
      await p.close();
    }

    step = 'the AIS charts fit a 1440×900 window';
    log(step);
    const ais = listing.datasets.find((d) => d.name === 'ais');
    if (ais) {
      const p = await context.newPage();
      watch(p);
      page = p;
      await p.goto(`${opts.url}/#dataset=ais`);
      await p.waitForFunction(() => document.body.dataset.appliedSeq !== undefined);
      await settle(p);
      const cut = await p.evaluate(() =>
        [...document.querySelectorAll('[data-testid^="hist-"][data-dimension]')]
          .filter((c) => c.getBoundingClientRect().bottom > window.innerHeight)
          .map((c) => c.dataset.dimension),
      );
      if (cut.length) fail(`at 1440×900 the AIS charts ${cut.join(', ')} are cut off`);
      await screenshot('layout-ais-1440x900');
      await p.close();
    }
    page = swapBack;

    step = 'a tile layer that cannot be reached falls back to the offline map';
    log(step);
    for (const [tileUrl, want] of [
      ['http://tiles.invalid/{z}/{x}/{y}.png', 'offline'],
      ['/test-tiles/{z}/{x}/{y}.png', 'tiles'],
    ]) {
      const p = await context.newPage();
      watch(p);
      page = p;
      await p.route('**/api/config', (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify({ tileUrl }) }));
      // A reachable tile server: every tile is one dark pixel.
      await p.route('**/test-tiles/**', (route) =>
        route.fulfill({ contentType: 'image/png', body: Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64') }),
      );
      // The unreachable host's failed (or, under the server's CSP, blocked) requests are expected here, not page errors.
      const before = consoleErrors.length;
      await p.goto(`${opts.url}/#dataset=celltowers`);
      await p.waitForFunction(() => document.body.dataset.appliedSeq !== undefined);
      await settle(p);
      await p
        .waitForFunction((w) => document.querySelector('#map').dataset.basemap === w, want)
        .catch(async () => fail(`tiles at ${tileUrl}: the map's basemap is "${await p.evaluate(() => document.querySelector('#map').dataset.basemap)}", expected "${want}"`));
      const attribution = (await p.textContent('#attribution')).trim();
      if (want === 'offline' && !/offline/.test(attribution)) fail(`the attribution does not say the tiles were unreachable: "${attribution}"`);
      if (want === 'tiles' && !/Tiles:/.test(attribution)) fail(`the attribution does not name the tiles: "${attribution}"`);
      consoleErrors.splice(before, consoleErrors.length - before, ...consoleErrors.slice(before).filter((e) => !/tiles\.invalid|ERR_NAME_NOT_RESOLVED|ERR_CONNECTION_REFUSED/.test(e)));
      log(`  ${tileUrl}: ${want} ("${attribution}")`);
      if (want === 'offline') await screenshot('tiles-unreachable');
      await p.close();
    }
    page = swapBack;

    step = 'zoomed to a city with online tiles unreachable, the detailed offline basemap gives labels and borders to orient by';
    log(step);
    for (const [dataset, city, view] of [
      ['celltowers', 'Paris', '11/48.8566/2.3522'],
      ['ais', 'New York City', '10/40.6/-74.0'],
    ]) {
      const p = await context.newPage();
      watch(p);
      page = p;
      // The default tile layer (OpenStreetMap's) as a server with the default
      // configuration announces it; no request may leave this machine, so any
      // that the server's CSP lets through fails here, as with no internet.
      await p.route('https://tile.openstreetmap.org/**', (route) => route.abort('internetdisconnected'));
      await p.route('**/api/config', async (route) => {
        const res = await route.fetch();
        const cfg = await res.json();
        await route.fulfill({ response: res, json: { ...cfg, tileUrl: 'https://tile.openstreetmap.org/{z}/{x}/{y}.png', tileAttribution: '© OpenStreetMap contributors' } });
      });
      const cfg = await (await context.request.get(`${opts.url}/api/config`)).json();
      if (!cfg.basemap) fail('/api/config names no detailed basemap: the dashboard was built without it (build dashboard/basemap first, as .ci/run does)');
      const before = consoleErrors.length;
      await p.goto(`${opts.url}/#dataset=${dataset}&map=${view}`);
      await p.waitForFunction(() => document.body.dataset.appliedSeq !== undefined);
      await settle(p);
      await p
        .waitForFunction(() => document.querySelector('#map').dataset.basemap === 'offline')
        .catch(() => fail('the unreachable default tiles did not fall back to the offline map'));
      await p
        .waitForFunction(() => document.querySelector('#map').dataset.basemapLevel === 'z6' && Number(document.querySelector('#map').dataset.labels) >= 5)
        .catch(async () => fail(`at ${view} the detailed basemap was not drawn: ${JSON.stringify(await p.evaluate(() => ({ ...document.querySelector('#map').dataset })))}`));
      const seen = await p.evaluate(() => ({ ...document.querySelector('#map').dataset }));
      const names = seen.labelNames.split('|');
      if (!names.includes(city)) fail(`zoomed to ${city}, the map labels ${names.slice(0, 12).join(', ')} but not ${city}`);
      // Labels and lines are drawn: the basemap canvas holds light label pixels and more than two colours.
      const pixels = await p.evaluate(() => {
        const c = document.querySelector('.map-base');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let light = 0;
        const colours = new Set();
        for (let i = 0; i < d.length; i += 4) {
          // Label text and city dots are the only light pixels (land, sea and lines are dark).
          if (d[i] > 150 && d[i + 1] > 150 && d[i + 2] > 150) light++;
          colours.add((d[i] >> 4) * 256 + (d[i + 1] >> 4) * 16 + (d[i + 2] >> 4));
        }
        return { light, colours: colours.size };
      });
      if (pixels.light < 200 || pixels.colours < 8) fail(`the basemap canvas looks blank at ${city}: ${JSON.stringify(pixels)}`);
      const attribution = (await p.textContent('#attribution')).trim();
      if (!/unreachable/.test(attribution) || !/GeoNames/.test(attribution)) fail(`the attribution reads "${attribution}"`);
      consoleErrors.splice(before, consoleErrors.length - before, ...consoleErrors.slice(before).filter((e) => !/tile\.openstreetmap\.org|ERR_INTERNET_DISCONNECTED|ERR_FAILED/.test(e)));
      log(`  ${city} (${dataset}, map=${view}): ${seen.labels} labels (${names.slice(0, 6).join(', ')}…), ${pixels.light} light pixels; "${attribution}"`);
      await screenshot(`basemap-${city.toLowerCase().replace(/\s+/g, '-')}`);
      await p.close();
    }
    page = swapBack;

    step = 'reloading the data asks first';
    log(step);
    {
      const reloads = [];
      const onRequest = (r) => {
        if (new URL(r.url()).pathname === '/api/reload') reloads.push(r.method());
      };
      page.on('request', onRequest);
      const dialog = page.locator('[data-testid="reload-confirm"]');
      await page.click('[data-testid="reload"]');
      await dialog.waitFor({ state: 'visible' });
      await screenshot('reload-confirm');
      await page.click('[data-testid="reload-cancel"]');
      await dialog.waitFor({ state: 'hidden' });
      if (reloads.length) fail('cancelling the confirmation still reloaded the data');
      await page.click('[data-testid="reload"]');
      await page.click('[data-testid="reload-confirm-button"]');
      await page.locator('[data-testid="reload-banner"]').waitFor({ state: 'visible' });
      if (reloads.length !== 1) fail(`confirming sent ${reloads.length} reload requests, expected 1`);
      page.off('request', onRequest);
    }

    step = 'log out';
    log(step);
    await Promise.all([page.waitForURL((u) => new URL(u).pathname === '/login'), page.click('[data-testid="logout"]')]);
    // The browser context's request client shares the page's cookies.
    const after = (await context.request.get(`${opts.url}/api/datasets`)).status();
    if (after !== 401) fail(`after logging out /api/datasets answered ${after}, expected 401`);
    await screenshot('logged-out');

    step = 'no console errors';
    checkConsole();
    log(`passed; screenshots in ${out}`);
  } catch (e) {
    if (page) await screenshot('failure').catch(() => {});
    const msg = e instanceof StepError ? e.message : e.stack || String(e);
    console.error(`[browser] FAILED at step "${step}": ${msg}`);
    if (consoleErrors.length && !(e instanceof StepError && msg.includes('console errors'))) {
      console.error(`[browser] console errors seen:\n  ${consoleErrors.join('\n  ')}`);
    }
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`[browser] ${e.message}`);
  process.exit(2);
});
