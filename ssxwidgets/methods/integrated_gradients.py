"""Integrated gradients: the path integral of the gradient from a baseline.

Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML
2017 (arXiv:1703.01365).

The attribution of input ``x`` against baseline ``b`` is
``(x - b) ⊙ ∫₀¹ ∂f/∂x(b + α (x - b)) dα``, the integral taken by quadrature
on `n_steps` intervals. Completeness says the attributions sum to
``f(x) - f(b)``; how far they miss is reported in ``extras``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..baselines import BASELINE_NAMES, resolve_baseline
from ..explanation import Explanation
from ._base import (
    MAX_SAMPLES,
    MethodSpec,
    Request,
    check_choice,
    check_count,
    relative_change,
)

__all__ = ["RULES", "SPEC", "check_baseline", "completeness", "run", "validate"]

#: quadrature rules: the trapezoid on ``n_steps + 1`` points including both
#: ends, or the midpoint (middle Riemann) sum on ``n_steps`` points
RULES = ("trapezoid", "riemann_middle")

SPEC = MethodSpec(
    name="integrated_gradients",
    title="Integrated gradients",
    needs_gradients=True,
    defaults={"n_steps": 64, "baseline": 0.0, "rule": "trapezoid"},
    paper="Sundararajan et al. 2017, arXiv:1703.01365",
)

#: least seconds between two partial results (the last one always comes)
_PARTIAL_SECONDS = 0.25


def run(request: Request) -> Iterator[Explanation]:
    """Yield integrated gradients `(N, ...)`, refined as the path points arrive.

    Parameters (in ``request.params``)
    ----------------------------------
    n_steps
        Quadrature intervals along the path; 64 keeps the completeness gap
        near 1 % for most image models. Costs ``N * (n_steps + 1)`` gradient
        evaluations, whose ends give ``f(baseline)`` and ``f(x)`` (``N *
        n_steps`` for ``"riemann_middle"``, plus `2N` forward passes for
        those two; the same when `2N` exceeds the batch size).
    baseline
        A number (default ``0.0``, black for images in [0, 1]), an array the
        shape of one input or of the batch, or a name: ``"blur"`` (images;
        keeps attribution inside dark objects that a black baseline misses),
        ``"mean"``, ``"zero"``, ``"uniform"``.
    rule
        ``"trapezoid"`` (default) or ``"riemann_middle"``.

    Yields
    ------
    Explanation
        Partial results while the path points stream in: the points are
        visited coarse to fine, and each partial is the average gradient over
        the points seen so far times ``x - b``, so it is already a usable,
        coarser estimate. The last has ``progress == 1``. ``base_values``
        `(N,)` is ``f(baseline)``, ``outputs`` `(N,)` is ``f(x)``; ``extras``
        holds ``completeness_delta`` `(N,)` (``values.sum() - (f(x) -
        f(b))``) and ``completeness_relative_delta`` `(N,)` (that divided by
        ``|f(x) - f(b)|``).
    """
    n_steps, rule, baseline = _checked(request)
    inputs = request.inputs

    n = len(inputs)
    shape = inputs.shape[1:]
    flat_base = baseline.reshape(n, -1)
    diff = inputs.reshape(n, -1) - flat_base
    alphas, weights = quadrature(n_steps, rule)
    order = coarse_to_fine(len(alphas), ends_first=rule == "trapezoid")

    total = n * len(alphas)
    chunk = request.adapter.batch_size
    # f(b) and f(x), for completeness: the trapezoid's path starts and ends
    # there, and its ends come first, so the first chunk's scores hold them;
    # otherwise (or when they do not fit one chunk) one forward call
    outputs = np.zeros(n, np.float32)
    base_values = np.zeros(n, np.float32)
    ends_on_path = rule == "trapezoid" and 2 * n <= chunk
    if not ends_on_path:
        ends = request.evaluate(
            np.concatenate([inputs, baseline]),
            np.concatenate([np.arange(n), np.arange(n)]),
        )
        outputs, base_values = ends[:n], ends[n:]

    acc = np.zeros(diff.shape, np.float64)  # Σ w_s ∂f/∂x(point s), per input
    seen = np.zeros(n, np.float64)  # Σ w_s over the points seen, per input
    previous: np.ndarray | None = None
    last_yield = -np.inf  # the first chunk always yields
    for start in range(0, total, chunk):
        stop = min(total, start + chunk)
        rows = np.arange(start, stop)
        index = rows % n
        step = order[rows // n]
        points = flat_base[index] + alphas[step, None].astype(np.float32) * diff[index]
        grads, scores = request.gradients(points.reshape(-1, *shape), index)
        _accumulate(acc, seen, grads.reshape(len(rows), -1), index, weights[step])
        if ends_on_path:
            at = alphas[step]
            base_values[index[at == 0.0]] = scores[at == 0.0]
            outputs[index[at == 1.0]] = scores[at == 1.0]

        done = stop == total
        if done or time.perf_counter() - last_yield >= _PARTIAL_SECONDS:
            scale = np.where(seen > 0, 1.0 / np.maximum(seen, 1e-300), 0.0)
            mean_grad = acc if done else acc * scale[:, None]
            values = (diff * mean_grad).reshape(inputs.shape)
            convergence = relative_change(previous, values)
            previous = values
            last_yield = time.perf_counter()
            yield request.result(
                values,
                base_values=base_values,
                outputs=outputs,
                progress=stop / total,
                convergence=convergence,
                extras=completeness(values, outputs, base_values),
            )


def validate(request: Request) -> None:
    """Check ``n_steps``, ``rule`` and ``baseline`` (no evaluation)."""
    _checked(request)


def _checked(request: Request) -> tuple[int, str, np.ndarray]:
    """``n_steps``, ``rule`` and the baseline resolved `(N, ...)`, checked."""
    params = request.params
    n_steps = check_count("n_steps", params["n_steps"], 1, MAX_SAMPLES)
    rule = check_choice("rule", params["rule"], RULES)
    baseline = check_baseline(params["baseline"], request.inputs, request.seed)
    return n_steps, rule, baseline


def quadrature(n_steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Path positions ``α`` and their weights (summing to 1) for `rule`."""
    if rule == "trapezoid":
        alphas = np.linspace(0.0, 1.0, n_steps + 1)
        weights = np.full(n_steps + 1, 1.0 / n_steps)
        weights[[0, -1]] /= 2.0
    else:
        alphas = (np.arange(n_steps) + 0.5) / n_steps
        weights = np.full(n_steps, 1.0 / n_steps)
    return alphas, weights


def coarse_to_fine(count: int, *, ends_first: bool = False) -> np.ndarray:
    """A visiting order of ``0..count-1`` whose every prefix is spread out.

    Indices with more trailing zero bits come first (0, 32, 16, 48, 8, ...),
    so the first points seen cover the whole path at a coarse spacing; with
    `ends_first` the last index joins the first.
    """
    index = np.arange(count)
    low_bit = index & -index  # largest power of two dividing index; 0 for 0
    coarseness = np.where(index == 0, count + 1, low_bit)
    if ends_first:
        coarseness[-1] = count + 1
    return np.lexsort((index, -coarseness))


def _accumulate(
    acc: np.ndarray,
    seen: np.ndarray,
    grads: np.ndarray,
    index: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Add ``weights[r] * grads[r]`` to ``acc[index[r]]``; rows run in the
    order (position, input), so each position covers a contiguous input run."""
    breaks = np.flatnonzero(np.diff(index) <= 0) + 1
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(index)], strict=True):
        first, last = int(index[lo]), int(index[hi - 1]) + 1
        acc[first:last] += weights[lo:hi, None] * grads[lo:hi]
        seen[first:last] += weights[lo:hi]


def completeness(
    values: np.ndarray, outputs: np.ndarray, base_values: np.ndarray
) -> dict[str, Any]:
    """``completeness_delta`` `(N,)` = ``Σ values − (outputs − base_values)``
    and ``completeness_relative_delta`` `(N,)`, that over ``|outputs −
    base_values|``."""
    gap = outputs.astype(np.float64) - base_values.astype(np.float64)
    delta = values.reshape(len(values), -1).sum(axis=1, dtype=np.float64) - gap
    relative = np.abs(delta) / np.maximum(np.abs(gap), 1e-12)
    return {
        "completeness_delta": delta.astype(np.float32),
        "completeness_relative_delta": relative.astype(np.float32),
    }


def check_baseline(baseline: Any, inputs: np.ndarray, seed: int) -> np.ndarray:
    """`baseline` resolved to an array shaped like `inputs` `(N, ...)`.

    Raises
    ------
    TypeError
        When it is neither a number, a name nor an array.
    ValueError
        For an unknown name or an array of the wrong shape.
    """
    if baseline is None or isinstance(baseline, str):
        return resolve_baseline(baseline, inputs, seed=seed)
    if not is_array_like(baseline):
        raise TypeError(
            "baseline must be a number, a name "
            f"({', '.join(BASELINE_NAMES)}) or an array the shape of one input "
            f"{inputs.shape[1:]}; got {type(baseline).__name__}"
        )
    array = np.asarray(baseline)
    if not (np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"baseline must be numeric; got dtype {array.dtype}")
    return resolve_baseline(array, inputs, seed=seed)


def is_array_like(value: Any) -> bool:
    """Whether `value` is a number, a sequence or an array (not a bool)."""
    if isinstance(value, bool):
        return False
    kinds = int | float | np.number | np.ndarray | list | tuple
    return isinstance(value, kinds) or hasattr(value, "__array__")
