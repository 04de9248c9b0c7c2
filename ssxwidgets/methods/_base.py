"""What every method shares: its description, its request, its partial results.

A method is a module in this package defining ``SPEC`` (a `MethodSpec`) and
``run(request) -> Iterator[Explanation]``: a generator of partial
explanations, the last of which has ``progress == 1``. Methods evaluate the
model only through the request (`Request.evaluate`, `Request.gradients`,
`Request.layer_gradients`), which counts evaluations and raises `Cancelled`
between batches once the job is cancelled.

A module may also define ``validate(request) -> None``: the checks of its
parameters, no evaluation and no heavy work, raising the `ValueError` or
`TypeError` its ``run`` would. `api.prepare` calls it, so a bad parameter
fails when a stream is made, not at its first ``next()``; ``run`` calls it
too, so a request built by hand is checked the same way.
"""

from __future__ import annotations

import contextlib
import math
import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..explanation import Explanation
from ..models import ModelAdapter
from ..targets import BoundTarget

__all__ = [
    "MAX_SAMPLES",
    "MethodSpec",
    "Request",
    "check_bool",
    "check_choice",
    "check_count",
    "check_fraction",
    "check_positive",
    "chunks",
    "relative_change",
    "single_threaded_blas",
]

#: beyond this many samples a request is taken for a typo
MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class MethodSpec:
    """A method's description.

    Attributes
    ----------
    name
        The public name, e.g. ``"integrated_gradients"``.
    title
        What a person reads, e.g. ``"Integrated gradients"``.
    needs_gradients
        Whether it needs a differentiable model.
    defaults
        Every parameter it takes, with its default.
    inputs
        The input kinds it applies to: ``"image"``, ``"tabular"``.
    paper
        The reference, for docstrings and reports.
    """

    name: str
    title: str
    needs_gradients: bool
    defaults: Mapping[str, Any]
    inputs: tuple[str, ...] = ("image", "tabular")
    paper: str = ""


@dataclass
class Request:
    """One method run: the model, the inputs, the target and the settings.

    Attributes
    ----------
    adapter
        The model's adapter.
    inputs
        `(N, ...)` float32 inputs.
    target
        The target bound to `inputs`.
    params
        The method's parameters, defaults filled in.
    spec
        The method's description.
    seed
        Seed for every random draw.
    cancel
        Returns ``True`` once the job is cancelled.
    cache
        State kept between runs of the same problem (samples drawn, model
        outputs) so raising ``n_samples`` continues instead of restarting.
    """

    adapter: ModelAdapter
    inputs: np.ndarray
    target: BoundTarget
    params: dict[str, Any]
    spec: MethodSpec
    seed: int = 0
    cancel: Callable[[], bool] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    n_evaluations: int = 0

    @property
    def is_image(self) -> bool:
        """Whether the inputs are images `(N, H, W, C)`."""
        return self.inputs.ndim == 4

    def evaluate(
        self, inputs: np.ndarray, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """The target's scalars `(M,)` for `inputs` `(M, ...)` (see
        `ModelAdapter.evaluate`)."""
        scores = self.adapter.evaluate(inputs, self.target, rows, cancel=self.cancel)
        self.n_evaluations += len(inputs)
        return scores

    def evaluate_blend(
        self,
        fill: np.ndarray,
        masks: np.ndarray,
        rows: np.ndarray,
        fill_rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """The target's scalars `(M,)` for the inputs blended with `fill`
        under `masks` `(M, ...)`, built inside the compiled call (see
        `ModelAdapter.evaluate_blend`)."""
        scores = self.adapter.evaluate_blend(
            self.inputs, fill, masks, self.target, rows, fill_rows, cancel=self.cancel
        )
        self.n_evaluations += len(masks)
        return scores

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Raw model outputs `(M, K)`, counted and cancellable (see
        `ModelAdapter.predict`)."""
        outputs = self.adapter.predict(inputs, cancel=self.cancel)
        self.n_evaluations += len(inputs)
        return outputs

    def gradients(
        self, inputs: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients `(M, ...)` and scalars `(M,)` (see
        `ModelAdapter.gradients`)."""
        result = self.adapter.gradients(inputs, self.target, rows, cancel=self.cancel)
        self.n_evaluations += len(inputs)
        return result

    def gradients_shifted(
        self,
        shifts: np.ndarray,
        rows: np.ndarray,
        shift_rows: np.ndarray,
        scales: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients `(M, ...)` and scalars `(M,)` at the inputs' rows plus
        scaled `shifts` `(K, ...)`, made inside the compiled call (see
        `ModelAdapter.gradients_shifted`)."""
        result = self.adapter.gradients_shifted(
            self.inputs,
            shifts,
            self.target,
            rows,
            shift_rows,
            scales,
            cancel=self.cancel,
        )
        self.n_evaluations += len(rows)
        return result

    def layer_gradients(
        self,
        inputs: np.ndarray,
        rows: np.ndarray | None = None,
        layer: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A layer's activations, gradients there, and scalars (see
        `ModelAdapter.layer_gradients`)."""
        result = self.adapter.layer_gradients(
            inputs, self.target, rows, layer=layer, cancel=self.cancel
        )
        self.n_evaluations += len(inputs)
        return result

    def rows_for(self, repeats: int) -> np.ndarray:
        """`(N * repeats,)` input index of each row when every input is
        repeated `repeats` times in a row (``[0, 0, ..., 1, 1, ...]``)."""
        return np.repeat(np.arange(len(self.inputs)), repeats)

    def result(
        self,
        values: np.ndarray,
        *,
        base_values: np.ndarray,
        outputs: np.ndarray,
        progress: float = 1.0,
        convergence: float | None = None,
        segments: np.ndarray | None = None,
        segment_values: np.ndarray | None = None,
        extras: dict[str, Any] | None = None,
    ) -> Explanation:
        """An `Explanation` from this request, with its provenance filled in.

        The arrays are copied: a method may keep refining its own while the
        partials it yielded stay as they were.
        """
        return Explanation(
            values=np.array(values, np.float32),
            method=self.spec.name,
            target=self.target.description,
            base_values=np.array(base_values, np.float32).reshape(-1),
            outputs=np.array(outputs, np.float32).reshape(-1),
            params=dict(self.params),
            seed=self.seed,
            segments=segments,
            segment_values=(
                None if segment_values is None else np.array(segment_values)
            ),
            progress=float(progress),
            n_evaluations=self.n_evaluations,
            convergence=convergence,
            extras=extras or {},
            device=self.adapter.device,
            versions=_versions(),
        )


_blas: Any = None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run numpy's BLAS on one thread inside the block.

    The small regressions of the sampling methods (a few hundred samples by
    tens of features) lose far more to OpenBLAS threads waiting on cores
    busy with TensorFlow than they gain from them (measured: 0.3 ms on one
    thread, up to 90 ms on two, on a loaded two-core machine).
    """
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency of scikit-learn
            _blas = False
        else:
            _blas = ThreadpoolController()
    if _blas is False:
        yield
        return
    with _blas.limit(limits=1, user_api="blas"):
        yield


def _versions() -> dict[str, str]:
    import tensorflow as tf

    return {
        "ssxwidgets": __version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def check_count(name: str, value: Any, low: int = 1, high: int = MAX_SAMPLES) -> int:
    """`value` as an int in [low, high], or a `ValueError` saying why not."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high:,}]; got {value}")
    return int(value)


def check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """`value` as a float in [low, high], or a `ValueError` saying why not."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"{name} must be a number; got {value!r}")
    if not (low <= float(value) <= high) or not np.isfinite(value):
        raise ValueError(f"{name} must be in [{low}, {high}]; got {value}")
    return float(value)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 with `allow_zero`), or a
    `TypeError` / `ValueError` saying why not."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number; got {value!r}")
    number = float(value)
    ok = number >= 0 if allow_zero else number > 0
    if not ok or not np.isfinite(number):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value}")
    return number


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, or a `ValueError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """`value` as a bool, or a `TypeError` when it is not ``True`` or
    ``False``."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def relative_change(previous: np.ndarray | None, current: np.ndarray) -> float | None:
    """``‖current − previous‖ / ‖current‖``: how much an estimate still moves."""
    if previous is None:
        return None
    # sums of squares, not np.linalg.norm: BLAS threads waiting on cores
    # busy with TensorFlow made a norm of one image cost milliseconds
    scale = math.sqrt(float(np.square(current, dtype=np.float64).sum()))
    change = current - previous
    return math.sqrt(float(np.square(change, dtype=np.float64).sum())) / max(
        scale, 1e-12
    )


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` for consecutive chunks of `size` covering `total`."""
    for start in range(0, total, size):
        yield start, min(total, start + size)
