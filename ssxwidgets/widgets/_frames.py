"""Arrays as the front end receives them: pixels, heatmaps, superpixels.

Heatmaps travel as float16 in units of a power-of-two scale (exact to
divide by, and keeps any magnitude within float16), at display resolution:
a map larger than the stage is averaged down in blocks first.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "STAGE_PX",
    "decode_heatmap",
    "decode_segments",
    "display_image",
    "display_map",
    "encode_heatmap",
    "encode_segments",
    "scale_for",
    "value_range_for",
]

#: longest side of the front end's stage in CSS pixels
STAGE_PX = 320

#: the largest float16 magnitude kept; larger normalised values are clipped
_FLOAT16_LIMIT = 60000.0

#: the percentile of |values| that sets the colour range (robust to outliers)
_RANGE_PERCENTILE = 99.5


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


def display_map(values: ArrayLike, stage_px: int = STAGE_PX) -> NDArray[np.float64]:
    """An ``(H, W)`` map at display resolution: unchanged when it fits the
    stage, else the NaN-ignoring mean of ``k × k`` blocks with the smallest
    ``k`` that makes it fit."""
    array = np.asarray(values, dtype=np.float64)
    h, w = array.shape
    k = math.ceil(max(h, w) / stage_px)
    if k <= 1:
        return array
    out_h, out_w = math.ceil(h / k), math.ceil(w / k)
    padded = np.full((out_h * k, out_w * k), np.nan)
    padded[:h, :w] = array
    blocks = padded.reshape(out_h, k, out_w, k)
    finite = np.isfinite(blocks)
    counts = finite.sum(axis=(1, 3))
    sums = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


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


def scale_for(value_range: tuple[float, float]) -> float:
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


def encode_segments(segments: ArrayLike) -> bytes:
    """``(H, W)`` superpixel ids as uint16 little-endian bytes, row-major.

    Raises
    ------
    ValueError
        When an id is negative or above 65535.
    """
    ids = np.asarray(segments)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 0xFFFF):
        raise ValueError(
            "superpixel ids must be in [0, 65535] to be shown; got ids in "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )
    return np.ascontiguousarray(ids, dtype="<u2").tobytes()


def decode_segments(data: bytes, shape: tuple[int, int]) -> NDArray[np.int64]:
    """The ``(H, W)`` ids that :func:`encode_segments` encoded."""
    ids = np.frombuffer(bytes(data), dtype="<u2")
    return ids.reshape(shape).astype(np.int64)
