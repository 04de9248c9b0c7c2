"""Gradient × input: the gradient of the target times the input, elementwise.

Shrikumar, Greenside, Shcherbina & Kundaje, "Not Just a Black Box: Learning
Important Features Through Propagating Activation Differences", 2016
(arXiv:1605.01713).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..explanation import Explanation
from ._base import MethodSpec, Request

__all__ = ["SPEC", "run"]

SPEC = MethodSpec(
    name="gradient_x_input",
    title="Gradient × input",
    needs_gradients=True,
    defaults={},
    paper="Shrikumar et al. 2016, arXiv:1605.01713",
)


def run(request: Request) -> Iterator[Explanation]:
    """Yield one explanation: ``x ⊙ ∂f/∂x``, shaped like the inputs `(N, ...)`.

    The implied baseline is zero, so ``base_values`` `(N,)` is the target at an
    all-zero input; for a linear model ``values.sum() == outputs - base_values``.
    Costs `2N` evaluations (`N` gradients, `N` forward passes at zero).
    """
    inputs = request.inputs
    grads, outputs = request.gradients(inputs)
    base_values = request.evaluate(np.zeros_like(inputs))
    yield request.result(grads * inputs, base_values=base_values, outputs=outputs)
