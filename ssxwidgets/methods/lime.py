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

Each sample is uniform over all coalitions, as ``lime_image``'s are, so both
estimate the same fit; but the samples come as the rows of randomised
Hadamard designs with their complements (``design="orthogonal"`` in
`_sampling.CoalitionSampler`): every segment present in half of them, every
two segments independent across them. Measured against a 10,000-sample
reference, the coefficients settle in about a quarter of the samples
``lime_image`` needs (``python -m benchmarks``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..baselines import resolve_baseline
from ..explanation import Explanation
from ..segmentation import (
    check_segmentation,
    count_segments,
    resolve_fill,
    segment_batch,
    to_pixels,
)
from ._base import (
    MethodSpec,
    Request,
    check_count,
    check_positive,
    relative_change,
    single_threaded_blas,
)
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
    n_samples, kernel_width, alpha = _checked(request)
    segments, counts, score = _problem(request)

    outputs = cached_evaluate(request, "outputs", lambda: request.inputs)
    sampler = CoalitionSampler(request, counts, score, key="lime", design="orthogonal")
    previous: np.ndarray | None = None
    stops = schedule(n_samples - 1, len(request.inputs), request.adapter.batch_size)
    for stop in stops:
        z, scores = sampler.draw(stop)
        with single_threaded_blas():
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


def validate(request: Request) -> None:
    """Check every parameter (no evaluation, no segmentation)."""
    _checked(request)


def _checked(request: Request) -> tuple[int, float, float]:
    """``n_samples``, ``kernel_width`` and ``ridge_alpha``, checked with the
    segmentation, baseline and background (which `_problem` then uses)."""
    params = request.params
    inputs = request.inputs
    n_samples = check_count("n_samples", params["n_samples"], low=2)
    kernel_width = check_positive("kernel_width", params["kernel_width"])
    alpha = check_positive("ridge_alpha", params["ridge_alpha"], allow_zero=True)
    baseline = params["baseline"]
    mean_fill = isinstance(baseline, str) and baseline == "superpixel_mean"
    if request.is_image:
        if params["background"] is not None:
            raise ValueError(
                "background applies to tables; for images pass a baseline "
                "(a number, an image, 'mean', 'blur' or 'superpixel_mean')"
            )
        if "segments" not in request.cache:
            check_segmentation(inputs, params["segmentation"], params["n_segments"])
    else:
        _background(request)
    if not mean_fill:
        resolve_baseline(baseline, inputs, seed=request.seed)
    return n_samples, kernel_width, alpha


def _background(request: Request) -> np.ndarray | None:
    """Tables: the background rows `(B, F)` float32, or ``None``; checked."""
    background = request.params["background"]
    if background is None:
        return None
    features = request.inputs.shape[1]
    background = np.asarray(background, np.float32)
    if background.ndim != 2 or background.shape[1] != features:
        raise ValueError(
            f"background must have shape (B, {features}), rows like the "
            f"inputs'; got {background.shape}"
        )
    if len(background) == 0 or not np.isfinite(background).all():
        raise ValueError("background must be non-empty and finite")
    return background


def _problem(request: Request) -> tuple[np.ndarray | None, np.ndarray, ScoreFn]:
    """Segments (images), feature counts `(N,)` and the scorer, all checked
    before anything is evaluated."""
    params = request.params
    inputs = request.inputs
    if request.is_image:
        segments = request.cache.get("segments")
        if segments is None:
            segments = segment_batch(
                inputs, params["segmentation"], params["n_segments"]
            )
            request.cache["segments"] = segments
        fill = resolve_fill(params["baseline"], inputs, segments, request.seed)
        return segments, count_segments(segments), image_scorer(request, segments, fill)

    counts = np.full(len(inputs), inputs.shape[1])
    background = _background(request)
    baseline = params["baseline"]
    if isinstance(baseline, str) and baseline == "superpixel_mean":
        baseline = 0.0
    fill = resolve_baseline(baseline, inputs, seed=request.seed)
    return None, counts, table_scorer(request, fill, background)


def kernel_weights(z: np.ndarray, n_features: int, kernel_width: float) -> np.ndarray:
    """``lime_image``'s sample weights `(M,)` for coalitions `z` `(M, S)`.

    The cosine distance from ``z`` to the all-ones vector is
    ``1 - sqrt(k / S)`` for ``k`` present features (1 when none is), and the
    weight ``sqrt(exp(-d² / kernel_width²))``.
    """
    present = z[:, :n_features].sum(axis=1)
    distance = 1.0 - np.sqrt(present / n_features)
    return np.sqrt(np.exp(-(distance**2) / kernel_width**2))


#: samples added at once to a fit's sums, so its memory stays flat in n_samples
_FIT_CHUNK = 4096


class RidgeSums:
    """The weighted sums a ridge fit needs, added a chunk of samples at a
    time: ``Σw``, ``Σw x``, ``Σw y``, ``Σw x xᵀ``, ``Σw x y``, ``Σw y²``."""

    def __init__(self, n_features: int) -> None:
        self.w = 0.0
        self.wx = np.zeros(n_features)
        self.wy = 0.0
        self.wxx = np.zeros((n_features, n_features))
        self.wxy = np.zeros(n_features)
        self.wyy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
        """Add samples `x` `(M, S)` with targets `y` `(M,)` and `weights`."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        wx = weights[:, None] * x
        self.w += float(weights.sum())
        self.wx += wx.sum(axis=0)
        self.wy += float(weights @ y)
        self.wxx += x.T @ wx
        self.wxy += wx.T @ y
        self.wyy += float(weights @ (y * y))

    def ridge(self, alpha: float) -> tuple[np.ndarray, float, float]:
        """Minimise ``Σ w (y - x·β - b)² + α‖β‖²`` (the intercept ``b`` not
        penalised): ``β`` `(S,)`, ``b`` and the weighted R² of the fit."""
        x_mean = self.wx / self.w
        y_mean = self.wy / self.w
        covariance = self.wxx - self.w * np.outer(x_mean, x_mean)
        moment = self.wxy - self.w * x_mean * y_mean
        gram = covariance + alpha * np.eye(len(moment))
        try:
            beta = np.linalg.solve(gram, moment)
        except np.linalg.LinAlgError:
            beta = np.linalg.lstsq(gram, moment, rcond=None)[0]
        intercept = float(y_mean - x_mean @ beta)
        spread = max(float(self.wyy - self.w * y_mean**2), 0.0)
        explained = float(2.0 * beta @ moment - beta @ covariance @ beta)
        residual = max(spread - explained, 0.0)
        tiny = 1e-12 * max(self.wyy, 1e-300)
        r2 = 1.0 - residual / spread if spread > tiny else float(residual <= tiny)
        return beta, intercept, r2


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
    sums = RidgeSums(x.shape[1])
    for start in range(0, len(x), _FIT_CHUNK):
        stop = start + _FIT_CHUNK
        sums.add(x[start:stop], y[start:stop], weights[start:stop])
    return sums.ridge(alpha)


def _fit_all(
    z: np.ndarray,
    scores: np.ndarray,
    outputs: np.ndarray,
    counts: np.ndarray,
    kernel_width: float,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every input: coefficients `(N, S_max)`, intercepts `(N,)`, R² `(N,)`.

    The unperturbed input joins each fit as one more sample; the samples are
    added to the sums a chunk at a time, never copied whole as floats.
    """
    n_inputs, n_samples, width = z.shape
    coefs = np.zeros((n_inputs, width))
    intercepts = np.zeros(n_inputs)
    fits = np.zeros(n_inputs)
    for i in range(n_inputs):
        size = int(counts[i])
        sums = RidgeSums(size)
        whole = np.ones((1, size))
        sums.add(whole, outputs[i : i + 1], kernel_weights(whole, size, kernel_width))
        for start in range(0, n_samples, _FIT_CHUNK):
            stop = start + _FIT_CHUNK
            x = z[i, start:stop, :size]
            weights = kernel_weights(x, size, kernel_width)
            sums.add(x, scores[i, start:stop], weights)
        coefs[i, :size], intercepts[i], fits[i] = sums.ridge(alpha)
    return coefs, intercepts, fits
