"""The image explainer's front-end half: an anywidget with every synced trait.

`ImageView` holds only state; `ImageExplainer` (``image.py``) computes and
sets it. The front end (``js/src/``) draws the image and its heatmap, shows
the controls, progress and errors, and writes back the controls and the
brush. Arrays travel as binary buffers: the image as uint8 pixels, the
heatmap as float16 in units of `value_scale`, the superpixels as uint16 ids,
the brushed mask as one byte per pixel.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from .. import colormaps
from .._log import logger

__all__ = ["ImageView", "check_colormap", "check_opacity"]

_STATIC = Path(__file__).resolve().parent.parent / "static"
_BUNDLE = _STATIC / "widget.js"
_STYLES = _STATIC / "widget.css"

# Shown instead of the widget when the front-end bundle was never built, so
# the problem appears where the user looks rather than in a log.
_MISSING_BUNDLE_ESM = """
export default {
  render({ el }) {
    const box = document.createElement("pre");
    box.className = "ssx-error";
    box.textContent = "ssxwidgets: the front-end bundle is missing. Build it " +
      "with `npm --prefix js ci && npm --prefix js run build`, or install " +
      "ssxwidgets from a wheel.";
    el.append(box);
  },
};
"""


def _bundle() -> Path | str:
    if _BUNDLE.is_file():
        return _BUNDLE
    logger.warning("front-end bundle %s is missing; the widget shows why", _BUNDLE)
    return _MISSING_BUNDLE_ESM


def _styles() -> Path | str:
    return _STYLES if _STYLES.is_file() else ""


def _pair(default: tuple[int, int] = (0, 0)) -> traitlets.Tuple:
    return traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=default)


class ImageView(anywidget.AnyWidget):
    """The synced state of one image explainer (see ``js/src/types.ts``)."""

    _esm = _bundle()
    _css = _styles()

    # -- the picture -----------------------------------------------------------

    image = traitlets.Bytes(b"").tag(sync=True)
    """bytes: the picture, uint8 RGB or RGBA, row-major, shaped by
    `image_shape`. Default: empty."""

    image_shape = traitlets.Tuple(
        traitlets.Int(), traitlets.Int(), traitlets.Int(), default_value=(0, 0, 3)
    ).tag(sync=True)
    """tuple[int, int, int]: ``(H, W, C)`` of `image`, C = 3 or 4.
    Default: ``(0, 0, 3)`` (no image)."""

    # -- the heatmap (one frame, sent together) ----------------------------------

    heatmap = traitlets.Bytes(b"").tag(sync=True)
    """bytes: the ``(h, w)`` map divided by `value_scale`, float16
    little-endian, row-major, at display resolution. Default: empty."""

    heatmap_shape = _pair().tag(sync=True)
    """tuple[int, int]: ``(h, w)`` of `heatmap`. Default: ``(0, 0)``."""

    value_scale = traitlets.Float(1.0).tag(sync=True)
    """float: what one unit of `heatmap` and `value_range` is worth in the
    map's own units (a power of two). Default: ``1.0``."""

    value_range = traitlets.Tuple(
        traitlets.Float(), traitlets.Float(), default_value=(0.0, 1.0)
    ).tag(sync=True)
    """tuple[float, float]: ``(lo, hi)`` in `heatmap` units, the colour map's
    ends. Default: ``(0.0, 1.0)``."""

    version = traitlets.Int(0).tag(sync=True)
    """int: version of the frame in `heatmap`, larger for every newer frame;
    the front end never draws an older one. Default: 0 (no map)."""

    job = traitlets.Int(0).tag(sync=True)
    """int: the job that computed `heatmap`. Default: 0."""

    heatmap_method = traitlets.Unicode("").tag(sync=True)
    """str: the method that computed `heatmap`. Default: empty."""

    # -- progress ------------------------------------------------------------------

    current_job = traitlets.Int(0).tag(sync=True)
    """int: the newest job started; frames of older jobs are dropped.
    Default: 0."""

    running = traitlets.Bool(False).tag(sync=True)
    """bool: whether a computation runs. Default: ``False``."""

    progress = traitlets.Float(0.0).tag(sync=True)
    """float: how far the computation got, 0 to 1. Default: 0."""

    n_evaluations = traitlets.Int(0).tag(sync=True)
    """int: model evaluations the shown result took. Default: 0."""

    elapsed = traitlets.Float(0.0).tag(sync=True)
    """float: seconds since the computation started. Default: 0."""

    convergence = traitlets.Float(None, allow_none=True).tag(sync=True)
    """float or None: relative change of the estimate at its last step;
    ``None`` for exact methods. Default: ``None``."""

    status = traitlets.Unicode("").tag(sync=True)
    """str: one line on what the kernel is doing or did. Default: empty."""

    error = traitlets.Unicode("").tag(sync=True)
    """str: the last error, with what to do about it; empty when none."""

    device = traitlets.Unicode("").tag(sync=True)
    """str: where the model runs, e.g. ``"CPU"``. Default: empty."""

    # -- display -------------------------------------------------------------------

    colormap = traitlets.Unicode(colormaps.AUTO).tag(sync=True)
    """str: a name of `ssxwidgets.colormaps.COLORMAPS`, or ``"auto"``
    (diverging for signed maps, sequential for magnitudes)."""

    opacity = traitlets.Float(0.6).tag(sync=True)
    """float: opacity of the heatmap over the image, 0 to 1. Default: 0.6."""

    show_heatmap = traitlets.Bool(True).tag(sync=True)
    """bool: ``False`` shows the image alone. Default: ``True``."""

    segments = traitlets.Bytes(b"").tag(sync=True)
    """bytes: superpixel ids, uint16 little-endian, ``segments_shape``,
    row-major: for borders and for picking. Default: empty."""

    segments_shape = _pair().tag(sync=True)
    """tuple[int, int]: ``(H, W)`` of `segments`. Default: ``(0, 0)``."""

    show_borders = traitlets.Bool(False).tag(sync=True)
    """bool: draw superpixel borders (on for superpixel methods)."""

    # -- controls --------------------------------------------------------------------

    method = traitlets.Unicode("saliency").tag(sync=True)
    """str: the attribution method. Default: ``"saliency"``."""

    method_options = traitlets.List(traitlets.Dict()).tag(sync=True)
    """list[dict]: ``name``, ``title``, ``enabled``, ``reason`` per method."""

    controls = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list[str]: the parameter controls shown for `method`."""

    target = traitlets.Unicode("default").tag(sync=True)
    """str: the Target control's key (``"top"``, a class index,
    ``"embedding"``, ``"custom"``)."""

    target_options = traitlets.List(traitlets.Dict()).tag(sync=True)
    """list[dict]: ``value`` and ``label`` of each target."""

    n_samples = traitlets.Int(1000).tag(sync=True)
    """int: samples of a sampling method."""

    n_segments = traitlets.Int(50).tag(sync=True)
    """int: superpixels to aim for."""

    segmentation = traitlets.Unicode("slic").tag(sync=True)
    """str: the segmentation's name, or ``"custom"``."""

    segmentation_options = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list[str]: the segmentation names offered."""

    n_steps = traitlets.Int(64).tag(sync=True)
    """int: integration steps."""

    baseline = traitlets.Unicode("zero").tag(sync=True)
    """str: the Baseline control's key."""

    baseline_options = traitlets.List(traitlets.Dict()).tag(sync=True)
    """list[dict]: ``value`` and ``label`` of each baseline."""

    noise = traitlets.Float(0.15).tag(sync=True)
    """float: SmoothGrad's noise, a fraction of the input range."""

    max_evals = traitlets.Int(500).tag(sync=True)
    """int: Partition SHAP's evaluation budget."""

    seed = traitlets.Int(0).tag(sync=True)
    """int: seed of every random draw."""

    # -- selection and drill-down ----------------------------------------------------

    brush_mode = traitlets.Unicode("rectangle").tag(sync=True)
    """str: ``"rectangle"``, ``"lasso"`` or ``"superpixels"`` (click)."""

    brush = traitlets.Dict().tag(sync=True)
    """dict: the selection: ``kind``, ``mask`` (bytes, one per pixel,
    ``shape``), ``segments`` (ids), ``shape`` ``[H, W]``."""

    # -- compare -----------------------------------------------------------------------

    methods = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list[str]: methods shown side by side; empty: no comparison."""

    compare_default = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list[str]: what the Compare toggle turns on."""

    panels = traitlets.List(traitlets.Dict()).tag(sync=True)
    """list[dict]: one frame per compared method: ``method``, ``title``,
    ``heatmap`` (bytes), ``shape``, ``value_scale``, ``value_range``,
    ``version``, ``job``, ``progress``, ``n_evaluations``, ``error``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sync_lock: threading.RLock = threading.RLock()
        """Held while the front end's changes are applied; the explainer
        shares its own lock here, so a worker thread sending a frame and a
        front-end message never interleave on this widget."""

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply the front end's changes under `sync_lock`."""
        with self.sync_lock:
            super().set_state(sync_data)

    @traitlets.validate("opacity")
    def _check_opacity(self, proposal: dict[str, Any]) -> float:
        return check_opacity(proposal["value"])

    @traitlets.validate("colormap")
    def _check_colormap(self, proposal: dict[str, Any]) -> str:
        return check_colormap(proposal["value"])


def check_opacity(value: Any) -> float:
    """`value` as an opacity in [0, 1], or a `TraitError` saying what arrived."""
    opacity = float(value)
    if not 0.0 <= opacity <= 1.0:
        raise traitlets.TraitError(f"opacity must be in [0, 1]; got {opacity}")
    return opacity


def check_colormap(value: Any) -> str:
    """`value` as a known colour-map name or ``"auto"``, or a `TraitError`."""
    name = str(value)
    if name != colormaps.AUTO and name not in colormaps.COLORMAPS:
        known = ", ".join([colormaps.AUTO, *colormaps.COLORMAPS])
        raise traitlets.TraitError(f"colormap must be one of {known}; got {name!r}")
    return name
