"""Kernel SHAP over superpixels (images) or features (tables).

Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions",
NeurIPS 2017: Shapley values as the solution of a linear regression of the
model on coalitions weighted by the Shapley kernel, with the values held to
sum to ``f(x) − f(absent)``. On images a coalition keeps some superpixels
and fills the rest from the baseline; on tables absent features take the
values of a background set (integrated over its rows, as shap's
``KernelExplainer`` does) or of a baseline row.

Two regimes, as in shap:

- when ``n_samples`` covers every coalition (``2**M − 2`` of them for ``M``
  features, ``M <= 19``), all are evaluated and the kernel-weighted
  regression gives the exact Shapley values;
- otherwise coalitions are drawn from the Shapley kernel itself (a size
  ``s`` with chance proportional to ``1 / (s (M − s))``, then ``s`` features
  at random), each with its complement (paired sampling, Covert & Lee,
  "Improving KernelSHAP", AISTATS 2021), and the regression is unweighted.
  Feature selection follows ``l1_reg`` as in shap (``"num_features(k)"``,
  ``"aic"``, ``"bic"``, a Lasso alpha, or ``False``), applied like shap
  when fewer than a fifth of the coalitions are sampled.

The samples are drawn in prefix-stable blocks (see `_sampling`) and kept with
their scores in ``request.cache``: raising ``n_samples`` evaluates only the
new coalitions and lowering it reuses a prefix. Every evaluation goes
through the adapter's compiled path, the perturbed images built inside it.

Usage::

    exp = ssx.attribute(model, images, method="kernel_shap", n_segments=50,
                        n_samples=2000)
    exp.segment_values          # (N, S) Shapley value of each superpixel
    exp = ssx.attribute(model, rows, method="kernel_shap", background=X)
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._errors import SsxWarning
from ..baselines import resolve_baseline
from ..explanation import Explanation
from ..segmentation import (
    check_segmentation,
    count_segments,
    resolve_fill,
    segment_batch,
    segment_masks,
    to_pixels,
)
from ._base import (
    MethodSpec,
    Request,
    check_count,
    relative_change,
    single_threaded_blas,
)
from ._sampling import (
    BlockSums,
    CoalitionSampler,
    cached_evaluate,
    cached_evaluations,
    schedule,
)
from .partition_shap import check_additivity, check_background

__all__ = [
    "SPEC",
    "normal_sums",
    "run",
    "select_features",
    "select_from_sums",
    "shapley_kernel",
    "shapley_kernel_draw",
    "solve",
    "solve_sums",
    "validate",
]

SPEC = MethodSpec(
    name="kernel_shap",
    title="Kernel SHAP",
    needs_gradients=False,
    defaults={
        "n_samples": 1000,
        "segmentation": "slic",
        "n_segments": 50,
        "baseline": None,
        "background": None,
        "l1_reg": "num_features(10)",
    },
    inputs=("image", "tabular"),
    paper="Lundberg & Lee 2017, arXiv:1705.07874",
)

#: background rows beyond which shap advises summarising the set
_LARGE_BACKGROUND = 100
#: most features whose coalitions are all enumerated
_MAX_EXACT_FEATURES = 19
#: feature selection applies below this fraction of coalitions sampled
_SELECTION_FRACTION = 0.2
#: samples summed at once into the normal equations (memory flat in n)
_FIT_CHUNK = 4096
_NUM_FEATURES = re.compile(r"num_features\((\d+)\)")


def run(request: Request) -> Iterator[Explanation]:
    """Yield partial explanations, one input after another.

    Images: ``segment_values`` `(N, S)` are the Shapley values of the
    superpixels (zero-padded past an image's own count), ``segments``
    `(N, H, W)` the superpixels, and ``values`` `(N, H, W, C)` each segment's
    value on its pixels divided by ``C``. Tables: ``values`` `(N, F)`. The
    input being explained shows its estimate so far, and every estimate sums
    to ``outputs − base_values``; inputs not started yet have zero values and
    their base value set to their output. ``convergence`` is the relative
    change of the current input's estimate since the last partial.
    """
    n_samples, l1_reg = _checked(request)
    problem: _ImageProblem | _TableProblem
    if request.is_image:
        problem = _ImageProblem(request)
    else:
        problem = _TableProblem(request)

    n = len(request.inputs)
    # f(x) and, where it is one row per input, f(absent) in one call
    builds = {"outputs": lambda: request.inputs, **problem.base_builds()}
    outputs = cached_evaluations(request, builds)[0]
    shapley = np.zeros((n, problem.width), np.float64)
    base_values = outputs.astype(np.float64).copy()
    totals = outputs.astype(np.float64).copy()
    finished: dict[tuple[int, Any, Any], np.ndarray] = request.cache.setdefault(
        "finished", {}
    )

    for row in range(n):
        size = problem.count(row)
        base_values[row] = problem.base_value(row)
        delta = float(outputs[row]) - base_values[row]
        key = (row, n_samples, l1_reg)
        if key not in finished:
            estimates = _estimates(problem, row, n_samples, l1_reg, delta)
            for phi, done, convergence in estimates:
                shapley[row, :size] = phi
                yield problem.result(
                    shapley,
                    base_values,
                    totals,
                    (row + min(done, 0.99)) / n,
                    convergence,
                )
                finished[key] = phi
        shapley[row, :size] = finished[key]
        totals[row] = float(finished[key].sum()) + base_values[row]
        check_additivity(totals[row], float(outputs[row]), row, "kernel_shap")
        yield problem.result(shapley, base_values, totals, (row + 1) / n, None)


def _estimates(
    problem: _ImageProblem | _TableProblem,
    row: int,
    n_samples: int | str,
    l1_reg: Any,
    delta: float,
) -> Iterator[tuple[np.ndarray, float, float | None]]:
    """Estimates of input `row`'s Shapley values `(M,)` as its coalitions
    are evaluated, with the fraction of the budget spent and the relative
    change since the last; the last estimate is the answer."""
    request = problem.request
    size = problem.count(row)
    base = problem.base_value(row)
    budget = _sample_count(size, n_samples)
    if size <= _MAX_EXACT_FEATURES and budget >= 2**size - 2:
        z = _all_coalitions(size)
        scores = problem.cached_scores(row, z)
        with single_threaded_blas():
            phi = solve(z, scores - base, shapley_kernel(z), delta)
        yield phi, 1.0, None
        return
    select = l1_reg if budget / (2.0**size - 2) < _SELECTION_FRACTION else False
    sampler = CoalitionSampler(
        request,
        size,
        problem.score,
        key=f"kernel_shap/{row}",
        draw_block=shapley_kernel_draw,
        inputs=np.array([row]),
        rows_per_sample=problem.rows_per_sample,
    )
    match = _NUM_FEATURES.fullmatch(select) if isinstance(select, str) else None
    running = select is False or match is not None
    sums = BlockSums(request.cache, f"kernel_shap/{row}/sums")
    previous: np.ndarray | None = None
    for stop in schedule(budget, 1, request.adapter.batch_size):
        z, scores = sampler.draw(stop)
        coalitions, y = z[0, :, :size], scores[0] - base

        def term(
            start: int, end: int, coalitions: np.ndarray = coalitions, y: np.ndarray = y
        ) -> np.ndarray:
            # [Σ z zᵀ | Σ z y] over samples start..end-1
            gram, moment = normal_sums(coalitions[start:end], y[start:end])
            return np.column_stack([gram, moment])

        with single_threaded_blas():
            if running:  # from sums kept as the samples came: O(M³) a partial
                packed = sums.upto(stop, term)
                gram, moment = packed[:, :-1], packed[:, -1]
                chosen = None
                if match is not None:
                    wanted = int(match.group(1))
                    chosen = select_from_sums(gram, moment, stop, delta, wanted)
                phi = solve_sums(gram, moment, stop, delta, chosen)
            else:  # a Lasso criterion fits the samples themselves
                phi = solve(coalitions, y, None, delta, select)
        yield phi, stop / budget, relative_change(previous, phi)
        previous = phi


def validate(request: Request) -> None:
    """Check every parameter (no evaluation, no segmentation)."""
    _checked(request)


def _checked(request: Request) -> tuple[int | str, Any]:
    """``n_samples`` and ``l1_reg``, checked with the segmentation, baseline
    and background."""
    params = request.params
    n_samples = _check_n_samples(params["n_samples"])
    l1_reg = _check_l1_reg(params["l1_reg"])
    if request.is_image:
        if "segments" not in request.cache:
            check_segmentation(
                request.inputs, params["segmentation"], params["n_segments"]
            )
        baseline = _image_baseline(params["baseline"])
        if not (isinstance(baseline, str) and baseline == "superpixel_mean"):
            resolve_baseline(baseline, request.inputs, seed=request.seed)
    else:
        _table_data(request)
    return n_samples, l1_reg


def _image_baseline(baseline: Any) -> Any:
    """What fills an absent superpixel: each image's mean colour by default."""
    return "mean" if baseline is None else baseline


def _table_data(request: Request) -> tuple[np.ndarray | None, np.ndarray]:
    """Tables: one baseline row per input `(N, F)` (or ``None`` with a
    background) and the rows absent features are integrated over `(M, F)`;
    checked."""
    params = request.params
    if params["background"] is None and params["baseline"] is not None:
        rows = resolve_baseline(params["baseline"], request.inputs, seed=request.seed)
        return rows, rows[:1]
    try:
        data = check_background(params["background"], request.inputs, "kernel_shap")
    except ValueError as error:
        raise ValueError(
            f"{error}; or pass baseline= a row (F,) or a name such as 'mean'"
        ) from error
    return None, data


# -- the regression ------------------------------------------------------------------


def shapley_kernel(z: np.ndarray) -> np.ndarray:
    """The Shapley kernel weight `(n,)` of each coalition `z` `(n, M)`:
    ``(M − 1) / (C(M, s) · s · (M − s))`` for ``s`` features present."""
    size = z.shape[1]
    present = np.asarray(z).sum(axis=1)
    weights = np.zeros(len(present))
    for s in np.unique(present):
        if 0 < s < size:
            weights[present == s] = (size - 1) / (
                math.comb(size, int(s)) * s * (size - s)
            )
    return weights


def shapley_kernel_draw(rng: np.random.Generator, size: int, n_features: int) -> Any:
    """`size` coalitions of `n_features` drawn from the Shapley kernel: a
    coalition size ``s`` in ``1..M−1`` with chance proportional to
    ``1 / (s (M − s))``, then ``s`` features uniformly (a `DrawBlock`).
    Symmetric in ``s ↔ M − s``, so a coalition's complement is as likely."""
    if n_features < 2:
        return np.ones((size, n_features), bool)
    sizes = np.arange(1, n_features)
    chances = 1.0 / (sizes * (n_features - sizes))
    drawn = rng.choice(sizes, size=size, p=chances / chances.sum())
    ranks = rng.random((size, n_features)).argsort(axis=1).argsort(axis=1)
    return ranks < drawn[:, None]


def solve(
    z: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    delta: float,
    l1_reg: Any = False,
) -> np.ndarray:
    """Kernel SHAP's regression: the values `(M,)` minimising
    ``Σ w (y − z · φ)²`` subject to ``Σ φ = delta``.

    Parameters
    ----------
    z
        `(n, M)` coalitions.
    y
        `(n,)` the model at each coalition minus the model with none.
    weights
        `(n,)` the kernel weights, or ``None`` for coalitions drawn from the
        kernel (all weighing the same).
    delta
        The model with every feature minus with none.
    l1_reg
        Feature selection before the fit (see `select_features`); features
        left out get 0.
    """
    z = np.asarray(z)
    n, size = z.shape
    chosen = np.arange(size)
    if l1_reg is not False:
        chosen = select_features(z, y, delta, l1_reg)
    gram, moment = normal_sums(z, y, weights)
    return solve_sums(gram, moment, n, delta, chosen)


def normal_sums(
    z: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``Σ w z zᵀ`` `(M, M)` and ``Σ w z y`` `(M,)` over coalitions `z`
    `(n, M)`, a chunk of samples at a time (memory flat in n)."""
    z = np.asarray(z)
    size = z.shape[1]
    y = np.asarray(y, np.float64)
    gram = np.zeros((size, size))
    moment = np.zeros(size)
    for start in range(0, len(z), _FIT_CHUNK):
        x = z[start : start + _FIT_CHUNK].astype(np.float64)
        part = y[start : start + _FIT_CHUNK]
        if weights is None:
            gram += x.T @ x
            moment += x.T @ part
        else:
            w = np.asarray(weights[start : start + _FIT_CHUNK], np.float64)
            gram += (x * w[:, None]).T @ x
            moment += x.T @ (w * part)
    return gram, moment


def solve_sums(
    gram: np.ndarray,
    moment: np.ndarray,
    n: int,
    delta: float,
    chosen: np.ndarray | None = None,
) -> np.ndarray:
    """`solve` from the normal sums of `normal_sums` over `n` samples, for
    the `chosen` features (default all; the others get 0).

    The constraint eliminates the last chosen feature ``l``: with ``a_j =
    z_j − z_l`` and ``b = y − z_l · delta``, the sums ``Σ a aᵀ`` and ``Σ a b``
    follow from ``gram`` and ``moment`` alone, so a running estimate costs
    ``O(M³)`` however many samples it rests on.
    """
    size = len(moment)
    chosen = np.arange(size) if chosen is None else np.asarray(chosen, int)
    phi = np.zeros(size)
    if len(chosen) == 1 or n == 0:
        phi[chosen] = delta / len(chosen)
        return phi
    rest, last = chosen[:-1], chosen[-1]
    cross = gram[rest, last]
    a = gram[np.ix_(rest, rest)] - cross[:, None] - cross[None, :] + gram[last, last]
    b = moment[rest] - moment[last] - delta * (cross - gram[last, last])
    # least squares: the minimum-norm solution when there are fewer samples
    # than features
    coef = np.linalg.lstsq(a, b, rcond=None)[0]
    phi[rest] = coef
    phi[last] = delta - coef.sum()
    return phi


def select_from_sums(
    gram: np.ndarray, moment: np.ndarray, n: int, delta: float, wanted: int
) -> np.ndarray:
    """``"num_features(k)"`` selection from the normal sums of `n` unweighted
    samples: the first `wanted` features to enter the LARS path, with the
    sum constraint as one more row weighing as much as the samples."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lars_path_gram

    size = len(moment)
    everything = np.arange(size)
    if wanted >= size:
        return everything
    heavy = float(max(n, 1))  # the constraint row's weight, squared
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, active, _ = lars_path_gram(
            moment + heavy * delta, gram + heavy, n_samples=n + 1, max_iter=wanted
        )
    chosen = np.sort(np.asarray(active[:wanted], int))
    return chosen if len(chosen) else everything


def select_features(z: np.ndarray, y: np.ndarray, delta: float, l1_reg: Any) -> Any:
    """The features `l1_reg` keeps: the first ``k`` to enter a LARS path for
    ``"num_features(k)"``, those a Lasso keeps for ``"aic"``, ``"bic"`` (the
    criterion choosing its penalty) or a penalty given as a number.

    The sum constraint joins the fit as one more row, ``Σ φ = delta``,
    weighing as much as all the samples together. (``"aic"``, ``"bic"`` and
    a penalty fit the samples themselves, so their memory grows with
    ``n_samples``; the default does not.)
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso, LassoLarsIC

    n, size = z.shape
    heavy = math.sqrt(max(n, 1))
    everything = np.arange(size)
    y = np.asarray(y, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        match = _NUM_FEATURES.fullmatch(l1_reg) if isinstance(l1_reg, str) else None
        if match is not None:
            gram, moment = normal_sums(z, y)
            return select_from_sums(gram, moment, n, delta, int(match.group(1)))
        x = np.vstack([z, np.full((1, size), heavy)])
        t = np.append(y, heavy * delta)
        if l1_reg in ("aic", "bic"):
            try:
                fit = LassoLarsIC(criterion=l1_reg, fit_intercept=False).fit(x, t)
            except ValueError:  # too few samples to estimate the noise
                return everything
            chosen = np.flatnonzero(fit.coef_)
        else:
            fit = Lasso(alpha=float(l1_reg), fit_intercept=False).fit(x, t)
            chosen = np.flatnonzero(fit.coef_)
    return chosen if len(chosen) else everything


def _all_coalitions(size: int) -> np.ndarray:
    """`(2**size − 2, size)` bool: every coalition but the empty and the full
    one."""
    codes = np.arange(1, 2**size - 1, dtype=np.int64)
    return ((codes[:, None] >> np.arange(size)) & 1).astype(bool)


# -- what a coalition means for images and tables --------------------------------------


class _Problem:
    """What the two input kinds share: scores of coalitions kept per input."""

    request: Request
    width: int
    rows_per_sample: int = 1

    def count(self, row: int) -> int:
        raise NotImplementedError

    def score(self, z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> Any:
        raise NotImplementedError

    def base_value(self, row: int) -> float:
        raise NotImplementedError

    def base_builds(self) -> dict[str, Callable[[], np.ndarray]]:
        """What `cached_evaluations` needs to score every input with no
        feature present, when that is one row per input."""
        return {}

    def cached_scores(self, row: int, z: np.ndarray) -> np.ndarray:
        """Scores `(n,)` of the coalitions `z` of input `row`, evaluated once
        per problem (the enumerated coalitions of small inputs)."""
        scores: dict[int, np.ndarray] = self.request.cache.setdefault("enumerated", {})
        if row not in scores:
            rows = np.full(len(z), row)
            index = np.arange(len(z))
            scores[row] = np.asarray(self.score(z, rows, index), np.float64)
        return scores[row]


class _ImageProblem(_Problem):
    """Superpixels: present segments kept, the rest filled from the
    baseline."""

    def __init__(self, request: Request) -> None:
        params = request.params
        self.request = request
        cache = request.cache
        segments = cache.get("segments")
        if segments is None:
            segments = segment_batch(
                request.inputs, params["segmentation"], params["n_segments"]
            )
            cache["segments"] = segments
        self.segments: np.ndarray = segments
        self.counts = count_segments(self.segments)
        self.width = int(self.counts.max())
        self.fill = resolve_fill(
            _image_baseline(params["baseline"]),
            request.inputs,
            self.segments,
            seed=request.seed,
        )

    def count(self, row: int) -> int:
        return int(self.counts[row])

    def score(self, z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> Any:
        masks = segment_masks(self.segments, z, rows)
        return self.request.evaluate_blend(self.fill, masks, rows)

    def base_value(self, row: int) -> float:
        values = cached_evaluate(self.request, "base_values", lambda: self.fill)
        return float(values[row])

    def base_builds(self) -> dict[str, Callable[[], np.ndarray]]:
        return {"base_values": lambda: self.fill}

    def result(
        self,
        shapley: np.ndarray,
        base_values: np.ndarray,
        outputs: np.ndarray,
        progress: float,
        convergence: float | None,
    ) -> Explanation:
        channels = self.request.inputs.shape[-1]
        segment_values = shapley.astype(np.float32)
        return self.request.result(
            to_pixels(segment_values, self.segments, channels),
            base_values=base_values,
            outputs=outputs,
            progress=progress,
            convergence=convergence,
            segments=self.segments,
            segment_values=segment_values,
        )


class _TableProblem(_Problem):
    """Features: an absent feature takes a baseline row's value, or every
    background row's in turn with the model's output averaged over them."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.width = request.inputs.shape[1]
        self.rows, self.data = _table_data(request)
        if self.rows is None:
            self.rows_per_sample = len(self.data)
        if len(self.data) > _LARGE_BACKGROUND:
            warnings.warn(
                f"a background of {len(self.data)} rows costs that many "
                "evaluations per sample; pass a summary such as "
                "shap.sample(background, 100) or shap.kmeans(background, 20)",
                SsxWarning,
                stacklevel=4,
            )

    def count(self, row: int) -> int:
        return int(self.width)

    def score(self, z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> Any:
        request = self.request
        if self.rows is not None:
            return request.evaluate_blend(self.rows, z, rows)
        # every coalition against every background row, averaged
        count, size = len(z), len(self.data)
        masks = np.repeat(z, size, axis=0)
        fill_rows = np.tile(np.arange(size), count)
        scores = request.evaluate_blend(
            self.data, masks, np.repeat(rows, size), fill_rows
        )
        return scores.reshape(count, size).mean(axis=1, dtype=np.float64)

    def base_builds(self) -> dict[str, Callable[[], np.ndarray]]:
        baseline = self.rows
        if baseline is None:
            return {}
        return {"base_values": lambda: baseline}

    def base_value(self, row: int) -> float:
        request = self.request
        baseline = self.rows
        if baseline is not None:
            values = cached_evaluate(request, "base_values", lambda: baseline)
            return float(values[row])
        means: dict[int, float] = request.cache.setdefault("background_means", {})
        if row not in means:
            scores = request.evaluate(self.data, np.full(len(self.data), row))
            means[row] = float(np.mean(scores, dtype=np.float64))
        return means[row]

    def result(
        self,
        shapley: np.ndarray,
        base_values: np.ndarray,
        outputs: np.ndarray,
        progress: float,
        convergence: float | None,
    ) -> Explanation:
        return self.request.result(
            shapley,
            base_values=base_values,
            outputs=outputs,
            progress=progress,
            convergence=convergence,
        )


def _sample_count(features: int, n_samples: int | str) -> int:
    """How many coalitions are evaluated for `features` players: at most
    every one there is."""
    count = 2 * features + 2048 if n_samples == "auto" else int(n_samples)
    if features <= 30:
        count = min(count, 2**features - 2)
    return max(count, 0)


def _check_n_samples(value: Any) -> int | str:
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"n_samples must be an int or 'auto'; got {value!r}")
        return value
    return check_count("n_samples", value, low=2)


def _check_l1_reg(value: Any) -> Any:
    """``l1_reg``: ``False`` (no selection), ``"num_features(k)"``,
    ``"aic"``, ``"bic"`` or a Lasso alpha."""
    if value is False or value in ("aic", "bic"):
        return value
    if isinstance(value, str):
        if _NUM_FEATURES.fullmatch(value) and int(value[13:-1]) >= 1:
            return value
    elif (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and (value > 0 and np.isfinite(value))
    ):
        return float(value)
    raise ValueError(
        "l1_reg must be False, 'num_features(k)' with k >= 1, 'aic', 'bic' or a "
        f"positive Lasso alpha; got {value!r}"
    )
