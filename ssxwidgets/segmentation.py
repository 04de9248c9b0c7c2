"""Superpixels, and inputs with some of their parts replaced.

Superpixel methods (LIME, KernelSHAP and Partition SHAP on images, RELAX's
masks) explain an image as a set of segments: each segment is present (the
image's own pixels) or absent (the baseline's). This module makes the
segments and builds the perturbed inputs, vectorised over many coalitions.

API (stable; other method modules import it):

- ``SEGMENTATION_NAMES``: ``("slic", "quickshift", "felzenszwalb", "grid")``.
- `segment` ``(image (H, W, C), segmentation, n_segments) -> (H, W)`` int32
  ids ``0..S-1``, consecutive.
- `segment_batch` ``(inputs (N, H, W, C), segmentation, n_segments) ->
  (N, H, W)``.
- `check_segmentation` ``(inputs, segmentation, n_segments) -> None``: the
  errors `segment_batch` would raise, without segmenting (a method's
  ``validate``).
- `count_segments` ``(segments (N, H, W)) -> (N,)``: ``S`` of each image.
- `fill_masks` ``(inputs, segments, z (M, S) bool, baseline, rows) ->
  (M, H, W, C)``: segment kept where ``z`` is true, baseline elsewhere.
- `fill_features` ``(inputs (N, F), z (M, F), baseline, rows) -> (M, F)``:
  the same for tables.
- `segment_masks` ``(segments, z (M, S) bool, rows) -> (M, H, W)`` bool:
  the pixels each coalition keeps (what `ModelAdapter.evaluate_blend`
  takes).
- `segment_means` ``(inputs, segments) -> (N, H, W, C)``: every pixel
  replaced by its segment's mean colour (lime_image's ``hide_color=None``).
- `resolve_fill` ``(baseline, inputs, segments, seed)``: a baseline as
  `baselines.resolve_baseline` reads it, plus ``"superpixel_mean"``.
- `to_pixels` ``(segment_values (N, S), segments, channels) ->
  (N, H, W, C)``: each segment's value spread over its pixels, divided by
  the channel count so that a segment's pixels sum to its value.

Usage::

    segments = segment_batch(images, "slic", 50)          # (N, H, W)
    fill = resolve_fill("superpixel_mean", images, segments)
    batch = fill_masks(images, segments, z, fill, rows)    # (M, H, W, C)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .baselines import resolve_baseline

__all__ = [
    "SEGMENTATION_NAMES",
    "check_segmentation",
    "count_segments",
    "fill_features",
    "fill_masks",
    "resolve_fill",
    "segment",
    "segment_batch",
    "segment_masks",
    "segment_means",
    "to_pixels",
]

SEGMENTATION_NAMES = ("slic", "quickshift", "felzenszwalb", "grid")

#: how far from ``n_segments`` a named segmentation may land before its
#: parameter is searched (a ratio)
_TOLERANCE = 1.25
_MAX_TRIES = 8

Segmentation = str | np.ndarray | Callable[[np.ndarray], Any]


def segment(
    image: np.ndarray, segmentation: Any = "slic", n_segments: int = 50
) -> np.ndarray:
    """Segment one image into superpixels.

    Parameters
    ----------
    image
        `(H, W, C)` image.
    segmentation
        A name in ``SEGMENTATION_NAMES`` (scikit-image's SLIC, quick shift and
        Felzenszwalb, or a regular grid), an `(H, W)` integer array of ids, or
        a callable from the `(H, W, C)` image to such an array.
    n_segments
        About how many segments a named segmentation makes; the parameter of
        each algorithm that sets segment size is searched until the count is
        within 25 % of it when it can be. Ignored for arrays and callables.

    Returns
    -------
    np.ndarray
        `(H, W)` int32 ids ``0..S-1``, every id used.

    Raises
    ------
    ValueError
        For an unknown name, an array of the wrong shape or type, or a
        callable that returns one.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"segment expects one image of shape (H, W, C); got shape {image.shape}"
        )
    height, width = image.shape[:2]
    if isinstance(segmentation, str):
        count = _check_n_segments(n_segments, height * width)
        return _named(segmentation, image, count)
    if isinstance(segmentation, np.ndarray | list):
        return _validated(np.asarray(segmentation), (height, width), "array")
    if callable(segmentation):
        return _validated(
            np.asarray(segmentation(image)), (height, width), "callable's result"
        )
    raise ValueError(_bad_kind(segmentation))


def _bad_kind(segmentation: Any) -> str:
    return (
        f"segmentation must be one of {', '.join(map(repr, SEGMENTATION_NAMES))}, "
        "an (H, W) integer array or a callable from an image to one; got "
        f"{type(segmentation).__name__}"
    )


def segment_batch(
    inputs: np.ndarray, segmentation: Any = "slic", n_segments: int = 50
) -> np.ndarray:
    """Segment every image of `inputs` `(N, H, W, C)`: `(N, H, W)` int32.

    An `(H, W)` array is used for every image; an `(N, H, W)` array gives one
    map per image. See `segment` for the rest.
    """
    inputs = np.asarray(inputs)
    if inputs.ndim != 4:
        raise ValueError(
            "segmentation applies to images of shape (N, H, W, C); got inputs of "
            f"shape {inputs.shape}"
        )
    if isinstance(segmentation, np.ndarray) and segmentation.ndim == 3:
        if segmentation.shape != inputs.shape[:3]:
            raise ValueError(
                "a segmentation array must have shape (H, W) = "
                f"{inputs.shape[1:3]} or (N, H, W) = {inputs.shape[:3]}; got "
                f"{segmentation.shape}"
            )
        return np.stack(
            [
                segment(image, map_)
                for image, map_ in zip(inputs, segmentation, strict=True)
            ]
        )
    if isinstance(segmentation, np.ndarray | list):
        single = segment(inputs[0], segmentation)
        return np.repeat(single[None], len(inputs), axis=0)
    return np.stack([segment(image, segmentation, n_segments) for image in inputs])


def check_segmentation(
    inputs: np.ndarray, segmentation: Any = "slic", n_segments: Any = 50
) -> None:
    """Raise what `segment_batch` would for these arguments, cheaply.

    A name and `n_segments` are checked without segmenting anything, an
    array is validated against the images' `(H, W)`; a callable is only
    known to be callable (its result is checked when it is called).

    Raises
    ------
    ValueError
        For inputs that are not images `(N, H, W, C)`, an unknown name, an
        array of the wrong shape or type, or `n_segments` out of range.
    TypeError
        When `n_segments` is not an int.
    """
    inputs = np.asarray(inputs)
    if inputs.ndim != 4:
        raise ValueError(
            "segmentation applies to images of shape (N, H, W, C); got inputs of "
            f"shape {inputs.shape}"
        )
    if isinstance(segmentation, str):
        _check_n_segments(n_segments, inputs.shape[1] * inputs.shape[2])
        _check_name(segmentation)
    elif isinstance(segmentation, np.ndarray | list):
        segment_batch(inputs, np.asarray(segmentation))
    elif not callable(segmentation):
        raise ValueError(_bad_kind(segmentation))


def count_segments(segments: np.ndarray) -> np.ndarray:
    """`(N,)` number of segments of each map in `segments` `(N, H, W)`."""
    return segments.reshape(len(segments), -1).max(axis=1).astype(np.int64) + 1


def fill_masks(
    inputs: np.ndarray,
    segments: np.ndarray,
    z: np.ndarray,
    baseline: np.ndarray,
    rows: np.ndarray,
    baseline_rows: np.ndarray | None = None,
) -> np.ndarray:
    """Images with the segments chosen by `z` kept and the rest filled.

    Parameters
    ----------
    inputs
        `(N, H, W, C)` images.
    segments
        `(N, H, W)` ids ``0..S_i-1``.
    z
        `(M, S)` bool, ``S >= max S_i``: which segments each output keeps
        (columns past an image's own count are ignored).
    baseline
        `(N, H, W, C)` (or `(B, H, W, C)` with `baseline_rows`): what an
        absent segment becomes.
    rows
        `(M,)` the input each output perturbs.
    baseline_rows
        `(M,)` the baseline row each output fills from; default `rows`.

    Returns
    -------
    np.ndarray
        `(M, H, W, C)` float32.
    """
    rows = np.asarray(rows)
    keep = segment_masks(segments, z, rows)
    fill = baseline[rows if baseline_rows is None else baseline_rows]
    return np.where(keep[..., None], inputs[rows], fill).astype(np.float32, copy=False)


def segment_masks(segments: np.ndarray, z: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`(M, H, W)` bool: the pixels each coalition keeps.

    Parameters
    ----------
    segments
        `(N, H, W)` ids ``0..S_i-1``.
    z
        `(M, S)` bool, ``S >= max S_i``: which segments each row keeps.
    rows
        `(M,)` the image each row belongs to.
    """
    rows = np.asarray(rows)
    z = np.asarray(z, bool)
    if z.ndim != 2 or len(z) != len(rows):
        raise ValueError(
            f"z must have shape (M, S) with M = len(rows) = {len(rows)}; got {z.shape}"
        )
    if len(rows) and (rows == rows[0]).all():  # one image: one gather
        return z[:, segments[rows[0]]]
    keep = np.empty((len(rows), *segments.shape[1:]), bool)
    for row in np.unique(rows):
        where = rows == row
        keep[where] = z[where][:, segments[row]]
    return keep


def fill_features(
    inputs: np.ndarray,
    z: np.ndarray,
    baseline: np.ndarray,
    rows: np.ndarray,
    baseline_rows: np.ndarray | None = None,
) -> np.ndarray:
    """Rows with the features chosen by `z` kept and the rest filled.

    Parameters
    ----------
    inputs
        `(N, F)` rows.
    z
        `(M, F)` bool: which features each output keeps.
    baseline
        `(N, F)` (or `(B, F)`, e.g. a background set, with `baseline_rows`):
        what an absent feature becomes.
    rows
        `(M,)` the input each output perturbs.
    baseline_rows
        `(M,)` the baseline row each output fills from; default `rows`.

    Returns
    -------
    np.ndarray
        `(M, F)` float32.
    """
    rows = np.asarray(rows)
    z = np.asarray(z, bool)
    if z.shape != (len(rows), inputs.shape[1]):
        raise ValueError(
            f"z must have shape (M, F) = ({len(rows)}, {inputs.shape[1]}); got "
            f"{z.shape}"
        )
    fill = baseline[rows if baseline_rows is None else baseline_rows]
    return np.where(z, inputs[rows], fill).astype(np.float32, copy=False)


def segment_means(inputs: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """`(N, H, W, C)`: each pixel replaced by the mean of its segment."""
    n, height, width, channels = inputs.shape
    size = int(count_segments(segments).max())
    flat = (segments + (np.arange(n) * size)[:, None, None]).reshape(-1)
    counts = np.bincount(flat, minlength=n * size).astype(np.float64)
    pixels = inputs.reshape(-1, channels).astype(np.float64)
    sums = np.stack(
        [
            np.bincount(flat, weights=pixels[:, c], minlength=n * size)
            for c in range(channels)
        ],
        axis=1,
    )
    means = sums / np.maximum(counts, 1.0)[:, None]
    return means[flat].reshape(n, height, width, channels).astype(np.float32)


def resolve_fill(
    baseline: Any,
    inputs: np.ndarray,
    segments: np.ndarray | None = None,
    seed: int | None = 0,
) -> np.ndarray:
    """`baseline` as an array shaped like `inputs`.

    ``"superpixel_mean"`` (images with `segments` only) fills each segment
    with its own mean colour; anything else is read by
    `baselines.resolve_baseline`.
    """
    if isinstance(baseline, str) and baseline == "superpixel_mean":
        if segments is None or inputs.ndim != 4:
            raise ValueError(
                "baseline 'superpixel_mean' applies to segmented images "
                f"(N, H, W, C); got inputs of shape {inputs.shape}"
            )
        return segment_means(inputs, segments)
    return resolve_baseline(baseline, inputs, seed=seed)


def to_pixels(
    segment_values: np.ndarray, segments: np.ndarray, channels: int
) -> np.ndarray:
    """`(N, H, W, C)`: each segment's value on its pixels, divided by `C`.

    A heatmap summed over channels (`Explanation.map`) then shows the
    segment's value on every one of its pixels.
    """
    n = len(segments)
    flat = np.take_along_axis(segment_values, segments.reshape(n, -1), axis=1)
    per_pixel = (flat / channels).reshape(segments.shape).astype(np.float32)
    return np.repeat(per_pixel[..., None], channels, axis=-1)


# -- named segmentations -------------------------------------------------------


def _check_n_segments(value: Any, pixels: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"n_segments must be an int; got {value!r}")
    if not 1 <= value <= pixels:
        raise ValueError(
            f"n_segments must be in [1, {pixels}] (the image's pixel count); "
            f"got {value}"
        )
    return int(value)


def _check_name(name: str) -> None:
    if name not in SEGMENTATION_NAMES:
        raise ValueError(
            f"segmentation name must be one of "
            f"{', '.join(map(repr, SEGMENTATION_NAMES))}; got {name!r}"
        )


def _named(name: str, image: np.ndarray, n_segments: int) -> np.ndarray:
    height, width, channels = image.shape
    _check_name(name)
    if name == "grid":
        return _grid(height, width, n_segments)
    from skimage import segmentation as skseg

    scaled = _unit_range(image)
    rgb = channels == 3
    area = height * width / n_segments
    if name == "slic":
        return _relabel(_slic(scaled, n_segments, rgb))
    if name == "quickshift":

        def run_quickshift(t: float) -> np.ndarray:
            return np.asarray(
                skseg.quickshift(
                    scaled if channels > 1 else np.repeat(scaled, 3, axis=-1),
                    kernel_size=t,
                    max_dist=4.0 * t,
                    ratio=0.5,
                    convert2lab=rgb,
                    rng=0,
                )
            )

        start = max(1.0, math.sqrt(area) / 5.5)
        return _relabel(
            _search(
                run_quickshift,
                n_segments,
                start,
                1.0,
                max(height, width) / 2.0,
                exponent=-2.0,
            )
        )

    min_size = max(1, int(area // 4))

    def run(t: float) -> np.ndarray:
        return np.asarray(
            skseg.felzenszwalb(
                scaled, scale=t, sigma=0.5, min_size=min_size, channel_axis=-1
            )
        )

    return _relabel(_search(run, n_segments, area, 0.01, 1e5, exponent=-1.0))


def _slic(image: np.ndarray, n_segments: int, rgb: bool) -> np.ndarray:
    """SLIC near `n_segments` segments. On textured images (noise above all)
    SLIC's connectivity step merges its fragmented superpixels into a few,
    so a far-off count is retried with more compact superpixels."""
    from skimage.segmentation import slic

    best: np.ndarray | None = None
    best_error = math.inf
    for compactness in (10.0, 100.0, 1000.0):

        def run(t: float, compactness: float = compactness) -> np.ndarray:
            return np.asarray(
                slic(
                    image,
                    n_segments=max(1, round(t)),
                    compactness=compactness if rgb else compactness / 100.0,
                    start_label=0,
                    channel_axis=-1,
                    convert2lab=rgb,
                )
            )

        labels = _search(
            run,
            n_segments,
            float(n_segments),
            1.0,
            8.0 * n_segments + 8,
            exponent=1.0,
        )
        error = abs(math.log(len(np.unique(labels)) / n_segments))
        if error < best_error:
            best, best_error = labels, error
        if error <= math.log(2.0):
            break
    assert best is not None
    return best


def _search(
    run: Callable[[float], np.ndarray],
    target: int,
    start: float,
    low: float,
    high: float,
    *,
    exponent: float,
) -> np.ndarray:
    """Search `t` in [low, high] until ``run(t)`` has within `_TOLERANCE` of
    `target` segments; the closest map seen otherwise.

    Until the target is bracketed, each step jumps to where a count going as
    ``t ** exponent`` would meet it; then the bracket is bisected in log
    space. A count that does not move over three tries ends the search.
    """
    best: np.ndarray | None = None
    best_error = math.inf
    t = start
    counts: list[int] = []
    bracketed = [False, False]
    for _ in range(_MAX_TRIES):
        labels = run(t)
        count = len(np.unique(labels))
        counts.append(count)
        error = abs(math.log(count / target))
        if error < best_error:
            best, best_error = labels, error
        if error <= math.log(_TOLERANCE) or counts[-3:] == [count] * 3:
            break
        if (count > target) == (exponent > 0):
            high, bracketed[1] = t, True
        else:
            low, bracketed[0] = t, True
        jump = t * (target / count) ** (1.0 / exponent)
        if all(bracketed) or not low < jump < high:
            t = math.sqrt(low * high)
        else:
            t = jump
    assert best is not None
    return best


def _grid(height: int, width: int, n_segments: int) -> np.ndarray:
    rows = max(1, min(height, round(math.sqrt(n_segments * height / width))))
    cols = max(1, min(width, round(n_segments / rows)))
    row_ids = np.arange(height) * rows // height
    col_ids = np.arange(width) * cols // width
    return (row_ids[:, None] * cols + col_ids[None, :]).astype(np.int32)


def _unit_range(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def _validated(labels: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    if labels.shape != shape:
        raise ValueError(
            f"the segmentation {what} must have shape (H, W) = {shape}, the "
            f"image's; got {labels.shape}"
        )
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"the segmentation {what} must hold integer segment ids; got dtype "
            f"{labels.dtype}"
        )
    return _relabel(labels)
