// URL hash state of dashboard/static/hash.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { binRangeOf, decodeHash, encodeHash, filtersForDataset } from '../../../dashboard/static/hash.js';

const dataset = {
  name: 'celltowers',
  dimensions: [
    { name: 'radio', kind: 'categorical', bins: [{ label: 'GSM' }, { label: 'LTE' }, { label: 'NR' }] },
    { name: 'range', kind: 'log', bins: [{ label: 'a', lo: 1, hi: 10 }, { label: 'b', lo: 10, hi: 100 }, { label: 'c', lo: 100, hi: 1000 }] },
    { name: 'created', kind: 'temporal', bins: [{ label: '2003', lo: 1041379200, hi: 1072915200 }, { label: '2004', lo: 1072915200, hi: 1104537600 }] },
  ],
};

test('encode then decode gives the state back', () => {
  const state = {
    dataset: 'celltowers',
    view: { zoom: 3.25, lat: 48.856613, lon: -2.352222 },
    filters: { radio: { categories: ['LTE', 'NR'] }, range: { range: { min: 10, max: 1000 } } },
    viewportFilter: false,
    log: ['range', 'created'],
  };
  const back = decodeHash(encodeHash(state));
  assert.deepEqual(back.problems, []);
  assert.equal(back.dataset, 'celltowers');
  assert.deepEqual(back.view, state.view);
  assert.deepEqual(back.filters, state.filters);
  assert.equal(back.viewportFilter, false);
  assert.deepEqual(back.log.sort(), ['created', 'range']);
});

test('equal states give equal hashes whatever the key order', () => {
  const a = encodeHash({ dataset: 'x', filters: { b: { categories: ['1'] }, a: { range: { min: 0, max: 1 } } }, log: ['q', 'p'] });
  const b = encodeHash({ dataset: 'x', filters: { a: { range: { min: 0, max: 1 } }, b: { categories: ['1'] } }, log: ['p', 'q'] });
  assert.equal(a, b);
});

test('a mangled hash opens with what can be read and names the rest', () => {
  const d = decodeHash('#dataset=ais&map=3/abc/1&f=%7Bnot-json');
  assert.equal(d.dataset, 'ais');
  assert.equal(d.view, undefined);
  assert.deepEqual(d.problems.sort(), ['f', 'map=3/abc/1']);
  const e = decodeHash('#f=' + encodeURIComponent(JSON.stringify({ radio: { categories: [] }, range: { range: { min: 5, max: 1 } }, ok: { categories: ['A'] } })));
  assert.deepEqual(e.filters, { ok: { categories: ['A'] } });
  assert.deepEqual(e.problems.sort(), ['filter radio', 'filter range']);
  assert.deepEqual(decodeHash(''), { problems: [] });
});

test('filters are fitted to the dataset: unknown names dropped, ranges bin-aligned', () => {
  const f = filtersForDataset(
    {
      radio: { categories: ['LTE', 'WiMAX'] },
      range: { range: { min: 5, max: 150 } },
      created: { range: { min: 0, max: 1 } },
      nope: { categories: ['x'] },
    },
    dataset,
  );
  // Bins whose lower edge lies in [5, 150): 10 and 100.
  assert.deepEqual(f, { radio: { categories: ['LTE'] }, range: { range: { min: 10, max: 1000 } } });
});

test('binRangeOf follows the lower-edge rule of range filters', () => {
  const dim = dataset.dimensions[1];
  assert.deepEqual(binRangeOf(dim, { min: 1, max: 10 }), [0, 0]);
  assert.deepEqual(binRangeOf(dim, { min: 1, max: 1000 }), [0, 2]);
  assert.deepEqual(binRangeOf(dim, { min: 10.5, max: 99 }), null);
});

test('an empty list of log axes is kept, unlike a missing one', () => {
  assert.deepEqual(decodeHash(encodeHash({ dataset: 'x', log: [] })).log, []);
  assert.equal(decodeHash('#dataset=x').log, undefined);
});
