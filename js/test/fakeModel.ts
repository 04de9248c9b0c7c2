// A stand-in for anywidget's model: traits in a map, change events fired
// synchronously on set, like Backbone's.

import type { AnyModel } from "@anywidget/types";

import type { ImageExplainerModel } from "../src/types";

type Handler = (...args: unknown[]) => void;

export function float16Bytes(bits: number[]): DataView {
  const view = new DataView(new ArrayBuffer(bits.length * 2));
  bits.forEach((b, i) => view.setUint16(2 * i, b, true));
  return view;
}

export function defaults(): ImageExplainerModel {
  return {
    image: new DataView(new ArrayBuffer(0)),
    image_shape: [0, 0, 3],
    heatmap: new DataView(new ArrayBuffer(0)),
    heatmap_shape: [0, 0],
    value_scale: 1,
    value_range: [0, 1],
    version: 0,
    job: 0,
    heatmap_method: "",
    current_job: 0,
    running: false,
    progress: 0,
    n_evaluations: 0,
    elapsed: 0,
    convergence: null,
    status: "",
    error: "",
    device: "",
    colormap: "auto",
    opacity: 0.5,
    show_heatmap: true,
    segments: new DataView(new ArrayBuffer(0)),
    segments_shape: [0, 0],
    show_borders: false,
    method: "saliency",
    method_options: [],
    controls: [],
    target: "top",
    target_options: [],
    n_samples: 1000,
    n_segments: 50,
    segmentation: "slic",
    segmentation_options: ["slic", "grid"],
    n_steps: 64,
    baseline: "zero",
    baseline_options: [],
    noise: 0.15,
    max_evals: 500,
    seed: 0,
    brush_mode: "rectangle",
    brush: {},
    methods: [],
    compare_default: [],
    panels: [],
  };
}

export class FakeModel {
  state: ImageExplainerModel;
  saved = 0;
  private handlers = new Map<string, Set<Handler>>();

  constructor(state: Partial<ImageExplainerModel> = {}) {
    this.state = { ...defaults(), ...state };
  }

  get<K extends keyof ImageExplainerModel>(key: K): ImageExplainerModel[K] {
    return this.state[key];
  }

  set<K extends keyof ImageExplainerModel>(
    key: K,
    value: ImageExplainerModel[K],
  ): void {
    this.state[key] = value;
    for (const handler of this.handlers.get(`change:${key}`) ?? []) {
      handler();
    }
  }

  on(event: string, handler: Handler): void {
    const set = this.handlers.get(event) ?? new Set<Handler>();
    set.add(handler);
    this.handlers.set(event, set);
  }

  off(event?: string | null, handler?: Handler | null): void {
    if (event && handler) {
      this.handlers.get(event)?.delete(handler);
    }
  }

  listeners(): number {
    let n = 0;
    for (const set of this.handlers.values()) {
      n += set.size;
    }
    return n;
  }

  save_changes(): void {
    this.saved += 1;
  }

  send(): void {}

  widget_manager = {
    get_model: () => Promise.reject(new Error("no manager in tests")),
  };

  asModel(): AnyModel<ImageExplainerModel> {
    return this as unknown as AnyModel<ImageExplainerModel>;
  }
}

/** Record what is put on each canvas (happy-dom has no 2D context); the
 * path and fill calls of the overlay are accepted and ignored. */
export function stubCanvas(): Map<HTMLCanvasElement, Uint8ClampedArray> {
  const drawn = new Map<HTMLCanvasElement, Uint8ClampedArray>();
  const proto = HTMLCanvasElement.prototype as unknown as {
    getContext: (this: HTMLCanvasElement) => unknown;
  };
  const ignore = (): void => {};
  proto.getContext = function (this: HTMLCanvasElement) {
    const canvas = this;
    return {
      createImageData: (width: number, height: number) => ({
        width,
        height,
        data: new Uint8ClampedArray(width * height * 4),
      }),
      putImageData: (data: { data: Uint8ClampedArray }) => {
        drawn.set(canvas, data.data);
      },
      clearRect: ignore,
      fillRect: ignore,
      beginPath: ignore,
      moveTo: ignore,
      lineTo: ignore,
      rect: ignore,
      closePath: ignore,
      stroke: ignore,
      setLineDash: ignore,
    };
  };
  return drawn;
}
