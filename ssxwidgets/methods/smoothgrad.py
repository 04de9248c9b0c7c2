"""SmoothGrad: the gradient averaged over noisy copies of the input.

Smilkov, Thorat, Kim, Viégas & Wattenberg, "SmoothGrad: removing noise by
adding noise", 2017 (arXiv:1706.03825). Variants: SmoothGrad-Squared (the
mean squared gradient; Hooker, Erhan, Kindermans & Kim, "A Benchmark for
Interpretability Methods in Deep Neural Networks", NeurIPS 2019) and VarGrad
(the variance of the gradient; Adebayo, Gilmer, Goodfellow & Kim, "Local
Explanation Methods for Deep Neural Networks Lack Sensitivity to Parameter
Values", 2018).

The sampling is incremental (see `sample_blocks`, which expected gradients
shares): samples are drawn in fixed blocks of `BLOCK` per input from a
generator seeded by ``(seed, block, input)``, so the first `k` samples never
depend on ``n_samples``; raising ``n_samples`` continues from the blocks kept
in ``request.cache`` and lowering it reuses a prefix.

Noise comes in antithetic pairs: samples ``2k`` and ``2k + 1`` are ``x + σε``
and ``x − σε``. Each is still ``x`` plus Gaussian noise, so every variant
estimates what it did; the pair cancels the noise's first-order effect on the
mean gradient (a smaller variance for the same samples) and halves the
Gaussian draws. The noisy points are made inside the compiled gradient call
(`ModelAdapter.gradients_shifted`); only ``ε`` crosses to the device.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..explanation import Explanation
from ._base import (
    MAX_SAMPLES,
    MethodSpec,
    Request,
    check_choice,
    check_count,
    check_fraction,
    relative_change,
)

__all__ = [
    "BLOCK",
    "SPEC",
    "VARIANTS",
    "Progress",
    "Shifted",
    "block_rng",
    "run",
    "sample_blocks",
    "validate",
]

#: ``"mean"`` (SmoothGrad), ``"squared"`` (SmoothGrad-Squared), ``"variance"``
#: (VarGrad)
VARIANTS = ("mean", "squared", "variance")

#: samples per input drawn from one generator; a multiple of small batches
BLOCK = 16

#: most bytes of per-block sums one problem keeps in ``request.cache``
_CACHE_BYTES = 64 * 2**20

SPEC = MethodSpec(
    name="smoothgrad",
    title="SmoothGrad",
    needs_gradients=True,
    defaults={"noise": 0.15, "n_samples": 50, "variant": "mean"},
    paper="Smilkov et al. 2017, arXiv:1706.03825",
)


@dataclass
class Shifted:
    """Samples of one input given as shifts of it: sample ``m`` is
    ``x + scales[m] · shifts[picks[m]]``.

    Attributes
    ----------
    shifts
        `(K, ...)` shaped like one input.
    picks
        `(M,)` the shift of each sample.
    scales
        `(M,)` float32, the factor of each sample's shift.
    """

    shifts: np.ndarray
    picks: np.ndarray
    scales: np.ndarray


#: samples as a `Points` call gives them: the points `(M, ...)` with what
#: each row's gradient is multiplied by `(M, D)` (``None``: nothing), or
#: `Shifted` (no multiplier)
Samples = tuple[np.ndarray, np.ndarray | None] | Shifted

#: ``points(block, input, lo, hi)`` -> samples ``lo..hi-1`` of that block for
#: that input
Points = Callable[[int, int, int, int], Samples]


def run(request: Request) -> Iterator[Explanation]:
    """Yield SmoothGrad attributions `(N, ...)`, refined block by block.

    Parameters (in ``request.params``)
    ----------------------------------
    noise
        Standard deviation of the Gaussian noise as a fraction of each input's
        range ``max − min`` (default 0.15; the paper finds 0.1–0.2 best). A
        constant input uses a range of 1.
    n_samples
        Noisy copies per input (default 50); costs ``N * n_samples``
        gradient evaluations, fewer when a previous run left samples.
    variant
        ``"mean"`` (default), ``"squared"`` or ``"variance"``.

    Yields
    ------
    Explanation
        A partial after every batch of blocks evaluated, the last with
        ``progress == 1``. ``convergence`` is the relative change of the
        estimate over its last block of `BLOCK` samples. ``outputs`` `(N,)`
        is ``f(x)``; ``base_values`` is zero (there is no baseline).
    """
    noise, n_samples, variant = _checked(request)
    inputs = request.inputs
    n = len(inputs)
    shape = inputs.shape[1:]
    flat = inputs.reshape(n, -1)
    span = flat.max(axis=1) - flat.min(axis=1)
    sigma = (noise * np.where(span > 0, span, 1.0)).astype(np.float32)
    base_values = np.zeros(n, np.float32)

    def points(block: int, index: int, lo: int, hi: int) -> Shifted:
        rng = block_rng(request.seed, "smoothgrad", block, index)
        # pairs lo // 2 .. (hi - 1) // 2 of the block's draws; a generator
        # fills row by row, so they do not depend on how many rows are drawn
        first = lo // 2
        noise = rng.standard_normal(((hi + 1) // 2, *shape), np.float32)[first:]
        samples = np.arange(lo, hi)
        signs = np.where(samples % 2 == 0, 1.0, -1.0).astype(np.float32)
        return Shifted(noise, samples // 2 - first, signs * sigma[index])

    moments = {"mean": 1, "squared": 2, "variance": 3}[variant]
    for state in sample_blocks(request, n_samples, points, moments):
        values = _estimate(state.totals, state.n_done, variant)
        convergence = None
        if state.previous is not None:
            before = _estimate(state.previous, state.previous_n, variant)
            convergence = relative_change(before, values)
        yield request.result(
            values.reshape(inputs.shape),
            base_values=base_values,
            outputs=_outputs(request),
            progress=state.n_done / n_samples,
            convergence=convergence,
        )


def validate(request: Request) -> None:
    """Check ``noise``, ``n_samples`` and ``variant`` (no evaluation)."""
    _checked(request)


def _checked(request: Request) -> tuple[float, int, str]:
    params = request.params
    noise = check_fraction("noise", params["noise"], 0.0, 1.0)
    n_samples = check_count("n_samples", params["n_samples"], 1, MAX_SAMPLES)
    variant = check_choice("variant", params["variant"], VARIANTS)
    return noise, n_samples, variant


def _estimate(totals: np.ndarray, count: int, variant: str) -> np.ndarray:
    """The variant's estimate `(N, D)` from the sums of g and/or g²."""
    if variant == "mean":
        return totals[0] / count
    if variant == "squared":
        return totals[0] / count
    mean = totals[0] / count
    return np.maximum(totals[1] / count - mean * mean, 0.0)


def _outputs(request: Request) -> np.ndarray:
    """``f(x)`` `(N,)`, evaluated once per problem (by `sample_blocks`'s
    first call, when it had room)."""
    if "outputs" not in request.cache:
        request.cache["outputs"] = request.evaluate(request.inputs)
    outputs: np.ndarray = request.cache["outputs"]
    return outputs


def block_rng(seed: int, tag: str, block: int, index: int) -> np.random.Generator:
    """The generator of one block of samples of input `index`: the same for
    the same ``(seed, tag, block, index)`` whatever ``n_samples`` is."""
    key = int.from_bytes(tag.encode()[:8], "little")
    return np.random.default_rng([key, seed % 2**64, block, index])


@dataclass
class Progress:
    """Where `sample_blocks` stands after a step.

    Attributes
    ----------
    totals
        `(n_moments, N, D)` float64: sums over the samples done.
    n_done
        Samples per input summed in `totals`.
    previous
        The sums before the last block added, or ``None`` after one block.
    previous_n
        Samples per input in `previous`.
    """

    totals: np.ndarray
    n_done: int
    previous: np.ndarray | None
    previous_n: int


@dataclass
class _Block:
    """Sums over the first `count` samples of one block."""

    count: int
    sums: np.ndarray  # (n_moments, N, D) float64


def sample_blocks(
    request: Request,
    n_samples: int,
    points: Points,
    moments: int = 1,
) -> Iterator[Progress]:
    """Sum per-sample gradients over `n_samples` samples per input, in blocks.

    Parameters
    ----------
    request
        The run; ``request.cache["blocks"]`` keeps the per-block sums between
        runs of the same problem (within `_CACHE_BYTES`).
    n_samples
        Samples per input.
    points
        Makes the samples of a block (see `Points`).
    moments
        1: sum ``c``; 2: sum ``c²``; 3: both, where ``c`` is the gradient
        times the multiplier `points` returns.

    Yields
    ------
    Progress
        After every group of blocks that needed evaluations (about one batch
        of rows, at least one block), and once at the end.
    """
    n = len(request.inputs)
    dim = int(np.prod(request.inputs.shape[1:]))
    kept: list[_Block] = request.cache.setdefault("blocks", [])
    n_moments = 2 if moments == 3 else 1
    totals = np.zeros((n_moments, n, dim), np.float64)
    previous: np.ndarray | None = None
    previous_n = done = 0
    pending: list[tuple[int, int]] = []  # (block, samples wanted)
    pending_rows = 0
    n_blocks = math.ceil(n_samples / BLOCK)
    for block in range(n_blocks):
        wanted = min(BLOCK, n_samples - block * BLOCK)
        pending.append((block, wanted))
        have = kept[block].count if block < len(kept) else 0
        if have != wanted:
            pending_rows += n * (wanted if have > wanted else wanted - have)
        last = block == n_blocks - 1
        if not last and pending_rows < request.adapter.batch_size:
            continue
        computed = pending_rows > 0
        sums = _sum_blocks(request, pending, kept, points, moments, n_moments)
        for j, ((_, wanted_done), block_sums) in enumerate(
            zip(pending, sums, strict=True)
        ):
            if j == len(pending) - 1 and done > 0:
                previous, previous_n = totals.copy(), done
            totals += block_sums
            done += wanted_done
        pending, pending_rows = [], 0
        if computed or last:
            yield Progress(totals.copy(), done, previous, previous_n)


def _sum_blocks(
    request: Request,
    tasks: list[tuple[int, int]],
    kept: list[_Block],
    points: Points,
    moments: int,
    n_moments: int,
) -> list[np.ndarray]:
    """The sums `(n_moments, N, D)` of each ``(block, wanted)`` task, from the
    cache where it holds them and from new evaluations where it does not;
    what was evaluated is kept when the cache has room."""
    n = len(request.inputs)
    dim = int(np.prod(request.inputs.shape[1:]))
    results: list[np.ndarray] = []
    work: list[tuple[int, int, int, np.ndarray]] = []  # block, lo, hi, sums
    for block, wanted in tasks:
        have = kept[block].count if block < len(kept) else 0
        if have == wanted:
            results.append(kept[block].sums)
            continue
        lo = 0 if have > wanted else have
        sums = np.zeros((n_moments, n, dim), np.float64)
        work.append((block, lo, wanted, sums))
        results.append(sums)

    # units of (work item, input), grouped into calls of about one batch
    units = [(item, index) for item in work for index in range(n)]
    group: list[tuple[tuple[int, int, int, np.ndarray], int]] = []
    group_rows = 0
    for k, unit in enumerate(units):
        group.append(unit)
        group_rows += unit[0][2] - unit[0][1]
        following = units[k + 1][0] if k + 1 < len(units) else None
        room = following is not None and (
            group_rows + following[2] - following[1] <= request.adapter.batch_size
        )
        if not room:
            _evaluate_group(request, group, points, moments)
            group, group_rows = [], 0

    for block, lo, wanted, sums in work:
        if lo > 0:  # extends a kept block
            sums += kept[block].sums
        _keep(kept, block, wanted, sums)
    return results


def _evaluate_group(
    request: Request,
    group: list[tuple[tuple[int, int, int, np.ndarray], int]],
    points: Points,
    moments: int,
) -> None:
    """Evaluate one call's worth of units and add each unit's sums in place.

    The units' samples are drawn in parallel threads (each block has its own
    generator, and numpy draws without holding the GIL): drawing Gaussian
    noise for 64 × 64 × 3 images costs a sizeable fraction of their gradients
    on two CPU cores, and the cores are otherwise idle until the call starts.
    """

    def make(unit: tuple[tuple[int, int, int, np.ndarray], int]) -> Any:
        item, index = unit
        return points(item[0], index, item[1], item[2])

    made = list(_pool().map(make, group)) if len(group) > 1 else [make(group[0])]
    rows = np.concatenate([np.full(item[2] - item[1], index) for item, index in group])
    # f(x) rides along with the first call when it fits: one more gradient
    # row costs less than a call of its own
    n = len(request.inputs)
    along = "outputs" not in request.cache
    along = along and len(rows) + n <= request.adapter.batch_size
    if all(isinstance(m, Shifted) for m in made):
        grads, scores = _shifted_gradients(request, rows, made, along)
    else:
        batch = [m[0] for m in made]
        if along:
            batch.append(request.inputs)
        grads, scores = request.gradients(
            np.concatenate(batch),
            np.concatenate([rows, np.arange(n)]) if along else rows,
        )
    if along:
        request.cache["outputs"] = scores[-n:]
        grads = grads[:-n]
    grads = grads.reshape(len(rows), -1)
    start = 0
    for (item, index), sample in zip(group, made, strict=True):
        stop = start + item[2] - item[1]
        part = grads[start:stop]
        scale = None if isinstance(sample, Shifted) else sample[1]
        if scale is not None:
            part = part * scale
        sums = item[3]
        # sums in float64, without a float64 copy of the gradients
        if moments in (1, 3):
            sums[0, index] += part.sum(axis=0, dtype=np.float64)
        if moments in (2, 3):
            wide = part.astype(np.float64)
            sums[-1, index] += np.einsum("md,md->d", wide, wide)
        start = stop


def _shifted_gradients(
    request: Request, rows: np.ndarray, made: list[Shifted], along: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients and scalars of the `Shifted` samples of one call, rows in
    the order of `made`, then ``f(x)``'s when `along`."""
    offsets = np.cumsum([0] + [len(m.shifts) for m in made[:-1]])
    picks = np.concatenate([m.picks + o for m, o in zip(made, offsets, strict=True)])
    scales = np.concatenate([m.scales for m in made])
    if along:  # the inputs themselves: a zero factor on any shift
        n = len(request.inputs)
        rows = np.concatenate([rows, np.arange(n)])
        picks = np.concatenate([picks, np.zeros(n, picks.dtype)])
        scales = np.concatenate([scales, np.zeros(n, np.float32)])
    shifts = np.concatenate([m.shifts for m in made])
    return request.gradients_shifted(shifts, rows, picks, scales)


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that make sample points, one per core (at most four)."""
    global _threads
    with _threads_lock:
        if _threads is None:
            workers = max(1, min(4, os.cpu_count() or 1))
            _threads = ThreadPoolExecutor(
                workers, thread_name_prefix="ssxwidgets-points"
            )
        return _threads


def _keep(kept: list[_Block], block: int, count: int, sums: np.ndarray) -> None:
    """Store a block's sums if it extends the kept prefix and there is room."""
    if block < len(kept):
        if count > kept[block].count:
            kept[block] = _Block(count, sums)
        return
    used = sum(item.sums.nbytes for item in kept)
    if block == len(kept) and used + sums.nbytes <= _CACHE_BYTES:
        kept.append(_Block(count, sums))
