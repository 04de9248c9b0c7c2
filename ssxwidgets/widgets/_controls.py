"""The image explainer's controls: which apply to which method, their labels,
and how a Python value maps to the key a front-end control holds.

Everything here is read off each method's ``SPEC`` (`MethodSpec.defaults`,
`MethodSpec.needs_gradients`), so a method added to the engine gets its
controls without a change here. No widget lives in this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..baselines import BASELINE_NAMES
from ..methods import METHOD_NAMES, get_spec
from ..segmentation import SEGMENTATION_NAMES

__all__ = [
    "FALLBACKS",
    "LABELS",
    "MAX_TARGETS",
    "PARAMETERS",
    "SAMPLES_RANGE",
    "accepts_baseline",
    "applicable",
    "baseline_key",
    "baseline_options",
    "baseline_value",
    "default_for",
    "format_score",
    "method_defaults",
    "method_options",
    "segmentation_key",
    "segmentation_options",
    "segmentation_value",
    "shown_controls",
    "target_key",
    "target_options",
    "target_value",
    "uses_segments",
]

#: the method parameters the widget has a control (and a trait) for
PARAMETERS = (
    "n_samples",
    "n_segments",
    "segmentation",
    "n_steps",
    "baseline",
    "noise",
    "max_evals",
)

#: the visible label (and accessible name) of each control
LABELS: dict[str, str] = {
    "method": "Method",
    "target": "Target",
    "n_samples": "Samples",
    "n_segments": "Segments",
    "segmentation": "Segmentation",
    "n_steps": "Steps",
    "baseline": "Baseline",
    "noise": "Noise",
    "max_evals": "Max evaluations",
    "seed": "Seed",
}

#: the ends of the log-scale `Samples` slider
SAMPLES_RANGE = (50, 20_000)

#: what each parameter is when no method says otherwise
FALLBACKS: dict[str, Any] = {
    "n_samples": 1000,
    "n_segments": 50,
    "segmentation": "slic",
    "n_steps": 64,
    "baseline": 0.0,
    "noise": 0.15,
    "max_evals": 500,
}

_CUSTOM = "custom"
_DEFAULT = "default"
_BASELINE_LABELS = {
    "zero": "zero (black)",
    "mean": "image mean",
    "blur": "blurred image",
    "uniform": "uniform noise",
    "superpixel_mean": "superpixel mean",
    _DEFAULT: "method default",
}


def applicable(method: str, differentiable: bool) -> tuple[bool, str]:
    """Whether ``method`` can run on images with this model, and why not."""
    spec = get_spec(method)
    if "image" not in spec.inputs:
        return False, f"{spec.title} does not apply to images"
    if spec.needs_gradients and not differentiable:
        return False, (
            f"{spec.title} needs gradients, and this model is a plain Python "
            "callable; pass the Keras model itself to use it"
        )
    return True, ""


def method_options(differentiable: bool) -> list[dict[str, Any]]:
    """One entry per image method: ``name``, ``title``, ``enabled`` and the
    ``reason`` it is greyed out (empty when enabled)."""
    options = []
    for name in METHOD_NAMES:
        spec = get_spec(name)
        if "image" not in spec.inputs:
            continue
        enabled, reason = applicable(name, differentiable)
        options.append(
            {"name": name, "title": spec.title, "enabled": enabled, "reason": reason}
        )
    return options


def method_defaults(method: str) -> Mapping[str, Any]:
    """The method's parameters with their defaults (``SPEC.defaults``)."""
    return get_spec(method).defaults


def shown_controls(method: str) -> list[str]:
    """The parameter controls that apply to ``method``, in display order;
    ``seed`` when the method draws random samples."""
    defaults = method_defaults(method)
    shown = [name for name in PARAMETERS if name in defaults]
    if "n_samples" in defaults:
        shown.append("seed")
    return shown


def uses_segments(method: str) -> bool:
    """Whether ``method`` explains superpixels (its values are per segment)."""
    return "segmentation" in method_defaults(method)


def default_for(method: str, name: str) -> Any:
    """The value of parameter ``name`` that ``method`` uses by default."""
    defaults = method_defaults(method)
    return defaults[name] if name in defaults else FALLBACKS[name]


# -- target ------------------------------------------------------------------


def target_key(target: Any) -> str:
    """The front-end key of a target: ``"top"``, a class index as digits,
    ``"embedding"``, or ``"custom"`` for any other target object."""
    if target is None:
        return _DEFAULT
    if isinstance(target, bool):
        return _CUSTOM
    if isinstance(target, int | np.integer):
        return str(int(target))
    if isinstance(target, str):
        if target in ("embedding", "self", "embedding_similarity"):
            return "embedding"
        return target
    from ..targets import EmbeddingSimilarity

    if isinstance(target, EmbeddingSimilarity) and target.metric == "dot":
        return "embedding"
    return _CUSTOM


def target_value(key: str, current: Any) -> Any:
    """The Python target for a front-end key; ``"custom"`` keeps
    ``current`` (an object the front end cannot name)."""
    if key == _CUSTOM:
        return current
    if key == _DEFAULT:
        return None
    if key.isdigit():
        return int(key)
    return key


# -- baseline ----------------------------------------------------------------


def baseline_key(baseline: Any) -> str:
    """The front-end key of a baseline: a name, ``"zero"`` for 0,
    ``"default"`` for ``None``, ``"custom"`` for other numbers and arrays."""
    if baseline is None:
        return _DEFAULT
    if isinstance(baseline, str):
        return "zero" if baseline == "black" else baseline
    if isinstance(baseline, int | float | np.number) and not isinstance(baseline, bool):
        return "zero" if float(baseline) == 0.0 else _CUSTOM
    return _CUSTOM


def baseline_value(key: str, current: Any) -> Any:
    """The Python baseline for a front-end key (``"custom"`` keeps
    ``current``)."""
    if key == _CUSTOM:
        return current
    if key == _DEFAULT:
        return None
    if key == "zero":
        return 0.0
    return key


def baseline_options(method: str, current: Any) -> list[dict[str, str]]:
    """The baselines ``method`` accepts, ``value``/``label`` pairs, with the
    current one included (a custom array shows as "custom")."""
    keys = ["zero", *(n for n in BASELINE_NAMES if n not in ("zero", "black"))]
    if uses_segments(method):
        keys.append("superpixel_mean")
    if method_defaults(method).get("baseline", 0.0) is None:
        keys.insert(0, _DEFAULT)
    key = baseline_key(current)
    if key not in keys:
        keys.append(key)
    return [{"value": k, "label": _baseline_label(k, current)} for k in keys]


def _baseline_label(key: str, current: Any) -> str:
    if key != _CUSTOM:
        return _BASELINE_LABELS.get(key, key)
    if isinstance(current, int | float | np.number):
        return f"constant {float(current):g}"
    shape = getattr(current, "shape", None)
    return f"custom array {tuple(shape)}" if shape is not None else "custom"


def accepts_baseline(method: str, baseline: Any) -> bool:
    """Whether ``method`` can take ``baseline`` (``"superpixel_mean"`` needs
    superpixels; ``None`` only where the method's default is ``None``)."""
    key = baseline_key(baseline)
    if key == "superpixel_mean":
        return uses_segments(method)
    if key == _DEFAULT:
        return method_defaults(method).get("baseline", 0.0) is None
    return True


# -- segmentation --------------------------------------------------------------


def segmentation_key(segmentation: Any) -> str:
    """A segmentation's name, or ``"custom"`` for an array or a callable."""
    if isinstance(segmentation, str):
        return segmentation
    return _CUSTOM


def segmentation_value(key: str, current: Any) -> Any:
    """The Python segmentation for a key (``"custom"`` keeps ``current``)."""
    return current if key == _CUSTOM else key


def segmentation_options(current: Any) -> list[str]:
    """The named segmentations, and ``"custom"`` when one is in use."""
    names = list(SEGMENTATION_NAMES)
    if segmentation_key(current) == _CUSTOM:
        names.append(_CUSTOM)
    return names


# -- number formatting -----------------------------------------------------------


def format_score(value: float) -> str:
    """A short form of a model score for a label, e.g. ``"3.21"``."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


# -- targets ---------------------------------------------------------------------

#: classes listed in the Target control at most (the highest scores)
MAX_TARGETS = 50


def target_options(
    adapter: Any, inputs: np.ndarray, current: Any
) -> list[dict[str, str]]:
    """The Target control's entries, ``value``/``label`` pairs.

    A classifier lists the predicted class first, then its classes with
    their scores on ``inputs[:1]`` (the highest `MAX_TARGETS` when there are
    more, in index order); an encoder lists the label-free target. A target
    object the control cannot name is listed as ``"custom"``.
    """
    if adapter.output_kind == "embedding":
        options = [
            {
                "value": "embedding",
                "label": "Similarity to its own embedding (label-free)",
            }
        ]
    else:
        scores = np.asarray(adapter.predict(inputs[:1]), np.float64).reshape(-1)
        names = list(adapter.class_names or [])

        def name(i: int) -> str:
            return str(names[i]) if i < len(names) else f"class {i}"

        top = int(np.argmax(scores))
        options = [
            {
                "value": "top",
                "label": f"Predicted class: {name(top)} "
                f"({format_score(float(scores[top]))})",
            }
        ]
        order = np.arange(len(scores))
        if len(order) > MAX_TARGETS:
            order = np.sort(np.argsort(-scores)[:MAX_TARGETS])
        for i in order:
            options.append(
                {
                    "value": str(int(i)),
                    "label": f"{int(i)}: {name(int(i))} · "
                    f"{format_score(float(scores[i]))}",
                }
            )
    key = target_key(current)
    if current is not None and key not in {o["value"] for o in options}:
        label = "custom: " + repr(current) if key == _CUSTOM else key
        options.append({"value": key, "label": label})
    return options
