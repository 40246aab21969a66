import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatTick, niceStep, yFraction, yTicks } from '../../../dashboard/static/axis.js';

test('niceStep rounds up to 1, 2, 2.5 or 5 times a power of ten', () => {
  assert.equal(niceStep(0.3), 1);
  assert.equal(niceStep(1), 1);
  assert.equal(niceStep(1.1), 2);
  assert.equal(niceStep(3), 5);
  assert.equal(niceStep(7), 10);
  assert.equal(niceStep(2000), 2000);
  assert.equal(niceStep(2001), 2500);
  assert.equal(niceStep(2.2), 5);
  assert.equal(niceStep(2180), 2500);
});

test('linear ticks start at 0, step evenly and stay within the maximum', () => {
  const t = yTicks(9970, { height: 90, minGap: 18 });
  assert.deepEqual(
    t.map((x) => x.value),
    [0, 2000, 4000, 6000, 8000],
  );
  assert.equal(t[0].y, 0);
  assert.ok(Math.abs(t[2].y - 4000 / 9970) < 1e-12);
  for (let i = 1; i < t.length; i++) assert.ok((t[i].y - t[i - 1].y) * 90 >= 18);
});

test('linear ticks of a tiny maximum are whole counts', () => {
  assert.deepEqual(
    yTicks(3, { height: 90, minGap: 18 }).map((x) => x.value),
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    yTicks(0, { height: 90 }).map((x) => x.value),
    [0, 1],
  );
});

test('log ticks are powers of ten first, with 2x and 5x only where they fit', () => {
  const wide = yTicks(1_000_000, { log: true, height: 90, minGap: 18 }).map((x) => x.value);
  assert.ok(wide.includes(0));
  for (const v of wide.slice(1)) assert.ok(Number.isInteger(Math.log10(v)), `${v} is a power of ten`);
  assert.ok(wide.length >= 4);
  const narrow = yTicks(60, { log: true, height: 90, minGap: 18 }).map((x) => x.value);
  assert.deepEqual(narrow, [0, 2, 10, 50]);
  // Never closer than the gap.
  for (const max of [7, 60, 999, 123456, 4e9]) {
    const t = yTicks(max, { log: true, height: 90, minGap: 18 });
    for (let i = 1; i < t.length; i++) assert.ok((t[i].y - t[i - 1].y) * 90 >= 18 - 1e-9, `max ${max}`);
    assert.ok(t.every((x) => x.value <= max));
  }
});

test('yFraction puts 0 at the bottom and the maximum at the top on both scales', () => {
  assert.equal(yFraction(0, 100, false), 0);
  assert.equal(yFraction(100, 100, false), 1);
  assert.equal(yFraction(0, 100, true), 0);
  assert.equal(yFraction(100, 100, true), 1);
  assert.ok(yFraction(10, 100, true) > yFraction(10, 100, false));
});

test('tick labels are short', () => {
  assert.equal(formatTick(0), '0');
  assert.equal(formatTick(500), '500');
  assert.equal(formatTick(1000), '1k');
  assert.equal(formatTick(1500), '1.5k');
  assert.equal(formatTick(25000), '25k');
  assert.equal(formatTick(2_000_000), '2M');
  assert.equal(formatTick(1_250_000_000), '1.25B');
});
