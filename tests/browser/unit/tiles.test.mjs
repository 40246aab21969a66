import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TILE_FAILURES_BEFORE_FALLBACK, tileLayerState } from '../../../dashboard/static/tiles.js';

test('the tile layer is online once a tile loads, even after failures', () => {
  assert.equal(tileLayerState({ loaded: 0, failed: 0 }), 'trying');
  assert.equal(tileLayerState({ loaded: 1, failed: 0 }), 'online');
  assert.equal(tileLayerState({ loaded: 1, failed: 50 }), 'online');
});

test('the first tiles all failing means the tile layer is unreachable', () => {
  assert.equal(tileLayerState({ loaded: 0, failed: TILE_FAILURES_BEFORE_FALLBACK - 1 }), 'trying');
  assert.equal(tileLayerState({ loaded: 0, failed: TILE_FAILURES_BEFORE_FALLBACK }), 'offline');
});
