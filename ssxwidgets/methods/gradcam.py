"""Grad-CAM: a convolutional layer's activations weighted by their gradients.

Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization", ICCV 2017
(arXiv:1610.02391).

Each channel ``k`` of the layer's activations ``A`` `(h, w, c)` is weighted
by the spatial mean of the target's gradient there, ``α_k``; the map is
``ReLU(Σ_k α_k A_k)`` `(h, w)`, upsampled bilinearly to the input's `(H, W)`.
`run_cam` is shared with Grad-CAM++, which weighs the channels differently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..explanation import Explanation
from ._base import MethodSpec, Request

__all__ = ["SPEC", "check_layer", "run", "run_cam", "upsample", "validate"]

SPEC = MethodSpec(
    name="gradcam",
    title="Grad-CAM",
    needs_gradients=True,
    defaults={"layer": None, "relu": True},
    inputs=("image",),
    paper="Selvaraju et al. 2017, arXiv:1610.02391",
)

#: channel weights `(M, c)` from activations and gradients `(M, h, w, c)`
Weigh = Callable[[np.ndarray, np.ndarray], np.ndarray]


def run(request: Request) -> Iterator[Explanation]:
    """Yield Grad-CAM maps for images `(N, H, W, C)`, a batch at a time.

    Parameters (in ``request.params``)
    ----------------------------------
    layer
        The name of a layer with a spatial output `(N, h, w, c)`; ``None``
        (default) takes the last such layer.
    relu
        Keep only the positive evidence (default ``True``, as in the paper).

    Yields
    ------
    Explanation
        ``values`` `(N, H, W, C)` hold the upsampled map divided by ``C`` in
        every channel, so ``explanation.map`` `(N, H, W)` is the map itself.
        ``outputs`` `(N,)` is the target; ``base_values`` is zero. A partial
        comes after every batch of inputs; the last has ``progress == 1``.
    """
    yield from run_cam(request, _gradcam_weights)


def validate(request: Request) -> None:
    """Check ``layer`` and ``relu`` (see `check_layer`; no evaluation)."""
    check_layer(request)


def _gradcam_weights(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """``α_k``: the gradient averaged over the layer's positions."""
    weights: np.ndarray = grads.mean(axis=(1, 2))
    return weights


def check_layer(request: Request) -> str:
    """The name of the layer to tap, after checking it has a spatial output.

    Raises
    ------
    TypeError
        When ``layer`` is not a name, or ``relu`` is not a bool.
    ValueError
        For tabular inputs, a model without layers to tap, an unknown layer,
        or a layer whose output is not `(N, h, w, c)`.
    """
    name = request.spec.name
    if not request.is_image:
        raise ValueError(
            f"{name} applies to images (N, H, W, C); got inputs of shape "
            f"{request.inputs.shape}"
        )
    layer = request.params["layer"]
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name or None; got {layer!r}")
    if not isinstance(request.params["relu"], bool | np.bool_):
        raise TypeError(f"relu must be True or False; got {request.params['relu']!r}")
    found = request.adapter.find_layer(layer)
    try:
        shape = tuple(request.adapter.model.get_layer(found).output.shape)
    except (AttributeError, ValueError):
        shape = None
    if shape is None or len(shape) != 4:
        raise ValueError(
            f"{name} needs a layer with a spatial output (N, h, w, c); layer "
            f"{found!r} has output shape {shape}"
        )
    return found


def run_cam(request: Request, weigh: Weigh) -> Iterator[Explanation]:
    """Class activation maps with channel weights from `weigh`, a batch of
    inputs at a time (see `run`)."""
    layer = check_layer(request)
    relu = bool(request.params["relu"])
    inputs = request.inputs
    n, height, width, channels = inputs.shape
    values = np.zeros(inputs.shape, np.float32)
    outputs = np.zeros(n, np.float32)
    step = request.adapter.batch_size
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        acts, grads, scores = request.layer_gradients(
            inputs[lo:hi], np.arange(lo, hi), layer=layer
        )
        acts64, grads64 = acts.astype(np.float64), grads.astype(np.float64)
        cam = np.einsum("mhwc,mc->mhw", acts64, weigh(acts64, grads64))
        if relu:
            cam = np.maximum(cam, 0.0)
        values[lo:hi] = (upsample(cam, height, width) / channels)[..., None]
        outputs[lo:hi] = scores
        yield request.result(
            values.copy() if hi < n else values,
            base_values=np.zeros(n, np.float32),
            outputs=outputs.copy() if hi < n else outputs,
            progress=hi / n,
            extras={"layer": layer},
        )


def upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Maps `(M, h, w)` resized bilinearly to `(M, height, width)`."""
    import tensorflow as tf

    resized = tf.image.resize(
        maps[..., None].astype(np.float32), (height, width), method="bilinear"
    )
    result: np.ndarray = resized.numpy()[..., 0]
    return result
