// The offline basemap: country outlines from static/countries.json (format
// `quiver-basemap-1`, written by dashboard/tools/build-basemap.mjs from
// Natural Earth data), decoded once into Web Mercator unit coordinates and
// drawn on a canvas for each frame.

import { lonToX, latToY } from './mercator.js';

/** Decodes one polyline string into a flat [lon0, lat0, lon1, lat1, ...] in `scale` degrees. */
export function decodePolyline(text, scale) {
  const out = [];
  let i = 0;
  let acc = [0, 0];
  let k = 0;
  while (i < text.length) {
    let result = 0;
    let shift = 1;
    let c;
    do {
      c = text.charCodeAt(i++) - 63;
      result += (c & 0x1f) * shift;
      shift *= 32;
    } while (c >= 0x20 && i < text.length);
    const v = result % 2 === 1 ? -(result + 1) / 2 : result / 2;
    acc[k] += v;
    out.push(acc[k] * scale);
    k ^= 1;
  }
  if (k !== 0) throw new Error('basemap: polyline has an odd number of coordinates');
  return out;
}

/** Bounding box [minx, miny, maxx, maxy] of a flat xy array. */
function bboxOf(xy) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i < xy.length; i += 2) {
    if (xy[i] < b[0]) b[0] = xy[i];
    if (xy[i] > b[2]) b[2] = xy[i];
    if (xy[i + 1] < b[1]) b[1] = xy[i + 1];
    if (xy[i + 1] > b[3]) b[3] = xy[i + 1];
  }
  return b;
}

/**
 * Decodes a `quiver-basemap-1` document into what the map draws, in unit
 * coordinates. Natural Earth's rings are spherical: some cross the
 * antimeridian (Russia, Fiji) and Antarctica goes round the pole. Outlines are
 * cut where they jump across the antimeridian; land rings are unwrapped
 * (longitudes made continuous, so x may leave [0, 1]) and a ring that goes
 * round a pole is closed along that pole's edge of the map.
 */
export function decodeBasemap(doc) {
  if (!doc || doc.format !== 'quiver-basemap-1' || !Array.isArray(doc.arcs)) {
    throw new Error(`basemap: unknown format ${doc && doc.format}`);
  }
  const arcs = doc.arcs.map((s) => {
    const ll = decodePolyline(s, doc.scale);
    const xy = new Float64Array(ll.length);
    for (let i = 0; i < ll.length; i += 2) {
      xy[i] = lonToX(ll[i]);
      xy[i + 1] = latToY(ll[i + 1]);
    }
    return xy;
  });
  const isBorder = new Uint8Array(arcs.length);
  for (const i of doc.borders || []) isBorder[i] = 1;

  // Outlines: arcs cut at antimeridian jumps.
  const lines = [];
  arcs.forEach((xy, a) => {
    let from = 0;
    for (let i = 2; i <= xy.length; i += 2) {
      if (i === xy.length || Math.abs(xy[i] - xy[i - 2]) > 0.5) {
        if (i - from >= 4) {
          const piece = xy.slice(from, i);
          lines.push({ xy: piece, bbox: bboxOf(piece), border: isBorder[a] });
        }
        from = i;
      }
    }
  });

  // Land: rings as continuous coordinate lists.
  const land = (doc.land || []).map((ring) => {
    const pts = [];
    let shift = 0;
    for (const a of ring) {
      const xy = arcs[a < 0 ? ~a : a];
      const n = xy.length / 2;
      for (let j = pts.length ? 1 : 0; j < n; j++) {
        const i = a < 0 ? n - 1 - j : j;
        let x = xy[2 * i] + shift;
        if (pts.length) {
          const last = pts[pts.length - 2];
          if (x - last > 0.5) {
            shift -= 1;
            x -= 1;
          } else if (last - x > 0.5) {
            shift += 1;
            x += 1;
          }
        }
        pts.push(x, xy[2 * i + 1]);
      }
    }
    if (pts.length >= 4 && Math.abs(pts[pts.length - 2] - pts[0]) > 0.5) {
      // Round a pole: close along the map's edge on that side.
      let sumY = 0;
      for (let i = 1; i < pts.length; i += 2) sumY += pts[i];
      const edge = sumY / (pts.length / 2) > 0.5 ? 1 : 0;
      pts.push(pts[pts.length - 2], edge, pts[0], edge);
    }
    const xy = Float64Array.from(pts);
    return { xy, bbox: bboxOf(xy) };
  });
  return { lines, land, source: doc.source };
}

function visible(bbox, t, k) {
  const left = t.ox + (bbox[0] + k) * t.S;
  const right = t.ox + (bbox[2] + k) * t.S;
  const top = t.oy + bbox[1] * t.S;
  const bottom = t.oy + bbox[3] * t.S;
  return right >= -2 && left <= t.width + 2 && bottom >= -2 && top <= t.height + 2;
}

/** Adds a polyline to the current path, skipping points less than ~half a pixel apart. */
function trace(ctx, xy, t, k) {
  const n = xy.length / 2;
  let lx = t.ox + (xy[0] + k) * t.S;
  let ly = t.oy + xy[1] * t.S;
  ctx.moveTo(lx, ly);
  for (let i = 1; i < n; i++) {
    const sx = t.ox + (xy[2 * i] + k) * t.S;
    const sy = t.oy + xy[2 * i + 1] * t.S;
    if (i === n - 1 || Math.abs(sx - lx) + Math.abs(sy - ly) >= (t.minStep || 0.7)) {
      ctx.lineTo(sx, sy);
      lx = sx;
      ly = sy;
    }
  }
}

/**
 * Draws land and outlines. `t` = {S: world size in px, ox, oy: screen position
 * of unit (0, 0), width, height, copies: world copies to draw (e.g. [-1, 0, 1])}.
 */
export function drawBasemap(ctx, base, t, theme) {
  ctx.fillStyle = theme.land;
  for (const k of t.copies) {
    // Unwrapped rings may reach into the neighbouring copies: clip to this one.
    ctx.save();
    ctx.beginPath();
    ctx.rect(t.ox + k * t.S, t.oy, t.S, t.S);
    ctx.clip();
    ctx.beginPath();
    for (const ring of base.land) {
      for (const s of [k - 1, k, k + 1]) {
        if (ring.bbox[2] + s < k || ring.bbox[0] + s > k + 1) continue;
        if (!visible(ring.bbox, t, s)) continue;
        trace(ctx, ring.xy, t, s);
        ctx.closePath();
      }
    }
    ctx.fill('evenodd');
    ctx.restore();
  }
  const strokes = [
    [0, theme.coast, theme.coastWidth],
    [1, theme.border, theme.borderWidth],
  ];
  ctx.lineJoin = 'round';
  for (const [border, color, width] of strokes) {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    for (const k of t.copies) {
      for (const line of base.lines) {
        if (line.border !== border || !visible(line.bbox, t, k)) continue;
        trace(ctx, line.xy, t, k);
      }
    }
    ctx.stroke();
  }
}
