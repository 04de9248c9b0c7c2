// The view of ImageExplainer: the image with its live heatmap, the legend,
// display toggles, the brush, the controls, progress, compared methods and
// errors. Every string from the kernel goes in as text, never as markup.

import type { AnyModel, RenderProps } from "@anywidget/types";

import {
  borderEdges,
  countSelected,
  lassoMask,
  type Mask,
  maskOfSegments,
  type Point,
  rectangleMask,
  segmentAt,
  segmentsInMask,
  toggleSegment,
  toImagePoint,
} from "./brush";
import { asBytes, decodeFloat16, decodeUint16, toRgba } from "./buffers";
import {
  AUTO,
  applyColormap,
  colormapNames,
  lut,
  resolveColormap,
} from "./colormaps";
import { buildControls, formatSetting } from "./controls";
import { debounce, describe, element, formatValue, setText } from "./dom";
import { FrameGate } from "./frames";
import { putPixels, Stage } from "./stage";
import type { ImageExplainerModel, Panel } from "./types";

export { stageSize } from "./stage";

type Model = AnyModel<ImageExplainerModel>;

/** Milliseconds a finished brush stroke waits before going to the kernel. */
export const BRUSH_DEBOUNCE_MS = 150;

/** Longest side of the main stage and of a compared method's, CSS px. */
const STAGE_PX = 320;
const PANEL_PX = 160;

const BRUSH_MODES: [string, string][] = [
  ["rectangle", "Rectangle"],
  ["lasso", "Lasso"],
  ["superpixels", "Superpixels"],
];

/** A drawn frame, kept to redraw on a colour map or range change. */
interface Frame {
  values: Float32Array;
  height: number;
  width: number;
  range: number[];
}

/** The selection as the view holds it. */
interface Selection {
  kind: string;
  mask: Mask;
  segments: number[];
}

/** Text of the progress line: evaluations, time, device, convergence. */
export function statsText(
  evaluations: number,
  seconds: number,
  device: string,
  convergence: number | null,
): string {
  const parts = [
    evaluations > 0
      ? `${evaluations.toLocaleString("en-US")} evaluations`
      : "no new evaluations",
    `${seconds.toFixed(1)} s`,
  ];
  if (device) {
    parts.push(device);
  }
  if (convergence !== null && Number.isFinite(convergence)) {
    parts.push(`last change ${formatValue(100 * convergence)} %`);
  }
  return parts.join(" · ");
}

function labelled(
  text: string,
  control: HTMLInputElement | HTMLSelectElement,
): HTMLLabelElement {
  const label = element("label", "ssx-control", `${text} `);
  label.append(control);
  return label;
}

function checkbox(className: string): HTMLInputElement {
  const box = element("input", className);
  box.type = "checkbox";
  return box;
}

/** The anywidget render function of ImageExplainer. */
export function renderImage({
  model,
  el,
}: Pick<RenderProps<ImageExplainerModel>, "model" | "el">): () => void {
  const failures = new Map<string, string>();
  const gate = new FrameGate();
  const panelGates = new Map<string, FrameGate>();
  let frame: Frame | null = null;
  let segments: Uint16Array | null = null;
  let edges: number[][] | null = null;
  let selection: Selection | null = null;
  let drawing: { kind: string; points: Point[] } | null = null;
  let receivedAt = performance.now();

  // -- the parts -----------------------------------------------------------
  const root = element("div", "ssx-image");
  const header = element("div", "ssx-header");
  const methodText = element("span", "ssx-method");
  const statusText = element("span", "ssx-status");
  const deviceText = element("span", "ssx-device");
  header.append(methodText, statusText, deviceText);

  const stage = new Stage("ssx-stage", "ssx-heatmap", STAGE_PX);
  stage.heatmap.setAttribute("aria-label", "attribution heatmap");
  stage.overlay.setAttribute("aria-label", "brush a region of the image");

  const legend = element("div", "ssx-legend");
  const low = element("span", "ssx-range-low");
  const bar = element("canvas", "ssx-colorbar");
  const high = element("span", "ssx-range-high");
  legend.append(low, bar, high);

  const display = element("div", "ssx-display");
  const heatmapToggle = checkbox("ssx-heatmap-toggle");
  const opacity = element("input", "ssx-opacity");
  opacity.type = "range";
  opacity.min = "0";
  opacity.max = "1";
  opacity.step = "0.05";
  const colormap = element("select", "ssx-colormap");
  for (const name of [AUTO, ...colormapNames()]) {
    const option = element("option", "", name);
    option.value = name;
    colormap.append(option);
  }
  const bordersToggle = checkbox("ssx-borders-toggle");
  display.append(
    labelled("Heatmap", heatmapToggle),
    labelled("Opacity", opacity),
    labelled("Colour map", colormap),
    labelled("Borders", bordersToggle),
  );

  const brushBar = element("div", "ssx-brush");
  brushBar.setAttribute("role", "radiogroup");
  brushBar.setAttribute("aria-label", "Brush");
  const brushName = `ssx-brush-${Math.random().toString(36).slice(2)}`;
  const brushInputs = BRUSH_MODES.map(([value, text]) => {
    const input = element("input", "ssx-brush-mode");
    input.type = "radio";
    input.name = brushName;
    input.value = value;
    brushBar.append(labelled(text, input));
    return input;
  });
  const clear = element("button", "ssx-clear", "Clear selection");
  clear.type = "button";
  const summary = element("span", "ssx-selection");
  brushBar.append(clear, summary);

  const controls = buildControls(model);
  const compareToggle = checkbox("ssx-compare-toggle");
  controls.root.append(labelled("Compare methods", compareToggle));

  const progressRow = element("div", "ssx-progress-row");
  const progress = element("progress", "ssx-progress");
  progress.max = 1;
  progress.setAttribute("aria-label", "Progress");
  const stats = element("span", "ssx-stats");
  progressRow.append(progress, stats);

  const compare = element("div", "ssx-compare");
  const error = element("pre", "ssx-error");
  error.setAttribute("role", "alert");
  error.hidden = true;

  const left = element("div", "ssx-left");
  left.append(stage.root, legend, display, brushBar);
  const body = element("div", "ssx-body");
  body.append(left, controls.root);
  root.append(header, body, progressRow, compare, error);
  el.append(root);

  // -- errors --------------------------------------------------------------
  function showErrors(): void {
    const lines: string[] = [];
    const kernel = model.get("error");
    if (kernel) {
      lines.push(kernel);
    }
    for (const [step, message] of failures) {
      lines.push(
        `Front-end error while ${step}: ${message}. Your settings are kept; ` +
          "re-run the cell if the view stays wrong.",
      );
    }
    setText(error, lines.join("\n"));
  }

  // Run one step; whatever it throws is shown inside the widget.
  function guarded(step: string, fn: () => void): void {
    try {
      fn();
      failures.delete(step);
    } catch (problem) {
      failures.set(step, describe(problem));
    }
    showErrors();
  }

  function methodTitle(name: string): string {
    const option = (model.get("method_options") ?? []).find(
      (o) => o.name === name,
    );
    return option ? option.title : name;
  }

  // -- the picture ---------------------------------------------------------
  function imageShape(): [number, number, number] {
    const [h = 0, w = 0, c = 3] = model.get("image_shape") ?? [];
    return [h, w, c];
  }

  function layout(): void {
    const [ih, iw] = imageShape();
    const [hh = 0, hw = 0] = model.get("heatmap_shape") ?? [];
    if (ih > 0) {
      stage.layout(ih, iw);
    } else {
      stage.layout(hh, hw);
    }
    bar.style.width = `${Math.max(stage.size.width, 120)}px`;
  }

  function drawImage(): void {
    const [h, w, c] = imageShape();
    stage.image.hidden = h === 0;
    if (h > 0) {
      stage.drawImage(toRgba(model.get("image"), h, w, c), h, w);
    }
    layout();
    drawOverlay();
  }

  function drawFrame(): void {
    gate.seeJob(model.get("current_job") ?? 0);
    const version = model.get("version") ?? 0;
    const job = model.get("job") ?? 0;
    const [h = 0, w = 0] = model.get("heatmap_shape") ?? [];
    if (h === 0 || w === 0 || !gate.accept(job, version)) {
      return; // nothing yet, or older than what is on screen: drop it
    }
    const scaled = model.get("value_range") ?? [0, 1];
    frame = {
      values: decodeFloat16(model.get("heatmap"), h * w),
      height: h,
      width: w,
      range: scaled,
    };
    redraw();
    stage.heatmap.dataset.ssxVersion = String(version);
    stage.heatmap.dataset.drawn = "true";
    setText(methodText, methodTitle(model.get("heatmap_method") ?? ""));
  }

  function redraw(): void {
    const range = frame?.range ?? model.get("value_range") ?? [0, 1];
    const name = resolveColormap(model.get("colormap"), range);
    const table = lut(name);
    drawLegend(table, range);
    if (frame) {
      stage.drawHeatmap(frame.values, frame.height, frame.width, range, table);
      stage.heatmap.dataset.ssxColormap = name;
    }
    layout();
  }

  function drawLegend(table: Uint8Array, range: number[]): void {
    const ramp = new Float32Array(256);
    for (let i = 0; i < ramp.length; i++) {
      ramp[i] = i;
    }
    putPixels(bar, applyColormap(ramp, [0, 255], table), 1, 256);
    const scale = model.get("value_scale") ?? 1;
    low.textContent = formatValue((range[0] ?? 0) * scale);
    high.textContent = formatValue((range[1] ?? 1) * scale);
  }

  function readSegments(): void {
    const [h = 0, w = 0] = model.get("segments_shape") ?? [];
    segments = h > 0 ? decodeUint16(model.get("segments"), h * w) : null;
    edges = segments ? borderEdges(segments, h, w) : null;
    if (selection && segments && selection.kind !== "superpixels") {
      selection.segments = segmentsInMask(selection.mask, segments);
    }
    drawOverlay();
    showSummary();
  }

  function drawOverlay(): void {
    const borders = model.get("show_borders") ?? false;
    stage.drawOverlay({
      edges: borders ? edges : null,
      selection: selection && selection.kind !== "none" ? selection.mask : null,
      drawing,
    });
  }

  // -- the selection -------------------------------------------------------
  function showSummary(): void {
    if (!selection || selection.kind === "none") {
      setText(summary, "");
      return;
    }
    const n = countSelected(selection.mask);
    const k = selection.segments.length;
    setText(summary, `${n} pixels, ${k} superpixels selected`);
  }

  const sendBrush = debounce((value: Selection | null) => {
    model.set(
      "brush",
      value === null
        ? {}
        : {
            kind: value.kind,
            mask: value.mask.data,
            segments: value.segments,
            shape: [value.mask.height, value.mask.width],
          },
    );
    model.save_changes();
  }, BRUSH_DEBOUNCE_MS);

  function select(value: Selection | null): void {
    selection = value;
    drawOverlay();
    showSummary();
    sendBrush.call(value);
  }

  function readBrush(): void {
    const brush = model.get("brush") ?? {};
    const [h, w] = imageShape();
    if (!brush.kind || brush.kind === "none" || h === 0) {
      selection = null;
    } else {
      const data = asBytes(brush.mask);
      const mask = {
        data:
          data.length === h * w ? new Uint8Array(data) : new Uint8Array(h * w),
        height: h,
        width: w,
      };
      selection = {
        kind: brush.kind,
        mask,
        segments: [...(brush.segments ?? [])],
      };
    }
    drawOverlay();
    showSummary();
  }

  function pointOf(event: PointerEvent): Point {
    const [h, w] = imageShape();
    const box = stage.overlay.getBoundingClientRect();
    return toImagePoint(
      event.clientX - box.left,
      event.clientY - box.top,
      box.width,
      box.height,
      h,
      w,
    );
  }

  function finish(kind: string, mask: Mask): void {
    if (countSelected(mask) === 0) {
      select(null);
      return;
    }
    const ids = segments ? segmentsInMask(mask, segments) : [];
    select({ kind, mask, segments: ids });
  }

  const onPointerDown = (event: PointerEvent): void => {
    guarded("starting a brush stroke", () => {
      const [h, w] = imageShape();
      if (h === 0 || event.button !== 0) {
        return;
      }
      event.preventDefault();
      const mode = model.get("brush_mode") || "rectangle";
      const p = pointOf(event);
      if (mode === "superpixels") {
        if (!segments) {
          throw new Error("the superpixels are not computed yet");
        }
        const id = segmentAt(p, segments, h, w);
        if (id < 0) {
          return;
        }
        const base =
          selection?.kind === "superpixels" ? selection.segments : [];
        const ids = toggleSegment(base, id);
        const mask = maskOfSegments(ids, segments, h, w);
        select(
          ids.length ? { kind: "superpixels", mask, segments: ids } : null,
        );
        return;
      }
      drawing = { kind: mode, points: [p] };
      stage.overlay.setPointerCapture?.(event.pointerId);
      drawOverlay();
    });
  };
  const onPointerMove = (event: PointerEvent): void => {
    if (!drawing) {
      return;
    }
    const p = pointOf(event);
    if (drawing.kind === "rectangle") {
      drawing.points = [drawing.points[0] ?? p, p];
    } else {
      drawing.points.push(p);
    }
    guarded("drawing the brush", drawOverlay);
  };
  const onPointerUp = (event: PointerEvent): void => {
    if (!drawing) {
      return;
    }
    const stroke = drawing;
    drawing = null;
    guarded("finishing a brush stroke", () => {
      const [h, w] = imageShape();
      const p = pointOf(event);
      const first = stroke.points[0] ?? p;
      if (stroke.kind === "rectangle") {
        finish("rectangle", rectangleMask(first, p, h, w));
      } else {
        finish("lasso", lassoMask([...stroke.points, p], h, w));
      }
    });
  };
  stage.overlay.addEventListener("pointerdown", onPointerDown);
  stage.overlay.addEventListener("pointermove", onPointerMove);
  stage.overlay.addEventListener("pointerup", onPointerUp);

  const onClear = (): void => {
    sendBrush.cancel();
    select(null);
    sendBrush.flush();
  };
  clear.addEventListener("click", onClear);

  const onBrushMode = (event: Event): void => {
    const input = event.target as HTMLInputElement;
    model.set("brush_mode", input.value);
    model.save_changes();
  };
  for (const input of brushInputs) {
    input.addEventListener("change", onBrushMode);
  }
  function showBrushMode(): void {
    const mode = model.get("brush_mode") || "rectangle";
    for (const input of brushInputs) {
      input.checked = input.value === mode;
    }
  }

  // -- display toggles -----------------------------------------------------
  function showDisplay(): void {
    const shown = model.get("show_heatmap") ?? true;
    heatmapToggle.checked = shown;
    stage.heatmap.hidden = !shown;
    const value = model.get("opacity") ?? 0.6;
    stage.heatmap.style.opacity = String(value);
    opacity.value = String(value);
    colormap.value = model.get("colormap") || AUTO;
    bordersToggle.checked = model.get("show_borders") ?? false;
  }

  const sendOpacity = debounce((value: number) => {
    model.set("opacity", value);
    model.save_changes();
  }, 120);
  const onOpacity = (): void => {
    const value = Number(opacity.value);
    stage.heatmap.style.opacity = String(value);
    sendOpacity.call(value);
  };
  const onColormap = (): void => {
    model.set("colormap", colormap.value);
    model.save_changes();
  };
  const onHeatmapToggle = (): void => {
    model.set("show_heatmap", heatmapToggle.checked);
    model.save_changes();
  };
  const onBorders = (): void => {
    model.set("show_borders", bordersToggle.checked);
    model.save_changes();
  };
  const onCompare = (): void => {
    model.set(
      "methods",
      compareToggle.checked ? [...(model.get("compare_default") ?? [])] : [],
    );
    model.save_changes();
  };
  const listeners: [HTMLElement, string, (e: Event) => void][] = [
    [opacity, "input", onOpacity],
    [colormap, "change", onColormap],
    [heatmapToggle, "change", onHeatmapToggle],
    [bordersToggle, "change", onBorders],
    [compareToggle, "change", onCompare],
  ];
  for (const [target, event, handler] of listeners) {
    target.addEventListener(event, handler);
  }

  // -- progress ------------------------------------------------------------
  function showProgress(): void {
    receivedAt = performance.now();
    const running = model.get("running") ?? false;
    progress.value = running ? (model.get("progress") ?? 0) : 1;
    root.dataset.running = String(running);
    showStats();
  }

  function showStats(): void {
    const running = model.get("running") ?? false;
    const base = model.get("elapsed") ?? 0;
    const since = (performance.now() - receivedAt) / 1000;
    const seconds = running ? base + since : base;
    setText(
      stats,
      statsText(
        model.get("n_evaluations") ?? 0,
        seconds,
        model.get("device") ?? "",
        model.get("convergence") ?? null,
      ),
    );
  }
  const ticker = setInterval(() => {
    if (model.get("running")) {
      showStats();
    }
  }, 250);

  function showText(): void {
    setText(statusText, model.get("status") ?? "");
    setText(deviceText, model.get("device") ?? "");
  }

  // -- compared methods ----------------------------------------------------
  const panelParts = new Map<
    string,
    { box: HTMLElement; stage: Stage; info: HTMLElement; error: HTMLElement }
  >();

  function drawPanels(): void {
    const panels: Panel[] = model.get("panels") ?? [];
    compareToggle.checked = (model.get("methods") ?? []).length > 0;
    compare.hidden = panels.length === 0;
    const wanted = new Set(panels.map((p) => p.method));
    for (const [name, parts] of panelParts) {
      if (!wanted.has(name)) {
        parts.box.remove();
        panelParts.delete(name);
        panelGates.delete(name);
      }
    }
    const [ih, iw, ic] = imageShape();
    for (const panel of panels) {
      let parts = panelParts.get(panel.method);
      if (!parts) {
        const box = element("figure", "ssx-panel");
        box.dataset.method = panel.method;
        const caption = element("figcaption", "ssx-panel-title");
        const panelStage = new Stage(
          "ssx-panel-stage",
          "ssx-panel-heatmap",
          PANEL_PX,
        );
        const info = element("span", "ssx-panel-info");
        const problem = element("span", "ssx-panel-error");
        box.append(caption, panelStage.root, info, problem);
        compare.append(box);
        parts = { box, stage: panelStage, info, error: problem };
        panelParts.set(panel.method, parts);
        panelGates.set(panel.method, new FrameGate());
      }
      const title = panel.title ?? panel.method;
      setText(parts.box.querySelector("figcaption") as HTMLElement, title);
      parts.stage.heatmap.setAttribute("aria-label", `${title} heatmap`);
      if (ih > 0) {
        parts.stage.layout(ih, iw);
        parts.stage.drawImage(toRgba(model.get("image"), ih, iw, ic), ih, iw);
      }
      setText(parts.error, panel.error ?? "");
      const [h = 0, w = 0] = panel.shape ?? [];
      const panelGate = panelGates.get(panel.method) as FrameGate;
      panelGate.seeJob(model.get("current_job") ?? 0);
      if (
        h > 0 &&
        panel.heatmap &&
        panelGate.accept(panel.job ?? 0, panel.version ?? 0)
      ) {
        const range = panel.value_range ?? [0, 1];
        const name = resolveColormap(model.get("colormap"), range);
        const values = decodeFloat16(panel.heatmap, h * w);
        parts.stage.drawHeatmap(values, h, w, range, lut(name));
        parts.stage.heatmap.style.opacity = String(model.get("opacity") ?? 0.6);
        parts.stage.heatmap.dataset.ssxVersion = String(panel.version ?? 0);
        parts.stage.heatmap.dataset.drawn = "true";
        setText(
          parts.info,
          `${formatSetting(panel.n_evaluations ?? 0)} evaluations · ` +
            `${Math.round(100 * (panel.progress ?? 0))} %`,
        );
      }
    }
  }

  // -- events --------------------------------------------------------------
  // Traits sent together arrive as several change events: draw once.
  let pending = new Set<string>();
  const steps: Record<string, [string, () => void]> = {
    image: ["drawing the image", drawImage],
    frame: ["drawing the heatmap", drawFrame],
    redraw: ["colouring the heatmap", redraw],
    segments: ["reading the superpixels", readSegments],
    brush: ["reading the selection", readBrush],
    panels: ["drawing the compared methods", drawPanels],
  };
  function schedule(step: string): () => void {
    return () => {
      if (pending.size === 0) {
        queueMicrotask(() => {
          const due = pending;
          pending = new Set();
          for (const name of Object.keys(steps)) {
            if (due.has(name)) {
              const [what, fn] = steps[name] as [string, () => void];
              guarded(what, fn);
            }
          }
        });
      }
      pending.add(step);
    };
  }

  const handlers: [string, () => void][] = [
    ["change:image", schedule("image")],
    ["change:image_shape", schedule("image")],
    ["change:version", schedule("frame")],
    ["change:heatmap", schedule("frame")],
    ["change:job", schedule("frame")],
    ["change:heatmap_shape", schedule("frame")],
    ["change:value_range", schedule("frame")],
    ["change:value_scale", schedule("frame")],
    ["change:current_job", () => gate.seeJob(model.get("current_job") ?? 0)],
    ["change:colormap", schedule("redraw")],
    ["change:segments", schedule("segments")],
    ["change:segments_shape", schedule("segments")],
    ["change:show_borders", () => guarded("drawing the borders", drawOverlay)],
    ["change:brush", schedule("brush")],
    ["change:panels", schedule("panels")],
    ["change:methods", schedule("panels")],
    ["change:brush_mode", showBrushMode],
    ["change:opacity", showDisplay],
    ["change:colormap", showDisplay],
    ["change:show_heatmap", showDisplay],
    ["change:show_borders", showDisplay],
    ["change:status", showText],
    ["change:device", showText],
    ["change:error", showErrors],
    ["change:running", showProgress],
    ["change:progress", showProgress],
    ["change:n_evaluations", showProgress],
    ["change:elapsed", showProgress],
    ["change:convergence", showProgress],
    ...controls.handlers,
  ];
  for (const [event, handler] of handlers) {
    model.on(event, handler);
  }

  showText();
  showDisplay();
  showBrushMode();
  showProgress();
  guarded("building the controls", controls.refresh);
  guarded("drawing the image", drawImage);
  guarded("reading the superpixels", readSegments);
  guarded("drawing the heatmap", drawFrame);
  guarded("colouring the heatmap", redraw);
  guarded("reading the selection", readBrush);
  guarded("drawing the compared methods", drawPanels);

  return () => {
    clearInterval(ticker);
    sendOpacity.cancel();
    sendBrush.flush();
    controls.cleanup();
    for (const [event, handler] of handlers) {
      model.off(event, handler);
    }
    for (const [target, event, handler] of listeners) {
      target.removeEventListener(event, handler);
    }
    stage.overlay.removeEventListener("pointerdown", onPointerDown);
    stage.overlay.removeEventListener("pointermove", onPointerMove);
    stage.overlay.removeEventListener("pointerup", onPointerUp);
    clear.removeEventListener("click", onClear);
    for (const input of brushInputs) {
      input.removeEventListener("change", onBrushMode);
    }
    root.remove();
  };
}
