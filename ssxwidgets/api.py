"""The functions users call: `attribute`, `stream` and `explain`.

Usage::

    exp = ssx.attribute(model, images, method="integrated_gradients", n_steps=64)
    for partial in ssx.stream(model, image, method="lime", n_samples=4000):
        partial.progress, partial.n_evaluations, partial.values
    ssx.explain(model, image)        # a widget, shown by the cell
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._errors import Cancelled
from ._log import logger
from .explanation import Explanation
from .methods import get_method, get_validator
from .methods._base import Request
from .models import ModelAdapter, adapt
from .targets import BoundTarget, resolve_target

__all__ = ["attribute", "explain", "prepare", "stream"]

#: problems whose sampling state is kept for incremental reruns, per adapter
_CACHE_SIZE = 8

#: parameters that only set how much work is done: runs differing in them
#: share one problem cache, so more work continues from what was done
_BUDGETS = ("n_samples", "max_evals")

#: the target of a request whose parameters are being checked: no weights yet
_UNBOUND = BoundTarget(np.zeros((0, 0), np.float32), False, "(not bound yet)")


def prepare(
    model: Any,
    inputs: Any,
    method: str = "integrated_gradients",
    target: Any = None,
    *,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    **params: Any,
) -> Request:
    """Check everything and build the `Request` a method runs on.

    Every mistake is caught here, before any work starts: an unknown method
    or parameter, a parameter out of range or of the wrong kind (the method's
    ``validate``), a model that cannot give the gradients a method needs,
    inputs of the wrong shape or with NaN, a class index out of range. So
    `stream` raises when it is called, not at its first ``next()``.
    """
    adapter = adapt(model)
    spec, _ = get_method(method)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise TypeError(
            f"{method} takes no parameter {', '.join(map(repr, unknown))}; its "
            f"parameters are: {', '.join(spec.defaults) or 'none'}"
        )
    if spec.needs_gradients and not adapter.differentiable:
        raise TypeError(
            f"{method} needs gradients, and this model is a plain Python callable; "
            "use a perturbation method (occlusion, rise, lime, kernel_shap, "
            "partition_shap) or pass the Keras model itself"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int; got {seed!r}")
    batch = adapter.prepare_inputs(inputs)
    kind = "image" if batch.ndim == 4 else "tabular"
    if kind not in spec.inputs:
        raise ValueError(
            f"{method} applies to {' and '.join(spec.inputs)} inputs; got "
            f"{kind} inputs of shape {batch.shape}"
        )
    resolved = resolve_target(target, adapter)
    settings = {**spec.defaults, **params}
    # the method's own checks come before the target is bound, since binding
    # some targets ("top", embeddings) evaluates the model
    request = Request(adapter, batch, _UNBOUND, settings, spec, int(seed), cancel)
    get_validator(method)(request)
    request.target = resolved.bind(adapter, batch)
    request.cache = _problem_cache(adapter, request)
    if request.target.outputs is not None:
        # binding ran the model on the inputs: f(x) needs no evaluation of its own
        request.cache.setdefault("outputs", request.target.outputs)
    return request


def stream(
    model: Any,
    inputs: Any,
    method: str = "integrated_gradients",
    target: Any = None,
    *,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    **params: Any,
) -> Iterator[Explanation]:
    """Yield partial explanations as they improve; the last is complete.

    Parameters are those of `attribute`. ``cancel``, when given, is polled
    between batches; once it returns ``True`` the stream ends quietly within
    one batch.
    """
    request = prepare(model, inputs, method, target, seed=seed, cancel=cancel, **params)
    return _run(request)


def _run(request: Request) -> Iterator[Explanation]:
    _, run = get_method(request.spec.name)
    started = time.perf_counter()
    logger.info("%s started on %s input(s)", request.spec.name, len(request.inputs))
    try:
        yield from run(request)
    except Cancelled:
        logger.info(
            "%s cancelled after %s evaluations",
            request.spec.name,
            request.n_evaluations,
        )
        return
    logger.info(
        "%s finished: %s evaluations in %.3f s",
        request.spec.name,
        request.n_evaluations,
        time.perf_counter() - started,
    )


def attribute(
    model: Any,
    inputs: Any,
    method: str = "integrated_gradients",
    target: Any = None,
    *,
    seed: int = 0,
    **params: Any,
) -> Explanation:
    """Explain `inputs` with one method and return the finished explanation.

    Parameters
    ----------
    model
        A Keras model, a loaded SavedModel, a Keras layer, any callable from a
        numpy batch to a numpy batch, or a `ModelAdapter`.
    inputs
        `(N, H, W, C)` or one `(H, W, C)` image, or `(N, F)` / `(F,)` rows.
    method
        One of ``ssx.methods.METHOD_NAMES``.
    target
        A class index, ``"top"``, or an ``ssx.targets`` object; by default the
        predicted class of a classifier and `EmbeddingSimilarity` for an
        encoder.
    seed
        Seed of every random draw: one seed, one result.
    **params
        The method's parameters (``n_steps``, ``n_samples``, ``baseline``...).
    """
    result = None
    for partial in stream(model, inputs, method, target, seed=seed, **params):
        result = partial
    if result is None:  # pragma: no cover - a method always yields
        raise RuntimeError(f"{method} produced no result")
    return result


def explain(model: Any, inputs: Any, method: str | None = None, **kwargs: Any) -> Any:
    """A widget explaining `model` on `inputs`, shown when the cell ends.

    Images give an ``ImageExplainer``. See `attribute` for the arguments.
    """
    from .widgets import explain_image

    adapter = model if isinstance(model, ModelAdapter) else adapt(model)
    array = adapter.prepare_inputs(inputs)
    if array.ndim != 4:
        raise ValueError(
            "ssx.explain shows images of shape (H, W, C) or (N, H, W, C); got "
            f"inputs of shape {array.shape}. For tables use ssx.attribute for now"
        )
    if method is not None:
        kwargs["method"] = method
    return explain_image(model, inputs, **kwargs)


def _problem_cache(adapter: ModelAdapter, request: Request) -> dict[str, Any]:
    """The cache of everything but the budget (`_BUDGETS`), kept on the
    adapter."""
    caches: OrderedDict[str, dict[str, Any]] = adapter.__dict__.setdefault(
        "_problem_caches", OrderedDict()
    )
    digest = hashlib.sha1()
    digest.update(adapter.weights_fingerprint().encode())
    digest.update(request.inputs.tobytes())
    digest.update(request.target.weights.tobytes())
    settings = {k: v for k, v in request.params.items() if k not in _BUDGETS}
    digest.update(
        repr(
            (
                request.spec.name,
                request.seed,
                sorted((k, _fingerprint(v)) for k, v in settings.items()),
            )
        ).encode()
    )
    key = digest.hexdigest()
    cache = caches.pop(key, None) or {}
    caches[key] = cache
    while len(caches) > _CACHE_SIZE:
        caches.popitem(last=False)
    return cache


def _fingerprint(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return hashlib.sha1(value.tobytes()).hexdigest()
    if callable(value):
        return f"callable:{id(value)}"
    return repr(value)
