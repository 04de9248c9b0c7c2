import { describe, expect, it } from "vitest";

import {
  asBytes,
  decodeFloat16,
  decodeUint16,
  halfToFloat,
  toRgba,
} from "../src/buffers";

// An independent reference: widen the half's bits into a float32's bits.
function reference(bits: number): number {
  const sign = (bits >> 15) & 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  const out = new DataView(new ArrayBuffer(4));
  if (exponent === 0x1f) {
    out.setUint32(0, (sign << 31) | (0xff << 23) | (fraction << 13));
  } else if (exponent === 0) {
    const magnitude = fraction / 2 ** 24;
    return sign ? -magnitude : magnitude;
  } else {
    const widened = (sign << 31) | ((exponent + 112) << 23) | (fraction << 13);
    out.setUint32(0, widened >>> 0);
  }
  return out.getFloat32(0);
}

describe("halfToFloat", () => {
  it("decodes the landmark values of IEEE half precision", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });

  it("agrees with a bit-widening reference on all 65536 patterns", () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const got = halfToFloat(bits);
      const want = reference(bits);
      if (Number.isNaN(want)) {
        expect(got).toBeNaN();
      } else if (got !== want) {
        expect.fail(`bits 0x${bits.toString(16)}: ${got} != ${want}`);
      }
    }
  });
});

describe("decodeFloat16", () => {
  it("reads little-endian values from a DataView at an offset", () => {
    const backing = new Uint8Array([9, 9, 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]);
    const view = new DataView(backing.buffer, 2, 6);
    expect(Array.from(decodeFloat16(view, 3))).toEqual([1, -2, 0.5]);
  });

  it("throws when the byte count does not match the shape", () => {
    const view = new DataView(new ArrayBuffer(6));
    expect(() => decodeFloat16(view, 4)).toThrow(/expected 4 float16/);
    expect(() => decodeFloat16(new DataView(new ArrayBuffer(3)))).toThrow(
      /even byte length/,
    );
  });

  it("treats a missing buffer as empty", () => {
    expect(decodeFloat16(null).length).toBe(0);
    expect(asBytes(undefined).length).toBe(0);
  });
});

describe("toRgba", () => {
  it("adds opaque alpha to RGB pixels", () => {
    const rgb = new DataView(new Uint8Array([1, 2, 3, 4, 5, 6]).buffer);
    expect(Array.from(toRgba(rgb, 1, 2, 3))).toEqual([
      1, 2, 3, 255, 4, 5, 6, 255,
    ]);
  });

  it("keeps RGBA pixels as they are", () => {
    const rgba = new Uint8Array([1, 2, 3, 4]);
    expect(Array.from(toRgba(rgba, 1, 1, 4))).toEqual([1, 2, 3, 4]);
  });

  it("throws on a size mismatch or an unsupported channel count", () => {
    const rgb = new Uint8Array(5);
    expect(() => toRgba(rgb, 1, 2, 3)).toThrow(/expected 6 image bytes/);
    expect(() => toRgba(new Uint8Array(2), 1, 1, 2)).toThrow(/3 or 4/);
  });
});

describe("decodeUint16", () => {
  it("reads little-endian superpixel ids from a DataView at an offset", () => {
    const backing = new Uint8Array([7, 0, 1, 0, 0xff, 0xff, 0x2c, 0x01]);
    const view = new DataView(backing.buffer, 2, 6);
    expect(Array.from(decodeUint16(view, 3))).toEqual([1, 65535, 300]);
  });

  it("throws when the byte count does not match the shape", () => {
    expect(() => decodeUint16(new Uint8Array(6), 4)).toThrow(/expected 4/);
    expect(() => decodeUint16(new Uint8Array(3))).toThrow(/3 bytes/);
  });
});
