"""RISE: the target's expectation over random masks that keep each pixel.

Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018.

Each mask starts as a ``cell × cell`` grid of cells kept with probability
``p``, is upsampled bilinearly to ``(cell + 1)`` cells of ``ceil(H / cell)``
pixels and cropped at a random shift, which makes smooth masks ``M`` in
[0, 1]. A perturbed input is ``x · M + baseline · (1 − M)``; the saliency of
a pixel is ``Σ f(x_M) M / (n_samples · p)``, the paper's Monte-Carlo estimate
of the expected score given that the pixel is kept.

Masks are never stored: the grids and their scores are kept (see
`_sampling`), and masks are built only to be evaluated. The weighted sum is
kept in grid space, by shift (`MaskMaker.grid_sums`), and turned into an
image once per partial (`MaskMaker.render`), so memory stays flat in
``n_samples``. With ``p = 0.5`` masks come in antithetic pairs (``M`` and
``1 − M``, same shift).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..baselines import resolve_baseline
from ..explanation import Explanation
from ._base import (
    MethodSpec,
    Request,
    check_count,
    check_fraction,
    relative_change,
    single_threaded_blas,
)
from ._sampling import (
    BlockSums,
    CoalitionSampler,
    cached_evaluations,
    draws_for,
    schedule,
)

SPEC = MethodSpec(
    name="rise",
    title="RISE",
    needs_gradients=False,
    defaults={"n_samples": 2000, "cell": 8, "p": 0.5, "baseline": 0.0},
    inputs=("image",),
    paper="Petsiuk et al. 2018, arXiv:1806.07421",
)


def run(request: Request) -> Iterator[Explanation]:
    """Yield RISE saliency on more and more masks.

    Parameters (in ``request.params``)
    ----------------------------------
    n_samples
        Masks per input.
    cell
        Grid cells per side of a mask before upsampling.
    p
        Chance that a cell is kept, in (0, 1).
    baseline
        What a masked pixel becomes (see `baselines.resolve_baseline`).

    Yields
    ------
    Explanation
        ``values`` `(N, H, W, C)` the saliency divided by ``C`` on every
        channel (so ``map`` is the saliency), ``base_values`` the target at
        the baseline, ``outputs`` at the inputs.
    """
    inputs = request.inputs
    _, height, width, channels = inputs.shape
    n_samples, cell, p, baseline = check_masks(request)

    masks = MaskMaker(height, width, cell, request.seed, antithetic=p == 0.5)

    def score(z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        # x · M + b · (1 − M), blended inside the compiled call
        return request.evaluate_blend(baseline, masks.make(z, index), rows)

    outputs, base_values = cached_evaluations(
        request, {"outputs": lambda: inputs, "base_values": lambda: baseline}
    )
    sampler = CoalitionSampler(
        request, cell * cell, score, p=p, antithetic=p == 0.5, key="rise"
    )
    previous: np.ndarray | None = None
    for stop in schedule(n_samples, len(inputs), request.adapter.batch_size):
        z, scores = sampler.draw(stop)
        with single_threaded_blas():
            saliency = _weighted_sum(request, masks, z[0], scores, stop) / (stop * p)
        values = np.repeat((saliency / channels)[..., None], channels, axis=-1)
        yield request.result(
            values,
            base_values=base_values,
            outputs=outputs,
            progress=stop / n_samples,
            convergence=relative_change(previous, saliency),
        )
        previous = saliency


def validate(request: Request) -> None:
    """Check ``n_samples``, ``cell``, ``p`` and ``baseline`` (no
    evaluation)."""
    check_masks(request)


def check_masks(request: Request) -> tuple[int, int, float, np.ndarray]:
    """``n_samples``, ``cell``, ``p`` and the baseline `(N, H, W, C)` of a
    random-mask method (RISE, RELAX), checked.

    Raises
    ------
    ValueError
        For inputs that are not images, or a parameter out of range.
    TypeError
        For a parameter of the wrong kind.
    """
    params = request.params
    inputs = request.inputs
    if not request.is_image:
        raise ValueError(
            f"{request.spec.name} applies to images (N, H, W, C); got inputs of "
            f"shape {inputs.shape}"
        )
    height, width = inputs.shape[1:3]
    n_samples = check_count("n_samples", params["n_samples"])
    cell = check_count("cell", params["cell"], high=min(height, width))
    p = check_fraction("p", params["p"])
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), exclusive; got {p}")
    baseline = resolve_baseline(params["baseline"], inputs, seed=request.seed)
    return n_samples, cell, p, baseline


class MaskMaker:
    """Smooth RISE masks from binary grids, shifted by sample index.

    Parameters
    ----------
    height, width
        The image size.
    cell
        Grid cells per side.
    seed
        Seeds the shifts.
    antithetic
        Samples ``2k`` and ``2k + 1`` (a mask and its complement) share a
        shift.
    """

    def __init__(
        self, height: int, width: int, cell: int, seed: int, antithetic: bool
    ) -> None:
        self.height, self.width, self.cell = height, width, cell
        self.seed = seed
        self.antithetic = antithetic
        self.cell_h = math.ceil(height / cell)
        self.cell_w = math.ceil(width / cell)
        self.up_h = _bilinear((cell + 1) * self.cell_h, cell)
        self.up_w = _bilinear((cell + 1) * self.cell_w, cell)

    def shifts(self, index: np.ndarray) -> np.ndarray:
        """`(M, 2)` crop offsets (rows, columns) of samples `index` `(M,)`."""
        key = index // 2 if self.antithetic else index
        high = np.array([self.cell_h, self.cell_w])

        def make(rng: np.random.Generator, size: int) -> np.ndarray:
            return rng.integers(0, high, size=(size, 2))

        return draws_for(self.seed, "rise-shift", key, make)

    def make(self, z: np.ndarray, index: np.ndarray) -> np.ndarray:
        """`(M, H, W)` float32 masks from grids `z` `(M, cell²)` bool."""
        grids = z.reshape(len(z), self.cell, self.cell).astype(np.float32)
        shifts = self.shifts(np.asarray(index))
        rows = self.up_h[shifts[:, :1] + np.arange(self.height)]
        cols = self.up_w[shifts[:, 1:] + np.arange(self.width)]
        return np.einsum("mhs,mst,mwt->mhw", rows, grids, cols, optimize=True)

    @property
    def n_shifts(self) -> int:
        """How many distinct crop offsets a mask can have."""
        return self.cell_h * self.cell_w

    def grid_sums(
        self, z: np.ndarray, index: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """Weighted sums of grids, by shift: `(Q, K, cell²)` float64.

        For a fixed shift a mask is linear in its grid (``M = R G Cᵀ``), so
        ``Σ_m w_m M_m`` needs only the sums of ``w_m G_m`` over the samples
        of each shift; `render` makes the images from them. That costs a few
        numbers per sample instead of a whole mask.

        Parameters
        ----------
        z
            `(M, cell²)` bool grids.
        index
            `(M,)` the samples' indices (they fix the shifts).
        weights
            `(Q, M)`: Q weightings of the samples.
        """
        shifts = self.shifts(np.asarray(index))
        k = shifts[:, 0] * self.cell_w + shifts[:, 1]
        by_shift = np.zeros((self.n_shifts, len(weights), self.cell * self.cell))
        terms = weights.T[:, :, None] * z[:, None].astype(np.float64)  # (M, Q, c²)
        np.add.at(by_shift, k, terms)
        return by_shift.transpose(1, 0, 2)

    def render(self, sums: np.ndarray) -> np.ndarray:
        """``Σ_m w_m M_m`` `(Q, H, W)` from `grid_sums`' `(Q, K, cell²)`."""
        c, a, b = self.cell, self.cell_h, self.cell_w
        q = len(sums)
        grids = sums.reshape(q, a, b, c, c)
        # rows[a] (H, c) and cols[b] (W, c): the bilinear weights of shift a, b
        rows = self.up_h[np.arange(a)[:, None] + np.arange(self.height)]
        cols = self.up_w[np.arange(b)[:, None] + np.arange(self.width)]
        # Σ_b G_ab C_bᵀ for every a, then Σ_a R_a (that)
        half = grids.transpose(0, 1, 3, 2, 4).reshape(q, a, c, b * c)
        half = half @ cols.transpose(0, 2, 1).reshape(b * c, self.width)
        left = rows.transpose(1, 0, 2).reshape(self.height, a * c)
        return left @ half.reshape(q, a * c, self.width)


def _bilinear(size: int, cells: int) -> np.ndarray:
    """`(size, cells)` float32 weights resizing `cells` values to `size`
    bilinearly (pixel centres aligned, edges clamped)."""
    source = (np.arange(size) + 0.5) * cells / size - 0.5
    source = np.clip(source, 0, cells - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, cells - 1)
    frac = (source - low).astype(np.float32)
    weights = np.zeros((size, cells), np.float32)
    weights[np.arange(size), low] += 1.0 - frac
    weights[np.arange(size), high] += frac
    return weights


def _weighted_sum(
    request: Request, masks: MaskMaker, z: np.ndarray, scores: np.ndarray, stop: int
) -> np.ndarray:
    """`(N, H, W)`: ``Σ_j scores_j · M_j`` over the first `stop` samples, with
    grids `z` `(n, cell²)` (every input's) and `scores` `(N, n)`.

    The sums are kept by shift in grid space (`MaskMaker.grid_sums`) and by
    block (`BlockSums`), so the result for `stop` samples is the same
    however it was reached.
    """

    def term(start: int, stop: int) -> np.ndarray:
        return _block_sum(masks, z, scores, start, stop)

    return masks.render(BlockSums(request.cache, "rise_sum").upto(stop, term))


def _block_sum(
    masks: MaskMaker, z: np.ndarray, scores: np.ndarray, start: int, stop: int
) -> np.ndarray:
    # every input sees the same grids and shifts: one weighting per input
    index = np.arange(start, stop)
    return masks.grid_sums(z[start:stop], index, scores[:, start:stop])
