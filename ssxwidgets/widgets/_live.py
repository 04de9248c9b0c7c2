"""One job of the image explainer: what it computes and the events it
yields, on the worker thread. No widget lives here.

A job yields, in order: ``("targets", options)`` when the Target list is not
known yet; ``("segments", key, (H, W) ids)`` when the superpixels for
picking changed; then ``("partial", method, Explanation)`` for every method,
in turn, so compared methods advance together through the one adapter; and
``("error", method, exception)`` for a method that fails (``""`` for the
superpixels), without stopping the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._log import logger
from ..methods import get_spec
from . import _controls as controls
from ._frames import display_map, encode_heatmap, scale_for, value_range_for

__all__ = ["Plan", "panel_frame", "run_plan", "segments_key"]


@dataclass(frozen=True)
class Plan:
    """What one job computes, fixed when it is submitted."""

    methods: tuple[str, ...]
    """The main method first, then the compared ones."""
    params: dict[str, dict[str, Any]]
    target: Any
    seed: int
    segmentation: Any
    n_segments: int
    started: float = field(default_factory=time.perf_counter)

    @property
    def main(self) -> str:
        """The method shown on the main stage."""
        return self.methods[0]


def segments_key(segmentation: Any, n_segments: int) -> tuple[Any, ...]:
    """What identifies a segmentation (arrays and callables by identity)."""
    if isinstance(segmentation, str):
        return (segmentation, n_segments)
    return ("custom", id(segmentation), n_segments)


def run_plan(
    plan: Plan,
    adapter: Any,
    inputs: np.ndarray,
    cancelled: Callable[[], bool],
    *,
    with_targets: bool,
    have: tuple[Any, ...] | None,
) -> Iterator[tuple[Any, ...]]:
    """The events of one job (see the module docstring).

    Parameters
    ----------
    plan
        What to compute.
    adapter
        The widget's one `ModelAdapter`.
    inputs
        ``(1, H, W, C)`` the image.
    cancelled
        True once a newer job started; polled between batches.
    with_targets
        Whether to list the targets first.
    have
        The key of the superpixels the widget has; others are made.
    """
    from ..api import stream
    from ..segmentation import segment_batch

    if with_targets:
        try:
            yield ("targets", controls.target_options(adapter, inputs, plan.target))
        except Exception as error:  # the list is a courtesy; go on
            logger.warning("no target list: %s", error)
    key = segments_key(plan.segmentation, plan.n_segments)
    if key != have:
        try:
            found = segment_batch(inputs, plan.segmentation, plan.n_segments)
            yield ("segments", key, found[0])
        except Exception as error:
            yield ("error", "", error)

    streams: list[tuple[str, Iterator[Any]]] = []
    for method in plan.methods:
        try:
            partials = stream(
                adapter,
                inputs,
                method,
                plan.target,
                seed=plan.seed,
                cancel=cancelled,
                **plan.params[method],
            )
        except Exception as error:  # parameter errors, from prepare
            yield ("error", method, error)
            continue
        streams.append((method, partials))
    while streams:
        for item in list(streams):
            method, partials = item
            try:
                result = next(partials)
            except StopIteration:
                streams.remove(item)
                continue
            except Exception as error:
                streams.remove(item)
                yield ("error", method, error)
                continue
            yield ("partial", method, result)


def panel_frame(job: int, version: int, method: str, result: Any) -> dict[str, Any]:
    """A compared method's frame, as the front end's `Panel`."""
    values = display_map(result.map[0])
    lo, hi = value_range_for(values)
    scale = scale_for((lo, hi))
    return {
        "method": method,
        "title": get_spec(method).title,
        "heatmap": encode_heatmap(values, scale),
        "shape": list(values.shape),
        "value_scale": scale,
        "value_range": [lo / scale, hi / scale],
        "version": version,
        "job": job,
        "progress": float(result.progress),
        "n_evaluations": int(result.n_evaluations),
        "error": "",
    }
