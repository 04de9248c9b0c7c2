// Brush geometry in image pixels: rectangles and lassos to pixel masks,
// masks to superpixel ids, and the superpixels' borders. Pure functions; the
// view draws and sends what they return.
//
// A pixel (x, y) is inside a shape when its centre (x + 0.5, y + 0.5) is.
// A superpixel is selected when at least half of its pixels are inside the
// brush; when none is, the one with the most pixels inside is (the same
// rule as ssxwidgets.widgets._drill.segments_in_mask).

/** A point in image pixel coordinates (x to the right, y down). */
export interface Point {
  x: number;
  y: number;
}

/** A pixel mask: one byte per pixel, 1 where selected, row-major. */
export interface Mask {
  data: Uint8Array;
  height: number;
  width: number;
}

/** The empty mask of an (H, W) image. */
export function emptyMask(height: number, width: number): Mask {
  return { data: new Uint8Array(height * width), height, width };
}

/** The pixels whose centres lie in the rectangle spanned by `a` and `b`. */
export function rectangleMask(
  a: Point,
  b: Point,
  height: number,
  width: number,
): Mask {
  const mask = emptyMask(height, width);
  const x0 = Math.min(a.x, b.x);
  const x1 = Math.max(a.x, b.x);
  const y0 = Math.min(a.y, b.y);
  const y1 = Math.max(a.y, b.y);
  const left = Math.max(0, Math.ceil(x0 - 0.5));
  const right = Math.min(width - 1, Math.floor(x1 - 0.5));
  const top = Math.max(0, Math.ceil(y0 - 0.5));
  const bottom = Math.min(height - 1, Math.floor(y1 - 0.5));
  for (let y = top; y <= bottom; y++) {
    mask.data.fill(1, y * width + left, y * width + right + 1);
  }
  return mask;
}

/** Whether `p` is inside `polygon` (even-odd rule). */
export function insidePolygon(p: Point, polygon: Point[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const a = polygon[i] as Point;
    const b = polygon[j] as Point;
    if (a.y > p.y !== b.y > p.y) {
      const x = a.x + ((p.y - a.y) * (b.x - a.x)) / (b.y - a.y);
      if (p.x < x) {
        inside = !inside;
      }
    }
  }
  return inside;
}

/** The pixels whose centres lie inside the closed lasso `points`. */
export function lassoMask(
  points: Point[],
  height: number,
  width: number,
): Mask {
  const mask = emptyMask(height, width);
  if (points.length < 3) {
    return mask;
  }
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const p of points) {
    y0 = Math.min(y0, p.y);
    y1 = Math.max(y1, p.y);
  }
  const top = Math.max(0, Math.floor(y0));
  const bottom = Math.min(height - 1, Math.ceil(y1));
  for (let y = top; y <= bottom; y++) {
    for (let x = 0; x < width; x++) {
      if (insidePolygon({ x: x + 0.5, y: y + 0.5 }, points)) {
        mask.data[y * width + x] = 1;
      }
    }
  }
  return mask;
}

/** Ids of the superpixels `mask` selects, ascending (see the rule above). */
export function segmentsInMask(mask: Mask, segments: Uint16Array): number[] {
  let size = 0;
  for (const id of segments) {
    size = Math.max(size, id + 1);
  }
  const total = new Uint32Array(size);
  const inside = new Uint32Array(size);
  let any = false;
  for (let i = 0; i < segments.length; i++) {
    const id = segments[i] as number;
    total[id] = (total[id] ?? 0) + 1;
    if (mask.data[i]) {
      inside[id] = (inside[id] ?? 0) + 1;
      any = true;
    }
  }
  if (!any) {
    return [];
  }
  const chosen: number[] = [];
  let best = 0;
  for (let id = 0; id < size; id++) {
    const n = inside[id] ?? 0;
    if (n > 0 && 2 * n >= (total[id] ?? 0)) {
      chosen.push(id);
    }
    if (n > (inside[best] ?? 0)) {
      best = id;
    }
  }
  return chosen.length > 0 ? chosen : [best];
}

/** The mask of every pixel of the superpixels `ids`. */
export function maskOfSegments(
  ids: Iterable<number>,
  segments: Uint16Array,
  height: number,
  width: number,
): Mask {
  const wanted = new Set(ids);
  const mask = emptyMask(height, width);
  for (let i = 0; i < segments.length; i++) {
    if (wanted.has(segments[i] as number)) {
      mask.data[i] = 1;
    }
  }
  return mask;
}

/** `ids` with `id` added, or removed if it was there; ascending. */
export function toggleSegment(ids: number[], id: number): number[] {
  const set = new Set(ids);
  if (set.has(id)) {
    set.delete(id);
  } else {
    set.add(id);
  }
  return [...set].sort((a, b) => a - b);
}

/** The superpixel under image point `p`, or -1 outside the image. */
export function segmentAt(
  p: Point,
  segments: Uint16Array,
  height: number,
  width: number,
): number {
  const x = Math.floor(p.x);
  const y = Math.floor(p.y);
  if (x < 0 || y < 0 || x >= width || y >= height) {
    return -1;
  }
  return segments[y * width + x] ?? -1;
}

/** Edges between differing superpixels: `[x0, y0, x1, y1]` segments in
 * image coordinates, one per pixel side. */
export function borderEdges(
  segments: Uint16Array,
  height: number,
  width: number,
): number[][] {
  const edges: number[][] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const id = segments[y * width + x];
      if (x + 1 < width && segments[y * width + x + 1] !== id) {
        edges.push([x + 1, y, x + 1, y + 1]);
      }
      if (y + 1 < height && segments[(y + 1) * width + x] !== id) {
        edges.push([x, y + 1, x + 1, y + 1]);
      }
    }
  }
  return edges;
}

/** An element-relative pointer position mapped to image pixels. */
export function toImagePoint(
  offsetX: number,
  offsetY: number,
  boxWidth: number,
  boxHeight: number,
  height: number,
  width: number,
): Point {
  return {
    x: Math.min(width, Math.max(0, (offsetX / (boxWidth || 1)) * width)),
    y: Math.min(height, Math.max(0, (offsetY / (boxHeight || 1)) * height)),
  };
}

/** How many pixels a mask selects. */
export function countSelected(mask: Mask): number {
  let n = 0;
  for (const v of mask.data) {
    n += v ? 1 : 0;
  }
  return n;
}
