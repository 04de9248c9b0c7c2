"""How far to trust an explanation: faithfulness, sanity and ground truth.

Usage::

    exp = ssx.attribute(model, images, method="integrated_gradients")
    ssx.metrics.deletion(model, images, exp)        # (N,) AUC, lower is better
    ssx.metrics.insertion(model, images, exp)       # (N,) AUC, higher is better
    ssx.metrics.pointing_game(exp, masks)           # fraction of hits
    ssx.metrics.randomization(model, images, method="saliency")

Every model evaluation goes through the adapter's batched path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import attribute
from .baselines import resolve_baseline
from .explanation import Explanation
from .models import adapt
from .targets import resolve_target

__all__ = [
    "Curve",
    "deletion",
    "deletion_curve",
    "insertion",
    "insertion_curve",
    "pointing_game",
    "randomization",
]


@dataclass(frozen=True)
class Curve:
    """The target's value as features are removed (or added) in order.

    Attributes
    ----------
    fractions
        `(S,)` fraction of pixels (features) changed, from 0 to 1.
    scores
        `(N, S)` the target at each fraction.
    auc
        `(N,)` area under each curve (trapezoid rule over `fractions`).
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray


def _ordering(exp: Explanation) -> np.ndarray:
    """`(N, P)` pixel (feature) indices, most important first."""
    saliency = exp.map if exp.values.ndim == 4 else exp.values
    flat = saliency.reshape(len(saliency), -1)
    return np.argsort(-flat, axis=1, kind="stable")


def _curve(
    model: Any,
    inputs: Any,
    exp: Explanation,
    *,
    target: Any,
    baseline: Any,
    n_steps: int,
    insert: bool,
) -> Curve:
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1; got {n_steps}")
    adapter = adapt(model)
    x = adapter.prepare_inputs(inputs)
    if exp.values.shape != x.shape:
        raise ValueError(
            f"the explanation's values have shape {exp.values.shape}; expected "
            f"the inputs' shape {x.shape}"
        )
    bound = resolve_target(target, adapter).bind(adapter, x)
    fill = resolve_baseline(baseline, x)
    order = _ordering(exp)
    n, n_pixels = order.shape
    fractions = np.linspace(0.0, 1.0, n_steps + 1)
    scores = np.empty((n, n_steps + 1), np.float32)
    spatial = x.reshape(n, n_pixels, -1)
    spatial_fill = fill.reshape(n, n_pixels, -1)
    for i in range(n):
        rank = np.empty(n_pixels, np.int64)
        rank[order[i]] = np.arange(n_pixels)
        counts = np.round(fractions * n_pixels).astype(int)
        changed = rank[None, :] < counts[:, None]  # (S, P)
        if insert:
            changed = ~changed[::-1]
        steps = np.where(changed[..., None], spatial_fill[i], spatial[i])
        rows = np.full(len(steps), i)
        scores[i] = adapter.evaluate(steps.reshape(-1, *x.shape[1:]), bound, rows)
    if insert:
        scores = scores[:, ::-1]
    auc = np.asarray(np.trapezoid(scores, fractions, axis=1), np.float32)
    return Curve(fractions, scores, auc)


def deletion_curve(
    model: Any,
    inputs: Any,
    exp: Explanation,
    *,
    target: Any = None,
    baseline: Any = 0.0,
    n_steps: int = 20,
) -> Curve:
    """The target as the most important pixels are replaced by the baseline.

    Petsiuk et al., "RISE", BMVC 2018. A faithful explanation makes the
    target fall fast.
    """
    return _curve(
        model,
        inputs,
        exp,
        target=target,
        baseline=baseline,
        n_steps=n_steps,
        insert=False,
    )


def insertion_curve(
    model: Any,
    inputs: Any,
    exp: Explanation,
    *,
    target: Any = None,
    baseline: Any = "blur",
    n_steps: int = 20,
) -> Curve:
    """The target as the most important pixels are restored onto the baseline.

    Petsiuk et al., "RISE", BMVC 2018. A faithful explanation makes the
    target rise fast. The default baseline for tables is the mean.
    """
    if baseline == "blur" and np.ndim(exp.values) != 4:
        baseline = "mean"
    return _curve(
        model,
        inputs,
        exp,
        target=target,
        baseline=baseline,
        n_steps=n_steps,
        insert=True,
    )


def deletion(model: Any, inputs: Any, exp: Explanation, **kwargs: Any) -> np.ndarray:
    """`(N,)` deletion AUC (lower is more faithful); see `deletion_curve`."""
    return deletion_curve(model, inputs, exp, **kwargs).auc


def insertion(model: Any, inputs: Any, exp: Explanation, **kwargs: Any) -> np.ndarray:
    """`(N,)` insertion AUC (higher is more faithful); see `insertion_curve`."""
    return insertion_curve(model, inputs, exp, **kwargs).auc


def pointing_game(exp: Explanation, masks: Any, *, absolute: bool = True) -> float:
    """Fraction of inputs whose most important pixel lies inside the mask.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop", 2016.

    Parameters
    ----------
    masks
        `(N, H, W)` bool: where the evidence truly is.
    absolute
        Rank pixels by the magnitude of the attribution.
    """
    saliency = exp.map
    masks = np.asarray(masks, bool)
    if masks.shape != saliency.shape:
        raise ValueError(
            f"masks must have shape {saliency.shape} (N, H, W); got {masks.shape}"
        )
    if absolute:
        saliency = np.abs(saliency)
    flat = saliency.reshape(len(saliency), -1).argmax(axis=1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]
    return float(hits.mean())


def randomization(
    model: Any,
    inputs: Any,
    *,
    method: str = "saliency",
    target: Any = None,
    n_layers: int | None = None,
    seed: int = 0,
    **params: Any,
) -> dict[str, float]:
    """Model-parameter randomisation sanity check.

    Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018. The
    layers carrying weights are re-initialised one at a time from the top
    down (cascading) and the explanation recomputed; a method that explains
    the model, not the input, gives maps that stop resembling the original.

    Returns
    -------
    dict
        Layer name → mean Spearman rank correlation of the absolute maps
        with the original's, in the order the layers were randomised.
    """
    import keras
    from scipy.stats import spearmanr

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"randomization needs a Keras model to re-initialise; got "
            f"{type(model).__name__}"
        )
    x = adapt(model).prepare_inputs(inputs)
    # a class target is pinned to the original model's classes, so the
    # randomised models explain the same outputs
    classes = resolve_target(target, adapt(model)).bind(adapt(model), x).classes
    target = classes if classes is not None else target
    original = _absolute_map(attribute(model, x, method, target, seed=seed, **params))
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    layers = [layer for layer in reversed(clone.layers) if layer.weights]
    rng = np.random.default_rng(seed)
    results: dict[str, float] = {}
    for layer in layers[:n_layers]:
        layer.set_weights(
            [
                rng.normal(0.0, float(np.std(w)) or 0.05, np.shape(w)).astype(
                    np.float32
                )
                for w in layer.get_weights()
            ]
        )
        randomised = _absolute_map(
            attribute(clone, x, method, target, seed=seed, **params)
        )
        results[layer.name] = float(
            np.mean(
                [
                    spearmanr(a.ravel(), b.ravel()).statistic
                    for a, b in zip(original, randomised, strict=True)
                ]
            )
        )
    return results


def _absolute_map(exp: Explanation) -> np.ndarray:
    return np.abs(exp.map if exp.values.ndim == 4 else exp.values)
