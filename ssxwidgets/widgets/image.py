"""The image explainer: an image with its attribution heatmap on top.

Usage::

    w = ImageExplainer(model, image)            # computes a saliency map
    w.method = "gradient_x_input"               # recomputes
    w.show_map(values)                          # any (H, W) map, no model
    w.explanation                               # the current Explanation

The kernel sends the image and the map as binary buffers; the front end
(``js/src/image.ts``) colour-maps the map with the LUTs of
`ssxwidgets.colormaps` and draws both on canvases.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets
from numpy.typing import ArrayLike, NDArray

from .. import colormaps
from .._errors import SsxWarning
from .._log import logger

__all__ = [
    "ImageExplainer",
    "decode_heatmap",
    "display_image",
    "encode_heatmap",
    "explain_image",
    "value_range_for",
]

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

#: the largest float16 magnitude kept; larger normalised values are clipped
_FLOAT16_LIMIT = 60000.0

#: the percentile of |values| that sets the colour range (robust to outliers)
_RANGE_PERCENTILE = 99.5


def _bundle() -> Path | str:
    if _BUNDLE.is_file():
        return _BUNDLE
    logger.warning("front-end bundle %s is missing; the widget shows why", _BUNDLE)
    return _MISSING_BUNDLE_ESM


def _styles() -> Path | str:
    return _STYLES if _STYLES.is_file() else ""


def display_image(image: ArrayLike) -> tuple[NDArray[np.uint8], tuple[int, int, int]]:
    """The uint8 pixels the front end draws for ``image``.

    Parameters
    ----------
    image
        ``(H, W)``, ``(H, W, C)`` or ``(1, H, W, C)``. Floats in [0, 1] are
        scaled by 255, floats in [0, 255] kept, other floats stretched from
        their minimum to their maximum; integers clipped to [0, 255]. One
        channel becomes grey RGB; C other than 1, 3 or 4 shows the channel
        mean in grey.

    Returns
    -------
    pixels, shape
        ``(H, W, C)`` uint8 pixels with C = 3 or 4, and that shape.
    """
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(
            "expected one image of shape (H, W), (H, W, C) or (1, H, W, C); "
            f"got shape {array.shape}"
        )
    if array.shape[-1] not in (1, 3, 4):
        array = array.mean(axis=-1, keepdims=True)

    if array.dtype == bool:
        pixels = array.astype(np.float64) * 255.0
    elif np.issubdtype(array.dtype, np.integer):
        pixels = np.clip(array, 0, 255).astype(np.float64)
    else:
        pixels = np.nan_to_num(array.astype(np.float64))
        lo, hi = float(pixels.min(initial=0.0)), float(pixels.max(initial=0.0))
        if lo >= 0.0 and hi <= 1.0:
            pixels = pixels * 255.0
        elif lo < 0.0 or hi > 255.0:
            pixels = (pixels - lo) / ((hi - lo) or 1.0) * 255.0

    out = np.floor(pixels + 0.5).astype(np.uint8)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    h, w, c = out.shape
    return np.ascontiguousarray(out), (h, w, c)


def value_range_for(values: ArrayLike) -> tuple[float, float]:
    """The colour range of a map: symmetric when it has negative values.

    Uses the 99.5th percentile of ``|values|`` so that a few extreme pixels
    do not wash out the rest; ``(-q, q)`` when any value is negative,
    ``(0, q)`` otherwise, ``(0, 1)`` for an all-zero or all-NaN map.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    magnitude = np.abs(v)
    q = float(np.percentile(magnitude, _RANGE_PERCENTILE))
    if q <= 0.0:
        q = float(magnitude.max())
    if q <= 0.0:
        q = 1.0
    return (-q, q) if float(v.min()) < 0.0 else (0.0, q)


def _scale_for(value_range: tuple[float, float]) -> float:
    """A power of two near the range's magnitude, so the map fits float16."""
    magnitude = max(abs(value_range[0]), abs(value_range[1]))
    if not math.isfinite(magnitude) or magnitude <= 0.0:
        return 1.0
    return float(2.0 ** math.ceil(math.log2(magnitude)))


def encode_heatmap(values: ArrayLike, scale: float = 1.0) -> bytes:
    """``values / scale`` as float16 little-endian bytes, row-major.

    Parameters
    ----------
    values
        ``(H, W)`` floats; NaN stays NaN, magnitudes past 60000 are clipped.
    scale
        What one unit of the encoded values is worth; a power of two keeps
        the division exact.
    """
    v = np.asarray(values, dtype=np.float64) / scale
    v = np.clip(v, -_FLOAT16_LIMIT, _FLOAT16_LIMIT)
    return np.ascontiguousarray(v, dtype="<f2").tobytes()


def decode_heatmap(
    data: bytes, shape: tuple[int, int], scale: float = 1.0
) -> NDArray[np.float32]:
    """The ``(H, W)`` float32 map that :func:`encode_heatmap` encoded."""
    h, w = shape
    if len(data) != 2 * h * w:
        raise ValueError(
            f"expected {2 * h * w} bytes of float16 for shape {shape}; got {len(data)}"
        )
    values = np.frombuffer(data, dtype="<f2").astype(np.float32)
    return values.reshape(h, w) * np.float32(scale)


class ImageExplainer(anywidget.AnyWidget):
    """An image with its attribution map, computed in the kernel.

    Parameters
    ----------
    model
        What `ssxwidgets.api.attribute` accepts: a Keras model, a SavedModel,
        a callable from a numpy batch to a numpy batch, or a `ModelAdapter`.
        ``None`` shows only what :meth:`show_map` is given.
    image
        One image, ``(H, W, C)`` or ``(1, H, W, C)``, as the model takes it.
    method
        The attribution method (see ``ssxwidgets.METHOD_NAMES``).
    target
        What is explained: a class index, ``"top"`` or an ``ssx.targets``
        object; ``None`` for the model's default.
    seed
        Seed of any randomness in the method.
    colormap, opacity
        Initial values of those traits.
    **params
        The method's parameters (``n_steps``, ``n_samples``...).
    """

    _esm = _bundle()
    _css = _styles()

    image = traitlets.Bytes(b"").tag(sync=True)
    """bytes: the picture at display resolution, uint8 RGB or RGBA, row-major,
    shaped by `image_shape`. Default: empty."""

    image_shape = traitlets.Tuple(
        traitlets.Int(), traitlets.Int(), traitlets.Int(), default_value=(0, 0, 3)
    ).tag(sync=True)
    """tuple[int, int, int]: ``(H, W, C)`` of `image`, C = 3 or 4.
    Default: ``(0, 0, 3)`` (no image)."""

    heatmap = traitlets.Bytes(b"").tag(sync=True)
    """bytes: the ``(H, W)`` map divided by `value_scale`, float16
    little-endian, row-major. Default: empty (nothing drawn)."""

    heatmap_shape = traitlets.Tuple(
        traitlets.Int(), traitlets.Int(), default_value=(0, 0)
    ).tag(sync=True)
    """tuple[int, int]: ``(H, W)`` of `heatmap`. Default: ``(0, 0)``."""

    value_scale = traitlets.Float(1.0).tag(sync=True)
    """float: what one unit of `heatmap` and `value_range` is worth in the
    map's own units (a power of two that keeps the map within float16).
    Default: ``1.0``."""

    value_range = traitlets.Tuple(
        traitlets.Float(), traitlets.Float(), default_value=(0.0, 1.0)
    ).tag(sync=True)
    """tuple[float, float]: ``(lo, hi)`` in `heatmap` units; ``lo`` gets the
    colour map's first colour, ``hi`` its last, values beyond are clipped.
    Default: ``(0.0, 1.0)``; set from each new map."""

    colormap = traitlets.Unicode(colormaps.AUTO).tag(sync=True)
    """str: a name of `ssxwidgets.colormaps.COLORMAPS`, or ``"auto"``: the
    colour-blind-safe diverging ``"blue_red"`` when `value_range` is signed,
    the sequential ``"viridis"`` for magnitudes. Default: ``"auto"``."""

    opacity = traitlets.Float(0.6).tag(sync=True)
    """float: opacity of the heatmap over the image, 0 to 1. Default: 0.6."""

    version = traitlets.Int(0).tag(sync=True)
    """int: version of the map in `heatmap`, one more with every newer
    result; the front end drops older ones. Default: 0 (no map yet)."""

    method = traitlets.Unicode("saliency").tag(sync=True)
    """str: the attribution method; setting it recomputes the map.
    Default: ``"saliency"``."""

    status = traitlets.Unicode("").tag(sync=True)
    """str: one line on what the kernel is doing or did, shown as text.
    Default: empty."""

    error = traitlets.Unicode("").tag(sync=True)
    """str: the last error of the computation, shown inside the widget;
    empty when the last computation succeeded. Default: empty."""

    device = traitlets.Unicode("").tag(sync=True)
    """str: where the model runs, e.g. ``"CPU"`` or ``"GPU:0 (...)"``.
    Default: empty until the first result."""

    @traitlets.validate("opacity")
    def _check_opacity(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0.0 <= value <= 1.0:
            raise traitlets.TraitError(f"opacity must be in [0, 1]; got {value}")
        return value

    @traitlets.validate("colormap")
    def _check_colormap(self, proposal: dict[str, Any]) -> str:
        name = str(proposal["value"])
        if name != colormaps.AUTO and name not in colormaps.COLORMAPS:
            known = ", ".join(["auto", *colormaps.COLORMAPS])
            raise traitlets.TraitError(f"colormap must be one of {known}; got {name!r}")
        return name

    def __init__(
        self,
        model: Any = None,
        image: ArrayLike | None = None,
        *,
        method: str = "saliency",
        target: Any = None,
        seed: int = 0,
        colormap: str = colormaps.AUTO,
        opacity: float = 0.6,
        **params: Any,
    ) -> None:
        super().__init__(method=method, colormap=colormap, opacity=opacity)
        self._lock = threading.Lock()
        self._model = model
        self._inputs: NDArray[Any] | None = None
        self._target = target
        self._seed = seed
        self._params = params
        self._explanation: Any = None
        if image is not None:
            self.set_image(image)
        self.observe(self._on_method, names="method")
        if model is not None and image is not None:
            self.refresh()

    @property
    def explanation(self) -> Any:
        """The `Explanation` on screen, or ``None`` (read only)."""
        return self._explanation

    def set_image(self, image: ArrayLike) -> None:
        """Show ``image`` (``(H, W, C)`` or ``(1, H, W, C)``) and keep it as
        the model's input; call :meth:`refresh` to explain it."""
        pixels, shape = display_image(image)
        array = np.asarray(image)
        if array.ndim == 4 and array.shape[0] > 1:
            warnings.warn(
                f"ImageExplainer shows one image; got a batch of {array.shape[0]}, "
                "showing the first. Pass images[i] to choose another.",
                SsxWarning,
                stacklevel=2,
            )
            array = array[:1]
        self._inputs = array
        with self.hold_sync():
            self.image = pixels.tobytes()
            self.image_shape = shape

    def refresh(self) -> None:
        """Compute the map of the current model, image and method, streaming
        partial results to the front end; errors go to `error`."""
        if self._model is None or self._inputs is None:
            raise ValueError(
                "refresh needs a model and an image; this widget was made without one"
            )
        from ..api import stream

        method = self.method
        started = time.perf_counter()
        self.set_trait("status", f"computing {method}…")
        try:
            for partial in stream(
                self._model,
                self._inputs,
                method,
                self._target,
                seed=self._seed,
                **self._params,
            ):
                self.show_explanation(partial, started=started)
        except Exception as exc:  # shown in the widget, not only logged
            logger.warning("%s failed: %s", method, exc)
            with self.hold_sync():
                self.error = f"{type(exc).__name__}: {exc}"
                self.status = f"{method} failed"

    def show_explanation(
        self, explanation: Any, *, started: float | None = None
    ) -> None:
        """Draw the first map of an `Explanation` and keep it as
        :attr:`explanation`."""
        seconds = (
            "" if started is None else f" in {time.perf_counter() - started:.2f} s"
        )
        progress = float(getattr(explanation, "progress", 1.0))
        state = "done" if progress >= 1.0 else f"{progress:.0%}"
        status = f"{explanation.target} · {state}{seconds}"
        self._explanation = explanation
        self.show_map(
            explanation.map[0],
            method=explanation.method,
            device=explanation.device,
            status=status,
        )

    def show_map(
        self,
        values: ArrayLike,
        *,
        method: str | None = None,
        device: str | None = None,
        status: str = "",
        value_range: tuple[float, float] | None = None,
    ) -> int:
        """Send an ``(H, W)`` map to the front end as a new version.

        Parameters
        ----------
        values
            ``(H, W)`` floats; NaN is drawn transparent.
        method, device, status
            Text to show with it; ``None`` keeps the current one.
        value_range
            ``(lo, hi)`` in the map's units; by default
            :func:`value_range_for` of ``values``.

        Returns
        -------
        int
            The version the map was sent as.
        """
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"expected an (H, W) map; got shape {array.shape}")
        lo, hi = value_range if value_range is not None else value_range_for(array)
        scale = _scale_for((lo, hi))
        data = encode_heatmap(array, scale)

        # The version bump and the send happen under one lock, so a result
        # computed earlier can never be sent as a newer version.
        with self._lock, self.hold_sync():
            self.heatmap = data
            self.heatmap_shape = array.shape
            self.value_scale = scale
            self.value_range = (lo / scale, hi / scale)
            if method is not None and method != self.method:
                self._set_method_quietly(method)
            if device is not None:
                self.device = device
            self.status = status
            self.error = ""
            self.version = self.version + 1
            return int(self.version)

    def _set_method_quietly(self, method: str) -> None:
        """Set `method` to what a result says, without recomputing."""
        self.unobserve(self._on_method, names="method")
        try:
            self.method = method
        finally:
            self.observe(self._on_method, names="method")

    def _on_method(self, change: dict[str, Any]) -> None:
        if self._model is not None and self._inputs is not None:
            self.refresh()

    def heatmap_values(self) -> NDArray[np.float32]:
        """The ``(H, W)`` map as the front end receives it, in map units."""
        shape = (int(self.heatmap_shape[0]), int(self.heatmap_shape[1]))
        return decode_heatmap(self.heatmap, shape, self.value_scale)

    def to_png(self) -> bytes:
        """A PNG of the current view: the image with the heatmap blended on
        top at `opacity`, and a colour bar; what viewers without JavaScript
        show."""
        from ._png import render_png

        return render_png(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view plus a static PNG for viewers without widgets."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        try:
            data = {**data, "image/png": self.to_png()}
        except Exception as exc:  # a picture is a courtesy; never block display
            logger.warning("no static picture of the widget: %s", exc)
        return data, metadata


def explain_image(model: Any, image: ArrayLike, **kwargs: Any) -> ImageExplainer:
    """An `ImageExplainer` of ``model`` on ``image``, computed before return.

    Parameters
    ----------
    model
        See `ImageExplainer`.
    image
        One image ``(H, W, C)`` or ``(1, H, W, C)``.
    **kwargs
        ``method``, ``target``, ``seed``, ``colormap``, ``opacity`` and the
        method's parameters.
    """
    return ImageExplainer(model, image, **kwargs)
