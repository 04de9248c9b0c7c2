"""LIME: a weighted linear model of the target over present/absent segments.

Ribeiro, Singh & Guestrin, "'Why Should I Trust You?': Explaining the
Predictions of Any Classifier", KDD 2016.

Images are explained over superpixels, tables over features. Each sample is a
binary coalition ``z`` (1: the segment keeps its pixels, 0: it takes the
baseline's), weighted by its closeness to the unperturbed input as
``lime_image`` does it: ``sqrt(exp(-d² / kernel_width²))`` with ``d`` the
cosine distance from ``z`` to the all-ones vector. A ridge regression of the
target on ``z`` (intercept unpenalised, solved in closed form) gives one
coefficient per segment. As in ``lime``, the unperturbed input is the first
of the ``n_samples`` samples. Samples are drawn incrementally (see
`_sampling`), so raising ``n_samples`` only evaluates the new ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..baselines import resolve_baseline
from ..explanation import Explanation
from ..segmentation import count_segments, resolve_fill, segment_batch, to_pixels
from ._base import MethodSpec, Request, check_count, relative_change
from ._sampling import (
    CoalitionSampler,
    ScoreFn,
    cached_evaluate,
    image_scorer,
    schedule,
    table_scorer,
)

SPEC = MethodSpec(
    name="lime",
    title="LIME",
    needs_gradients=False,
    defaults={
        "n_samples": 1000,
        "segmentation": "slic",
        "n_segments": 50,
        "kernel_width": 0.25,
        "baseline": "superpixel_mean",
        "ridge_alpha": 1.0,
        "background": None,
    },
    paper="Ribeiro et al. 2016, arXiv:1602.04938",
)


def run(request: Request) -> Iterator[Explanation]:
    """Yield LIME explanations on more and more samples.

    Parameters (in ``request.params``)
    ----------------------------------
    n_samples
        Samples per input, the unperturbed input included (at least 2).
    segmentation, n_segments
        Superpixels for images (see `segmentation.segment`).
    kernel_width
        Width of the exponential kernel on the cosine distance.
    baseline
        What an absent segment becomes: ``"superpixel_mean"`` (each segment
        its own mean colour, ``lime_image``'s default), or anything
        `baselines.resolve_baseline` reads. Tables without a background use
        0 for ``"superpixel_mean"``.
    ridge_alpha
        The ridge penalty (``lime`` uses 1).
    background
        Tables only: `(B, F)` rows; an absent feature takes its value from a
        background row drawn per sample instead of the baseline.

    Yields
    ------
    Explanation
        ``segment_values`` `(N, S)` the coefficients (``S`` the largest
        segment count; 0 past an image's own), ``values`` each coefficient
        spread over its segment's pixels and divided by ``C``, ``segments``
        `(N, H, W)`, ``base_values`` the intercepts, ``outputs`` the target
        at the inputs, ``extras["score"]`` `(N,)` the weighted R² of each fit.
    """
    params = request.params
    n_samples = check_count("n_samples", params["n_samples"], low=2)
    kernel_width = _positive("kernel_width", params["kernel_width"])
    alpha = _positive("ridge_alpha", params["ridge_alpha"], allow_zero=True)
    segments, counts, score = _problem(request)

    outputs = cached_evaluate(request, "outputs", lambda: request.inputs)
    sampler = CoalitionSampler(request, counts, score, key="lime")
    previous: np.ndarray | None = None
    stops = schedule(n_samples - 1, len(request.inputs), request.adapter.batch_size)
    for stop in stops:
        z, scores = sampler.draw(stop)
        coefs, intercepts, fits = _fit_all(
            z, scores, outputs, counts, kernel_width, alpha
        )
        if segments is None:
            values = coefs
        else:
            values = to_pixels(coefs, segments, request.inputs.shape[-1])
        yield request.result(
            values,
            base_values=intercepts,
            outputs=outputs,
            progress=(stop + 1) / n_samples,
            convergence=relative_change(previous, coefs),
            segments=segments,
            segment_values=None if segments is None else coefs.astype(np.float32),
            extras={"score": fits.astype(np.float32)},
        )
        previous = coefs


def _problem(request: Request) -> tuple[np.ndarray | None, np.ndarray, ScoreFn]:
    """Segments (images), feature counts `(N,)` and the scorer, all checked
    before anything is evaluated."""
    params = request.params
    inputs = request.inputs
    if request.is_image:
        if params["background"] is not None:
            raise ValueError(
                "background applies to tables; for images pass a baseline "
                "(a number, an image, 'mean', 'blur' or 'superpixel_mean')"
            )
        segments = request.cache.get("segments")
        if segments is None:
            segments = segment_batch(
                inputs, params["segmentation"], params["n_segments"]
            )
            request.cache["segments"] = segments
        fill = resolve_fill(params["baseline"], inputs, segments, request.seed)
        return segments, count_segments(segments), image_scorer(request, segments, fill)

    counts = np.full(len(inputs), inputs.shape[1])
    background = params["background"]
    if background is not None:
        background = np.asarray(background, np.float32)
        if background.ndim != 2 or background.shape[1] != inputs.shape[1]:
            raise ValueError(
                f"background must have shape (B, {inputs.shape[1]}), rows like the "
                f"inputs'; got {background.shape}"
            )
        if len(background) == 0 or not np.isfinite(background).all():
            raise ValueError("background must be non-empty and finite")
    baseline = params["baseline"]
    if isinstance(baseline, str) and baseline == "superpixel_mean":
        baseline = 0.0
    fill = resolve_baseline(baseline, inputs, seed=request.seed)
    return None, counts, table_scorer(request, fill, background)


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not np.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value}")
    return value


def kernel_weights(z: np.ndarray, n_features: int, kernel_width: float) -> np.ndarray:
    """``lime_image``'s sample weights `(M,)` for coalitions `z` `(M, S)`.

    The cosine distance from ``z`` to the all-ones vector is
    ``1 - sqrt(k / S)`` for ``k`` present features (1 when none is), and the
    weight ``sqrt(exp(-d² / kernel_width²))``.
    """
    present = z[:, :n_features].sum(axis=1)
    distance = 1.0 - np.sqrt(present / n_features)
    return np.sqrt(np.exp(-(distance**2) / kernel_width**2))


def weighted_ridge(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float
) -> tuple[np.ndarray, float, float]:
    """Minimise ``Σ w (y - x·β - b)² + α‖β‖²``.

    Parameters
    ----------
    x
        `(M, S)` regressors.
    y
        `(M,)` targets.
    weights
        `(M,)` sample weights.
    alpha
        The ridge penalty; the intercept ``b`` is not penalised.

    Returns
    -------
    tuple[np.ndarray, float, float]
        ``β`` `(S,)`, ``b`` and the weighted R² of the fit.
    """
    total = weights.sum()
    x_mean = weights @ x / total
    y_mean = float(weights @ y / total)
    xc = x - x_mean
    yc = y - y_mean
    gram = xc.T @ (weights[:, None] * xc) + alpha * np.eye(x.shape[1])
    moment = xc.T @ (weights * yc)
    try:
        beta = np.linalg.solve(gram, moment)
    except np.linalg.LinAlgError:
        beta = np.linalg.lstsq(gram, moment, rcond=None)[0]
    intercept = y_mean - float(x_mean @ beta)
    residual = float(weights @ (yc - xc @ beta) ** 2)
    spread = float(weights @ yc**2)
    r2 = 1.0 - residual / spread if spread > 0 else float(residual == 0)
    return beta, intercept, r2


def _fit_all(
    z: np.ndarray,
    scores: np.ndarray,
    outputs: np.ndarray,
    counts: np.ndarray,
    kernel_width: float,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every input: coefficients `(N, S_max)`, intercepts `(N,)`, R² `(N,)`."""
    n_inputs, _, width = z.shape
    coefs = np.zeros((n_inputs, width))
    intercepts = np.zeros(n_inputs)
    fits = np.zeros(n_inputs)
    for i in range(n_inputs):
        size = int(counts[i])
        x = np.concatenate([np.ones((1, size)), z[i, :, :size]]).astype(np.float64)
        y = np.concatenate([[outputs[i]], scores[i]])
        weights = kernel_weights(x, size, kernel_width)
        coefs[i, :size], intercepts[i], fits[i] = weighted_ridge(x, y, weights, alpha)
    return coefs, intercepts, fits
