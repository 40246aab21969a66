import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MAP_COALESCE_MS, historyStep } from '../../../dashboard/static/history.js';

const A = '#dataset=celltowers&map=2/20/0&vf=1&log=range';
const A_MOVED = '#dataset=celltowers&map=3/48/2&vf=1&log=range';
const A_MOVED_MORE = '#dataset=celltowers&map=4/48/2&vf=1&log=range';
const B = '#dataset=celltowers&map=2/20/0&vf=1&log=range&f={"radio":{"categories":["LTE"]}}';

test('an unchanged state writes nothing', () => {
  assert.equal(historyStep(A, A, { kind: 'state', at: 0 }, 10).action, 'none');
});

test('the first state of a page replaces the entry it opened with', () => {
  assert.deepEqual(historyStep('', A, null, 0), { action: 'replace', kind: 'state' });
});

test('a committed change of filters, toggles or dataset is a new entry', () => {
  assert.deepEqual(historyStep(A, B, { kind: 'state', at: 0 }, 10), { action: 'push', kind: 'state' });
  // Even right after a map move.
  assert.deepEqual(historyStep(A_MOVED, B, { kind: 'map', at: 0 }, 10), { action: 'push', kind: 'state' });
  assert.equal(historyStep(A, A.replace('vf=1', 'vf=0'), { kind: 'state', at: 0 }, 10).action, 'push');
  assert.equal(historyStep(A, A.replace('celltowers', 'ais'), { kind: 'state', at: 0 }, 10).action, 'push');
});

test('a map move after a committed change is a new entry', () => {
  assert.deepEqual(historyStep(A, A_MOVED, { kind: 'state', at: 0 }, 10), { action: 'push', kind: 'map' });
});

test('map moves in one burst share an entry; a later move starts a new one', () => {
  const last = { kind: 'map', at: 1000 };
  assert.deepEqual(historyStep(A_MOVED, A_MOVED_MORE, last, 1000 + MAP_COALESCE_MS), { action: 'replace', kind: 'map' });
  assert.deepEqual(historyStep(A_MOVED, A_MOVED_MORE, last, 1001 + MAP_COALESCE_MS), { action: 'push', kind: 'map' });
});
