import { describe, expect, it } from "vitest";

import {
  applyColormap,
  colorIndex,
  colormapNames,
  DIVERGING,
  lut,
  resolveColormap,
} from "../src/colormaps";
import { DEFAULT_DIVERGING, DEFAULT_SEQUENTIAL } from "../src/colormapData";

describe("lut", () => {
  it("has 256 RGB entries for every named map", () => {
    for (const name of colormapNames()) {
      expect(lut(name).length).toBe(256 * 3);
    }
  });

  it("starts and ends on the maps' end colours", () => {
    expect(Array.from(lut("gray").slice(0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(lut("gray").slice(765))).toEqual([255, 255, 255]);
    expect(Array.from(lut("blue_red").slice(0, 3))).toEqual([5, 48, 97]);
    expect(Array.from(lut("blue_red").slice(765))).toEqual([103, 0, 31]);
  });

  it("is light in the middle of a diverging map", () => {
    for (const name of DIVERGING) {
      const middle = lut(name).slice(3 * 128, 3 * 129);
      expect(Math.min(...middle)).toBeGreaterThan(220);
    }
  });

  it("throws on an unknown name, naming the known ones", () => {
    expect(() => lut("jet")).toThrow(/blue_red.*"jet"/);
    expect(() => lut("toString")).toThrow(/got "toString"/);
  });
});

describe("resolveColormap", () => {
  it("picks diverging for signed ranges and sequential otherwise", () => {
    expect(resolveColormap("auto", [-1, 1])).toBe(DEFAULT_DIVERGING);
    expect(resolveColormap("auto", [0, 1])).toBe(DEFAULT_SEQUENTIAL);
    expect(resolveColormap("inferno", [-1, 1])).toBe("inferno");
  });
});

describe("colorIndex", () => {
  it("maps the range ends to the first and last entries, clipping", () => {
    expect(colorIndex(-1, -1, 1)).toBe(0);
    expect(colorIndex(1, -1, 1)).toBe(255);
    expect(colorIndex(-5, -1, 1)).toBe(0);
    expect(colorIndex(5, -1, 1)).toBe(255);
  });

  it("rounds half up like the Python side", () => {
    // 0.5 of the way is 127.5: rounds to 128.
    expect(colorIndex(0, -1, 1)).toBe(128);
    expect(colorIndex(1, 0, 255)).toBe(1);
    expect(colorIndex(1.49, 0, 255)).toBe(1);
  });

  it("puts everything in the middle of an empty range, NaN nowhere", () => {
    expect(colorIndex(3, 2, 2)).toBe(128);
    expect(colorIndex(NaN, 0, 1)).toBe(-1);
  });
});

describe("applyColormap", () => {
  it("writes the LUT colour with opaque alpha, NaN transparent", () => {
    const table = lut("viridis");
    const rgba = applyColormap(new Float32Array([0, 1, NaN]), [0, 1], table);
    expect(Array.from(rgba.slice(0, 4))).toEqual([...table.slice(0, 3), 255]);
    expect(Array.from(rgba.slice(4, 8))).toEqual([...table.slice(765), 255]);
    expect(Array.from(rgba.slice(8))).toEqual([0, 0, 0, 0]);
  });
});
