"""Expected gradients: integrated gradients averaged over a background.

Erion, Janizek, Sturmfels, Lundberg & Lee, "Improving performance of deep
learning models with axiomatic attribution priors and expected gradients",
Nature Machine Intelligence 2021 (arXiv:1906.10670).

Each sample draws a reference ``r`` from the background and a position
``α ~ U(0, 1)``; the attribution is the mean of
``(x − r) ⊙ ∂f/∂x(r + α (x − r))``. Its expectation sums to
``f(x) − E_r f(r)`` (completeness over the background). Sampling is
incremental and prefix-stable, as for SmoothGrad (`smoothgrad.sample_blocks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..baselines import BASELINE_NAMES, resolve_baseline
from ..explanation import Explanation
from ._base import MAX_SAMPLES, MethodSpec, Request, check_count, relative_change
from .integrated_gradients import completeness, is_array_like
from .smoothgrad import BLOCK, block_rng, sample_blocks

__all__ = ["DEFAULT_IMAGE_BACKGROUND", "SPEC", "run", "validate"]

#: the references used for images when no background is given: black, the
#: image blurred, and uniform noise over the inputs' range
DEFAULT_IMAGE_BACKGROUND = ("zero", "blur", "uniform")

SPEC = MethodSpec(
    name="expected_gradients",
    title="Expected gradients",
    needs_gradients=True,
    defaults={"background": None, "n_samples": 200},
    paper="Erion et al. 2021, arXiv:1906.10670",
)


def run(request: Request) -> Iterator[Explanation]:
    """Yield expected gradients `(N, ...)`, refined block by block.

    Parameters (in ``request.params``)
    ----------------------------------
    background
        Reference inputs: an array `(M, ...)` of inputs (e.g. a sample of the
        training data), one input `(...)`, a number, a baseline name
        (``"zero"``, ``"blur"``, ``"mean"``, ``"uniform"``) or a list of
        names (each gives every input its own reference). ``None`` (default)
        means `DEFAULT_IMAGE_BACKGROUND` for images; tables need one.
    n_samples
        Samples (reference, position) per input (default 200); costs
        ``N * n_samples`` gradient evaluations, fewer when a previous run left
        samples, plus ``N`` forward passes for ``f(x)`` and up to ``N * M``
        for ``E f(r)`` (``M`` when the target is the same for every input).

    Yields
    ------
    Explanation
        A partial after every batch of blocks evaluated, the last with
        ``progress == 1``; ``convergence`` is the relative change over the
        last block of samples. ``base_values`` `(N,)` is ``E_r f(r)`` over the
        whole background, ``outputs`` `(N,)` is ``f(x)``; ``extras`` holds
        ``completeness_delta`` and ``completeness_relative_delta`` `(N,)`,
        which shrink towards 0 as ``n_samples`` grows.
    """
    n_samples, references, shared = _checked(request)
    inputs = request.inputs

    n = len(inputs)
    shape = inputs.shape[1:]
    flat = inputs.reshape(n, -1)
    flat_refs = references.reshape(*references.shape[: 1 if shared else 2], -1)
    n_refs = len(references)
    base_values = _cached(
        request, "base_values", lambda: _expected_output(request, references, shared)
    )

    def points(
        block: int, index: int, lo: int, hi: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = block_rng(request.seed, "expected_gradients", block, index)
        picks = rng.integers(0, n_refs, BLOCK)[lo:hi]
        alphas = rng.random(BLOCK, np.float32)[lo:hi, None]
        refs = flat_refs[picks] if shared else flat_refs[picks, index]
        diffs = flat[index] - refs
        return (refs + alphas * diffs).reshape(-1, *shape), diffs

    for state in sample_blocks(request, n_samples, points):
        # f(x): from sample_blocks' first call when it had room
        outputs = _cached(request, "outputs", lambda: request.evaluate(inputs))
        values = (state.totals[0] / state.n_done).reshape(inputs.shape)
        convergence = None
        if state.previous is not None:
            before = (state.previous[0] / state.previous_n).reshape(inputs.shape)
            convergence = relative_change(before, values)
        yield request.result(
            values,
            base_values=base_values,
            outputs=outputs,
            progress=state.n_done / n_samples,
            convergence=convergence,
            extras=completeness(values, outputs, base_values),
        )


def validate(request: Request) -> None:
    """Check ``n_samples`` and ``background`` (no evaluation)."""
    _checked(request)


def _checked(request: Request) -> tuple[int, np.ndarray, bool]:
    """``n_samples``, the references and whether they are shared (see
    `_references`), checked."""
    n_samples = check_count("n_samples", request.params["n_samples"], 1, MAX_SAMPLES)
    references, shared = _references(
        request.params["background"], request.inputs, request.seed
    )
    return n_samples, references, shared


def _references(
    background: Any, inputs: np.ndarray, seed: int
) -> tuple[np.ndarray, bool]:
    """The references and whether all inputs share them: `(M, ...)` shared,
    or `(M, N, ...)` one set per input (from baseline names).

    Raises
    ------
    TypeError
        When `background` is neither an array, a number nor names.
    ValueError
        For a shape that does not fit the inputs, NaN or Inf, an unknown
        name, or no background for tables.
    """
    one = inputs.shape[1:]
    if background is None:
        if inputs.ndim != 4:
            raise ValueError(
                "expected_gradients on tables needs background=, reference rows "
                f"of shape (M, {', '.join(map(str, one))}) such as a sample of "
                "the training data; got None"
            )
        background = DEFAULT_IMAGE_BACKGROUND
    if isinstance(background, str):
        background = (background,)
    if (
        isinstance(background, list | tuple)
        and background
        and all(isinstance(item, str) for item in background)
    ):
        named = [resolve_baseline(name, inputs, seed=seed) for name in background]
        return np.stack(named), False
    if not is_array_like(background):
        raise TypeError(
            f"background must be reference inputs (M, {', '.join(map(str, one))}), "
            f"a number or baseline names ({', '.join(BASELINE_NAMES)}); got "
            f"{type(background).__name__}"
        )
    array = np.asarray(background)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"background must be numeric; got dtype {array.dtype}")
    array = array.astype(np.float32)
    if array.ndim == 0:
        array = np.full((1, *one), array, np.float32)
    elif array.shape == one:
        array = array[None]
    if array.ndim != inputs.ndim or array.shape[1:] != one or len(array) == 0:
        raise ValueError(
            f"background must have shape (M, {', '.join(map(str, one))}) with M "
            f">= 1, or the shape of one input {one}; got {array.shape}"
        )
    if len(array) > MAX_SAMPLES:
        raise ValueError(
            f"background must hold at most {MAX_SAMPLES:,} references; got "
            f"{len(array):,}"
        )
    if not np.isfinite(array).all():
        raise ValueError("background must be finite; it contains NaN or Inf")
    return np.ascontiguousarray(array), True


def _expected_output(
    request: Request, references: np.ndarray, shared: bool
) -> np.ndarray:
    """``E_r f(r)`` `(N,)`: the target averaged over each input's references."""
    n = len(request.inputs)
    weights = request.target.weights
    if shared and bool(np.all(weights == weights[:1])):
        scores = request.evaluate(references, np.zeros(len(references), np.int64))
        return np.full(n, scores.mean(dtype=np.float64), np.float32)
    # the references of a few inputs at a time, about four batches per call
    n_refs = len(references)
    one = request.inputs.shape[1:]
    per_call = max(1, 4 * request.adapter.batch_size // n_refs)
    means = np.empty(n, np.float32)
    for lo in range(0, n, per_call):
        hi = min(n, lo + per_call)
        if shared:
            refs = np.broadcast_to(references, (hi - lo, *references.shape))
        else:
            refs = np.moveaxis(references[:, lo:hi], 1, 0)
        rows = np.repeat(np.arange(lo, hi), n_refs)
        scores = request.evaluate(refs.reshape(-1, *one), rows)
        means[lo:hi] = scores.reshape(hi - lo, n_refs).mean(axis=1, dtype=np.float64)
    return means


def _cached(request: Request, key: str, compute: Any) -> np.ndarray:
    """``request.cache[key]``, computed by `compute()` the first time."""
    if key not in request.cache:
        request.cache[key] = compute()
    value: np.ndarray = request.cache[key]
    return value
