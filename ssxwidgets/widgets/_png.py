"""A static PNG of an image explainer's view, for viewers without widgets.

The heatmap goes through the same LUTs and the same value-to-colour rule as
the front end (`ssxwidgets.colormaps`). Text is drawn as glyphs, so nothing a
user names can act as markup.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .. import colormaps

if TYPE_CHECKING:
    from .image import ImageExplainer

__all__ = ["render_png"]

#: longest side of the picture, as in the front end's stage
_STAGE_PX = 320
_BAR_PX = 10
_LINE_PX = 16
_MARGIN = 6
_BACKGROUND = (255, 255, 255)


def _zoom(height: int, width: int) -> float:
    side = max(height, width)
    return float(_STAGE_PX // side) if side <= _STAGE_PX else _STAGE_PX / side


def _resize(pixels: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    """Nearest-neighbour resize of ``(h, w, C)`` pixels to ``(height, width, C)``."""
    rows = (np.arange(height) * pixels.shape[0] // height).clip(0, pixels.shape[0] - 1)
    cols = (np.arange(width) * pixels.shape[1] // width).clip(0, pixels.shape[1] - 1)
    return pixels[rows][:, cols]


def _stage(widget: ImageExplainer) -> NDArray[np.uint8] | None:
    """``(h, w, 3)`` uint8: the image with the heatmap blended on top."""
    ih, iw, ic = (int(x) for x in widget.image_shape)
    hh, hw = (int(x) for x in widget.heatmap_shape)
    if ih == 0 and hh == 0:
        return None
    base_h, base_w = (ih, iw) if ih else (hh, hw)
    zoom = _zoom(base_h, base_w)
    height, width = max(1, round(base_h * zoom)), max(1, round(base_w * zoom))

    if ih:
        image = np.frombuffer(widget.image, dtype=np.uint8).reshape(ih, iw, ic)
        out = _resize(image[..., :3], height, width).astype(np.float64)
    else:
        out = np.full((height, width, 3), 238.0)

    if hh:
        values = np.frombuffer(widget.heatmap, dtype="<f2").reshape(hh, hw)
        rgba = colormaps.apply(values, tuple(widget.value_range), widget.colormap)
        rgba = _resize(rgba, height, width)
        alpha = (rgba[..., 3:] / 255.0) * float(widget.opacity)
        out = out * (1.0 - alpha) + rgba[..., :3] * alpha
    return np.floor(out + 0.5).astype(np.uint8)


def render_png(widget: ImageExplainer) -> bytes:
    """The PNG bytes of the widget's current view.

    Layout, top to bottom: the method and status line, the picture, the
    colour bar with its end values, and the error (if any).
    """
    from PIL import Image, ImageDraw, ImageFont

    stage = _stage(widget)
    width = max(stage.shape[1] if stage is not None else 0, 240)
    font = ImageFont.load_default()
    scale = float(widget.value_scale)
    lo, hi = (float(v) * scale for v in widget.value_range)
    caption = " · ".join(t for t in (widget.method, widget.status, widget.device) if t)
    errors = widget.error.splitlines()[:4]

    stage_h = stage.shape[0] if stage is not None else 0
    has_bar = int(widget.heatmap_shape[0]) > 0
    height = (
        _MARGIN
        + _LINE_PX
        + stage_h
        + (_MARGIN + _BAR_PX + _LINE_PX if has_bar else 0)
        + _LINE_PX * len(errors)
        + _MARGIN
    )
    canvas = Image.new("RGB", (width + 2 * _MARGIN, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    y = _MARGIN
    draw.text((_MARGIN, y), caption, fill=(34, 34, 34), font=font)
    y += _LINE_PX
    if stage is not None:
        canvas.paste(Image.fromarray(stage, "RGB"), (_MARGIN, y))
        y += stage_h
    if has_bar:
        y += _MARGIN
        name = colormaps.resolve(widget.colormap, (lo, hi))
        ramp = np.broadcast_to(colormaps.lut(name)[None], (_BAR_PX, 256, 3))
        bar = _resize(np.ascontiguousarray(ramp), _BAR_PX, width)
        canvas.paste(Image.fromarray(bar, "RGB"), (_MARGIN, y))
        y += _BAR_PX
        draw.text((_MARGIN, y), f"{lo:.3g}", fill=(85, 85, 85), font=font)
        label = f"{hi:.3g}"
        right = _MARGIN + width - int(draw.textlength(label, font=font))
        draw.text((right, y), label, fill=(85, 85, 85), font=font)
        y += _LINE_PX
    for line in errors:
        draw.text((_MARGIN, y), line, fill=(170, 0, 0), font=font)
        y += _LINE_PX

    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
