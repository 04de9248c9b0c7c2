"""The drill-down of a selection: which superpixels it holds, their share of
the explanation, and what the model says without them or with only them.

A selection is a dict::

    {"kind": "rectangle" | "lasso" | "superpixels" | "mask" | "none",
     "mask": (H, W) bool,            # the selected pixels
     "segments": (k,) int64}         # ids of the selected superpixels

A superpixel belongs to a brushed selection when at least half of its pixels
are inside the brush; when none is, the one with the most pixels inside does.
No widget lives in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_STEPS",
    "SELECTION_KINDS",
    "Counterfactual",
    "Waterfall",
    "counterfactual",
    "decode_mask",
    "empty_selection",
    "encode_mask",
    "normalize_selection",
    "segment_values",
    "segments_in_mask",
    "waterfall",
]

SELECTION_KINDS = ("rectangle", "lasso", "superpixels", "mask", "none")

#: selected superpixels shown as their own step of the waterfall, at most
MAX_STEPS = 10


def empty_selection(shape: tuple[int, int]) -> dict[str, Any]:
    """The selection of nothing, for an ``(H, W)`` image."""
    return {
        "kind": "none",
        "mask": np.zeros(shape, bool),
        "segments": np.zeros(0, np.int64),
    }


def encode_mask(mask: NDArray[np.bool_]) -> bytes:
    """An ``(H, W)`` bool mask as ``H * W`` bytes of 0 and 1, row-major."""
    return np.ascontiguousarray(mask, dtype=np.uint8).tobytes()


def decode_mask(data: Any, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """The ``(H, W)`` bool mask of bytes from :func:`encode_mask` (or the
    front end's brush)."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if raw.size != shape[0] * shape[1]:
        raise ValueError(
            f"expected a mask of {shape[0] * shape[1]} bytes for shape {shape}; "
            f"got {raw.size}"
        )
    return raw.reshape(shape) != 0


def segments_in_mask(
    mask: NDArray[np.bool_], segments: NDArray[np.integer]
) -> NDArray[np.int64]:
    """Ids of the superpixels a pixel mask selects, sorted.

    Parameters
    ----------
    mask
        ``(H, W)`` bool.
    segments
        ``(H, W)`` superpixel ids ``0..S-1``.
    """
    if not mask.any():
        return np.zeros(0, np.int64)
    ids = segments.reshape(-1).astype(np.int64)
    size = int(ids.max()) + 1
    total = np.bincount(ids, minlength=size)
    inside = np.bincount(ids[mask.reshape(-1)], minlength=size)
    chosen = np.flatnonzero(inside * 2 >= np.maximum(total, 1))
    chosen = chosen[inside[chosen] > 0]
    if chosen.size == 0:
        chosen = np.array([int(np.argmax(inside))])
    return chosen.astype(np.int64)


def normalize_selection(
    value: Any, shape: tuple[int, int], segments: NDArray[np.integer] | None
) -> dict[str, Any]:
    """A selection dict from what a user or the front end gives.

    Parameters
    ----------
    value
        ``None`` or an empty dict (nothing selected); an ``(H, W)`` bool
        array (a pixel mask); or a dict with ``"mask"`` and/or
        ``"segments"`` (superpixel ids; their pixels become the mask when no
        mask is given) and optionally ``"kind"``.
    shape
        ``(H, W)`` of the image.
    segments
        ``(H, W)`` superpixel ids, or ``None`` before they are known.

    Raises
    ------
    ValueError
        When a mask has another shape, an id is out of range, or a kind is
        unknown.
    """
    if value is None or (isinstance(value, dict) and not value):
        return empty_selection(shape)
    if not isinstance(value, dict):
        value = {"mask": value, "kind": "mask"}
    unknown = set(value) - {"kind", "mask", "segments"}
    if unknown:
        raise ValueError(
            "a selection is a dict with keys 'kind', 'mask' and 'segments'; got "
            f"also {sorted(unknown)}"
        )
    kind = str(value.get("kind", "mask" if "mask" in value else "superpixels"))
    if kind not in SELECTION_KINDS:
        raise ValueError(
            f"selection kind must be one of {', '.join(SELECTION_KINDS)}; got {kind!r}"
        )
    ids: NDArray[np.int64] | None = None
    if value.get("segments") is not None:
        ids = np.unique(np.asarray(value["segments"], np.int64).reshape(-1))
        if segments is not None and ids.size:
            top = int(segments.max())
            if ids.min() < 0 or ids.max() > top:
                raise ValueError(
                    f"superpixel ids must be in [0, {top}]; got {ids.tolist()}"
                )
    if value.get("mask") is not None:
        mask = np.asarray(value["mask"])
        if mask.shape != shape:
            raise ValueError(
                f"a selection mask must have the image's shape {shape}; got "
                f"{mask.shape}"
            )
        mask = mask.astype(bool)
    elif ids is not None and segments is not None:
        mask = np.isin(segments, ids)
    else:
        mask = np.zeros(shape, bool)
    if ids is None:
        ids = (
            segments_in_mask(mask, segments)
            if segments is not None
            else np.zeros(0, np.int64)
        )
    if not mask.any() and ids.size == 0:
        kind = "none"
    return {"kind": kind, "mask": mask, "segments": ids}


def segment_values(
    explanation: Any, segments: NDArray[np.integer]
) -> NDArray[np.float64]:
    """``(S,)`` each superpixel's share of the explanation.

    The method's own per-segment values when it explained these very
    superpixels (LIME, KernelSHAP); otherwise the attribution map summed over
    each segment's pixels, which for additive methods (SHAP, integrated
    gradients) keeps ``base + sum == output``.
    """
    size = int(segments.max()) + 1
    own = getattr(explanation, "segments", None)
    values = getattr(explanation, "segment_values", None)
    if (
        own is not None
        and values is not None
        and own.shape[1:] == segments.shape
        and np.array_equal(own[0], segments)
    ):
        return np.asarray(values[0][:size], np.float64)
    heat = np.asarray(explanation.map[0], np.float64)
    flat = segments.reshape(-1)
    sums = np.bincount(flat, weights=heat.reshape(-1), minlength=size)
    return np.asarray(sums[:size], np.float64)


@dataclass(frozen=True)
class Waterfall:
    """The steps from the base value to the output, one bar each.

    ``labels`` name the bars; each bar spans ``[low, high]``; ``kinds`` is
    ``"total"`` (the base value and the output, drawn from 0), ``"up"`` or
    ``"down"``.
    """

    labels: list[str]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    kinds: list[str]
    values: NDArray[np.float64]


def waterfall(
    base: float,
    output: float,
    values: NDArray[np.float64],
    ids: NDArray[np.int64],
    max_steps: int = MAX_STEPS,
) -> Waterfall:
    """The waterfall of a selection, from ``base`` to ``output``.

    The selected superpixels with the largest ``|value|`` get a step each
    (``"#id"``, at most ``max_steps``), the other selected ones share one,
    and ``"rest"`` closes the gap to ``output``: the unselected superpixels
    and whatever the method does not attribute (LIME's fit residual).
    """
    chosen = ids[np.argsort(-np.abs(values[ids]), kind="stable")]
    shown, folded = chosen[:max_steps], chosen[max_steps:]
    labels = ["base"]
    deltas: list[float] = []
    for i in shown:
        labels.append(f"#{int(i)}")
        deltas.append(float(values[i]))
    if folded.size:
        labels.append(f"{folded.size} more")
        deltas.append(float(values[folded].sum()))
    labels.append("rest")
    deltas.append(float(output) - float(base) - sum(deltas))
    labels.append("output")

    starts = float(base) + np.concatenate([[0.0], np.cumsum(deltas)[:-1]])
    ends = starts + np.asarray(deltas)
    low = np.concatenate([[min(0.0, base)], np.minimum(starts, ends)])
    high = np.concatenate([[max(0.0, base)], np.maximum(starts, ends)])
    low = np.append(low, min(0.0, output))
    high = np.append(high, max(0.0, output))
    kinds = ["total", *("up" if d >= 0 else "down" for d in deltas), "total"]
    return Waterfall(
        labels, low, high, kinds, np.array([base, *deltas, output], np.float64)
    )


@dataclass(frozen=True)
class Counterfactual:
    """The explained output with and without the selection.

    ``full`` at the image, ``removed`` with the selected pixels filled with
    the baseline, ``kept`` with every other pixel filled.
    """

    full: float
    removed: float
    kept: float


def counterfactual(
    adapter: Any,
    inputs: NDArray[np.float32],
    target: Any,
    mask: NDArray[np.bool_],
    fill: NDArray[np.float32],
) -> Counterfactual:
    """Evaluate the three images of a `Counterfactual` in one batched call.

    Parameters
    ----------
    adapter
        The widget's `ModelAdapter`.
    inputs
        ``(1, H, W, C)`` the image.
    target
        The `BoundTarget` of the explanation.
    mask
        ``(H, W)`` the selected pixels.
    fill
        ``(1, H, W, C)`` what removed pixels become (the baseline).
    """
    keep = mask[None, :, :, None]
    removed = np.where(keep, fill, inputs)
    kept = np.where(keep, inputs, fill)
    batch = np.concatenate([inputs, removed, kept]).astype(np.float32)
    scores = np.asarray(adapter.evaluate(batch, target, np.zeros(3, np.int64)))
    return Counterfactual(float(scores[0]), float(scores[1]), float(scores[2]))
