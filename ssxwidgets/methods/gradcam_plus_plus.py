"""Grad-CAM++: Grad-CAM with pixel-wise weights on the positive gradients.

Chattopadhay, Sarkar, Howlader & Balasubramanian, "Grad-CAM++: Generalized
Gradient-based Visual Explanations for Deep Convolutional Networks", WACV
2018 (arXiv:1710.11063).

The channel weight is ``w_k = Σ_ij a_ij^k ReLU(g_ij^k)`` with
``a = g² / (2 g² + Σ_ab A_ab^k g³)``, the paper's closed form when the score
is taken through an exponential: its second and third derivatives are then
powers of the first-order gradient ``g``, and the exponential's positive
scale, the same for every channel, is left out. Positions where the
denominator vanishes get ``a = 0``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..explanation import Explanation
from ._base import MethodSpec, Request
from .gradcam import check_layer, run_cam

__all__ = ["SPEC", "run", "validate"]

SPEC = MethodSpec(
    name="gradcam_plus_plus",
    title="Grad-CAM++",
    needs_gradients=True,
    defaults={"layer": None, "relu": True},
    inputs=("image",),
    paper="Chattopadhay et al. 2018, arXiv:1710.11063",
)


def run(request: Request) -> Iterator[Explanation]:
    """Yield Grad-CAM++ maps for images `(N, H, W, C)`, a batch at a time.

    Parameters and results are those of Grad-CAM (`gradcam.run`): ``layer``
    (default the last spatial layer) and ``relu`` (default ``True``);
    ``values`` `(N, H, W, C)` hold the upsampled map divided by ``C`` in
    every channel, so ``explanation.map`` `(N, H, W)` is the map.
    """
    yield from run_cam(request, _plus_plus_weights)


def validate(request: Request) -> None:
    """Check ``layer`` and ``relu`` (see `gradcam.check_layer`; no
    evaluation)."""
    check_layer(request)


def _plus_plus_weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``w_k`` `(M, c)` from activations and gradients `(M, h, w, c)`."""
    grads2 = grads * grads
    total = acts.sum(axis=(1, 2), keepdims=True)
    denominator = 2.0 * grads2 + total * grads2 * grads
    safe = np.where(denominator != 0.0, denominator, 1.0)
    alphas = np.where(denominator != 0.0, grads2 / safe, 0.0)
    weights: np.ndarray = (alphas * np.maximum(grads, 0.0)).sum(axis=(1, 2))
    return weights
