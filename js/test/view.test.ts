// @vitest-environment happy-dom
import { beforeEach, describe, expect, it } from "vitest";

import { lut } from "../src/colormaps";
import { renderImage, stageSize } from "../src/image";
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
  it("shows user strings as text, never as markup", () => {
    const model = new FakeModel({
      method: HOSTILE,
      status: HOSTILE,
      device: HOSTILE,
      error: HOSTILE,
    });
    const el = mount(model);
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
