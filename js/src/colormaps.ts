// Colour maps: the LUTs generated from ssxwidgets/colormaps.py.

import {
  AUTO,
  DEFAULT_DIVERGING,
  DEFAULT_SEQUENTIAL,
  LUT_HEX,
} from "./colormapData";

export { AUTO, DIVERGING } from "./colormapData";

const N_COLORS = 256;
const cache = new Map<string, Uint8Array>();

/** Names of every colour map, in their defined order. */
export function colormapNames(): string[] {
  return Object.keys(LUT_HEX);
}

/** The (256 × 3) uint8 LUT of a named map; throws on an unknown name. */
export function lut(name: string): Uint8Array {
  const hit = cache.get(name);
  if (hit) {
    return hit;
  }
  const hex = Object.hasOwn(LUT_HEX, name) ? LUT_HEX[name] : undefined;
  if (hex === undefined) {
    const known = colormapNames().join(", ");
    throw new Error(
      `expected a colour map out of ${known} or "auto", got "${name}"`,
    );
  }
  const table = new Uint8Array(N_COLORS * 3);
  for (let i = 0; i < table.length; i++) {
    table[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  cache.set(name, table);
  return table;
}

/** "auto" becomes the diverging default if lo < 0, else the sequential. */
export function resolveColormap(name: string, range: number[]): string {
  if (name === AUTO || name === "") {
    return (range[0] ?? 0) < 0 ? DEFAULT_DIVERGING : DEFAULT_SEQUENTIAL;
  }
  return name;
}

/**
 * LUT index of `value`: round((v - lo) / (hi - lo) * 255), clipped;
 * -1 for NaN. Matches ssxwidgets.colormaps.indices.
 */
export function colorIndex(value: number, lo: number, hi: number): number {
  if (Number.isNaN(value)) {
    return -1;
  }
  let t = hi > lo ? (value - lo) / (hi - lo) : 0.5;
  t = Math.min(1, Math.max(0, t));
  return Math.floor(t * (N_COLORS - 1) + 0.5);
}

/** RGBA pixels of `values` mapped through `table` over [lo, hi]. */
export function applyColormap(
  values: Float32Array,
  range: number[],
  table: Uint8Array,
): Uint8ClampedArray<ArrayBuffer> {
  const lo = range[0] ?? 0;
  const hi = range[1] ?? 1;
  const out = new Uint8ClampedArray(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    const k = colorIndex(values[i] ?? NaN, lo, hi);
    if (k < 0) {
      continue;
    }
    out[4 * i] = table[3 * k] ?? 0;
    out[4 * i + 1] = table[3 * k + 1] ?? 0;
    out[4 * i + 2] = table[3 * k + 2] ?? 0;
    out[4 * i + 3] = 255;
  }
  return out;
}
