// A stage: the image, its colour-mapped heatmap and an overlay (superpixel
// borders, the selection, a brush being drawn) stacked on canvases of one
// size, the picture zoomed by an integer factor when it is small.

import { applyColormap } from "./colormaps";
import { borderEdges, type Mask, type Point } from "./brush";
import { element } from "./dom";

/** Display size of an (H, W) picture with the longest side near `px`:
 * an integer zoom when it is small, a reduction when it is large. */
export function stageSize(
  height: number,
  width: number,
  px = 320,
): { height: number; width: number } {
  const side = Math.max(height, width);
  if (side <= 0) {
    return { height: 0, width: 0 };
  }
  const zoom = side <= px ? Math.floor(px / side) : px / side;
  return {
    height: Math.round(height * zoom),
    width: Math.round(width * zoom),
  };
}

export function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext("2d");
  if (!ctx) {
    throw new Error("this browser gives no 2D canvas to draw on");
  }
  return ctx;
}

/** Put RGBA `pixels` of (height, width) on `canvas`, resizing it. */
export function putPixels(
  canvas: HTMLCanvasElement,
  pixels: Uint8ClampedArray,
  height: number,
  width: number,
): void {
  canvas.width = width;
  canvas.height = height;
  const ctx = context2d(canvas);
  const data = ctx.createImageData(width, height);
  data.data.set(pixels);
  ctx.putImageData(data, 0, 0);
}

/** What the overlay shows. */
export interface Overlay {
  /** Border edges [x0, y0, x1, y1] in image pixels, or null. */
  edges: number[][] | null;
  selection: Mask | null;
  /** A rectangle or lasso being drawn, in image pixels. */
  drawing: { kind: string; points: Point[] } | null;
}

export class Stage {
  readonly root: HTMLElement;
  readonly image: HTMLCanvasElement;
  readonly heatmap: HTMLCanvasElement;
  readonly overlay: HTMLCanvasElement;
  private height = 0;
  private width = 0;

  constructor(
    className: string,
    heatmapClass: string,
    private readonly px: number,
  ) {
    this.root = element("div", className);
    this.image = element("canvas", "ssx-image-layer");
    this.heatmap = element("canvas", heatmapClass);
    this.heatmap.setAttribute("role", "img");
    this.overlay = element("canvas", "ssx-overlay");
    this.root.append(this.image, this.heatmap, this.overlay);
  }

  /** Size the stage for an (H, W) picture. */
  layout(height: number, width: number): void {
    this.height = height;
    this.width = width;
    const size = stageSize(height, width, this.px);
    this.root.style.width = `${size.width}px`;
    this.root.style.height = `${size.height}px`;
  }

  /** The stage's size in CSS pixels. */
  get size(): { height: number; width: number } {
    return stageSize(this.height, this.width, this.px);
  }

  drawImage(pixels: Uint8ClampedArray, height: number, width: number): void {
    putPixels(this.image, pixels, height, width);
    this.image.hidden = false;
  }

  drawHeatmap(
    values: Float32Array,
    height: number,
    width: number,
    range: number[],
    table: Uint8Array,
  ): void {
    putPixels(this.heatmap, applyColormap(values, range, table), height, width);
  }

  drawOverlay(overlay: Overlay): void {
    const { height, width } = this.size;
    if (height === 0 || this.width === 0) {
      return;
    }
    this.overlay.width = width;
    this.overlay.height = height;
    const ctx = context2d(this.overlay);
    const zx = width / this.width;
    const zy = height / this.height;
    ctx.clearRect(0, 0, width, height);

    if (overlay.selection) {
      const { data, height: h, width: w } = overlay.selection;
      ctx.fillStyle = "rgba(0, 0, 0, 0.5)";
      for (let y = 0; y < h; y++) {
        let start = -1;
        for (let x = 0; x <= w; x++) {
          const outside = x < w && !data[y * w + x];
          if (outside && start < 0) {
            start = x;
          } else if (!outside && start >= 0) {
            ctx.fillRect(start * zx, y * zy, (x - start) * zx, zy);
            start = -1;
          }
        }
      }
    }

    if (overlay.edges) {
      ctx.strokeStyle = "rgba(255, 255, 255, 0.75)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const [x0 = 0, y0 = 0, x1 = 0, y1 = 0] of overlay.edges) {
        ctx.moveTo(x0 * zx, y0 * zy);
        ctx.lineTo(x1 * zx, y1 * zy);
      }
      ctx.stroke();
    }

    if (overlay.selection) {
      const { data, height: h, width: w } = overlay.selection;
      ctx.strokeStyle = "#ffd400";
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (const [x0 = 0, y0 = 0, x1 = 0, y1 = 0] of borderEdges(
        Uint16Array.from(data),
        h,
        w,
      )) {
        ctx.moveTo(x0 * zx, y0 * zy);
        ctx.lineTo(x1 * zx, y1 * zy);
      }
      ctx.stroke();
    }

    const drawing = overlay.drawing;
    if (drawing && drawing.points.length > 1) {
      ctx.strokeStyle = "#ffd400";
      ctx.lineWidth = 2;
      ctx.setLineDash([5, 3]);
      ctx.beginPath();
      const [first, ...rest] = drawing.points;
      if (drawing.kind === "rectangle" && first) {
        const last = drawing.points[drawing.points.length - 1] ?? first;
        ctx.rect(
          Math.min(first.x, last.x) * zx,
          Math.min(first.y, last.y) * zy,
          Math.abs(last.x - first.x) * zx,
          Math.abs(last.y - first.y) * zy,
        );
      } else if (first) {
        ctx.moveTo(first.x * zx, first.y * zy);
        for (const p of rest) {
          ctx.lineTo(p.x * zx, p.y * zy);
        }
        ctx.closePath();
      }
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
}
