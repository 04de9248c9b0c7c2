import { describe, expect, it } from "vitest";

import {
  borderEdges,
  countSelected,
  insidePolygon,
  lassoMask,
  maskOfSegments,
  rectangleMask,
  segmentAt,
  segmentsInMask,
  toggleSegment,
  toImagePoint,
} from "../src/brush";

// A 4 × 6 image in three vertical bands of superpixels: 0 | 1 | 2.
const H = 4;
const W = 6;
const BANDS = Uint16Array.from({ length: H * W }, (_, i) =>
  Math.floor((i % W) / 2),
);

function rows(mask: { data: Uint8Array; width: number }): string[] {
  const out: string[] = [];
  for (let i = 0; i < mask.data.length; i += mask.width) {
    out.push(Array.from(mask.data.slice(i, i + mask.width)).join(""));
  }
  return out;
}

describe("rectangleMask", () => {
  it("selects pixels with centres inside, either drag direction", () => {
    const a = rectangleMask({ x: 1, y: 0.2 }, { x: 3.9, y: 2.6 }, H, W);
    expect(rows(a)).toEqual(["011100", "011100", "011100", "000000"]);
    const b = rectangleMask({ x: 3.9, y: 2.6 }, { x: 1, y: 0.2 }, H, W);
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it("clips to the image and is empty for a drag between centres", () => {
    const all = rectangleMask({ x: -5, y: -5 }, { x: 50, y: 50 }, H, W);
    expect(countSelected(all)).toBe(H * W);
    const none = rectangleMask({ x: 1.6, y: 1.6 }, { x: 2.4, y: 2.4 }, H, W);
    expect(countSelected(none)).toBe(0);
  });
});

describe("lassoMask", () => {
  it("selects the centres inside a triangle", () => {
    const mask = lassoMask(
      [
        { x: 0, y: 0 },
        { x: 6, y: 0 },
        { x: 0, y: 4 },
      ],
      H,
      W,
    );
    // A centre (x + 0.5, y + 0.5) is inside where x + 0.5 < 6 - 1.5 (y + 0.5).
    expect(rows(mask)).toEqual(["111110", "111100", "110000", "100000"]);
  });

  it("agrees with a rectangle for a rectangular lasso", () => {
    const lasso = lassoMask(
      [
        { x: 1, y: 1 },
        { x: 5, y: 1 },
        { x: 5, y: 3 },
        { x: 1, y: 3 },
      ],
      H,
      W,
    );
    const box = rectangleMask({ x: 1, y: 1 }, { x: 5, y: 3 }, H, W);
    expect(Array.from(lasso.data)).toEqual(Array.from(box.data));
  });

  it("selects nothing with fewer than three points", () => {
    expect(countSelected(lassoMask([{ x: 0, y: 0 }], H, W))).toBe(0);
  });

  it("uses the even-odd rule for a self-crossing path", () => {
    const bowtie = [
      { x: 0, y: 0 },
      { x: 4, y: 4 },
      { x: 4, y: 0 },
      { x: 0, y: 4 },
    ];
    expect(insidePolygon({ x: 2, y: 0.5 }, bowtie)).toBe(false);
    expect(insidePolygon({ x: 0.5, y: 2 }, bowtie)).toBe(true);
  });
});

describe("segmentsInMask", () => {
  it("takes superpixels at least half inside", () => {
    // columns 1–3: half of band 0, all of band 1 is cols 2–3.
    const mask = rectangleMask({ x: 1, y: 0 }, { x: 4, y: 4 }, H, W);
    expect(segmentsInMask(mask, BANDS)).toEqual([0, 1]);
  });

  it("falls back to the most covered superpixel when none is half in", () => {
    const mask = rectangleMask({ x: 4, y: 0 }, { x: 5, y: 1 }, H, W);
    expect(countSelected(mask)).toBe(1);
    expect(segmentsInMask(mask, BANDS)).toEqual([2]);
  });

  it("is empty for an empty mask", () => {
    const mask = rectangleMask({ x: 0, y: 0 }, { x: 0, y: 0 }, H, W);
    expect(segmentsInMask(mask, BANDS)).toEqual([]);
  });
});

describe("picking superpixels", () => {
  it("finds the superpixel under a point, -1 outside", () => {
    expect(segmentAt({ x: 4.5, y: 3.9 }, BANDS, H, W)).toBe(2);
    expect(segmentAt({ x: 6, y: 0 }, BANDS, H, W)).toBe(-1);
  });

  it("toggles ids and builds their mask", () => {
    const ids = toggleSegment(toggleSegment([], 2), 0);
    expect(ids).toEqual([0, 2]);
    expect(toggleSegment(ids, 2)).toEqual([0]);
    const mask = maskOfSegments(ids, BANDS, H, W);
    expect(rows(mask)).toEqual(["110011", "110011", "110011", "110011"]);
    expect(segmentsInMask(mask, BANDS)).toEqual([0, 2]);
  });
});

describe("borderEdges", () => {
  it("draws one edge per pixel side between differing superpixels", () => {
    const edges = borderEdges(BANDS, H, W);
    expect(edges.length).toBe(2 * H);
    expect(edges).toContainEqual([2, 0, 2, 1]);
    expect(edges).toContainEqual([4, 3, 4, 4]);
  });
});

describe("toImagePoint", () => {
  it("maps a position in the drawn box to image pixels, clipped", () => {
    expect(toImagePoint(160, 80, 320, 320, 64, 64)).toEqual({ x: 32, y: 16 });
    expect(toImagePoint(-3, 400, 320, 320, 64, 64)).toEqual({ x: 0, y: 64 });
  });
});
