"""What removed or absent input becomes.

A baseline is a number, an array the shape of one input (or of the batch), or
a name: ``"zero"``/``"black"``, ``"mean"`` (each image's per-channel mean, each
feature's mean over the batch for tables), ``"blur"`` (each image blurred
strongly) or ``"uniform"`` (uniform noise over the inputs' range, seeded).
LIME, occlusion, RISE and integrated gradients all honour it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BASELINE_NAMES", "resolve_baseline"]

BASELINE_NAMES = ("zero", "black", "mean", "blur", "uniform")


def resolve_baseline(
    baseline: Any, inputs: np.ndarray, *, seed: int | None = 0
) -> np.ndarray:
    """The baseline as an array shaped like `inputs` `(N, ...)`, float32.

    Raises
    ------
    ValueError
        For an unknown name, a shape that does not broadcast to one input, or
        non-finite values.
    """
    if baseline is None:
        baseline = 0.0
    if isinstance(baseline, str):
        return _named(baseline, inputs, seed)
    array = np.asarray(baseline, np.float32)
    if array.shape == inputs.shape:
        result = array
    else:
        try:
            result = np.broadcast_to(array, inputs.shape[1:])
        except ValueError as error:
            raise ValueError(
                "baseline must be a number, a name "
                f"({', '.join(BASELINE_NAMES)}), or an array the shape of one input "
                f"{inputs.shape[1:]}; got an array of shape {array.shape}"
            ) from error
        result = np.broadcast_to(result, inputs.shape)
    if not np.isfinite(result).all():
        raise ValueError("baseline must be finite; it contains NaN or Inf")
    return np.ascontiguousarray(result, dtype=np.float32)


def _named(name: str, inputs: np.ndarray, seed: int | None) -> np.ndarray:
    is_image = inputs.ndim == 4
    if name in ("zero", "black"):
        return np.zeros_like(inputs, np.float32)
    if name == "mean":
        axes = (1, 2) if is_image else (0,)
        means = inputs.mean(axis=axes, keepdims=True)
        return np.broadcast_to(means, inputs.shape).astype(np.float32)
    if name == "blur":
        if not is_image:
            raise ValueError("baseline 'blur' applies to images (N, H, W, C) only")
        from skimage.filters import gaussian

        sigma = max(inputs.shape[1], inputs.shape[2]) / 10.0
        blurred = [
            gaussian(image, sigma=sigma, channel_axis=-1, preserve_range=True)
            for image in inputs
        ]
        return np.stack(blurred).astype(np.float32)
    if name == "uniform":
        rng = np.random.default_rng(seed)
        low, high = float(inputs.min()), float(inputs.max())
        return rng.uniform(low, high, inputs.shape).astype(np.float32)
    raise ValueError(
        f"baseline name must be one of {', '.join(BASELINE_NAMES)}; got {name!r}"
    )
