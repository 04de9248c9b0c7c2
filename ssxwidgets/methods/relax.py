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
continues from the masks already scored. The three sums ``Σ M``, ``Σ s M``
and ``Σ s² M`` are kept in grid space (`MaskMaker.grid_sums`: a few numbers
per mask, not a mask), whole blocks added in a fixed order, so the result
for ``n`` masks does not depend on how it was reached and memory stays flat
in ``n_samples``.

Usage::

    exp = ssx.attribute(encoder, images, method="relax", n_samples=2000)
    exp.map                          # (N, H, W) importance
    exp.extras["uncertainty"]        # (N, H, W)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..explanation import Explanation
from ..targets import BoundTarget, EmbeddingSimilarity
from ._base import MethodSpec, Request, relative_change, single_threaded_blas
from ._sampling import BlockSums, CoalitionSampler, schedule
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

    outputs = similarity.outputs  # each input's similarity to itself, from binding
    if outputs is None:
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

    Sums of whole blocks are kept in the cache and added in block order, so
    the result for `stop` masks is the same however it was reached.
    """

    def term(start: int, stop: int) -> np.ndarray:
        return _block_sums(masks, z, scores, start, stop)

    sums = BlockSums(request.cache, "relax_sums").upto(stop, term)
    images = masks.render(sums)
    n_inputs = len(scores)
    mass, first, second = images[:1], images[1 : 1 + n_inputs], images[1 + n_inputs :]
    kept = mass > 1e-12
    safe = np.where(kept, mass, 1.0)
    importance = np.where(kept, first / safe, 0.0)
    # the weighted variance Σ s² M / Σ M − R², in float64
    uncertainty = np.where(kept, second / safe - importance**2, 0.0)
    return importance, np.maximum(uncertainty, 0.0)


def _block_sums(
    masks: MaskMaker, z: np.ndarray, scores: np.ndarray, start: int, stop: int
) -> np.ndarray:
    """Grid-space sums `(1 + 2N, K, cell²)` of masks ``start..stop-1``
    weighted by 1, by each input's similarity and by its square (the same
    masks serve every input)."""
    s = scores[:, start:stop]
    weights = np.concatenate([np.ones((1, stop - start)), s, s * s])
    return masks.grid_sums(z[start:stop], np.arange(start, stop), weights)
