// The synced state of ssxwidgets.widgets.ImageExplainer, trait by trait.
// Keep in step with ssxwidgets/widgets/image.py.

/** Traits of the image explainer, as the kernel sends them. */
export interface ImageExplainerModel {
  /** uint8 pixels, row-major, `image_shape` = [H, W, C], C = 3 or 4. */
  image: DataView;
  /** [H, W, C] of `image`; [0, 0, 3] before an image is set. */
  image_shape: number[];
  /** float16 little-endian values of the (H, W) map, row-major. */
  heatmap: DataView;
  /** [H, W] of `heatmap`; [0, 0] before the first result. */
  heatmap_shape: number[];
  /** What one unit of `heatmap` and `value_range` is worth (legend). */
  value_scale: number;
  /** [lo, hi] in heatmap units: lo gets the first colour, hi the last. */
  value_range: number[];
  /** A colour map name, or "auto" (diverging if lo < 0). */
  colormap: string;
  /** Heatmap opacity over the image, 0–1. */
  opacity: number;
  /** Version of the explanation in `heatmap`; grows with newer results. */
  version: number;
  /** Name of the attribution method that produced `heatmap`. */
  method: string;
  /** One line of progress or state, shown as text. */
  status: string;
  /** The kernel-side error, shown as text; "" when none. */
  error: string;
  /** Where the kernel computes, e.g. "CPU" or "GPU:0". */
  device: string;
}

/** A decoded (H, W) map. */
export interface Heatmap {
  values: Float32Array;
  height: number;
  width: number;
}
