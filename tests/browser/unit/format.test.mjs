// Number formatting of dashboard/static/format.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCompact, formatCount, formatDetail, formatInstant, formatMs, formatPosition, formatShare, rangeLabel, replicaSummary, rowDetails } from '../../../dashboard/static/format.js';

test('counts', () => {
  assert.equal(formatCount(40000000), '40,000,000');
  assert.equal(formatCount(NaN), '–');
  assert.equal(formatCompact(9999), '9,999');
  assert.equal(formatCompact(12345), '12.3k');
  assert.equal(formatCompact(40000000), '40.0M');
  assert.equal(formatCompact(1234567890), '1.23B');
});

test('times and shares', () => {
  assert.equal(formatMs(2.345), '2.3 ms');
  assert.equal(formatMs(23.4), '23 ms');
  assert.equal(formatMs(12500), '12.5 s');
  assert.equal(formatShare(1, 3), '33.3%');
  assert.equal(formatShare(9_970_959, 10_000_000), '99.7%');
  assert.equal(formatShare(9_999_999, 10_000_000), '>99.9%');
  assert.equal(formatShare(10_000_000, 10_000_000), '100%');
  assert.equal(formatShare(0, 10), '0%');
  assert.equal(formatShare(64, 100), '64%');
  assert.equal(formatShare(1, 30), '3.3%');
  assert.equal(formatShare(1, 100000), '<0.1%');
  assert.equal(formatShare(0, 0), '–');
});

test('range labels join the first and last bins', () => {
  const num = { kind: 'log', bins: [{ label: '1–1.3' }, { label: '1.3–1.8' }, { label: '1.8–2.4' }] };
  assert.equal(rangeLabel(num, 0, 2), '1–2.4');
  assert.equal(rangeLabel(num, 1, 1), '1.3–1.8');
  const time = { kind: 'temporal', bins: [{ label: '2003' }, { label: '2004' }] };
  assert.equal(rangeLabel(time, 0, 1), '2003 – 2004');
});

test('a point tooltip names values by dimension titles, in the dataset order', () => {
  const ds = {
    category: 'radio',
    dimensions: [
      { name: 'radio', title: 'Radio' },
      { name: 'range', title: 'Signal range (m)' },
      { name: 'created', title: 'Year built' },
      { name: 'mcc' },
    ],
  };
  const row = { lon: 2.35, lat: -48.85, category: 'LTE', values: { created: '2015', range: '1k–1.33k', extra: 'x' } };
  assert.deepEqual(rowDetails(ds, row), [
    ['Position', '48.85000° S, 2.35000° E'],
    ['Signal range (m)', '1k–1.33k'],
    ['Year built', '2015'],
    ['extra', 'x'],
  ]);
  assert.equal(formatPosition(-0.5, 51.5), '51.50000° N, 0.50000° W');
});

test('exact values of detail columns', () => {
  assert.equal(formatInstant(1425472496), '2015-03-04 12:34:56 UTC');
  assert.equal(formatDetail({ kind: 'int', unit: 'm' }, 5620), '5,620 m');
  assert.equal(formatDetail({ kind: 'int' }, 366123456), '366123456');
  assert.equal(formatDetail({ kind: 'float', unit: 'kn' }, 12.3), '12.3 kn');
  assert.equal(formatDetail({ kind: 'float', unit: '°' }, 245.5), '245.5°');
  assert.equal(formatDetail({ kind: 'float', unit: 'm' }, 0.125), '0.125 m');
  assert.equal(formatDetail({ kind: 'time' }, 1704067200), '2024-01-01 00:00:00 UTC');
  assert.equal(formatDetail({ kind: 'text' }, 'EVER GIVEN'), 'EVER GIVEN');
  const ds = {
    category: 'radio',
    dimensions: [
      { name: 'radio', title: 'Radio' },
      { name: 'range', title: 'Signal range (m)' },
      { name: 'created', title: 'Year built' },
    ],
  };
  const columns = [
    { column: 'mcc', title: 'MCC', kind: 'int' },
    { column: 'range', title: 'Signal range', unit: 'm', kind: 'int', dimension: 'range' },
    { column: 'created', title: 'Created', kind: 'time', dimension: 'created' },
  ];
  const row = {
    lon: 2.35, lat: 48.85, category: 'LTE',
    values: { range: '5.62k–7.5k', created: '2015' },
    details: { mcc: 208, range: 6120, created: 1425472496 },
  };
  // Exact values replace the bins of the dimensions they cover.
  assert.deepEqual(rowDetails(ds, row, columns), [
    ['Position', '48.85000° N, 2.35000° E'],
    ['MCC', '208'],
    ['Signal range', '6,120 m'],
    ['Created', '2015-03-04 12:34:56 UTC'],
  ]);
  // Without detail columns, the bins as before.
  assert.deepEqual(rowDetails(ds, row).map((e) => e[0]), ['Position', 'Signal range (m)', 'Year built']);
});

test('the status summary names replicas only when a shard has several', () => {
  const rep = (loaded) => ({ loaded });
  assert.equal(replicaSummary(undefined), '');
  assert.equal(replicaSummary([{ shard: 0, replicas: [rep(true)] }, { shard: 1, replicas: [rep(true)] }]), '');
  assert.equal(
    replicaSummary([
      { shard: 0, replicas: [rep(true), rep(true)] },
      { shard: 1, replicas: [rep(false), rep(true)] },
    ]),
    ' × 2 replicas (loaded per shard: 2, 1)',
  );
  assert.equal(replicaSummary([{ shard: 0, replicas: [rep(false), rep(false), rep(false)] }]), ' × 3 replicas (loaded per shard: 0)');
});
