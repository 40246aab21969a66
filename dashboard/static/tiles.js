// Whether the online tile layer is reachable, from how its tile requests
// went: the map falls back to the offline basemap when the first tiles all
// fail (no network, a blocked host, a wrong URL). Pure.

/** Failed tiles, with none loaded, after which the tile layer counts as unreachable. */
export const TILE_FAILURES_BEFORE_FALLBACK = 4;

/** 'online' once a tile loaded, 'offline' after the first failures with none loaded, else 'trying'. */
export function tileLayerState({ loaded, failed }) {
  if (loaded > 0) return 'online';
  if (failed >= TILE_FAILURES_BEFORE_FALLBACK) return 'offline';
  return 'trying';
}
