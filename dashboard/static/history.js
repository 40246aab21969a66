// Which browser-history step a new URL state takes, so Back and Forward walk
// the analysis: a committed change (filters, dataset, toggles, log axes) is a
// new entry; map moves are one entry per burst of movement (the frames of a
// drag or a wheel zoom, and moves that follow within `coalesceMs`, replace
// the entry the burst started). Pure: the app passes the clock.

export const MAP_COALESCE_MS = 1500;

/** The part of a hash that is not the map view (`map=`), for comparing states. */
function withoutMap(hash) {
  return (hash || '')
    .replace(/^#/, '')
    .split('&')
    .filter((p) => !p.startsWith('map='))
    .join('&');
}

/**
 * `prev` and `next` are encoded hashes; `last` is {kind, at} of the entry the
 * page stands on (kind 'map' when map moves made it). Returns
 * {action: 'none' | 'push' | 'replace', kind}.
 */
export function historyStep(prev, next, last, now, coalesceMs = MAP_COALESCE_MS) {
  if (prev === next) return { action: 'none', kind: last ? last.kind : 'state' };
  if (!prev) return { action: 'replace', kind: 'state' };
  if (withoutMap(prev) !== withoutMap(next)) return { action: 'push', kind: 'state' };
  // Only the map moved.
  if (last && last.kind === 'map' && now - last.at <= coalesceMs) return { action: 'replace', kind: 'map' };
  return { action: 'push', kind: 'map' };
}
