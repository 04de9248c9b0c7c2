// @vitest-environment happy-dom
import { beforeEach, describe, expect, it, vi } from "vitest";

import { lut } from "../src/colormaps";
import { BRUSH_DEBOUNCE_MS, renderImage, stageSize } from "../src/image";
import type { ImageExplainerModel } from "../src/types";
import { FakeModel, float16Bytes, stubCanvas } from "./fakeModel";

const HOSTILE = '<img src=x onerror="globalThis.ssxHacked = 1">&amp;';

let drawn: Map<HTMLCanvasElement, Uint8ClampedArray>;

beforeEach(() => {
  document.body.innerHTML = "";
  drawn = stubCanvas();
});

function mount(model: FakeModel): HTMLElement {
  const el = document.createElement("div");
  document.body.append(el);
  renderImage({ model: model.asModel(), el });
  return el;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe("escaping", () => {
  it("shows kernel strings as text, never as markup", async () => {
    const model = new FakeModel({
      status: HOSTILE,
      device: HOSTILE,
      error: HOSTILE,
      heatmap_method: HOSTILE,
      heatmap: float16Bytes([0x3c00]),
      heatmap_shape: [1, 1],
      version: 1,
    });
    const el = mount(model);
    await tick();
    expect(el.querySelector("img")).toBeNull();
    for (const cls of ["method", "status", "device", "error"]) {
      const node = el.querySelector(`.ssx-${cls}`);
      expect(node?.textContent).toBe(HOSTILE);
      expect(node?.children.length).toBe(0);
    }
    expect((globalThis as { ssxHacked?: number }).ssxHacked).toBeUndefined();
  });

  it("keeps a changed status as text", async () => {
    const model = new FakeModel();
    const el = mount(model);
    model.set("status", "<b>bold</b>");
    await tick();
    expect(el.querySelector("b")).toBeNull();
    expect(el.querySelector(".ssx-status")?.textContent).toBe("<b>bold</b>");
  });

  it("shows compared methods' titles and errors as text", async () => {
    const model = new FakeModel({
      image_shape: [1, 1, 3],
      image: new DataView(new Uint8Array([1, 2, 3]).buffer),
      methods: ["lime"],
      panels: [{ method: "lime", title: HOSTILE, error: HOSTILE }],
    });
    const el = mount(model);
    await tick();
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector(".ssx-panel-title")?.textContent).toBe(HOSTILE);
    expect(el.querySelector(".ssx-panel-error")?.textContent).toBe(HOSTILE);
  });
});

describe("drawing", () => {
  it("draws the colour-mapped heatmap and marks its version", () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0x0000, 0x3c00]), // 0, 1
      heatmap_shape: [1, 2],
      value_range: [0, 1],
      colormap: "gray",
      version: 3,
    });
    const el = mount(model);
    const canvas = el.querySelector<HTMLCanvasElement>(".ssx-heatmap");
    expect(canvas?.dataset.ssxVersion).toBe("3");
    expect(canvas?.dataset.drawn).toBe("true");
    const pixels = canvas ? drawn.get(canvas) : undefined;
    expect(Array.from(pixels ?? [])).toEqual([
      0, 0, 0, 255, 255, 255, 255, 255,
    ]);
  });

  it("redraws a newer version and ignores an older one", async () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0x3c00]),
      heatmap_shape: [1, 1],
      colormap: "gray",
      version: 5,
    });
    const el = mount(model);
    const canvas = el.querySelector<HTMLCanvasElement>(".ssx-heatmap");
    model.set("heatmap", float16Bytes([0x0000]));
    model.set("version", 4);
    await tick();
    expect(canvas?.dataset.ssxVersion).toBe("5");
    model.set("version", 6);
    await tick();
    expect(canvas?.dataset.ssxVersion).toBe("6");
    const pixels = canvas ? drawn.get(canvas) : undefined;
    expect(Array.from(pixels ?? [])).toEqual([0, 0, 0, 255]);
  });

  it("drops a frame of an older job once a newer job started", async () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0x3c00]),
      heatmap_shape: [1, 1],
      colormap: "gray",
      version: 2,
      job: 1,
      current_job: 1,
    });
    const el = mount(model);
    const canvas = el.querySelector<HTMLCanvasElement>(".ssx-heatmap");
    model.set("current_job", 2);
    // a late frame of job 1, with a larger version than the one drawn
    model.set("heatmap", float16Bytes([0x0000]));
    model.set("version", 3);
    await tick();
    expect(canvas?.dataset.ssxVersion).toBe("2");
    model.set("job", 2);
    model.set("version", 4);
    await tick();
    expect(canvas?.dataset.ssxVersion).toBe("4");
  });

  it("hides the heatmap to show the image alone", async () => {
    const model = new FakeModel();
    const el = mount(model);
    const toggle = el.querySelector<HTMLInputElement>(".ssx-heatmap-toggle");
    expect(toggle?.checked).toBe(true);
    model.set("show_heatmap", false);
    await tick();
    expect(el.querySelector<HTMLCanvasElement>(".ssx-heatmap")?.hidden).toBe(
      true,
    );
    expect(toggle?.checked).toBe(false);
  });

  it("draws each compared method with its version", async () => {
    const model = new FakeModel({
      image_shape: [1, 1, 3],
      image: new DataView(new Uint8Array([1, 2, 3]).buffer),
      colormap: "gray",
      methods: ["lime", "rise"],
      panels: [
        {
          method: "lime",
          title: "LIME",
          heatmap: float16Bytes([0x3c00]),
          shape: [1, 1],
          value_range: [0, 1],
          version: 7,
          job: 1,
        },
        { method: "rise", title: "RISE" },
      ],
    });
    const el = mount(model);
    await tick();
    const panels = el.querySelectorAll<HTMLElement>(".ssx-panel");
    expect(panels.length).toBe(2);
    const lime = panels[0]?.querySelector<HTMLCanvasElement>(
      ".ssx-panel-heatmap",
    );
    expect(lime?.dataset.ssxVersion).toBe("7");
    expect(Array.from(lime ? (drawn.get(lime) ?? []) : [])).toEqual([
      255, 255, 255, 255,
    ]);
    expect(
      el.querySelector<HTMLInputElement>(".ssx-compare-toggle")?.checked,
    ).toBe(true);
  });

  it("resolves auto to a diverging map for a signed range", () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0xbc00]), // -1
      heatmap_shape: [1, 1],
      value_range: [-1, 1],
      version: 1,
    });
    const el = mount(model);
    const canvas = el.querySelector<HTMLCanvasElement>(".ssx-heatmap");
    expect(canvas?.dataset.ssxColormap).toBe("blue_red");
    const pixels = canvas ? drawn.get(canvas) : undefined;
    expect(Array.from(pixels ?? [])).toEqual([
      ...lut("blue_red").slice(0, 3),
      255,
    ]);
  });

  it("labels the colour bar in the map's own units", () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0x3c00]),
      heatmap_shape: [1, 1],
      value_range: [-0.5, 0.5],
      value_scale: 2 ** -10,
      version: 1,
    });
    const el = mount(model);
    expect(el.querySelector(".ssx-range-low")?.textContent).toBe("-4.88e-4");
    expect(el.querySelector(".ssx-range-high")?.textContent).toBe("4.88e-4");
  });

  it("sizes a small picture by an integer zoom", () => {
    expect(stageSize(64, 64)).toEqual({ height: 320, width: 320 });
    expect(stageSize(32, 48)).toEqual({ height: 192, width: 288 });
    expect(stageSize(640, 320)).toEqual({ height: 320, width: 160 });
  });
});

describe("brush", () => {
  // A 4 × 4 image with two superpixels: left half 0, right half 1.
  const SEGMENTS = new DataView(new ArrayBuffer(32));
  for (let i = 0; i < 16; i++) {
    SEGMENTS.setUint16(2 * i, i % 4 < 2 ? 0 : 1, true);
  }

  function imageModel(extra: Partial<ImageExplainerModel> = {}): FakeModel {
    return new FakeModel({
      image: new DataView(new Uint8Array(48).buffer),
      image_shape: [4, 4, 3],
      segments: SEGMENTS,
      segments_shape: [4, 4],
      ...extra,
    });
  }

  function overlayOf(el: HTMLElement): HTMLCanvasElement {
    const overlay = el.querySelector<HTMLCanvasElement>(".ssx-overlay");
    if (!overlay) {
      throw new Error("no overlay");
    }
    // happy-dom lays nothing out: give the overlay a 40 × 40 box.
    overlay.getBoundingClientRect = () =>
      ({ left: 0, top: 0, width: 40, height: 40 }) as DOMRect;
    return overlay;
  }

  function pointer(type: string, x: number, y: number): PointerEvent {
    return new PointerEvent(type, { clientX: x, clientY: y, button: 0 });
  }

  it("sends a dragged rectangle as a mask and superpixel ids", async () => {
    vi.useFakeTimers();
    try {
      const model = imageModel();
      const el = mount(model);
      const overlay = overlayOf(el);
      overlay.dispatchEvent(pointer("pointerdown", 0, 0));
      overlay.dispatchEvent(pointer("pointermove", 10, 20));
      overlay.dispatchEvent(pointer("pointerup", 20, 40));
      expect(model.saved).toBe(0);
      vi.advanceTimersByTime(BRUSH_DEBOUNCE_MS + 1);
      expect(model.saved).toBe(1);
      const brush = model.get("brush");
      expect(brush.kind).toBe("rectangle");
      expect(brush.segments).toEqual([0]);
      expect(brush.shape).toEqual([4, 4]);
      expect(Array.from(brush.mask as Uint8Array)).toEqual([
        1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0,
      ]);
      expect(el.querySelector(".ssx-selection")?.textContent).toBe(
        "8 pixels, 1 superpixels selected",
      );
    } finally {
      vi.useRealTimers();
    }
  });

  it("toggles clicked superpixels in superpixel mode", async () => {
    vi.useFakeTimers();
    try {
      const model = imageModel({ brush_mode: "superpixels" });
      const el = mount(model);
      const overlay = overlayOf(el);
      overlay.dispatchEvent(pointer("pointerdown", 35, 5));
      overlay.dispatchEvent(pointer("pointerdown", 5, 5));
      vi.advanceTimersByTime(BRUSH_DEBOUNCE_MS + 1);
      expect(model.saved).toBe(1);
      expect(model.get("brush").segments).toEqual([0, 1]);
      expect(model.get("brush").kind).toBe("superpixels");
    } finally {
      vi.useRealTimers();
    }
  });

  it("shows a selection the kernel sets", async () => {
    const mask = new Uint8Array(16);
    mask.fill(1, 0, 4);
    const model = imageModel();
    const el = mount(model);
    model.set("brush", {
      kind: "mask",
      mask: new DataView(mask.buffer),
      segments: [0, 1],
      shape: [4, 4],
    });
    await tick();
    expect(el.querySelector(".ssx-selection")?.textContent).toBe(
      "4 pixels, 2 superpixels selected",
    );
  });
});

describe("errors", () => {
  it("shows a front-end exception inside the widget", () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0x3c00]),
      heatmap_shape: [2, 2],
      version: 1,
    });
    const el = mount(model);
    const error = el.querySelector<HTMLElement>(".ssx-error");
    expect(error?.hidden).toBe(false);
    expect(error?.textContent).toMatch(
      /Front-end error while drawing the heatmap: .*expected 4 float16/,
    );
    const canvas = el.querySelector<HTMLCanvasElement>(".ssx-heatmap");
    expect(canvas?.dataset.drawn).toBeUndefined();
  });

  it("clears a front-end error once the step succeeds", async () => {
    const model = new FakeModel({
      heatmap: float16Bytes([0x3c00]),
      heatmap_shape: [2, 2],
      version: 1,
    });
    const el = mount(model);
    model.set("heatmap_shape", [1, 1]);
    await tick();
    const error = el.querySelector<HTMLElement>(".ssx-error");
    expect(error?.hidden).toBe(true);
  });

  it("shows the kernel's error and hides it when cleared", async () => {
    const model = new FakeModel({ error: "ValueError: bad input" });
    const el = mount(model);
    const error = el.querySelector<HTMLElement>(".ssx-error");
    expect(error?.textContent).toBe("ValueError: bad input");
    model.set("error", "");
    await tick();
    expect(error?.hidden).toBe(true);
  });
});

describe("controls", () => {
  it("sends a colour map chosen in the front end to the kernel", () => {
    const model = new FakeModel();
    const el = mount(model);
    const select = el.querySelector<HTMLSelectElement>(".ssx-colormap");
    if (!select) {
      throw new Error("no colour map control");
    }
    select.value = "inferno";
    select.dispatchEvent(new Event("change"));
    expect(model.get("colormap")).toBe("inferno");
    expect(model.saved).toBe(1);
  });

  it("removes its listeners and elements on cleanup", () => {
    const model = new FakeModel();
    const el = document.createElement("div");
    const cleanup = renderImage({ model: model.asModel(), el });
    expect(model.listeners()).toBeGreaterThan(0);
    cleanup();
    expect(model.listeners()).toBe(0);
    expect(el.children.length).toBe(0);
  });
});
