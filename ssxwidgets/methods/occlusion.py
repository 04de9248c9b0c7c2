"""Occlusion: how much the target drops when a window is covered.

Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
ECCV 2014.

A square window slides over the image with a stride; at each position the
covered pixels (all channels) take the baseline's values and the drop of the
target, ``f(x) − f(x_occluded)``, is credited to every covered pixel. A
pixel's attribution is the mean drop over the windows covering it. For tables
each feature is occluded alone: its attribution is the drop when it alone
takes the baseline's value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..baselines import resolve_baseline
from ..explanation import Explanation
from ._base import MethodSpec, Request, check_count
from ._sampling import cached_evaluations

SPEC = MethodSpec(
    name="occlusion",
    title="Occlusion",
    needs_gradients=False,
    defaults={"window": 8, "stride": None, "baseline": 0.0},
    paper="Zeiler & Fergus 2014, arXiv:1311.2901",
)

#: partial results a long run yields at most (about)
_MAX_PARTIALS = 20


def run(request: Request) -> Iterator[Explanation]:
    """Yield occlusion maps as more windows are done.

    Parameters (in ``request.params``)
    ----------------------------------
    window
        Side of the square window in pixels (an int), or as a fraction of the
        image's shorter side (a float in (0, 1]). Ignored for tables.
    stride
        Step between windows in pixels; default ``window // 2`` (at least 1).
    baseline
        What covered pixels (or an occluded feature) become (see
        `baselines.resolve_baseline`).

    Yields
    ------
    Explanation
        ``values`` shaped like the inputs: for images the mean drop over the
        windows done so far, divided by ``C`` on every channel (so ``map`` is
        the mean drop); for tables the drop per feature. ``base_values`` is
        the target at the baseline, ``outputs`` at the inputs.
    """
    inputs = request.inputs
    window, stride, baseline = _checked(request)
    outputs, base_values = cached_evaluations(
        request, {"outputs": lambda: inputs, "base_values": lambda: baseline}
    )
    if request.is_image:
        yield from _images(request, baseline, outputs, base_values, window, stride)
    else:
        yield from _tables(request, baseline, outputs, base_values)


def validate(request: Request) -> None:
    """Check ``window``, ``stride`` and ``baseline`` (no evaluation)."""
    _checked(request)


def _checked(request: Request) -> tuple[int, int, np.ndarray]:
    """The window and stride in pixels (0 for tables) and the baseline
    `(N, ...)`, checked."""
    window = stride = 0
    if request.is_image:
        window, stride = _window(request.params, request.inputs.shape[1:3])
    baseline = resolve_baseline(
        request.params["baseline"], request.inputs, seed=request.seed
    )
    return window, stride, baseline


def _window(params: dict[str, Any], size: tuple[int, ...]) -> tuple[int, int]:
    """The window and stride in pixels, checked."""
    shorter = int(min(size))
    window = params["window"]
    if isinstance(window, float):
        if not 0.0 < window <= 1.0:
            raise ValueError(
                "window as a float is a fraction of the image's shorter side and "
                f"must be in (0, 1]; got {window}"
            )
        window = max(1, round(window * shorter))
    else:
        window = check_count("window", window, high=shorter)
    stride = params["stride"]
    if stride is None:
        stride = max(1, window // 2)
    stride = check_count("stride", stride, high=shorter)
    return window, stride


def positions(length: int, window: int, stride: int) -> np.ndarray:
    """Window starts along one axis: every `stride`, plus one flush with the
    far edge so every pixel is covered."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return np.array(starts)


def _images(
    request: Request,
    baseline: np.ndarray,
    outputs: np.ndarray,
    base_values: np.ndarray,
    window: int,
    stride: int,
) -> Iterator[Explanation]:
    inputs = request.inputs
    n_inputs, height, width, channels = inputs.shape
    ys, xs = positions(height, window, stride), positions(width, window, stride)
    starts = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    total = len(starts)
    per_chunk = max(
        1,
        request.adapter.batch_size // n_inputs,
        math.ceil(total / _MAX_PARTIALS),
    )
    drops = np.zeros((n_inputs, height, width))
    counts = np.zeros((height, width))
    for first in range(0, total, per_chunk):
        chunk = starts[first : first + per_chunk]
        covered = np.zeros((len(chunk), height, width), bool)
        for k, (y, x) in enumerate(chunk):
            covered[k, y : y + window, x : x + window] = True
        # every input under every window, window-major: row k * N + i
        kept = np.repeat(~covered, n_inputs, axis=0)
        rows = np.tile(np.arange(n_inputs), len(chunk))
        scores = request.evaluate_blend(baseline, kept, rows)
        drop = outputs[None] - scores.reshape(len(chunk), n_inputs)
        drops += np.einsum("kn,khw->nhw", drop, covered.astype(np.float64))
        counts += covered.sum(axis=0)
        mean = drops / np.maximum(counts, 1.0)
        values = np.repeat((mean / channels)[..., None], channels, axis=-1)
        yield request.result(
            values,
            base_values=base_values,
            outputs=outputs,
            progress=(first + len(chunk)) / total,
        )


def _tables(
    request: Request,
    baseline: np.ndarray,
    outputs: np.ndarray,
    base_values: np.ndarray,
) -> Iterator[Explanation]:
    inputs = request.inputs
    n_inputs, n_features = inputs.shape
    per_chunk = max(1, 2 * request.adapter.batch_size // n_inputs)
    values = np.zeros((n_inputs, n_features))
    for first in range(0, n_features, per_chunk):
        features = np.arange(first, min(n_features, first + per_chunk))
        occluded = np.repeat(inputs[None], len(features), axis=0)
        occluded[np.arange(len(features)), :, features] = baseline[:, features].T
        rows = np.tile(np.arange(n_inputs), len(features))
        scores = request.evaluate(occluded.reshape(-1, n_features), rows)
        values[:, features] = outputs[:, None] - scores.reshape(-1, n_inputs).T
        yield request.result(
            values,
            base_values=base_values,
            outputs=outputs,
            progress=(features[-1] + 1) / n_features,
        )
