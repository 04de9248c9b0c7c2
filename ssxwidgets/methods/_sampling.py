"""Incremental, prefix-stable sampling of coalitions, with their scores cached.

Sampling methods (LIME, KernelSHAP, RISE, RELAX) evaluate the model on many
perturbations of each input, each described by a binary coalition ``z`` over
``S`` features (superpixels, table columns, grid cells): present where 1,
absent where 0. The samples are drawn in fixed blocks of `BLOCK` from a
generator seeded by ``(seed, key, block)``, so sample ``j`` never depends on
how many samples were asked for; coalitions and their model scores are kept
in ``request.cache``, so raising ``n_samples`` evaluates only the new samples
and lowering it reuses a prefix without evaluating anything. Two jobs on one
problem (a cancelled one finishing its batch, the new one starting) take
turns through a lock kept with the samples. Every input of a
batch sees the same coalition sequence (truncated to its own ``S``), so an
input's result does not depend on what else is in the batch.

API (stable; other method modules import it):

- ``BLOCK``: samples per generator block (even).
- ``ScoreFn``: ``(z (M, S) bool, rows (M,), index (M,)) -> (M,)`` the
  target's scores of the perturbations ``z`` of inputs ``rows``; ``index``
  is each sample's position in its input's sequence (for anything else a
  sample needs, e.g. RISE's shifts, drawn from ``block_rng`` by index).
- ``DrawBlock``: ``(rng, size, n_features) -> (size, n_features) bool``.
- `CoalitionSampler` ``(request, n_features, score, *, p=0.5,
  antithetic=True, key="coalitions", draw_block=None, design="random",
  inputs=None, rows_per_sample=1)``;
  ``design="orthogonal"`` draws randomised two-level orthogonal arrays
  (see `orthogonal_rows`) instead of independent rows; ``.draw(n) ->
  (z (N, n, S_max) bool, scores (N, n) float64)`` evaluates only what is
  missing; ``.n_drawn``; ``.n_features`` `(N,)`.
- `bernoulli` ``(p) -> DrawBlock``: every feature present with probability p.
- `block_rng` ``(seed, key, block) -> np.random.Generator``.
- `draws_for` ``(seed, key, index, make) -> (M, ...)``: per-sample values
  drawn by block, e.g. a background row per sample.
- `image_scorer` ``(request, segments, fill) -> ScoreFn``: segments kept
  where z is 1, ``fill`` `(N, H, W, C)` elsewhere.
- `table_scorer` ``(request, fill, background=None) -> ScoreFn``: features
  kept where z is 1; absent ones from ``fill`` `(N, F)`, or, with a
  background `(B, F)`, from one background row drawn per sample.
- `cached_evaluate` ``(request, key, build) -> (N,)``: scores of
  ``build()`` `(N, ...)`, evaluated once per problem; `cached_evaluations`
  ``(request, {key: build}) -> [(N,)]`` evaluates the missing ones in one
  call.
- `BlockSums` ``(cache, key).upto(stop, term) -> array``: sums of
  per-sample terms over a prefix, kept by whole blocks in block order.
- `schedule` ``(n_samples, n_inputs, batch_size) -> list[int]``: the sample
  counts after which to yield a partial result (growing geometrically, the
  last is ``n_samples``).

Usage::

    sampler = CoalitionSampler(request, n_segments,
                               image_scorer(request, segments, fill))
    for stop in schedule(n_samples, len(request.inputs),
                         request.adapter.batch_size):
        z, scores = sampler.draw(stop)      # (N, stop, S), (N, stop)
        ...                                 # estimate, yield a partial
"""

from __future__ import annotations

import functools
import math
import threading
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..segmentation import fill_features, segment_masks
from ._base import Request

__all__ = [
    "BLOCK",
    "BlockSums",
    "CoalitionSampler",
    "DrawBlock",
    "ScoreFn",
    "bernoulli",
    "block_rng",
    "cached_evaluate",
    "cached_evaluations",
    "draws_for",
    "image_scorer",
    "orthogonal_rows",
    "schedule",
    "table_scorer",
]

#: samples per generator block; a multiple of 2 so antithetic pairs never
#: straddle two blocks
BLOCK = 64

#: rows of perturbed inputs built at once, in multiples of the batch size
_PIECE_BATCHES = 2

ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
DrawBlock = Callable[[np.random.Generator, int, int], np.ndarray]


def block_rng(seed: int, key: str, block: int) -> np.random.Generator:
    """The generator of block `block` of the sequence named `key`."""
    return np.random.default_rng([seed % 2**63, zlib.crc32(key.encode()), block])


def bernoulli(p: float) -> DrawBlock:
    """Draw coalitions keeping every feature independently with chance `p`."""

    def draw(rng: np.random.Generator, size: int, n_features: int) -> np.ndarray:
        return rng.random((size, n_features)) < p

    return draw


def draws_for(
    seed: int,
    key: str,
    index: np.ndarray,
    make: Callable[[np.random.Generator, int], np.ndarray],
) -> np.ndarray:
    """Per-sample values `(M, ...)` for sample positions `index` `(M,)`.

    ``make(rng, BLOCK)`` draws a block's values; sample ``j`` takes row
    ``j % BLOCK`` of block ``j // BLOCK``, so its value depends on nothing
    but the seed, the key and ``j``.
    """
    index = np.asarray(index, np.int64)
    blocks = index // BLOCK
    made = {
        int(b): make(block_rng(seed, key, int(b)), BLOCK) for b in np.unique(blocks)
    }
    first = next(iter(made.values()))
    out = np.empty((len(index), *first.shape[1:]), first.dtype)
    for b, values in made.items():
        where = blocks == b
        out[where] = values[index[where] % BLOCK]
    return out


class CoalitionSampler:
    """Coalitions of each input's features and their scores, drawn once.

    Parameters
    ----------
    request
        The method's request; its ``seed`` seeds the draws, its ``cache``
        keeps them, its ``evaluate`` (through `score`) counts them.
    n_features
        ``S``: features per input, one int for all or `(N,)` per input (e.g.
        each image's number of superpixels).
    score
        Scores perturbations (see ``ScoreFn``); `image_scorer` and
        `table_scorer` make the usual ones.
    p
        Chance of each feature being present (for the default draw).
    antithetic
        Draw pairs ``z, 1 - z`` (samples ``2k`` and ``2k + 1``), which cuts
        the variance of estimates that are roughly linear in ``z``. It keeps
        the distribution of each sample only when it is symmetric (``p``
        0.5), so it needs ``p == 0.5`` with the default draw.
    key
        Names the sequence inside ``request.cache`` and seeds its draws; use
        one key per distribution (a custom `draw_block` is not part of the
        cache's check), and several keys to hold several sequences.
    draw_block
        Draws ``(size, S)`` coalitions from a generator (see ``DrawBlock``),
        e.g. KernelSHAP's coalition-size distribution; default `bernoulli`.
    design
        ``"random"`` (default): rows drawn independently (by `draw_block`).
        ``"orthogonal"``: each row is still uniform over all coalitions
        (``p`` 0.5), but the rows of a group are the rows of a randomised
        Hadamard design (see `orthogonal_rows`), every feature present in
        exactly half of them and every two features independent across
        them; with the antithetic complements this is a fold-over design,
        whose main effects are free of two-feature interactions. A linear
        fit on ``n`` such rows is as accurate as on several times more
        independent ones. Needs ``antithetic`` and the default draw.
    inputs
        The indices of the inputs sampled (default all); `draw` returns
        their samples in this order, and `score` gets their indices.
    rows_per_sample
        Model rows one sample costs (e.g. a background integrated over), so
        a piece evaluated at once stays near a few batches.
    """

    def __init__(
        self,
        request: Request,
        n_features: int | np.ndarray,
        score: ScoreFn,
        *,
        p: float = 0.5,
        antithetic: bool = True,
        key: str = "coalitions",
        draw_block: DrawBlock | None = None,
        design: str = "random",
        inputs: np.ndarray | None = None,
        rows_per_sample: int = 1,
    ) -> None:
        self.inputs = np.arange(len(request.inputs)) if inputs is None else inputs
        self.inputs = np.asarray(self.inputs, np.int64).reshape(-1)
        self.rows_per_sample = max(1, int(rows_per_sample))
        n_inputs = len(self.inputs)
        counts = np.broadcast_to(np.asarray(n_features, np.int64), (n_inputs,))
        if (counts < 1).any():
            raise ValueError(f"n_features must be at least 1; got {counts.min()}")
        if antithetic and draw_block is None and p != 0.5:
            raise ValueError(
                f"antithetic sampling needs p == 0.5 with the default draw; got {p}"
            )
        if design not in ("random", "orthogonal"):
            raise ValueError(f"design must be 'random' or 'orthogonal'; got {design!r}")
        if design == "orthogonal" and (
            not antithetic or draw_block is not None or p != 0.5
        ):
            raise ValueError(
                "the orthogonal design pairs uniform rows with their complements: "
                "it needs antithetic=True, p == 0.5 and the default draw"
            )
        self.design = design
        self.request = request
        self.n_features = counts.copy()
        self.score = score
        self.antithetic = antithetic
        self.key = key
        self._draw_block = draw_block or bernoulli(p)
        state = request.cache.get(key)
        signature = (tuple(self.inputs), tuple(self.n_features), antithetic, p, design)
        if not isinstance(state, dict) or state.get("signature") != signature:
            width = int(self.n_features.max())
            state = {
                "signature": signature,
                "z": np.zeros((n_inputs, 0, width), bool),
                "scores": np.zeros((n_inputs, 0), np.float64),
                "n": 0,
                "lock": threading.Lock(),
            }
            request.cache[key] = state
        self._state: dict[str, Any] = state

    @property
    def n_drawn(self) -> int:
        """Samples per input already drawn and evaluated."""
        return int(self._state["n"])

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `n` samples of every input and their scores.

        Only samples not drawn before are evaluated, a few batches at a time;
        when the job is cancelled the samples finished so far stay cached and
        `Cancelled` propagates.

        Returns
        -------
        tuple[np.ndarray, np.ndarray]
            `(N, n, S_max)` bool coalitions (columns past an input's own
            ``S`` are false) and `(N, n)` float64 scores; read-only views.
        """
        # a cancelled job may still be finishing a batch on the same cache
        with self._state["lock"]:
            start = self.n_drawn
            if n > start:
                self._extend(start, n)
            z = self._state["z"][:, :n]
            scores = self._state["scores"][:, :n]
        z.flags.writeable = False
        scores.flags.writeable = False
        return z, scores

    def coalitions(self, start: int, stop: int) -> np.ndarray:
        """`(N, stop - start, S_max)` bool: samples ``start..stop-1``, drawn
        afresh (no evaluation)."""
        n_inputs, width = len(self.n_features), int(self.n_features.max())
        out = np.zeros((n_inputs, stop - start, width), bool)
        if stop <= start:
            return out
        for size in np.unique(self.n_features):
            blocks = [
                self._block(int(b), int(size))
                for b in range(start // BLOCK, (stop - 1) // BLOCK + 1)
            ]
            offset = (start // BLOCK) * BLOCK
            sequence = np.concatenate(blocks)[start - offset : stop - offset]
            out[self.n_features == size, :, :size] = sequence
        return out

    def _block(self, block: int, size: int) -> np.ndarray:
        if self.design == "orthogonal":
            half = orthogonal_rows(self.request.seed, self.key, block, size)
        else:
            rng = block_rng(self.request.seed, self.key, block)
            if not self.antithetic:
                return np.asarray(self._draw_block(rng, BLOCK, size), bool)
            half = np.asarray(self._draw_block(rng, BLOCK // 2, size), bool)
        pairs = np.empty((BLOCK, size), bool)
        pairs[0::2] = half
        pairs[1::2] = ~half
        return pairs

    def _extend(self, start: int, stop: int) -> None:
        n_inputs = len(self.n_features)
        piece_rows = self.request.adapter.batch_size * _PIECE_BATCHES
        per_piece = max(1, piece_rows // (n_inputs * self.rows_per_sample))
        for first in range(start, stop, per_piece):
            last = min(stop, first + per_piece)
            z = self.coalitions(first, last)
            count = last - first
            # sample-major order: a finished piece completes whole samples
            flat = z.transpose(1, 0, 2).reshape(count * n_inputs, -1)
            rows = np.tile(self.inputs, count)
            index = np.repeat(np.arange(first, last), n_inputs)
            scores = np.asarray(self.score(flat, rows, index), np.float64)
            self._store(z, scores.reshape(count, n_inputs).T)

    def _store(self, z: np.ndarray, scores: np.ndarray) -> None:
        state = self._state
        n, count = state["n"], z.shape[1]
        if n + count > state["z"].shape[1]:
            capacity = max(n + count, 2 * state["z"].shape[1], BLOCK)
            grown_z = np.zeros((z.shape[0], capacity, z.shape[2]), bool)
            grown_z[:, :n] = state["z"][:, :n]
            grown_scores = np.zeros((z.shape[0], capacity), np.float64)
            grown_scores[:, :n] = state["scores"][:, :n]
            state["z"], state["scores"] = grown_z, grown_scores
        state["z"][:, n : n + count] = z
        state["scores"][:, n : n + count] = scores
        state["n"] = n + count


#: the largest Hadamard design drawn; more features fall back to random rows
_MAX_ORDER = 1024


@functools.lru_cache(maxsize=8)
def _hadamard(order: int) -> np.ndarray:
    """Sylvester's Hadamard matrix of `order` (a power of two), as bool
    (``True`` for +1), read-only."""
    matrix = np.ones((1, 1), bool)
    while len(matrix) < order:
        matrix = np.block([[matrix, matrix], [matrix, ~matrix]])
    matrix.flags.writeable = False
    return matrix


def orthogonal_rows(seed: int, key: str, block: int, n_features: int) -> np.ndarray:
    """`(BLOCK // 2, n_features)` bool: the first halves of block `block`'s
    antithetic pairs, cut from randomised Hadamard designs.

    A design is Sylvester's Hadamard matrix of the smallest order ``m >
    n_features`` with ``n_features`` of its non-constant columns drawn at
    random, each flipped with chance 1/2, and its rows shuffled. Each row is
    then uniform over all ``2 ** n_features`` coalitions, while across the
    ``m`` rows every feature is present exactly half the time and every two
    features are independent. Designs larger than a half block span several
    consecutive blocks; smaller ones are stacked. Everything depends only on
    ``(seed, key)`` and the design's index, so the sequence is prefix-stable.
    Beyond ``_MAX_ORDER`` rows of independent uniform coalitions are used.
    """
    half = BLOCK // 2
    order = 1 << max(1, n_features.bit_length())  # smallest power of 2 > S
    if order > _MAX_ORDER:
        return block_rng(seed, key, block).random((half, n_features)) < 0.5
    per_design = max(1, order // half)
    group, part = divmod(block, per_design)
    rng = block_rng(seed, f"{key}/design", group)
    hadamard = _hadamard(order)
    designs = []
    for _ in range(max(1, half // order)):
        columns = rng.choice(np.arange(1, order), n_features, replace=False)
        flips = rng.random(n_features) < 0.5
        rows = rng.permutation(order)
        designs.append(hadamard[np.ix_(rows, columns)] ^ flips)
    design = np.concatenate(designs)
    return design[part * half : (part + 1) * half]


class BlockSums:
    """Sums of per-sample terms over a prefix of the samples, kept by block.

    ``term(start, stop)`` sums the terms of samples ``start..stop-1`` (any
    shape, float64). Sums of whole blocks of `BLOCK` are kept in
    ``cache[key]`` and added in block order, so the sum over the first ``n``
    samples is the same however it was reached (raising or lowering ``n``)
    and costs only the blocks not summed before. Jobs sharing a problem
    take turns through a lock kept with the sums.
    """

    def __init__(self, cache: dict[str, Any], key: str) -> None:
        self._state: dict[str, Any] = cache.setdefault(
            key, {"n": 0, "sum": None, "lock": threading.Lock()}
        )

    def upto(self, stop: int, term: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """The sum of the terms of samples ``0..stop-1``."""
        state = self._state
        full = stop // BLOCK * BLOCK
        with state["lock"]:
            if state["n"] > full:
                state["n"], state["sum"] = 0, None
            for start in range(state["n"], full, BLOCK):
                block = term(start, start + BLOCK)
                state["sum"] = block if state["sum"] is None else state["sum"] + block
                state["n"] = start + BLOCK
            total = state["sum"]
        if full < stop:
            tail = term(full, stop)
            total = tail if total is None else total + tail
        if total is None:
            total = term(0, 0)
        return np.asarray(total)


def image_scorer(request: Request, segments: np.ndarray, fill: np.ndarray) -> ScoreFn:
    """Score coalitions of superpixels: segment kept where ``z`` is 1, `fill`
    `(N, H, W, C)` elsewhere, with `segments` `(N, H, W)`."""

    def score(z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        return request.evaluate_blend(fill, segment_masks(segments, z, rows), rows)

    return score


def table_scorer(
    request: Request, fill: np.ndarray, background: np.ndarray | None = None
) -> ScoreFn:
    """Score coalitions of table features.

    An absent feature takes its value from `fill` `(N, F)`, or, when
    `background` `(B, F)` is given, from one background row drawn per sample
    (the same row for sample ``j`` of every input, whatever ``n_samples``).
    """
    inputs = request.inputs
    seed = request.seed

    def score(z: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
        if background is None:
            perturbed = fill_features(inputs, z, fill, rows)
        else:
            picks = draws_for(
                seed,
                "background",
                index,
                lambda rng, size: rng.integers(len(background), size=size),
            )
            perturbed = fill_features(inputs, z, background, rows, picks)
        return request.evaluate(perturbed, rows)

    return score


def cached_evaluate(
    request: Request, key: str, build: Callable[[], np.ndarray]
) -> np.ndarray:
    """`(N,)` scores of ``build()`` `(N, ...)` (one row per input), evaluated
    once per problem and kept in ``request.cache``."""
    return cached_evaluations(request, {key: build})[0]


def cached_evaluations(
    request: Request, builds: dict[str, Callable[[], np.ndarray]]
) -> list[np.ndarray]:
    """`cached_evaluate` for several keys: those not cached are evaluated
    together in one call (f(x) and f(baseline) cost one small call, not
    two); their `(N,)` scores come back in the order of `builds`."""
    missing = [(k, build()) for k, build in builds.items() if k not in request.cache]
    if missing:
        n = len(request.inputs)
        batch = np.concatenate([np.asarray(built, np.float32) for _, built in missing])
        rows = np.tile(np.arange(n), len(missing))
        scores = np.asarray(request.evaluate(batch, rows), np.float64)
        for j, (k, _) in enumerate(missing):
            request.cache[k] = scores[j * n : (j + 1) * n]
    return [np.asarray(request.cache[k]) for k in builds]


def schedule(n_samples: int, n_inputs: int, batch_size: int) -> list[int]:
    """Sample counts (per input) after which to yield a partial result.

    The first step fills about one batch; steps then grow by a quarter each
    time, so a long run yields tens of partials, not thousands. The last
    count is `n_samples`.
    """
    base = max(BLOCK, math.ceil(batch_size / max(n_inputs, 1) / BLOCK) * BLOCK)
    stops: list[int] = []
    stop = base
    while stop < n_samples:
        stops.append(stop)
        stop = max(stop + base, math.ceil(stop * 1.25 / base) * base)
    stops.append(n_samples)
    return stops
