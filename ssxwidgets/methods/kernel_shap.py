"""Kernel SHAP over superpixels (images) or features (tables), through `shap`.

Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions",
NeurIPS 2017: Shapley values estimated by a weighted linear regression on
coalitions drawn with the Shapley kernel, the sum of the values held to
``f(x) − f(absent)`` by a constraint. This module runs shap's
``KernelExplainer``. On images a coalition keeps some superpixels and fills
the rest from the baseline; on tables absent features take the values of a
background set (shap integrates over its rows) or of a baseline row.

Every evaluation goes through the request in full adapter batches, the
perturbed images built one chunk at a time, so memory stays flat in
``n_samples``. The model's score for each coalition is kept in
``request.cache``: a rerun with more samples evaluates only coalitions not
seen before. shap's sampling draws from numpy's global generator, seeded here
from ``request.seed`` and the input's index.

Usage::

    exp = ssx.attribute(model, images, method="kernel_shap", n_segments=50,
                        n_samples=2000)
    exp.segment_values          # (N, S) Shapley value of each superpixel
    exp = ssx.attribute(model, rows, method="kernel_shap", background=X)
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._errors import SsxWarning
from ..baselines import resolve_baseline
from ..explanation import Explanation
from ..segmentation import (
    count_segments,
    fill_masks,
    resolve_fill,
    segment_batch,
    to_pixels,
)
from ._base import MethodSpec, Request, check_count
from ._sampling import cached_evaluate
from .partition_shap import (
    Finished,
    check_additivity,
    check_background,
    in_worker,
    seeded_numpy,
)

__all__ = ["SPEC", "run"]

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
    paper="Lundberg & Lee 2017, arXiv:1705.07874 (shap's KernelExplainer)",
)

#: yield a partial within an input at most once per this many adapter batches
_BATCHES_PER_PARTIAL = 4
#: background rows beyond which shap advises summarising the set
_LARGE_BACKGROUND = 100
_NUM_FEATURES = re.compile(r"num_features\((\d+)\)")


def run(request: Request) -> Iterator[Explanation]:
    """Yield partial explanations, one input after another.

    Images: ``segment_values`` `(N, S)` are the Shapley values of the
    superpixels (zero-padded past an image's own count), ``segments``
    `(N, H, W)` the superpixels, and ``values`` `(N, H, W, C)` each segment's
    value on its pixels divided by ``C``. Tables: ``values`` `(N, F)`. For
    each finished input the Shapley values (``segment_values`` on images) sum
    to ``outputs − base_values``; unfinished inputs have zero values and
    their base value set to their output.
    """
    params = request.params
    n_samples = _check_n_samples(params["n_samples"])
    l1_reg = _check_l1_reg(params["l1_reg"])
    problem: _ImageProblem | _TableProblem
    if request.is_image:
        problem = _ImageProblem(request)
    else:
        problem = _TableProblem(request)

    n = len(request.inputs)
    outputs = cached_evaluate(request, "outputs", lambda: request.inputs)
    shapley = np.zeros((n, problem.width), np.float64)
    base_values = outputs.astype(np.float64).copy()
    totals = outputs.astype(np.float64).copy()
    every = _BATCHES_PER_PARTIAL * request.adapter.batch_size
    finished: dict[tuple[int, Any], tuple[np.ndarray, float]] = (
        request.cache.setdefault("finished", {})
    )

    def partial(progress: float) -> Explanation:
        return problem.result(shapley, base_values, totals, progress)

    for row in range(n):
        key = (row, n_samples)
        if key not in finished:
            budget = problem.budget(row, n_samples)
            task = _kernel_task(
                request,
                row,
                problem.background(row),
                problem.instance(row),
                n_samples,
                l1_reg,
            )
            done = since = 0
            for event in in_worker(request, row, task, problem.model(row)):
                if isinstance(event, Finished):
                    finished[key] = event.value
                    continue
                done += event
                since += event
                if since >= every:
                    since = 0
                    yield partial((row + min(done / budget, 0.99)) / n)
        phi, expected = finished[key]
        shapley[row, : len(phi)] = phi
        base_values[row] = expected
        totals[row] = float(phi.sum()) + expected
        check_additivity(totals[row], float(outputs[row]), row, "kernel_shap")
        yield partial((row + 1) / n)


def _kernel_task(
    request: Request,
    row: int,
    background: np.ndarray,
    instance: np.ndarray,
    n_samples: int | str,
    l1_reg: Any,
) -> Callable[[Callable[[np.ndarray], np.ndarray]], tuple[np.ndarray, float]]:
    """What the worker runs for input `row`: shap's explainer, called once.
    Returns the Shapley values `(M,)` and the base value."""

    def task(model: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
        import shap

        with seeded_numpy(request.seed, row):
            explainer = shap.KernelExplainer(model, background)
            phi = explainer.shap_values(
                instance, nsamples=n_samples, l1_reg=l1_reg, silent=True
            )
        expected = float(np.asarray(explainer.expected_value).reshape(-1)[0])
        return np.asarray(phi, np.float64).reshape(-1), expected

    return task


class _ImageProblem:
    """Superpixels: coalitions `(M, S)` of 0/1, present segments kept and the
    rest filled from the baseline."""

    def __init__(self, request: Request) -> None:
        params = request.params
        self.request = request
        cache = request.cache
        self.segments: np.ndarray = cache.get("segments")  # type: ignore[assignment]
        if self.segments is None:
            self.segments = segment_batch(
                request.inputs, params["segmentation"], params["n_segments"]
            )
            cache["segments"] = self.segments
        self.counts = count_segments(self.segments)
        self.width = int(self.counts.max())
        baseline = "mean" if params["baseline"] is None else params["baseline"]
        self.fill = resolve_fill(
            baseline, request.inputs, self.segments, seed=request.seed
        )
        self.scores: dict[int, dict[bytes, float]] = cache.setdefault(
            "coalition_scores", {}
        )

    def budget(self, row: int, n_samples: int | str) -> int:
        return _sample_count(int(self.counts[row]), n_samples) + 2

    def background(self, row: int) -> np.ndarray:
        return np.zeros((1, int(self.counts[row])))

    def instance(self, row: int) -> np.ndarray:
        return np.ones(int(self.counts[row]))

    def model(self, row: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """Scores `(M,)` of coalitions `(M, S)`, evaluating only those not
        scored before."""
        request = self.request
        known = self.scores.setdefault(row, {})

        def scores(z: np.ndarray) -> np.ndarray:
            present = np.asarray(z) > 0.5
            keys = [np.packbits(c).tobytes() for c in present]
            missing = [j for j, key in enumerate(keys) if key not in known]
            if missing:
                rows = np.full(len(missing), row)
                batch = fill_masks(
                    request.inputs, self.segments, present[missing], self.fill, rows
                )
                for j, score in zip(
                    missing, request.evaluate(batch, rows), strict=True
                ):
                    known[keys[j]] = float(score)
            return np.array([known[key] for key in keys], np.float64)

        return scores

    def result(
        self,
        shapley: np.ndarray,
        base_values: np.ndarray,
        outputs: np.ndarray,
        progress: float,
    ) -> Explanation:
        channels = self.request.inputs.shape[-1]
        segment_values = shapley.astype(np.float32)
        return self.request.result(
            to_pixels(segment_values, self.segments, channels),
            base_values=base_values,
            outputs=outputs,
            progress=progress,
            segments=self.segments,
            segment_values=segment_values,
        )


class _TableProblem:
    """Features: absent features take a background row's values, the model's
    output averaged over the background rows."""

    def __init__(self, request: Request) -> None:
        params = request.params
        self.request = request
        self.width = request.inputs.shape[1]
        self.rows: np.ndarray | None = None
        if params["background"] is None and params["baseline"] is not None:
            self.rows = resolve_baseline(
                params["baseline"], request.inputs, seed=request.seed
            )
            self.data = self.rows[:1]
        else:
            try:
                self.data = check_background(
                    params["background"], request.inputs, "kernel_shap"
                )
            except ValueError as error:
                raise ValueError(
                    f"{error}; or pass baseline= a row (F,) or a name such as 'mean'"
                ) from error
        if len(self.data) > _LARGE_BACKGROUND:
            warnings.warn(
                f"a background of {len(self.data)} rows costs that many "
                "evaluations per sample; pass a summary such as "
                "shap.sample(background, 100) or shap.kmeans(background, 20)",
                SsxWarning,
                stacklevel=4,
            )

    def budget(self, row: int, n_samples: int | str) -> int:
        return (_sample_count(self.width, n_samples) + 1) * len(self.data) + 1

    def background(self, row: int) -> np.ndarray:
        data = self.data if self.rows is None else self.rows[row : row + 1]
        return np.asarray(data, np.float64)

    def instance(self, row: int) -> np.ndarray:
        return np.asarray(self.request.inputs[row], np.float64)

    def model(self, row: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """``None``: shap's rows go to the request as they are."""
        return None

    def result(
        self,
        shapley: np.ndarray,
        base_values: np.ndarray,
        outputs: np.ndarray,
        progress: float,
    ) -> Explanation:
        return self.request.result(
            shapley, base_values=base_values, outputs=outputs, progress=progress
        )


def _sample_count(features: int, n_samples: int | str) -> int:
    """How many coalitions shap evaluates for `features` players."""
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
    """shap's ``l1_reg``: ``False`` (plain regression), ``"num_features(k)"``,
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
