"""Saliency: the gradient of the target with respect to the input.

Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", 2014.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..explanation import Explanation
from ._base import MethodSpec, Request, check_bool

SPEC = MethodSpec(
    name="saliency",
    title="Saliency",
    needs_gradients=True,
    defaults={"absolute": True},
    paper="Simonyan et al. 2014, arXiv:1312.6034",
)


def validate(request: Request) -> None:
    """Check ``absolute`` is a bool (no evaluation)."""
    check_bool("absolute", request.params["absolute"])


def run(request: Request) -> Iterator[Explanation]:
    """Yield one explanation: `(N, ...)` gradients, their magnitude when
    ``absolute`` (the paper's map), signed otherwise."""
    absolute = check_bool("absolute", request.params["absolute"])
    grads, outputs = request.gradients(request.inputs)
    values = np.abs(grads) if absolute else grads
    yield request.result(values, base_values=np.zeros_like(outputs), outputs=outputs)
