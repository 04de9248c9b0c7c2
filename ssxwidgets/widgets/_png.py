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
    from ._view import ImageView

__all__ = ["render_png"]

#: longest side of the picture, as in the front end's stage
_STAGE_PX = 320
#: longest side of a compared method's picture
_PANEL_PX = 160
_BAR_PX = 10
_LINE_PX = 16
_MARGIN = 6
_BACKGROUND = (255, 255, 255)


def _zoom(height: int, width: int, stage_px: int = _STAGE_PX) -> float:
    side = max(height, width)
    return float(stage_px // side) if side <= stage_px else stage_px / side


def _resize(pixels: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    """Nearest-neighbour resize of ``(h, w, C)`` pixels to ``(height, width, C)``."""
    rows = (np.arange(height) * pixels.shape[0] // height).clip(0, pixels.shape[0] - 1)
    cols = (np.arange(width) * pixels.shape[1] // width).clip(0, pixels.shape[1] - 1)
    return pixels[rows][:, cols]


def _stage(
    view: ImageView,
    heatmap: tuple[bytes, tuple[int, int], tuple[float, float]] | None,
    stage_px: int = _STAGE_PX,
) -> NDArray[np.uint8] | None:
    """``(h, w, 3)`` uint8: the image with ``heatmap`` (float16 bytes, its
    ``(h, w)``, its value range) blended on top."""
    ih, iw, ic = (int(x) for x in view.image_shape)
    hh, hw = heatmap[1] if heatmap is not None else (0, 0)
    if ih == 0 and hh == 0:
        return None
    base_h, base_w = (ih, iw) if ih else (hh, hw)
    zoom = _zoom(base_h, base_w, stage_px)
    height, width = max(1, round(base_h * zoom)), max(1, round(base_w * zoom))

    if ih:
        image = np.frombuffer(view.image, dtype=np.uint8).reshape(ih, iw, ic)
        out = _resize(image[..., :3], height, width).astype(np.float64)
    else:
        out = np.full((height, width, 3), 238.0)

    if heatmap is not None and hh and view.show_heatmap:
        data, shape, value_range = heatmap
        values = np.frombuffer(data, dtype="<f2").reshape(shape)
        rgba = colormaps.apply(values, value_range, view.colormap)
        rgba = _resize(rgba, height, width)
        alpha = (rgba[..., 3:] / 255.0) * float(view.opacity)
        out = out * (1.0 - alpha) + rgba[..., :3] * alpha
    return np.floor(out + 0.5).astype(np.uint8)


def _main_heatmap(
    view: ImageView,
) -> tuple[bytes, tuple[int, int], tuple[float, float]] | None:
    hh, hw = (int(x) for x in view.heatmap_shape)
    if hh == 0:
        return None
    lo, hi = (float(v) for v in view.value_range)
    return bytes(view.heatmap), (hh, hw), (lo, hi)


def _panels(view: ImageView) -> list[tuple[str, NDArray[np.uint8]]]:
    """The compared methods' pictures with their titles."""
    out = []
    for panel in view.panels:
        shape = panel.get("shape") or [0, 0]
        heatmap = None
        if panel.get("heatmap") and shape[0]:
            lo, hi = (float(v) for v in panel["value_range"])
            heatmap = (
                bytes(panel["heatmap"]),
                (int(shape[0]), int(shape[1])),
                (lo, hi),
            )
        picture = _stage(view, heatmap, _PANEL_PX)
        if picture is not None:
            out.append((str(panel.get("title", panel.get("method", ""))), picture))
    return out


def render_png(view: ImageView) -> bytes:
    """The PNG bytes of the view's current state.

    Layout, top to bottom: the method and status line, the picture, the
    colour bar with its end values, the compared methods side by side, and
    the error (if any).
    """
    from PIL import Image, ImageDraw, ImageFont

    stage = _stage(view, _main_heatmap(view))
    panels = _panels(view)
    panels_w = sum(p.shape[1] + _MARGIN for _, p in panels)
    panels_h = max((p.shape[0] for _, p in panels), default=0)
    width = max(stage.shape[1] if stage is not None else 0, 240, panels_w)
    font = ImageFont.load_default()
    scale = float(view.value_scale)
    lo, hi = (float(v) * scale for v in view.value_range)
    caption = " · ".join(t for t in (view.status, view.device) if t)
    errors = view.error.splitlines()[:4]

    stage_h = stage.shape[0] if stage is not None else 0
    has_bar = int(view.heatmap_shape[0]) > 0
    height = (
        _MARGIN
        + _LINE_PX
        + stage_h
        + (_MARGIN + _BAR_PX + _LINE_PX if has_bar else 0)
        + (_LINE_PX + panels_h + _MARGIN if panels else 0)
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
        name = colormaps.resolve(view.colormap, (lo, hi))
        ramp = np.broadcast_to(colormaps.lut(name)[None], (_BAR_PX, 256, 3))
        bar = _resize(np.ascontiguousarray(ramp), _BAR_PX, width)
        canvas.paste(Image.fromarray(bar, "RGB"), (_MARGIN, y))
        y += _BAR_PX
        draw.text((_MARGIN, y), f"{lo:.3g}", fill=(85, 85, 85), font=font)
        label = f"{hi:.3g}"
        right = _MARGIN + width - int(draw.textlength(label, font=font))
        draw.text((right, y), label, fill=(85, 85, 85), font=font)
        y += _LINE_PX
    if panels:
        x = _MARGIN
        for title, picture in panels:
            draw.text((x, y), title, fill=(34, 34, 34), font=font)
            canvas.paste(Image.fromarray(picture, "RGB"), (x, y + _LINE_PX))
            x += picture.shape[1] + _MARGIN
        y += _LINE_PX + panels_h + _MARGIN
    for line in errors:
        draw.text((_MARGIN, y), line, fill=(170, 0, 0), font=font)
        y += _LINE_PX

    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
