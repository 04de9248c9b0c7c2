// The synced state of ssxwidgets.widgets._view.ImageView, trait by trait.
// Keep in step with ssxwidgets/widgets/_view.py.

/** A value/label pair of a select control. */
export interface Option {
  value: string;
  label: string;
}

/** One method of the Method control. */
export interface MethodOption {
  name: string;
  title: string;
  enabled: boolean;
  /** Why it is greyed out; "" when enabled. */
  reason: string;
}

/** The selection as the brush writes it and the kernel echoes it. */
export interface Brush {
  kind?: string;
  /** One byte per pixel of `shape`, 1 where selected. */
  mask?: DataView | Uint8Array | null;
  segments?: number[];
  shape?: number[];
}

/** One compared method's frame. */
export interface Panel {
  method: string;
  title?: string;
  heatmap?: DataView | null;
  shape?: number[];
  value_scale?: number;
  value_range?: number[];
  version?: number;
  job?: number;
  progress?: number;
  n_evaluations?: number;
  error?: string;
}

/** Traits of the image explainer's view, as the kernel sends them. */
export interface ImageExplainerModel {
  /** uint8 pixels, row-major, `image_shape` = [H, W, C], C = 3 or 4. */
  image: DataView;
  image_shape: number[];
  /** float16 little-endian values of the (h, w) map, row-major. */
  heatmap: DataView;
  heatmap_shape: number[];
  /** What one unit of `heatmap` and `value_range` is worth (legend). */
  value_scale: number;
  /** [lo, hi] in heatmap units: lo gets the first colour, hi the last. */
  value_range: number[];
  /** Version of the frame in `heatmap`; grows with newer frames. */
  version: number;
  /** The job that computed `heatmap`. */
  job: number;
  heatmap_method: string;
  /** The newest job started: frames of older jobs are dropped. */
  current_job: number;
  running: boolean;
  progress: number;
  n_evaluations: number;
  elapsed: number;
  convergence: number | null;
  status: string;
  error: string;
  device: string;
  /** A colour map name, or "auto" (diverging if lo < 0). */
  colormap: string;
  opacity: number;
  show_heatmap: boolean;
  /** uint16 little-endian superpixel ids, `segments_shape`, row-major. */
  segments: DataView;
  segments_shape: number[];
  show_borders: boolean;
  method: string;
  method_options: MethodOption[];
  /** Names of the parameter controls shown for `method`. */
  controls: string[];
  target: string;
  target_options: Option[];
  n_samples: number;
  n_segments: number;
  segmentation: string;
  segmentation_options: string[];
  n_steps: number;
  baseline: string;
  baseline_options: Option[];
  noise: number;
  max_evals: number;
  seed: number;
  /** "rectangle", "lasso" or "superpixels". */
  brush_mode: string;
  brush: Brush;
  /** Methods compared side by side; [] for none. */
  methods: string[];
  compare_default: string[];
  panels: Panel[];
}

/** A decoded (H, W) map. */
export interface Heatmap {
  values: Float32Array;
  height: number;
  width: number;
}
