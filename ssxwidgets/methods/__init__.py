"""Attribution methods, one per module.

Each module defines ``SPEC`` (a `MethodSpec`) and ``run(request)``, a
generator of partial `Explanation` objects, and may define
``validate(request)``, its parameter checks. `get_method` imports a method by
its public name; `get_validator` gives its checks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType

from ..explanation import Explanation
from ._base import MethodSpec, Request

__all__ = [
    "METHOD_NAMES",
    "MethodSpec",
    "Request",
    "get_method",
    "get_spec",
    "get_validator",
]

#: every public method name, in the order a user meets them
METHOD_NAMES = (
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "gradcam",
    "gradcam_plus_plus",
    "expected_gradients",
    "occlusion",
    "rise",
    "lime",
    "kernel_shap",
    "partition_shap",
    "relax",
)


def _module(name: str) -> ModuleType:
    if name not in METHOD_NAMES:
        raise ValueError(
            f"unknown method {name!r}; expected one of: {', '.join(METHOD_NAMES)}"
        )
    return importlib.import_module(f"{__name__}.{name}")


def get_spec(name: str) -> MethodSpec:
    """The `MethodSpec` of the method called `name`."""
    spec: MethodSpec = _module(name).SPEC
    return spec


def get_method(
    name: str,
) -> tuple[MethodSpec, Callable[[Request], Iterator[Explanation]]]:
    """The spec and the ``run`` generator of the method called `name`."""
    module = _module(name)
    return module.SPEC, module.run


def get_validator(name: str) -> Callable[[Request], None]:
    """The parameter checks of the method called `name` (its ``validate``):
    they raise the errors its ``run`` would, before any evaluation. A method
    without checks of its own gets one that accepts everything."""
    module = _module(name)
    validate: Callable[[Request], None] = getattr(module, "validate", _accept)
    return validate


def _accept(request: Request) -> None:
    """No checks: the method takes no parameters that could be wrong."""
