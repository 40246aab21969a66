import assert from 'node:assert/strict';
import { test } from 'node:test';

import { reloadProgress, statusPill } from '../../../dashboard/static/banners.js';

const ds = (state, extra = {}) => ({ name: 'celltowers', state, rows: 1000, ...extra });
let workers = 0;
const worker = (ok, datasets = []) => ({ endpoint: `w${workers++}`, ok, datasets });

test('the status pill is ok when every worker answers with its data loaded', () => {
  const s = { complete: true, consistent: true, workers: [worker(true, [ds('ready')]), worker(true, [ds('ready')])] };
  assert.deepEqual(statusPill(s), { level: 'ok', text: '2/2 workers', answering: 2 });
});

test('the status pill warns about a missing worker, a failed load or mixed data versions', () => {
  const two = [worker(true, [ds('ready')]), worker(false)];
  assert.equal(statusPill({ complete: true, workers: two }).level, 'warn');
  assert.equal(statusPill({ complete: true, workers: [worker(true, [ds('failed')])] }).level, 'warn');
  assert.equal(statusPill({ complete: true, consistent: false, workers: [worker(true, [ds('ready')])] }).level, 'warn');
  assert.equal(statusPill({ complete: false, workers: [worker(true, [ds('ready')])] }).level, 'warn');
});

test('the status pill says loading while a dataset loads or reloads', () => {
  const s = { complete: true, workers: [worker(true, [ds('ready', { reloading: true })])] };
  assert.deepEqual(statusPill(s), { level: 'busy', text: '1/1 workers · loading', answering: 1 });
});

test('the status pill is bad when no worker answers', () => {
  assert.deepEqual(statusPill({ workers: [] }), { level: 'bad', text: 'no workers', answering: 0 });
  assert.deepEqual(statusPill({ workers: [worker(false)] }), { level: 'bad', text: 'no workers answering', answering: 0 });
});

const start = { since: 0, seenBusy: false, polls: 0, refused: [] };

test('a reload is followed while datasets load, with the share of workers ready', () => {
  const status = { workers: [worker(true, [ds('ready')]), worker(true, [ds('loading')])] };
  const p = reloadProgress(start, status);
  assert.equal(p.finished, false);
  assert.equal(p.fraction, 0.5);
  assert.equal(p.kind, 'info');
  assert.match(p.text, /^Reloading data: 1 of 2 workers ready · 2,000 rows loaded$/);
  assert.deepEqual(p.reloading, { since: 0, seenBusy: true, polls: 1, refused: [] });
  assert.deepEqual(start.polls, 0, 'the state passed in is left as it was');
});

test('a reload is over once the loading seen is done', () => {
  const seen = { ...start, seenBusy: true, polls: 1 };
  const p = reloadProgress(seen, { workers: [worker(true, [ds('ready')])] });
  assert.equal(p.finished, true);
  assert.equal(p.kind, 'info');
  assert.equal(p.text, 'Data reloaded · 1,000 rows');
});

test('a reload too quick to be seen loading is over after three polls', () => {
  const status = { workers: [worker(true, [ds('ready')])] };
  let r = start;
  for (const polls of [1, 2]) {
    const p = reloadProgress(r, status);
    assert.equal(p.finished, false, `poll ${polls}`);
    r = p.reloading;
  }
  assert.equal(reloadProgress(r, status).finished, true);
});

test('a reload with a failed dataset or a refusing worker finishes with errors', () => {
  const seen = { ...start, seenBusy: true };
  const p = reloadProgress(seen, { workers: [worker(true, [ds('failed', { error: 'no such bucket' })])] });
  assert.equal(p.kind, 'error');
  assert.equal(p.text, 'Reload finished with errors: celltowers: no such bucket');
  const refused = { ...seen, refused: [{ endpoint: 'w9', error: 'busy' }] };
  const loading = reloadProgress(refused, { workers: [worker(true, [ds('loading')])] });
  assert.equal(loading.kind, 'warn');
  assert.match(loading.text, / · not reloading: w9 \(busy\)$/);
  const done = reloadProgress(refused, { workers: [worker(true, [ds('ready')])] });
  assert.equal(done.kind, 'error');
  assert.equal(done.text, 'Reload finished with errors · not reloading: w9 (busy)');
});
