"""Partition SHAP: Owen values over a hierarchy of features, through `shap`.

Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions",
NeurIPS 2017; the hierarchical (Owen value) recursion is shap's
``PartitionExplainer``. Images are split by shap's axis-aligned partition of
pixels and channels, hidden parts replaced by a blurred copy of the image (or
a constant, or inpainting); tables by a correlation clustering of the
features, hidden features integrated over a background set.

Every evaluation goes through the request (the adapter's compiled batched
path). On images (blur and constant maskers) the recursion runs here
(`owen_image`) and partial values stream while an input is being explained:
each is what the recursion gives if the budget ended there, so each already
adds up to the output. Elsewhere shap runs in a worker thread: progress
rises with the evaluations spent, and an input's values appear once shap
has finished it.

Usage::

    exp = ssx.attribute(model, images, method="partition_shap", max_evals=1000)
    exp = ssx.attribute(model, rows, method="partition_shap", background=X)
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .._errors import Cancelled
from .._log import logger
from ..baselines import resolve_baseline
from ..explanation import Explanation
from ._base import MethodSpec, Request, check_count, relative_change
from ._image_tree import image_tree
from ._sampling import cached_evaluate, cached_evaluations

__all__ = ["SPEC", "owen_image", "run", "validate"]

SPEC = MethodSpec(
    name="partition_shap",
    title="Partition SHAP",
    needs_gradients=False,
    defaults={"masker": "auto", "max_evals": 500, "background": None},
    inputs=("image", "tabular"),
    paper="Lundberg & Lee 2017, arXiv:1705.07874 (shap's PartitionExplainer)",
)

#: relative tolerance of the additivity check against our own evaluations
ADDITIVITY_TOLERANCE = 1e-5
#: yield a partial within an input at most once per this many adapter batches
_BATCHES_PER_PARTIAL = 4
#: background rows beyond which shap's maskers subsample
_MAX_BACKGROUND = 100
_INPAINT = ("inpaint_telea", "inpaint_ns")

T = TypeVar("T")


def run(request: Request) -> Iterator[Explanation]:
    """Yield partial explanations, one input after another.

    Values have the shape of the inputs: `(N, H, W, C)` for images (one value
    per pixel and channel, as shap's image masker partitions them), `(N, F)`
    for tables. For each finished input, ``values.sum() + base_values`` equals
    ``outputs`` (efficiency); unfinished inputs have zero values and their
    base value set to their output.
    """
    max_evals = _checked(request)
    fills = _image_fills(request) if request.is_image else None
    if fills is None:
        make_masker, rows_per_mask = _masker_factory(request)
    else:
        rows_per_mask = 1

    n = len(request.inputs)
    empty: np.ndarray | None = None
    if fills is None:
        outputs = cached_evaluate(request, "outputs", lambda: request.inputs)
    else:
        # f(x) and f(fill) are the recursion's first two evaluations (every
        # leaf present, none): one call for every input
        image_fills = fills

        def filled() -> np.ndarray:
            return np.stack([image_fills(row) for row in range(n)])

        outputs, empty = cached_evaluations(
            request, {"outputs": lambda: request.inputs, "owen_empty": filled}
        )
    values = np.zeros_like(request.inputs, np.float32)
    base_values = outputs.astype(np.float64).copy()
    totals = outputs.astype(np.float64).copy()
    batch = request.adapter.batch_size
    masks_per_call = _even(max(2, batch // rows_per_mask))
    budget = max_evals * rows_per_mask
    finished: dict[tuple[int, int], tuple[np.ndarray, float]] = (
        request.cache.setdefault("finished", {})
    )
    previous: np.ndarray | None = None
    for row in range(n):
        key = (row, max_evals)
        if key not in finished:
            events: Iterator[int | Step | Finished[Any]]
            if fills is not None:
                assert empty is not None
                ends = (float(empty[row]), float(outputs[row]))
                events = owen_image(
                    request, row, fills(row), max_evals, masks_per_call, ends
                )
            else:
                task = _partition_task(
                    request, row, make_masker(row), max_evals, masks_per_call
                )
                events = in_worker(request, row, task)
            done = since = 0
            for event in events:
                if isinstance(event, Finished):
                    if fills is None:
                        finished[key] = _row_result(event.value, request.inputs.shape)
                    else:
                        finished[key] = event.value
                    continue
                count = event.rows if isinstance(event, Step) else event
                done += count
                since += count
                if since >= _BATCHES_PER_PARTIAL * batch:
                    since = 0
                    convergence = None
                    if isinstance(event, Step):
                        values[row], base_values[row] = event.estimate()
                        totals[row] = values[row].sum() + base_values[row]
                        convergence = relative_change(previous, values[row])
                        previous = values[row].copy()
                    yield request.result(
                        values,
                        base_values=base_values,
                        outputs=totals,
                        progress=(row + min(done / budget, 0.99)) / n,
                        convergence=convergence,
                    )
        values[row], base_values[row] = finished[key]
        totals[row] = finished[key][0].sum() + base_values[row]
        check_additivity(totals[row], float(outputs[row]), row, "partition_shap")
        convergence = relative_change(previous, values[row])
        previous = None
        yield request.result(
            values,
            base_values=base_values,
            outputs=totals,
            progress=(row + 1) / n,
            convergence=convergence,
        )


def validate(request: Request) -> None:
    """Check ``max_evals``, ``masker`` and ``background`` (no evaluation;
    shap's maskers are built when the run starts)."""
    _checked(request)


def _checked(request: Request) -> int:
    """``max_evals``, checked with the masker and the background."""
    max_evals = check_count("max_evals", request.params["max_evals"], low=4)
    if request.is_image:
        _image_masker_factory(request)
    else:
        _table_background(request)
    return max_evals


def _row_result(explanation: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """An input's values `shape[1:]` (float64) and base value from shap's
    explanation of it."""
    values = np.asarray(explanation.values, np.float64).reshape(shape[1:])
    base = float(np.asarray(explanation.base_values, np.float64).reshape(-1)[0])
    return values, base


def _partition_task(
    request: Request, row: int, masker: Any, max_evals: int, masks_per_call: int
) -> Callable[[Callable[[np.ndarray], np.ndarray]], Any]:
    """What the worker runs for input `row`: shap's explainer, called once."""

    def task(model: Callable[[np.ndarray], np.ndarray]) -> Any:
        import shap

        with seeded_numpy(request.seed, row):
            explainer = shap.PartitionExplainer(model, masker)
            return explainer(
                request.inputs[row : row + 1],
                max_evals=max_evals,
                batch_size=masks_per_call,
                silent=True,
            )

    return task


# -- maskers ---------------------------------------------------------------------


def _masker_factory(request: Request) -> tuple[Callable[[int], Any], int]:
    """A function from an input's index to its shap masker, and the model rows
    one mask costs; the parameters are checked before any evaluation."""
    if request.is_image:
        return _image_masker_factory(request), 1
    masker = _table_masker(_table_background(request))

    def same(row: int) -> Any:
        return masker

    return same, len(masker.data)


def _table_background(request: Request) -> np.ndarray:
    """The background `(M, F)` of a table, after checking it and the masker."""
    background = check_background(
        request.params["background"], request.inputs, "partition_shap"
    )
    name = request.params["masker"]
    if not isinstance(name, str) or name not in ("auto", "partition"):
        raise ValueError(
            "masker for tables must be 'auto' or 'partition' (shap's Partition "
            f"masker over the background); got {name!r}"
        )
    return background


def _image_masker_factory(request: Request) -> Callable[[int], Any]:
    """A function from an input's index to its shap image masker, the masker
    parameter checked before any evaluation (shap is imported only when a
    masker is made)."""
    masker = request.params["masker"]
    if isinstance(masker, str) and masker in _INPAINT:
        _require_cv2(masker)
        shape = request.inputs.shape[1:]

        def inpainting(row: int) -> Any:
            return _inpainting_masker(masker, shape)

        return inpainting
    fills = _image_fills(request)
    assert fills is not None

    def filling(row: int) -> Any:
        import shap

        return shap.maskers.Image(fills(row))

    return filling


def _image_fills(request: Request) -> Callable[[int], np.ndarray] | None:
    """For a blur or constant masker, a function from an input's index to what
    its hidden pixels become, `(H, W, C)` float64 (what shap's masker holds);
    ``None`` for the inpainting maskers. The masker is checked here."""
    inputs = request.inputs
    masker = request.params["masker"]
    shape = inputs.shape[1:]
    if isinstance(masker, str) and masker in _INPAINT:
        return None
    kernel = _blur_kernel(masker, shape)
    if kernel is not None:
        blur = kernel

        def blurred(row: int) -> np.ndarray:
            return box_blur(inputs[row], blur)

        return blurred
    try:
        fill = resolve_baseline(masker, inputs, seed=request.seed)
    except ValueError as error:
        raise ValueError(
            "masker must be 'auto', 'blur', 'blur(k,k)', 'inpaint_telea', "
            "'inpaint_ns', a number, an array the shape of one input, or a "
            f"baseline name; got {masker!r} ({error})"
        ) from error

    def constant(row: int) -> np.ndarray:
        return np.asarray(fill[row], np.float64)

    return constant


# -- Owen values on images, without shap's per-mask overhead -----------------


@dataclass
class Step:
    """One batch of the Owen recursion evaluated.

    Attributes
    ----------
    rows
        Model rows the batch evaluated.
    estimate
        Gives the values `(H, W, C)` float64 and the base value as the
        recursion stands: what it would return were the budget spent now
        (so they add up to the output). Valid until the next step.
    """

    rows: int
    estimate: Callable[[], tuple[np.ndarray, float]]


def owen_image(
    request: Request,
    row: int,
    fill: np.ndarray,
    max_evals: int,
    masks_per_call: int,
    ends: tuple[float, float] | None = None,
) -> Iterator[int | Step | Finished[tuple[np.ndarray, float]]]:
    """shap's ``PartitionExplainer`` on image `row`, with hidden pixels taken
    from `fill` `(H, W, C)`: the same recursion, masks, evaluations and
    tie-breaking draws, so the same values, but the masked images are built
    inside the adapter's compiled call and no per-mask Python runs.

    Yields the rows of the first evaluation (the empty and full coalitions,
    none when `ends` gives their scores already), a `Step` for each batch
    after it, then `Finished` with the values `(H, W, C)` float64 and the
    base value.

    The recursion (shap's ``owen``, ``fixed_context=None``): a priority queue
    of (coalition, node) pairs, most changed output first; popping a node
    evaluates the coalition with its left and with its right child added,
    and queues the four (context, child) pairs with half the weight. When
    the budget is spent, what is left in the queue stays on its nodes, and
    every node's credit is spread evenly over its leaves.
    """
    shape = request.inputs.shape[1:]
    clustering, indptr, indices = image_tree(tuple(shape))
    n_leaves = len(clustering) + 1
    fill32 = np.asarray(fill, np.float32)[None]
    # scores kept per problem, each coalition named by how it was built (its
    # parent's name and the node added), so a larger budget, which retraces
    # the same first steps, evaluates only coalitions it has not met
    memo = request.cache.setdefault("owen", {}).setdefault(row, ({}, {}))
    names: dict[tuple[int, int], int] = memo[0]
    known: dict[int, float] = memo[1]

    def evaluate(masks: np.ndarray, keys: list[int]) -> np.ndarray:
        """Scores of `masks` `(K, L)` bool, each named by its key."""
        missing = [j for j, key in enumerate(keys) if key not in known]
        if missing:
            batch = masks if len(missing) == len(keys) else masks[missing]
            batch = batch.reshape(-1, *shape)
            rows = np.full(len(batch), row)
            scores = request.evaluate_blend(fill32, batch, rows, np.zeros_like(rows))
            for j, score in zip(missing, scores, strict=True):
                known[keys[j]] = float(score)
        return np.array([known[key] for key in keys])

    def grown(
        mask: np.ndarray, key: int, node: int, out: np.ndarray
    ) -> tuple[np.ndarray, int]:
        # written straight into the call's batch: no copy to stack them
        out[:] = mask
        out[indices[indptr[node] : indptr[node + 1]]] = True
        return out, names.setdefault((key, node), len(names) + 2)

    # shap seeds numpy's global generator (see `seeded_numpy`); a private one
    # seeded alike draws the same tie-breaks without touching the global one
    random = np.random.RandomState(_row_seed(request.seed, row))
    dvalues = np.zeros(2 * n_leaves - 1)
    spread = _leaf_spreader(tuple(shape))
    nothing = np.zeros(n_leaves, bool)
    if ends is not None:
        known.setdefault(0, ends[0])
        known.setdefault(1, ends[1])
    unknown = sum(key not in known for key in (0, 1))
    f00, f11 = evaluate(np.stack([nothing, ~nothing]), [0, 1])

    def estimate(pending: list[Any]) -> tuple[np.ndarray, float]:
        # what the budget's end does: queued pairs leave their credit on
        # their nodes
        credit = dvalues.copy()
        for _, _, (_, _, low, high, node, weight) in pending:
            credit[node] += (high - low) * weight
        return spread(credit), float(f00)

    yield unknown
    budget = max_evals - 2
    Item = tuple[np.ndarray, int, float, float, int, float]
    queue: list[tuple[float, float, Item]]
    queue = [(0.0, 0.0, (nothing, 0, float(f00), float(f11), len(dvalues) - 1, 1.0))]
    spent = 0
    while queue:
        if spent >= budget:
            while queue:
                _, _, (_, _, low, high, node, weight) = heapq.heappop(queue)
                dvalues[node] += (high - low) * weight
            break
        work: list[tuple[Item, np.ndarray, int, np.ndarray, int]] = []
        masks = np.empty((masks_per_call, n_leaves), bool)
        keys: list[int] = []
        while queue and len(keys) < masks_per_call and spent + len(keys) < budget:
            item = heapq.heappop(queue)[2]
            m00, k00, low, high, node, weight = item
            if node < n_leaves or clustering[node - n_leaves, 2] < 0:
                dvalues[node] += (high - low) * weight
                continue
            j = len(keys)
            left, right = clustering[node - n_leaves, :2].astype(int)
            m10, k10 = grown(m00, k00, left, masks[j])
            m01, k01 = grown(m00, k00, right, masks[j + 1])
            work.append((item, m10, k10, m01, k01))
            keys += [k10, k01]
        if not work:
            continue
        out = evaluate(masks[: len(keys)], keys)
        spent += len(keys)
        for i, ((m00, k00, low, high, node, weight), m10, k10, m01, k01) in enumerate(
            work
        ):
            f10, f01 = float(out[2 * i]), float(out[2 * i + 1])
            left = int(clustering[node - n_leaves, 0])
            right = int(clustering[node - n_leaves, 1])
            half = weight / 2
            pushes: tuple[tuple[float, Item], ...] = (
                (abs(f10 - low), (m00, k00, low, f10, left, half)),
                (abs(f01 - low), (m00, k00, low, f01, right, half)),
                (abs(high - f01), (m01, k01, f01, high, left, half)),
                (abs(high - f10), (m10, k10, f10, high, right, half)),
            )
            for priority, pushed in pushes:
                heapq.heappush(queue, (-priority * half, random.randn(), pushed))
        yield Step(len(keys), functools.partial(estimate, queue))

    yield Finished((spread(dvalues), float(f00)))


def _leaf_spreader(
    shape: tuple[int, ...],
) -> Callable[[np.ndarray], np.ndarray]:
    """For an image of `shape`, a function from node credits `(2L − 1,)` to
    leaf values `shape`: each node's credit spread evenly over its leaves,
    added to theirs."""
    clustering, indptr, indices = image_tree(shape)
    n_leaves = len(clustering) + 1
    sizes = clustering[:, 3]
    counts = np.diff(indptr[n_leaves:])
    under = indices[indptr[n_leaves] :]

    def spread(credit: np.ndarray) -> np.ndarray:
        per_leaf = np.repeat(credit[n_leaves:] / sizes, counts)
        shared = np.bincount(under, weights=per_leaf, minlength=n_leaves)
        return (credit[:n_leaves] + shared).reshape(shape)

    return spread


def _blur_kernel(masker: Any, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The `(kh, kw)` box of a blur masker, or ``None`` for other maskers."""
    if not isinstance(masker, str):
        return None
    if masker in ("auto", "blur"):
        return (max(1, round(shape[0] / 4)), max(1, round(shape[1] / 4)))
    if masker.startswith("blur(") and masker.endswith(")"):
        try:
            sizes = tuple(int(part) for part in masker[5:-1].split(","))
        except ValueError:
            sizes = ()
        if len(sizes) != 2 or min(sizes) < 1:
            raise ValueError(
                "a blur masker reads 'blur(kh,kw)' with two positive ints, e.g. "
                f"'blur(8,8)'; got {masker!r}"
            )
        return (sizes[0], sizes[1])
    return None


def box_blur(image: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """`image` `(H, W, C)` averaged over a `kernel` box, edges mirrored
    (what ``cv2.blur`` does), float64."""
    from scipy.ndimage import uniform_filter

    return np.asarray(
        uniform_filter(np.asarray(image, np.float64), size=(*kernel, 1), mode="mirror")
    )


def _require_cv2(masker: str) -> None:
    try:
        import cv2  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"masker {masker!r} uses OpenCV's inpainting; install "
            "opencv-python-headless, or use masker='blur'"
        ) from error


def _inpainting_masker(method: str, shape: tuple[int, ...]) -> Any:
    """shap's inpainting image masker, made exact for float images.

    shap casts the image to ``uint8`` before inpainting, which zeroes images
    in [0, 1] and rounds every pixel. This masker inpaints a copy scaled to
    [0, 255] and keeps the image's own pixels wherever they are not hidden.
    """
    import shap

    class Inpainter(shap.maskers.Image):
        def inpaint(self, x: np.ndarray, mask: np.ndarray, how: str) -> Any:
            low, high = float(x.min()), float(x.max())
            scale = 255.0 / (high - low) if high > low else 1.0
            scaled = (x - low) * scale
            filled = np.asarray(super().inpaint(scaled, mask, how), np.float64)
            out = np.array(x, np.float64)
            out[mask] = filled[mask] / scale + low
            return out.astype(x.dtype)

    return Inpainter(method, shape)


def _table_masker(background: np.ndarray) -> Any:
    """shap's Partition masker, features clustered by the correlation of
    their background values; by their Euclidean distance where correlation is
    undefined (one background row, or a constant feature)."""
    import shap

    data = np.asarray(background, np.float64)
    try:
        return shap.maskers.Partition(data, max_samples=_MAX_BACKGROUND)
    except ValueError:
        logger.info(
            "partition_shap: feature correlations undefined on this "
            "background; clustering features by Euclidean distance"
        )
        return shap.maskers.Partition(
            data, max_samples=_MAX_BACKGROUND, clustering="euclidean"
        )


def check_background(background: Any, inputs: np.ndarray, method: str) -> np.ndarray:
    """The background set as `(M, F)` float32, or an error saying what is
    wrong with it."""
    if background is None:
        raise ValueError(
            f"{method} on tables needs background=, an array (M, F) of rows that "
            "stand for absent features (e.g. a sample of the training set); got "
            "None"
        )
    array = np.asarray(background, np.float32)
    features = inputs.shape[1]
    if array.ndim == 1 and array.shape[0] == features:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != features or len(array) == 0:
        raise ValueError(
            f"background must be an array of shape (M, {features}) with M >= 1; "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("background must be finite; it contains NaN or Inf")
    return array


# -- running shap in a worker ------------------------------------------------------


@dataclass
class Finished(Generic[T]):
    """What the worker's task returned."""

    value: T


def in_worker(
    request: Request,
    row: int,
    task: Callable[[Callable[[np.ndarray], np.ndarray]], T],
    model: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[int | Finished[T]]:
    """Run ``task(f)`` in a worker thread; yield what it evaluates as it goes.

    ``f`` maps a batch `(M, ...)` to the target's scalars `(M,)` for input
    `row`, evaluating through ``request.evaluate`` in full adapter batches
    (or through `model`, a function of a slice of rows, when given). Yields
    the number of rows each batch evaluated, then `Finished` with the task's
    result. An error in the task (`Cancelled` included) is raised here; when
    the caller stops iterating, the worker is stopped at its next batch.
    """
    events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    chunk = request.adapter.batch_size * _BATCHES_PER_PARTIAL
    rows_of = np.full(chunk, row)

    def evaluate_slice(x: np.ndarray) -> np.ndarray:
        return request.evaluate(np.asarray(x, np.float32), rows_of[: len(x)])

    evaluate = model or evaluate_slice

    def f(x: np.ndarray) -> np.ndarray:
        scores = np.empty(len(x), np.float64)
        for start in range(0, len(x), chunk):
            if stop.is_set():
                raise Cancelled()
            part = x[start : start + chunk]
            scores[start : start + len(part)] = evaluate(part)
            events.put(("evaluated", len(part)))
        return scores

    def work() -> None:
        try:
            events.put(("finished", task(f)))
        except BaseException as error:  # handed to the caller's thread
            events.put(("error", error))

    thread = threading.Thread(target=work, name=f"ssx-{request.spec.name}", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = events.get()
            if kind == "evaluated":
                yield int(payload)
            elif kind == "finished":
                yield Finished(payload)
                return
            else:
                raise payload
    finally:
        stop.set()
        thread.join()


def _row_seed(seed: int, row: int) -> int:
    """The seed of numpy's global generator while shap explains input `row`."""
    entropy = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, row])
    return int(entropy.generate_state(1)[0])


@contextlib.contextmanager
def seeded_numpy(seed: int, row: int) -> Iterator[None]:
    """Seed numpy's global generator, which shap draws from, for input `row`,
    and restore its state afterwards."""
    state = np.random.get_state()
    np.random.seed(_row_seed(seed, row))
    try:
        yield
    finally:
        np.random.set_state(state)


def check_additivity(total: float, output: float, row: int, method: str) -> None:
    """Log when shap's ``values.sum() + base`` misses our own evaluation of the
    output by more than `ADDITIVITY_TOLERANCE` (relative)."""
    gap = abs(total - output)
    if gap > ADDITIVITY_TOLERANCE * max(1.0, abs(output)):
        logger.warning(
            "%s: input %s: values sum to %.6g with the base value, but the model "
            "gives %.6g",
            method,
            row,
            total,
            output,
        )


def _even(value: int) -> int:
    """`value` rounded up to even: shap's owen loop adds masks in pairs."""
    return value + value % 2
