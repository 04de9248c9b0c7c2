// The view of ImageExplainer: the image, its colour-mapped heatmap on top,
// a colour bar, and the method, status, device and errors as plain text.

import type { AnyModel, RenderProps } from "@anywidget/types";

import { decodeFloat16, toRgba } from "./buffers";
import {
  AUTO,
  applyColormap,
  colormapNames,
  lut,
  resolveColormap,
} from "./colormaps";
import { debounce, describe, element, formatValue, setText } from "./dom";
import type { ImageExplainerModel } from "./types";

type Model = AnyModel<ImageExplainerModel>;

/** Longest side of the stage in CSS pixels. */
const STAGE_PX = 320;

/** Display size of an (H, W) picture: integer zoom when it is small. */
export function stageSize(
  height: number,
  width: number,
): { height: number; width: number } {
  const side = Math.max(height, width);
  if (side <= 0) {
    return { height: 0, width: 0 };
  }
  const zoom = side <= STAGE_PX ? Math.floor(STAGE_PX / side) : STAGE_PX / side;
  return {
    height: Math.round(height * zoom),
    width: Math.round(width * zoom),
  };
}

function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext("2d");
  if (!ctx) {
    throw new Error("this browser gives no 2D canvas to draw on");
  }
  return ctx;
}

function putPixels(
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

/** The parts of the view that the draw steps update. */
interface Parts {
  root: HTMLElement;
  method: HTMLElement;
  status: HTMLElement;
  device: HTMLElement;
  stage: HTMLElement;
  image: HTMLCanvasElement;
  heatmap: HTMLCanvasElement;
  bar: HTMLCanvasElement;
  low: HTMLElement;
  high: HTMLElement;
  opacity: HTMLInputElement;
  colormap: HTMLSelectElement;
  error: HTMLElement;
}

function build(el: HTMLElement): Parts {
  const root = element("div", "ssx-image");
  const header = element("div", "ssx-header");
  const method = element("span", "ssx-method");
  const status = element("span", "ssx-status");
  const device = element("span", "ssx-device");
  header.append(method, status, device);

  const stage = element("div", "ssx-stage");
  const image = element("canvas", "ssx-image-layer");
  const heatmap = element("canvas", "ssx-heatmap");
  heatmap.setAttribute("role", "img");
  heatmap.setAttribute("aria-label", "attribution heatmap");
  stage.append(image, heatmap);

  const legend = element("div", "ssx-legend");
  const low = element("span", "ssx-range-low");
  const bar = element("canvas", "ssx-colorbar");
  const high = element("span", "ssx-range-high");
  legend.append(low, bar, high);

  const controls = element("div", "ssx-controls");
  const opacityLabel = element("label", "ssx-control", "opacity ");
  const opacity = element("input", "ssx-opacity");
  opacity.type = "range";
  opacity.min = "0";
  opacity.max = "1";
  opacity.step = "0.05";
  opacityLabel.append(opacity);
  const mapLabel = element("label", "ssx-control", "colour map ");
  const colormap = element("select", "ssx-colormap");
  for (const name of [AUTO, ...colormapNames()]) {
    const option = element("option", "", name);
    option.value = name;
    colormap.append(option);
  }
  mapLabel.append(colormap);
  controls.append(opacityLabel, mapLabel);

  const error = element("pre", "ssx-error");
  error.setAttribute("role", "alert");
  error.hidden = true;

  root.append(header, stage, legend, controls, error);
  el.append(root);
  return {
    root,
    method,
    status,
    device,
    stage,
    image,
    heatmap,
    bar,
    low,
    high,
    opacity,
    colormap,
    error,
  };
}

/** The anywidget render function of ImageExplainer. */
export function renderImage({
  model,
  el,
}: Pick<RenderProps<ImageExplainerModel>, "model" | "el">): () => void {
  const parts = build(el);
  const failures = new Map<string, string>();
  let drawnVersion = -1;

  function showErrors(): void {
    const lines: string[] = [];
    const kernel = model.get("error");
    if (kernel) {
      lines.push(kernel);
    }
    for (const [step, message] of failures) {
      lines.push(`Front-end error while ${step}: ${message}`);
    }
    setText(parts.error, lines.join("\n"));
  }

  // Run one step; whatever it throws is shown inside the widget.
  function guarded(step: string, fn: () => void): void {
    try {
      fn();
      failures.delete(step);
    } catch (error) {
      failures.set(step, describe(error));
    }
    showErrors();
  }

  function layout(): void {
    const [ih = 0, iw = 0] = model.get("image_shape") ?? [];
    const [hh = 0, hw = 0] = model.get("heatmap_shape") ?? [];
    const size = ih > 0 ? stageSize(ih, iw) : stageSize(hh, hw);
    parts.stage.style.width = `${size.width}px`;
    parts.stage.style.height = `${size.height}px`;
    parts.bar.style.width = `${Math.max(size.width, 120)}px`;
  }

  function drawImage(): void {
    const [h = 0, w = 0, c = 3] = model.get("image_shape") ?? [];
    parts.image.hidden = h === 0;
    if (h > 0) {
      putPixels(parts.image, toRgba(model.get("image"), h, w, c), h, w);
    }
    layout();
  }

  function drawHeatmap(): void {
    const version = model.get("version") ?? 0;
    if (version < drawnVersion) {
      return; // an older result than the one on screen: drop it
    }
    const [h = 0, w = 0] = model.get("heatmap_shape") ?? [];
    const range = model.get("value_range") ?? [0, 1];
    const name = resolveColormap(model.get("colormap"), range);
    const table = lut(name);
    drawLegend(table, range);
    if (h === 0 || w === 0) {
      return;
    }
    const values = decodeFloat16(model.get("heatmap"), h * w);
    putPixels(parts.heatmap, applyColormap(values, range, table), h, w);
    drawnVersion = version;
    parts.heatmap.dataset.ssxVersion = String(version);
    parts.heatmap.dataset.ssxColormap = name;
    parts.heatmap.dataset.drawn = "true";
    layout();
  }

  function drawLegend(table: Uint8Array, range: number[]): void {
    const ramp = new Float32Array(256);
    for (let i = 0; i < ramp.length; i++) {
      ramp[i] = i;
    }
    putPixels(parts.bar, applyColormap(ramp, [0, 255], table), 1, 256);
    const scale = model.get("value_scale") ?? 1;
    parts.low.textContent = formatValue((range[0] ?? 0) * scale);
    parts.high.textContent = formatValue((range[1] ?? 1) * scale);
  }

  function showText(): void {
    setText(parts.method, model.get("method") ?? "");
    setText(parts.status, model.get("status") ?? "");
    setText(parts.device, model.get("device") ?? "");
  }

  function showOpacity(): void {
    const opacity = model.get("opacity") ?? 0.5;
    parts.heatmap.style.opacity = String(opacity);
    parts.opacity.value = String(opacity);
  }

  function showColormap(): void {
    parts.colormap.value = model.get("colormap") || AUTO;
  }

  const sendOpacity = debounce((value: number) => {
    model.set("opacity", value);
    model.save_changes();
  }, 120);

  const onOpacityInput = (): void => {
    const value = Number(parts.opacity.value);
    parts.heatmap.style.opacity = String(value);
    sendOpacity.call(value);
  };
  const onColormapChange = (): void => {
    model.set("colormap", parts.colormap.value);
    model.save_changes();
  };
  parts.opacity.addEventListener("input", onOpacityInput);
  parts.colormap.addEventListener("change", onColormapChange);

  // Traits sent together arrive as several change events: draw once.
  let pending = new Set<string>();
  function schedule(step: "image" | "heatmap"): void {
    if (pending.size === 0) {
      queueMicrotask(() => {
        const steps = pending;
        pending = new Set();
        if (steps.has("image")) {
          guarded("drawing the image", drawImage);
        }
        if (steps.has("heatmap")) {
          guarded("drawing the heatmap", drawHeatmap);
        }
      });
    }
    pending.add(step);
  }
  const image = (): void => schedule("image");
  const heatmap = (): void => schedule("heatmap");

  const handlers: [string, () => void][] = [
    ["change:image", image],
    ["change:image_shape", image],
    ["change:version", heatmap],
    ["change:heatmap", heatmap],
    ["change:heatmap_shape", heatmap],
    ["change:value_range", heatmap],
    ["change:value_scale", heatmap],
    ["change:colormap", () => {
      showColormap();
      heatmap();
    }],
    ["change:opacity", showOpacity],
    ["change:method", showText],
    ["change:status", showText],
    ["change:device", showText],
    ["change:error", showErrors],
  ];
  for (const [event, handler] of handlers) {
    model.on(event, handler);
  }

  showText();
  showOpacity();
  showColormap();
  guarded("drawing the image", drawImage);
  guarded("drawing the heatmap", drawHeatmap);

  return () => {
    sendOpacity.cancel();
    for (const [event, handler] of handlers) {
      model.off(event, handler);
    }
    parts.opacity.removeEventListener("input", onOpacityInput);
    parts.colormap.removeEventListener("change", onColormapChange);
    parts.root.remove();
  };
}
