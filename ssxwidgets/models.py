"""The model adapter: the one batched, compiled path to a model.

Every evaluation a method makes goes through a `ModelAdapter`: inputs are cut
into batches of at most the batch size, and each compiled function is traced
once with the batch dimension left open, so any length reuses that trace and
no padded row is ever computed; the
target's reduction to one scalar per input runs inside the same compiled call;
the batch size halves and the batch is retried when the device runs out of
memory; and every evaluation is counted.

Usage::

    adapter = adapt(model)                       # Keras, SavedModel, callable
    scores = adapter.evaluate(x, bound_target)   # (N,) scalars
    grads, scores = adapter.gradients(x, bound_target)
    acts, grads, scores = adapter.layer_gradients(x, bound_target, layer=None)
"""

from __future__ import annotations

import hashlib
import inspect
import math
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ._errors import Cancelled, SsxWarning
from ._log import logger
from .targets import BoundTarget

__all__ = ["ModelAdapter", "adapt", "device_name"]

CancelCheck = Callable[[], bool] | None

#: elements of float32 input per batch the automatic batch size aims for
_BATCH_ELEMENTS = 2**23
_MAX_BATCH = 256
_EMBEDDING_HINTS = ("encoder", "embed", "projection", "representation")
_CLASS_HINTS = ("logit", "predictions", "classifier", "probe", "head")

_adapters: weakref.WeakKeyDictionary[Any, ModelAdapter] = weakref.WeakKeyDictionary()
_adapters_lock = threading.Lock()


def _tf() -> Any:
    import tensorflow as tf

    return tf


def device_name() -> str:
    """``"GPU:0 (<name>)"`` when TensorFlow sees a GPU, else ``"CPU"``."""
    tf = _tf()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU:0 ({details.get('device_name', 'GPU')})"


def adapt(model: Any, **kwargs: Any) -> ModelAdapter:
    """The adapter for `model`, reused across calls for the same model.

    A `ModelAdapter` passes through unchanged; ``model.predict`` of a Keras
    model is unwrapped to the model itself, so it gets the compiled path too.
    Keyword arguments (``batch_size``, ``output_kind``, ``class_names``,
    ``input_shape``) create a fresh adapter.
    """
    if isinstance(model, ModelAdapter):
        return model
    model = _unwrap_predict(model)
    if kwargs:
        return ModelAdapter(model, **kwargs)
    with _adapters_lock:
        try:
            cached = _adapters.get(model)
        except TypeError:  # not weak-referenceable or not hashable
            return ModelAdapter(model)
        if cached is None:
            cached = ModelAdapter(model)
            try:
                _adapters[model] = cached
            except TypeError:
                pass
        return cached


def _unwrap_predict(model: Any) -> Any:
    """``keras_model.predict`` (or ``__call__``) becomes the Keras model."""
    owner = getattr(model, "__self__", None)
    if inspect.ismethod(model) and owner is not None and _is_keras_model(owner):
        if model.__name__ in ("predict", "predict_on_batch", "__call__", "call"):
            return owner
    return model


def _is_keras_model(obj: Any) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        return False
    return isinstance(obj, keras.Model)


def _is_keras_layer(obj: Any) -> bool:
    import keras

    return isinstance(obj, keras.layers.Layer)


class ModelAdapter:
    """Wraps a model so every method evaluates it the same fast way.

    Parameters
    ----------
    model
        A Keras 3 model (functional, sequential or subclassed), a SavedModel
        loaded with `tf.saved_model.load` (its ``serving_default`` signature is
        used), a Keras layer (e.g. a hub layer loaded from a local path), or
        any callable from a numpy batch to a numpy batch. A plain callable
        gives no gradients: only perturbation methods apply to it.
    batch_size
        Inputs per compiled call; by default chosen from the input size (256
        for 64×64×3 images, 32 for 224×224×3) and halved on out-of-memory.
    output_kind
        ``"classes"`` (scores or logits) or ``"embedding"`` (an encoder);
        detected when not given.
    class_names
        One name per output of a classifier, shown in targets and widgets.
    input_shape
        The shape of one input, e.g. ``(64, 64, 3)``, for callables whose
        shape cannot be read off the model.
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int | None = None,
        output_kind: str | None = None,
        class_names: list[str] | None = None,
        input_shape: tuple[int | None, ...] | None = None,
    ) -> None:
        if batch_size is not None and (
            not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        if output_kind not in (None, "classes", "embedding"):
            raise ValueError(
                f"output_kind must be 'classes' or 'embedding'; got {output_kind!r}"
            )
        self.model = _unwrap_predict(model)
        self.kind, self._call, self.differentiable = self._wrap(self.model)
        self.input_shape = input_shape or self._read_input_shape()
        self.device = device_name()
        self.n_evaluations = 0
        self._count_lock = threading.Lock()
        self._compiled: dict[str, Any] = {}
        self._taps: dict[str, Any] = {}
        self._batch_size = batch_size
        self._n_outputs: int | None = None
        self._output_kind = output_kind
        self.class_names = class_names or getattr(self.model, "class_names", None)
        self.is_softmax = self._read_softmax()
        if self.is_softmax:
            warnings.warn(
                "the model ends in a softmax, whose saturation flattens gradients "
                "and compresses scores; explain the logits instead (build the model "
                "without the final softmax, e.g. classifier_activation=None)",
                SsxWarning,
                stacklevel=3,
            )
        logger.info(
            "adapted %s model (%s) on %s",
            self.kind,
            type(self.model).__name__,
            self.device,
        )

    # -- what the model is -------------------------------------------------

    def _wrap(self, model: Any) -> tuple[str, Callable[[Any], Any], bool]:
        tf = _tf()
        if _is_keras_model(model) or _is_keras_layer(model):
            kind = "keras" if _is_keras_model(model) else "layer"
            return kind, lambda x: model(x, training=False), True
        signatures = getattr(model, "signatures", None)
        if signatures is not None and "serving_default" in signatures:
            signature = signatures["serving_default"]
            names = list(signature.structured_input_signature[1])
            if len(names) != 1:
                raise ValueError(
                    "a SavedModel's serving signature must take one input; "
                    f"this one takes {names}"
                )

            def call_signature(x: Any) -> Any:
                outputs = signature(**{names[0]: x})
                return next(iter(outputs.values()))

            return "savedmodel", call_signature, True
        if isinstance(model, tf.types.experimental.PolymorphicFunction | tf.Module):
            return "tf_function", model, True
        if callable(model):
            return "callable", model, False
        raise TypeError(
            "model must be a Keras model, a loaded SavedModel, a Keras layer or a "
            f"callable from a numpy batch to a numpy batch; got {type(model).__name__}"
        )

    def _read_input_shape(self) -> tuple[int | None, ...] | None:
        if self.kind == "keras":
            shape = getattr(self.model, "input_shape", None)
            if isinstance(shape, tuple) and len(shape) > 1:
                return tuple(shape[1:])
        if self.kind == "savedmodel":
            signature = self.model.signatures["serving_default"]
            spec = next(iter(signature.structured_input_signature[1].values()))
            return tuple(spec.shape[1:])
        return None

    def _read_softmax(self) -> bool:
        if self.kind != "keras" or not getattr(self.model, "layers", None):
            return False
        import keras

        last = self.model.layers[-1]
        if isinstance(last, keras.layers.Softmax):
            return True
        activation = getattr(last, "activation", None)
        return getattr(activation, "__name__", "") == "softmax"

    def _read_final_activation(self) -> str:
        if self.kind != "keras" or not getattr(self.model, "layers", None):
            return ""
        activation = getattr(self.model.layers[-1], "activation", None)
        return str(getattr(activation, "__name__", ""))

    @property
    def n_outputs(self) -> int:
        """`K`: the size of one (flattened) model output."""
        if self._n_outputs is None:
            shape = getattr(self.model, "output_shape", None)
            if self.kind == "keras" and isinstance(shape, tuple):
                self._n_outputs = int(math.prod(d or 1 for d in shape[1:]))
            else:
                probe = np.zeros((1, *self._concrete_shape()), np.float32)
                self._n_outputs = int(self.predict(probe).shape[1])
        return self._n_outputs

    @property
    def output_kind(self) -> str:
        """``"classes"`` or ``"embedding"``: what the outputs are."""
        if self._output_kind is None:
            self._output_kind = self._guess_output_kind()
        return self._output_kind

    def _guess_output_kind(self) -> str:
        if self.is_softmax or self._read_final_activation() == "sigmoid":
            return "classes"
        names = [str(getattr(self.model, "name", "")).lower()]
        if self.kind == "keras" and getattr(self.model, "layers", None):
            names.append(self.model.layers[-1].name.lower())
        if any(h in n for n in names for h in _EMBEDDING_HINTS):
            return "embedding"
        if any(h in n for n in names for h in _CLASS_HINTS):
            return "classes"
        return "embedding" if self.n_outputs >= 64 else "classes"

    def _concrete_shape(self) -> tuple[int, ...]:
        if self.input_shape is None or any(d is None for d in self.input_shape):
            raise ValueError(
                "the model's input shape is unknown; pass input_shape=(H, W, C) "
                "or (F,) when adapting a callable"
            )
        return tuple(int(d) for d in self.input_shape if d is not None)

    @property
    def batch_size(self) -> int:
        """Inputs per compiled call (halves after an out-of-memory error)."""
        if self._batch_size is None:
            size = math.prod(self._concrete_shape()) if self.input_shape else 1024
            fitting = max(1, _BATCH_ELEMENTS // max(size, 1))
            self._batch_size = min(_MAX_BATCH, 2 ** int(math.log2(fitting)))
        return self._batch_size

    # -- inputs --------------------------------------------------------------

    def prepare_inputs(self, inputs: Any) -> np.ndarray:
        """A float32 batch `(N, ...)` from what a user passes.

        Accepts numpy arrays, nested lists, `tf.Tensor`, and `tf.data`
        datasets (of inputs or of ``(inputs, labels)`` pairs). One input
        without a batch axis gets one; a grayscale image `(H, W)` gets a
        channel axis when the model expects one.

        Raises
        ------
        TypeError
            When the inputs are not numeric.
        ValueError
            When their shape does not fit the model or they hold NaN or Inf.
        """
        array = _to_numpy(inputs)
        if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
            raise TypeError(f"inputs must be numeric; got dtype {array.dtype}")
        array = array.astype(np.float32, copy=False)
        array = self._fit_rank(array)
        if array.size and not np.isfinite(array).all():
            count = int((~np.isfinite(array)).sum())
            raise ValueError(f"inputs must be finite; got {count} NaN or Inf value(s)")
        if len(array) == 0:
            raise ValueError("inputs are empty: expected at least one input")
        return array

    def _fit_rank(self, array: np.ndarray) -> np.ndarray:
        expected = self.input_shape
        if expected is None:
            if array.ndim == 1 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4)):
                return array[None]
            return array
        rank = len(expected)
        if rank == 3 and expected[-1] == 1:  # grayscale without a channel axis
            if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] != 1):
                array = array[..., None]
        if array.ndim == rank:
            array = array[None]
        if array.ndim != rank + 1 or any(
            e is not None and e != a
            for e, a in zip(expected, array.shape[1:], strict=True)
        ):
            want = ", ".join("?" if d is None else str(d) for d in expected)
            raise ValueError(
                f"inputs must have shape (N, {want}) or ({want}) for this model; "
                f"got {array.shape}"
            )
        return array

    # -- evaluation ------------------------------------------------------------

    def predict(self, inputs: np.ndarray, *, cancel: CancelCheck = None) -> np.ndarray:
        """Raw outputs `(N, K)` for inputs `(N, ...)`, in batches."""
        inputs = np.asarray(inputs, np.float32)
        if not self.differentiable:
            return self._run_callable(inputs, cancel)
        fn = self._function("predict", self._predict_graph)
        (outputs,) = self._run(fn, (inputs,), cancel)
        return outputs

    def evaluate(
        self,
        inputs: np.ndarray,
        target: BoundTarget,
        rows: np.ndarray | None = None,
        *,
        cancel: CancelCheck = None,
    ) -> np.ndarray:
        """The target's scalars `(M,)` for inputs `(M, ...)`.

        ``rows`` `(M,)` says which bound input each row of `inputs` perturbs
        (default: row ``i`` is input ``i``).
        """
        inputs = np.asarray(inputs, np.float32)
        weights = target.weights if rows is None else target.weights[rows]
        if not self.differentiable:
            return target.reduce(self._run_callable(inputs, cancel), rows)
        name = "evaluate_cos" if target.normalize else "evaluate"
        fn = self._function(name, self._evaluate_graph(target.normalize))
        (scores,) = self._run(fn, (inputs, weights), cancel)
        return scores

    def evaluate_blend(
        self,
        inputs: np.ndarray,
        fill: np.ndarray,
        masks: np.ndarray,
        target: BoundTarget,
        rows: np.ndarray,
        fill_rows: np.ndarray | None = None,
        *,
        cancel: CancelCheck = None,
    ) -> np.ndarray:
        """The target's scalars `(M,)` for inputs blended with a fill.

        Row ``m`` is ``x`` where ``masks[m]`` is true and ``f`` elsewhere,
        with ``x = inputs[rows[m]]`` and ``f = fill[fill_rows[m]]`` (exactly
        their values); a float mask in [0, 1] blends, ``x · mask + f · (1 −
        mask)``. The blends are made inside the compiled call, so only the
        masks cross to the device, never the perturbed inputs.

        Parameters
        ----------
        inputs
            `(N, ...)` the inputs perturbed.
        fill
            `(B, ...)` what masked-out parts become (shaped like the inputs).
        masks
            `(M, ...)` bool or float: one mask per row over the leading axes
            of one input, e.g. `(M, H, W)` for images `(N, H, W, C)` (every
            channel alike) or `(M, F)` for tables; broadcast over the rest.
        target
            The target bound to `inputs`.
        rows
            `(M,)` the input each row perturbs (and its target weights).
        fill_rows
            `(M,)` the fill row each row takes; default `rows`.
        """
        inputs = np.asarray(inputs, np.float32)
        fill = np.asarray(fill, np.float32)
        masks = np.asarray(masks)
        if masks.dtype != bool:
            masks = masks.astype(np.float32, copy=False)
        rows = np.asarray(rows, np.int32)
        # float blends take one gather fewer when each row's fill is its input's
        paired = fill_rows is None and len(fill) == len(inputs)
        fill_rows = rows if fill_rows is None else np.asarray(fill_rows, np.int32)
        extra = inputs.ndim - masks.ndim
        if (
            extra < 0
            or masks.shape[1:] != inputs.shape[1 : masks.ndim]
            or fill.shape[1:] != inputs.shape[1:]
            or not len(masks) == len(rows) == len(fill_rows)
        ):
            raise ValueError(
                f"masks (M, ...) must cover the leading axes of one input "
                f"{inputs.shape[1:]}, fill rows must be shaped like the inputs, and "
                f"rows (M,) must match the masks; got masks {masks.shape}, fill "
                f"{fill.shape}, rows {rows.shape}"
            )
        if not self.differentiable:
            return self._blend_callable(
                inputs, fill, masks, target, rows, fill_rows, cancel
            )
        weights = target.weights[rows]
        boolean = masks.dtype == bool
        # one function per kind of mask and shape: the graph is built for them
        paired = paired and not boolean
        name = f"blend:{int(boolean)}:{masks.shape[1:]}:{inputs.shape[1:]}"
        name += f":{int(target.normalize)}:{int(paired)}"
        graph = self._blend_graph(boolean, target.normalize, paired)
        fn = self._function(name, graph)
        (scores,) = self._run(
            fn, (masks, rows, fill_rows, weights), cancel, shared=(inputs, fill)
        )
        return scores

    def _blend_callable(
        self,
        inputs: np.ndarray,
        fill: np.ndarray,
        masks: np.ndarray,
        target: BoundTarget,
        rows: np.ndarray,
        fill_rows: np.ndarray,
        cancel: CancelCheck,
    ) -> np.ndarray:
        """`evaluate_blend` for a plain callable: the blends made in numpy,
        one batch at a time."""
        expand = (slice(None),) * masks.ndim + (None,) * (inputs.ndim - masks.ndim)
        scores = []
        for start in range(0, len(masks), self.batch_size):
            stop = start + self.batch_size
            m = masks[start:stop][expand]
            x, f = inputs[rows[start:stop]], fill[fill_rows[start:stop]]
            blended = np.where(m, x, f) if m.dtype == bool else x * m + f * (1 - m)
            outputs = self._run_callable(blended.astype(np.float32), cancel)
            scores.append(target.reduce(outputs, rows[start:stop]))
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)

    def gradients(
        self,
        inputs: np.ndarray,
        target: BoundTarget,
        rows: np.ndarray | None = None,
        *,
        cancel: CancelCheck = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of the target `(M, ...)` and its scalars `(M,)`."""
        self._require_gradients("gradients")
        inputs = np.asarray(inputs, np.float32)
        weights = target.weights if rows is None else target.weights[rows]
        name = "gradients_cos" if target.normalize else "gradients"
        fn = self._function(name, self._gradient_graph(target.normalize))
        grads, scores = self._run(fn, (inputs, weights), cancel)
        return grads, scores

    def gradients_shifted(
        self,
        inputs: np.ndarray,
        shifts: np.ndarray,
        target: BoundTarget,
        rows: np.ndarray,
        shift_rows: np.ndarray,
        scales: np.ndarray,
        *,
        cancel: CancelCheck = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients `(M, ...)` and scalars `(M,)` at shifted inputs.

        Point ``m`` is ``inputs[rows[m]] + scales[m] · shifts[shift_rows[m]]``,
        made inside the compiled call: only the shifts cross to the device,
        never the points. SmoothGrad's noise is such a shift, and with
        antithetic pairs (scales ``+σ`` and ``−σ`` on one shift) half as many
        cross as there are points.

        Parameters
        ----------
        inputs
            `(N, ...)` the inputs.
        shifts
            `(K, ...)` shaped like the inputs.
        target
            The target bound to `inputs`.
        rows, shift_rows, scales
            `(M,)` each: the input, the shift and the shift's factor of each
            point; a factor of 0 gives the input itself.
        """
        self._require_gradients("gradients")
        inputs = np.asarray(inputs, np.float32)
        shifts = np.asarray(shifts, np.float32)
        rows = np.asarray(rows, np.int32)
        shift_rows = np.asarray(shift_rows, np.int32)
        scales = np.asarray(scales, np.float32)
        lengths = {len(rows), len(shift_rows), len(scales)}
        if shifts.shape[1:] != inputs.shape[1:] or len(lengths) != 1:
            raise ValueError(
                f"shifts must be shaped like the inputs (K, "
                f"{', '.join(map(str, inputs.shape[1:]))}) and rows, shift_rows "
                f"and scales must have one entry per point; got shifts "
                f"{shifts.shape}, rows {rows.shape}, shift_rows {shift_rows.shape}, "
                f"scales {scales.shape}"
            )
        weights = target.weights[rows]
        name = f"shifted:{inputs.shape[1:]}:{int(target.normalize)}"
        fn = self._function(name, self._shifted_graph(target.normalize))
        grads, scores = self._run(
            fn, (rows, shift_rows, scales, weights), cancel, shared=(inputs, shifts)
        )
        return grads, scores

    def layer_gradients(
        self,
        inputs: np.ndarray,
        target: BoundTarget,
        rows: np.ndarray | None = None,
        *,
        layer: str | None = None,
        cancel: CancelCheck = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A layer's activations `(M, h, w, c)`, the target's gradients there,
        and the scalars `(M,)`.

        ``layer`` is a layer name; by default the last layer with a spatial
        output (what Grad-CAM wants).
        """
        self._require_gradients("layer_gradients")
        name = self.find_layer(layer)
        tap = self._tap(name)
        inputs = np.asarray(inputs, np.float32)
        weights = target.weights if rows is None else target.weights[rows]
        key = f"layer:{name}:{int(target.normalize)}"
        fn = self._function(key, self._layer_graph(tap, target.normalize))
        acts, grads, scores = self._run(fn, (inputs, weights), cancel)
        return acts, grads, scores

    def weights_fingerprint(self) -> str:
        """A digest of the model's weights as they are now, so results cached
        for one set of weights are not served after training or loading.

        For Keras models and layers: each weight's sum and sum of squares in
        float64, taken by one compiled call on the device (no weights copied
        to the host); any update a training step or a weight load makes
        changes them. Other models are identified by the object itself.
        """
        weights = getattr(self.model, "weights", None)
        if self.kind not in ("keras", "layer") or not weights:
            return f"model:{id(self.model)}"
        name = f"fingerprint:{len(weights)}"
        fn = self._compiled.get(name)
        if fn is None:
            tf = _tf()

            def moments() -> Any:
                parts = []
                for weight in self.model.weights:
                    value = tf.cast(tf.reshape(weight, [-1]), tf.float64)
                    parts += [tf.reduce_sum(value), tf.reduce_sum(value * value)]
                return tf.stack(parts)

            fn = tf.function(moments, autograph=False)
            self._compiled[name] = fn
        shapes = [tuple(w.shape) for w in weights]
        digest = hashlib.sha1(repr(shapes).encode())
        digest.update(np.asarray(fn()).tobytes())
        return digest.hexdigest()

    def find_layer(self, layer: str | None = None) -> str:
        """The name of `layer`, or of the last layer with a spatial output."""
        if self.kind != "keras":
            raise ValueError(
                "layer taps need a Keras model; this model is a "
                f"{self.kind}, so pass a Keras model to use Grad-CAM or layer views"
            )
        layers = self.model.layers
        names = [item.name for item in layers]
        if layer is not None:
            if layer not in names:
                raise ValueError(
                    f"no layer named {layer!r}; expected one of the model's "
                    f"layers: {', '.join(names)}"
                )
            return layer
        for item in reversed(layers):
            shape = _output_shape(item)
            if shape is not None and len(shape) == 4 and (shape[1] or 2) > 1:
                return str(item.name)
        raise ValueError(
            "found no layer with a spatial (N, h, w, c) output to tap; pass "
            f"layer= one of: {', '.join(names)}"
        )

    # -- the compiled path -------------------------------------------------------

    def _require_gradients(self, what: str) -> None:
        if not self.differentiable:
            raise TypeError(
                f"{what} need a differentiable model (Keras, SavedModel or a "
                "TensorFlow function); this model is a plain Python callable, so "
                "only perturbation methods (occlusion, rise, lime, kernel_shap, "
                "partition_shap) apply"
            )

    def _function(self, name: str, python_fn: Callable[..., Any]) -> Any:
        fn = self._compiled.get(name)
        if fn is None:
            fn = _tf().function(python_fn, reduce_retracing=True, autograph=False)
            self._compiled[name] = fn
        return fn

    def _trace_open(self, fn: Any, arrays: tuple[np.ndarray, ...]) -> None:
        """Trace `fn` once for these arrays with their first dimension open,
        so every batch length dispatches to that one trace."""
        tf = _tf()
        shapes = tuple((a.shape[1:], a.dtype.str) for a in arrays)
        traced: set[Any] = self.__dict__.setdefault("_traced", set())
        key = (id(fn), shapes)
        if key in traced or not hasattr(fn, "get_concrete_function"):
            return
        specs = [tf.TensorSpec((None, *a.shape[1:]), a.dtype) for a in arrays]
        fn.get_concrete_function(*specs)
        traced.add(key)

    def _outputs(self, x: Any) -> Any:
        tf = _tf()
        out = self._call(x)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if isinstance(out, list | tuple):
            out = out[0]
        out = tf.cast(out, tf.float32)
        return tf.reshape(out, (tf.shape(out)[0], -1))

    def _predict_graph(self, x: Any) -> Any:
        return (self._outputs(x),)

    def _evaluate_graph(self, normalize: bool) -> Callable[..., Any]:
        def graph(x: Any, w: Any) -> Any:
            return (_reduce(self._outputs(x), w, normalize),)

        return graph

    def _blend_graph(
        self, boolean: bool, normalize: bool, paired: bool
    ) -> Callable[..., Any]:
        tf = _tf()

        def graph(masks: Any, rows: Any, fill_rows: Any, w: Any, x: Any, f: Any) -> Any:
            blended = _blend(tf, masks, rows, fill_rows, x, f, boolean, paired)
            return (_reduce(self._outputs(blended), w, normalize),)

        return graph

    def _gradient_graph(self, normalize: bool) -> Callable[..., Any]:
        tf = _tf()

        def graph(x: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                scores = _reduce(self._outputs(x), w, normalize)
            return tape.gradient(scores, x), scores

        return graph

    def _shifted_graph(self, normalize: bool) -> Callable[..., Any]:
        tf = _tf()

        def graph(
            rows: Any, shift_rows: Any, scales: Any, w: Any, x: Any, s: Any
        ) -> Any:
            factors = tf.reshape(scales, [-1] + [1] * (len(x.shape) - 1))
            points = tf.gather(x, rows) + factors * tf.gather(s, shift_rows)
            with tf.GradientTape() as tape:
                tape.watch(points)
                scores = _reduce(self._outputs(points), w, normalize)
            return tape.gradient(scores, points), scores

        return graph

    def _layer_graph(self, tap: Any, normalize: bool) -> Callable[..., Any]:
        tf = _tf()

        def graph(x: Any, w: Any) -> Any:
            with tf.GradientTape() as tape:
                acts, out = tap(x, training=False)
                out = tf.reshape(tf.cast(out, tf.float32), (tf.shape(out)[0], -1))
                scores = _reduce(out, w, normalize)
            return acts, tape.gradient(scores, acts), scores

        return graph

    def _tap(self, name: str) -> Any:
        if name not in self._taps:
            import keras

            layer = self.model.get_layer(name)
            try:
                self._taps[name] = keras.Model(
                    self.model.inputs, [layer.output, self.model.outputs[0]]
                )
            except (AttributeError, ValueError) as error:
                raise ValueError(
                    f"cannot tap layer {name!r}: layer taps need a functional or "
                    "sequential Keras model whose layer is in its top-level graph "
                    f"({error})"
                ) from error
        return self._taps[name]

    def _run(
        self,
        fn: Any,
        arrays: tuple[np.ndarray, ...],
        cancel: CancelCheck,
        shared: tuple[np.ndarray, ...] = (),
    ) -> list[np.ndarray]:
        """Call `fn` on batches of `arrays` (cut along their first axis),
        followed by the `shared` arrays whole; the results concatenated."""
        tf = _tf()
        n = len(arrays[0])
        self._trace_open(fn, arrays + shared)
        constants = [tf.constant(a) for a in shared]
        pieces: list[list[np.ndarray]] = []
        start = 0
        while start < n:
            if cancel is not None and cancel():
                raise Cancelled()
            stop = min(n, start + self.batch_size)
            try:
                batch = [tf.constant(a[start:stop]) for a in arrays]
                results = fn(*batch, *constants)
            except tf.errors.ResourceExhaustedError:
                if self.batch_size == 1:
                    raise
                self._batch_size = max(1, self.batch_size // 2)
                logger.warning(
                    "out of memory; batch size halved to %s", self._batch_size
                )
                continue
            pieces.append([r.numpy() for r in results])
            self._count(stop - start)
            start = stop
        if len(pieces) == 1:
            return pieces[0]
        return [np.concatenate(parts) for parts in zip(*pieces, strict=True)]

    def _run_callable(self, inputs: np.ndarray, cancel: CancelCheck) -> np.ndarray:
        outputs = []
        for start in range(0, len(inputs), self.batch_size):
            if cancel is not None and cancel():
                raise Cancelled()
            batch = inputs[start : start + self.batch_size]
            result = np.asarray(self._call(batch), np.float32)
            if len(result) != len(batch):
                raise ValueError(
                    f"the model returned {len(result)} outputs for a batch of "
                    f"{len(batch)} inputs; expected one output per input"
                )
            outputs.append(result.reshape(len(batch), -1))
            self._count(len(batch))
        return np.concatenate(outputs)

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.n_evaluations += n

    def __repr__(self) -> str:
        return (
            f"ModelAdapter({type(self.model).__name__}, kind={self.kind!r}, "
            f"input_shape={self.input_shape}, device={self.device!r})"
        )


def _blend(
    tf: Any,
    masks: Any,
    rows: Any,
    fill_rows: Any,
    x: Any,
    f: Any,
    boolean: bool,
    paired: bool = False,
) -> Any:
    """Inside a compiled call: `(M, ...)` blends of inputs `x` `(N, ...)`
    (row ``rows[m]``) and fills `f` `(B, ...)` (row ``fill_rows[m]``) under
    `masks` `(M, ...)` over the leading axes of one input.

    Each form was the fastest measured for its case (256 images of 64 × 64 ×
    3 on two CPU cores: 1-2 ms, against 4 ms for one broadcast ``x · m +
    f · (1 − m)``): bool masks over every axis, a ``where`` on flat rows;
    bool masks over the leading axes only, one gather of each element group
    (e.g. a pixel's channels) from the fill's or the input's; float masks,
    the blend ``x · m + f · (1 − m)``, as ``f + (x − f) · m`` with
    ``x − f`` taken once per input when `paired` (fill row ``i`` goes with
    input ``i``: 2.6 ms against 4 ms).
    """
    shape = tuple(int(d) for d in x.shape[1:])
    lead = math.prod(shape[: len(masks.shape) - 1])
    trail = math.prod(shape[len(masks.shape) - 1 :])
    if not boolean and paired:
        m = tf.reshape(masks, (-1, lead, 1))
        base = tf.reshape(tf.gather(f, rows), (-1, lead, trail))
        step = tf.reshape(tf.gather(x - f, rows), (-1, lead, trail))
        return tf.reshape(base + step * m, (-1, *shape))
    if not boolean:
        m = tf.reshape(masks, (-1, lead, 1))
        x = tf.reshape(tf.gather(x, rows), (-1, lead, trail))
        f = tf.reshape(tf.gather(f, fill_rows), (-1, lead, trail))
        return tf.reshape(x * m + f * (1.0 - m), (-1, *shape))
    m = tf.reshape(masks, (-1, lead))
    if trail == 1:
        x = tf.reshape(tf.gather(x, rows), (-1, lead))
        f = tf.reshape(tf.gather(f, fill_rows), (-1, lead))
        return tf.reshape(tf.where(m, x, f), (-1, *shape))
    # a table of element groups, the fills' then the inputs', and per row the
    # index of each group in it: its input's where kept, its fill's elsewhere
    table = tf.concat([tf.reshape(f, (-1, trail)), tf.reshape(x, (-1, trail))], 0)
    kept = (tf.shape(f)[0] + rows[:, None]) * lead
    start = tf.where(m, kept, fill_rows[:, None] * lead)
    blended = tf.gather(table, start + tf.range(lead)[None])
    return tf.reshape(blended, (-1, *shape))


def _reduce(outputs: Any, weights: Any, normalize: bool) -> Any:
    tf = _tf()
    if normalize:
        outputs = tf.math.l2_normalize(outputs, axis=-1)
    return tf.reduce_sum(outputs * weights, axis=-1)


def _output_shape(layer: Any) -> tuple[int | None, ...] | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def _to_numpy(inputs: Any) -> np.ndarray:
    if isinstance(inputs, np.ndarray):
        return inputs
    module = type(inputs).__module__
    if module.startswith("tensorflow"):
        tf = _tf()
        if isinstance(inputs, tf.data.Dataset):
            batches = []
            for element in inputs:
                if isinstance(element, tuple | list):
                    element = element[0]
                batches.append(np.asarray(element))
            if not batches:
                raise ValueError("the tf.data dataset is empty: expected inputs")
            rank = max(b.ndim for b in batches)
            return np.concatenate([b if b.ndim == rank else b[None] for b in batches])
        return np.asarray(inputs)
    try:
        return np.asarray(inputs)
    except (ValueError, TypeError) as error:
        raise TypeError(
            "inputs must be a numpy array, a tf.Tensor or a tf.data dataset; got "
            f"{type(inputs).__name__}"
        ) from error
