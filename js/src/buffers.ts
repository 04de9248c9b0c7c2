// Decoding the binary buffers that traits carry.

/** Bytes of a buffer as the kernel sent them, whatever view wraps them. */
export function asBytes(
  buffer: DataView | ArrayBuffer | ArrayBufferView | null | undefined,
): Uint8Array {
  if (buffer == null) {
    return new Uint8Array(0);
  }
  if (buffer instanceof ArrayBuffer) {
    return new Uint8Array(buffer);
  }
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** The IEEE 754 half-precision number whose 16 bits are `bits`. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) {
    return sign * fraction * 2 ** -24;
  }
  if (exponent === 0x1f) {
    return fraction === 0 ? sign * Infinity : NaN;
  }
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * float16 little-endian values to a Float32Array.
 *
 * Throws when the byte length is odd or does not match `expected` values.
 */
export function decodeFloat16(
  buffer: DataView | ArrayBuffer | ArrayBufferView | null | undefined,
  expected?: number,
): Float32Array {
  const bytes = asBytes(buffer);
  if (bytes.byteLength % 2 !== 0) {
    throw new Error(
      `float16 data must have an even byte length, got ${bytes.byteLength}`,
    );
  }
  const n = bytes.byteLength / 2;
  if (expected !== undefined && n !== expected) {
    throw new Error(
      `expected ${expected} float16 values for the heatmap shape, got ${n}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = halfToFloat(view.getUint16(2 * i, true));
  }
  return out;
}

/**
 * uint8 RGB or RGBA pixels to RGBA, for ImageData.
 *
 * Throws when the byte length does not match height × width × channels.
 */
export function toRgba(
  buffer: DataView | ArrayBuffer | ArrayBufferView | null | undefined,
  height: number,
  width: number,
  channels: number,
): Uint8ClampedArray<ArrayBuffer> {
  const bytes = asBytes(buffer);
  if (channels !== 3 && channels !== 4) {
    throw new Error(`expected 3 or 4 image channels, got ${channels}`);
  }
  const n = height * width;
  if (bytes.byteLength !== n * channels) {
    throw new Error(
      `expected ${n * channels} image bytes for ${height}×${width}×` +
        `${channels}, got ${bytes.byteLength}`,
    );
  }
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    out[4 * i] = bytes[channels * i] ?? 0;
    out[4 * i + 1] = bytes[channels * i + 1] ?? 0;
    out[4 * i + 2] = bytes[channels * i + 2] ?? 0;
    out[4 * i + 3] = channels === 4 ? (bytes[4 * i + 3] ?? 255) : 255;
  }
  return out;
}

/**
 * uint16 little-endian values (superpixel ids) to a Uint16Array.
 *
 * Throws when the byte length does not match `expected` values.
 */
export function decodeUint16(
  buffer: DataView | ArrayBuffer | ArrayBufferView | null | undefined,
  expected?: number,
): Uint16Array {
  const bytes = asBytes(buffer);
  const n = Math.floor(bytes.byteLength / 2);
  const odd = bytes.byteLength % 2 !== 0;
  if (odd || (expected !== undefined && n !== expected)) {
    throw new Error(
      `expected ${expected ?? "an even number of"} uint16 superpixel ids ` +
        `(${2 * (expected ?? 0)} bytes), got ${bytes.byteLength} bytes`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = view.getUint16(2 * i, true);
  }
  return out;
}
