"""RELAX: label-free attribution of an encoder's representation, with its
uncertainty.

Wickstrøm, Trosten, Løkse, Boubekki, Mikalsen, Kampffmeyer & Jenssen,
"RELAX: Representation Learning Explainability", IJCV 2023.

Random smooth masks ``M_n`` (RISE's: a ``cell × cell`` grid of cells kept
with probability ``p``, upsampled bilinearly and shifted) hide parts of the
input; ``s_n`` is the cosine similarity between the embedding of the masked
input ``x · M_n + baseline · (1 − M_n)`` and the embedding of ``x``. A pixel's
importance is the similarity expected when it is kept, and its uncertainty
the spread of the similarity around that importance when it is kept::

    R = Σ_n s_n M_n / Σ_n M_n
    U = Σ_n (s_n − R)² M_n / Σ_n M_n

The paper writes both with ``1 / n_samples`` in place of ``1 / Σ_n M_n``;
dividing by each pixel's own mask mass instead makes ``R`` a weighted mean of
similarities (the paper's estimate divided by the mean mask, ``p`` in
expectation) and ``U`` its weighted variance, comparable across pixels.

RELAX needs no target: it always explains the embedding's similarity to
itself, whatever target the request carries; similarities are computed on
the adapter's compiled path as a cosine target. Masks and similarities are
kept in ``request.cache`` (see `_sampling`), so raising ``n_samples``
continues from the masks already scored; the statistics are merged block by
block in a fixed order (Chan et al.'s pairwise update of a weighted mean and
variance), so the result for ``n`` masks does not depend on how it was
reached and memory stays flat in ``n_samples``.

Usage::

    exp = ssx.attribute(encoder, images, method="relax", n_samples=2000)
    exp.map                          # (N, H, W) importance
    exp.extras["uncertainty"]        # (N, H, W)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..explanation import Explanation
from ..targets import BoundTarget, EmbeddingSimilarity
from ._base import MethodSpec, Request, relative_change, single_threaded_blas
from ._sampling import BLOCK, CoalitionSampler, schedule
from .rise import MaskMaker, check_masks

__all__ = ["SPEC", "run", "validate"]

SPEC = MethodSpec(
    name="relax",
    title="RELAX",
    needs_gradients=False,
    defaults={"n_samples": 2000, "cell": 8, "p": 0.5, "baseline": 0.0},
    inputs=("image",),
    paper="Wickstrøm et al. 2023, arXiv:2112.10161",
)


def run(request: Request) -> Iterator[Explanation]:
    """Yield RELAX importance and uncertainty on more and more masks.

    Parameters (in ``request.params``)
    ----------------------------------
    n_samples
        Masks per input.
    cell
        Grid cells per side of a mask before upsampling.
    p
        Chance that a cell is kept, in (0, 1).
    baseline
        What a masked pixel becomes (see `baselines.resolve_baseline`); the
        paper multiplies by the mask, which is the default 0.

    Yields
    ------
    Explanation
        ``values`` `(N, H, W, C)`: the importance divided by ``C`` on every
        channel (so ``map`` is the importance); ``extras["uncertainty"]``
        `(N, H, W)`; ``outputs`` the similarity of each input's embedding to
        itself (1), ``base_values`` the similarity at the baseline;
        ``convergence`` the relative change of the importance since the last
        partial.
    """
    inputs = request.inputs
    _, height, width, channels = inputs.shape
    n_samples, cell, p, baseline = check_masks(request)

    similarity = _own_embedding(request)
    masks = MaskMaker(height, width, cell, request.seed, antithetic=p == 0.5)

    def score(z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        # x · M + b · (1 − M), blended inside the compiled call
        scores = request.adapter.evaluate_blend(
            inputs,
            baseline,
            masks.make(z, index),
            similarity,
            rows,
            cancel=request.cancel,
        )
        request.n_evaluations += len(z)
        return np.asarray(scores, np.float64)

    outputs = _cached_similarity(request, similarity, "outputs", inputs)
    base_values = _cached_similarity(request, similarity, "base_values", baseline)
    sampler = CoalitionSampler(
        request, cell * cell, score, p=p, antithetic=p == 0.5, key="relax"
    )
    previous: np.ndarray | None = None
    for stop in schedule(n_samples, len(inputs), request.adapter.batch_size):
        z, scores = sampler.draw(stop)
        with single_threaded_blas():
            importance, uncertainty = _statistics(request, masks, z[0], scores, stop)
        values = np.repeat((importance / channels)[..., None], channels, axis=-1)
        yield request.result(
            values,
            base_values=base_values,
            outputs=outputs,
            progress=stop / n_samples,
            convergence=relative_change(previous, importance),
            extras={"uncertainty": uncertainty.astype(np.float32)},
        )
        previous = importance


def validate(request: Request) -> None:
    """Check ``n_samples``, ``cell``, ``p`` and ``baseline`` (no
    evaluation)."""
    check_masks(request)


def _own_embedding(request: Request) -> BoundTarget:
    """The cosine similarity to each input's own embedding, as a target;
    kept in the cache with the embeddings' evaluations counted once."""
    bound: BoundTarget | None = request.cache.get("relax_target")
    if bound is None:
        bound = EmbeddingSimilarity("cosine").bind(request.adapter, request.inputs)
        request.n_evaluations += len(request.inputs)
        request.cache["relax_target"] = bound
    return bound


def _similarity(
    request: Request, target: BoundTarget, inputs: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """`(M,)` cosine similarities of `inputs` `(M, H, W, C)` to the embeddings
    of inputs `rows`, on the adapter's compiled path."""
    scores = request.adapter.evaluate(
        np.asarray(inputs, np.float32), target, rows, cancel=request.cancel
    )
    request.n_evaluations += len(inputs)
    return np.asarray(scores, np.float64)


def _cached_similarity(
    request: Request, target: BoundTarget, key: str, inputs: np.ndarray
) -> np.ndarray:
    scores = request.cache.get(f"relax_{key}")
    if scores is None:
        rows = np.arange(len(inputs))
        scores = _similarity(request, target, inputs, rows)
        request.cache[f"relax_{key}"] = scores
    return np.asarray(scores)


def _statistics(
    request: Request, masks: MaskMaker, z: np.ndarray, scores: np.ndarray, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Importance and uncertainty, `(N, H, W)` each, over the first `stop`
    masks, from grids `z` `(n, cell²)` and similarities `scores` `(N, n)`.

    Whole blocks are merged once and kept in the cache, always in block
    order, so the result for `stop` masks is the same however it was reached.
    """
    n_inputs = len(scores)
    pixels = masks.height * masks.width
    state: dict[str, Any] = request.cache.setdefault("relax_stats", {"n": 0})
    if state["n"] > stop or "moments" not in state:
        state["n"], state["moments"] = 0, _empty(n_inputs, pixels)
    full = stop // BLOCK * BLOCK
    for start in range(state["n"], full, BLOCK):
        block = _block_moments(masks, z, scores, start, start + BLOCK)
        state["moments"] = _merge(state["moments"], block)
        state["n"] = start + BLOCK
    moments = state["moments"]
    if full < stop:
        moments = _merge(moments, _block_moments(masks, z, scores, full, stop))
    weight, mean, spread = moments
    kept = weight > 0
    uncertainty = np.where(kept, spread / np.where(kept, weight, 1.0), 0.0)
    shape = (n_inputs, masks.height, masks.width)
    return mean.reshape(shape), np.maximum(uncertainty, 0.0).reshape(shape)


Moments = tuple[np.ndarray, np.ndarray, np.ndarray]


def _empty(n_inputs: int, pixels: int) -> Moments:
    """No samples: mask mass, weighted mean and weighted sum of squared
    deviations, each `(N, H·W)`."""
    zeros = np.zeros((n_inputs, pixels))
    return zeros, zeros.copy(), zeros.copy()


def _block_moments(
    masks: MaskMaker, z: np.ndarray, scores: np.ndarray, start: int, stop: int
) -> Moments:
    """The moments of masks ``start..stop-1`` (the same masks serve every
    input): mass ``Σ M``, mean ``Σ s M / Σ M`` and ``Σ (s − mean)² M``."""
    made = masks.make(z[start:stop], np.arange(start, stop))
    weights = made.reshape(stop - start, -1).astype(np.float64)  # (n, P)
    s = scores[:, start:stop]  # (N, n)
    mass = np.broadcast_to(weights.sum(axis=0), (len(s), weights.shape[1]))
    safe = np.where(mass > 0, mass, 1.0)
    mean = (s @ weights) / safe
    squares = (s**2) @ weights
    spread = np.maximum(squares - 2.0 * mean * (s @ weights) + mean**2 * mass, 0.0)
    return mass.copy(), mean, spread


def _merge(a: Moments, b: Moments) -> Moments:
    """Chan et al.'s pairwise merge of two sets of weighted moments."""
    weight_a, mean_a, spread_a = a
    weight_b, mean_b, spread_b = b
    weight = weight_a + weight_b
    safe = np.where(weight > 0, weight, 1.0)
    delta = mean_b - mean_a
    mean = mean_a + delta * weight_b / safe
    spread = spread_a + spread_b + delta**2 * weight_a * weight_b / safe
    return weight, mean, spread
