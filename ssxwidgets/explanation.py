"""One result type for every method.

Usage::

    exp = ssx.attribute(model, images, method="integrated_gradients")
    exp.values.shape        # (N, H, W, C), the shape of the inputs
    exp.map.shape           # (N, H, W), reduced over channels
    exp.to_shap()           # the same as a shap.Explanation
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Explanation"]


@dataclass
class Explanation:
    """Attributions for a batch of inputs, with everything that produced them.

    Attributes
    ----------
    values
        Attributions, the shape of the inputs: `(N, H, W, C)` for images,
        `(N, F)` for tables.
    method
        The method's name, e.g. ``"integrated_gradients"``.
    target
        A human-readable description of what was explained, e.g. ``"class 3"``.
    base_values
        `(N,)`: the explained output at the baseline, or its expectation over
        the background.
    outputs
        `(N,)`: the explained output at the inputs.
    params
        The settings the method ran with (``n_steps``, ``n_samples``, ...).
    seed
        The seed of any randomness, or ``None`` for deterministic methods.
    segments
        Superpixel methods only: `(N, H, W)` integer map of segment ids.
    segment_values
        Superpixel methods only: `(N, S)` one value per segment.
    progress
        How far a streamed computation got, in [0, 1].
    n_evaluations
        Model evaluations spent so far (forward passes, gradients count one).
    convergence
        How settled a sampling estimate is: the relative change between the
        last two partial estimates (smaller is more settled); ``None`` when
        the method is exact.
    extras
        Method-specific results, e.g. ``completeness_delta`` (integrated
        gradients) or ``uncertainty`` (RELAX, `(N, H, W)`).
    device
        Where the model ran, e.g. ``"CPU"`` or ``"GPU:0"``.
    versions
        Versions of ssxwidgets, TensorFlow and numpy that produced it.
    feature_names
        Tables only: one name per feature.
    """

    values: np.ndarray
    method: str
    target: str
    base_values: np.ndarray
    outputs: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    segments: np.ndarray | None = None
    segment_values: np.ndarray | None = None
    progress: float = 1.0
    n_evaluations: int = 0
    convergence: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    device: str = "CPU"
    versions: dict[str, str] = field(default_factory=dict)
    feature_names: list[str] | None = None

    @property
    def map(self) -> np.ndarray:
        """`(N, H, W)` per-pixel attribution, summed over channels (images only)."""
        if self.values.ndim != 4:
            raise ValueError(
                "map is defined for image explanations with values of shape "
                f"(N, H, W, C); these values have shape {self.values.shape}"
            )
        return self.values.sum(axis=-1)

    @property
    def done(self) -> bool:
        """Whether the computation finished (``progress == 1``)."""
        return self.progress >= 1.0

    def replace(self, **changes: Any) -> Explanation:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_shap(self) -> Any:
        """The same attributions as a `shap.Explanation`.

        Images keep their `(N, H, W, C)` shape; ``data`` is left empty because
        an explanation does not carry its inputs.
        """
        import shap

        return shap.Explanation(
            values=self.values,
            base_values=self.base_values,
            feature_names=self.feature_names,
            output_names=[self.target],
        )

    def __repr__(self) -> str:
        """A one-line summary; the arrays are too large to print."""
        return (
            f"Explanation(method={self.method!r}, target={self.target!r}, "
            f"values={self.values.shape}, progress={self.progress:.2f}, "
            f"n_evaluations={self.n_evaluations})"
        )
