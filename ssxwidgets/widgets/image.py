"""The image explainer: an image, its live attribution heatmap, controls, a
brush with a drill-down, and a side-by-side comparison of methods.

Usage::

    w = ssx.explain(model, image)                 # shown by the cell
    w.method = "lime"                             # restarts, streams partials
    w.n_samples = 4000                            # continues from drawn samples
    w.selection = mask                            # (H, W) bool, or a dict
    w.explanation                                 # the Explanation on screen
    w.methods = ["integrated_gradients", "lime"]  # compare side by side
    w.wait(); w.save_html("view.html")

`ImageExplainer` is a ``VBox`` of the heatmap view (an anywidget,
`ImageView`, drawn by ``js/src/``) and the drill-down charts (bqplot). Its
settings are traits linked to the view's, so a set from Python shows in the
front end and a change in the front end shows in Python; either restarts the
computation on a worker thread (`ssxwidgets.jobs.JobRunner`): the kernel
never blocks, an older job's result never replaces a newer one's, and
partial heatmaps stream in as evaluations accumulate.

Selections (``w.selection``) are dicts::

    {"kind": "rectangle" | "lasso" | "superpixels" | "mask" | "none",
     "mask": (H, W) bool,          # the selected pixels
     "segments": (k,) int64}       # selected superpixel ids of `segments`

A superpixel is selected by a brush when at least half of its pixels are
inside (or, when none is, the one with the most pixels inside). Set it to an
``(H, W)`` bool array, a dict with ``"mask"`` and/or ``"segments"``, or
``None`` to clear.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import traitlets
from numpy.typing import ArrayLike, NDArray

from .. import colormaps
from .._errors import SsxWarning
from .._log import logger
from ..jobs import JobRunner
from ..methods import METHOD_NAMES, get_spec
from . import _controls as controls
from ._charts import DrillCharts
from ._drill import (
    Counterfactual,
    counterfactual,
    decode_mask,
    encode_mask,
    normalize_selection,
    segment_values,
    waterfall,
)
from ._frames import (
    decode_heatmap,
    display_image,
    display_map,
    encode_heatmap,
    encode_segments,
    scale_for,
    value_range_for,
)
from ._live import Plan, panel_frame, run_plan
from ._view import ImageView, check_colormap, check_opacity

__all__ = [
    "CHART_INTERVAL_S",
    "COMPARE_DEFAULT",
    "DISPLAY_WAIT_S",
    "FRAME_INTERVAL_S",
    "PANEL_INTERVAL_S",
    "ImageExplainer",
    "decode_heatmap",
    "display_image",
    "encode_heatmap",
    "explain_image",
    "value_range_for",
]

#: the fastest the main heatmap is resent while a job streams (seconds)
FRAME_INTERVAL_S = 1 / 30
#: the same for the compare panels and the waterfall chart
PANEL_INTERVAL_S = 0.1
CHART_INTERVAL_S = 0.25
#: the longest a cell that shows the widget waits for its first picture
DISPLAY_WAIT_S = 3.0
#: methods the Compare toggle turns on, the applicable ones of these
COMPARE_DEFAULT = ("integrated_gradients", "gradcam", "lime", "partition_shap")

#: view traits whose change starts a new run: the method parameters and these
_SETTINGS = ("method", "target", *controls.PARAMETERS, "seed", "methods")
_LINKED = (
    "method",
    "n_samples",
    "n_segments",
    "n_steps",
    "noise",
    "max_evals",
    "seed",
    "methods",
    "colormap",
    "opacity",
)
_HINT = "Your settings are kept: change one to try again."


def _image_method_params() -> set[str]:
    names: set[str] = set()
    for name in METHOD_NAMES:
        spec = get_spec(name)
        if "image" in spec.inputs:
            names.update(spec.defaults)
    return names


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class ImageExplainer(ipywidgets.VBox):
    """An image with its attribution heatmap, computed live in the kernel.

    Parameters
    ----------
    model
        A Keras model, a SavedModel, a callable from a numpy batch to a numpy
        batch, or a `ModelAdapter`; ``None`` shows only what :meth:`show_map`
        is given.
    image
        One image, ``(H, W, C)`` or ``(1, H, W, C)``, as the model takes it.
    method
        The attribution method; by default ``"saliency"``, or ``"lime"`` for
        a plain callable (which has no gradients).
    methods
        Methods to show side by side (see `methods`).
    target
        A class index, ``"top"``, ``"embedding"`` or an ``ssx.targets``
        object; by default the predicted class of a classifier and the
        label-free `EmbeddingSimilarity` of an encoder.
    seed, colormap, opacity
        Initial values of those traits.
    **params
        Initial values of `n_samples`, `n_segments`, `segmentation`,
        `n_steps`, `baseline`, `noise`, `max_evals`, and other parameters of
        the methods (``kernel_width``, ``window``, ``layer``...), passed to
        every method that takes them.
    """

    method = traitlets.Unicode("saliency")
    """str: the attribution method (see ``ssx.METHOD_NAMES``); setting it
    restarts the computation. Default: ``"saliency"``."""

    target = traitlets.Any(None)
    """int, str or Target: what is explained. Default: the predicted class,
    or the embedding similarity for an encoder."""

    n_samples = traitlets.Int(1000)
    """int: samples of a sampling method (raising it continues from the
    samples drawn). Default: the method's."""

    n_segments = traitlets.Int(50)
    """int: superpixels to aim for. Default: 50."""

    segmentation = traitlets.Any("slic")
    """str, (H, W) array or callable: how superpixels are made. Default:
    ``"slic"``."""

    n_steps = traitlets.Int(64)
    """int: integration steps of integrated gradients. Default: 64."""

    baseline = traitlets.Any(0.0)
    """number, str or array: what removed input becomes. Default: the
    method's."""

    noise = traitlets.Float(0.15)
    """float: SmoothGrad's noise, a fraction of the input range.
    Default: 0.15."""

    max_evals = traitlets.Int(500)
    """int: Partition SHAP's evaluation budget. Default: 500."""

    seed = traitlets.Int(0)
    """int: seed of every random draw. Default: 0."""

    methods = traitlets.List(traitlets.Unicode())
    """list[str]: methods computed together and shown side by side; empty
    for none. Default: empty."""

    selection = traitlets.Any()
    """dict: what is selected (see the module docstring); drives the
    drill-down. Set a dict, an ``(H, W)`` bool mask or ``None``; it reads
    back as the normalised dict. Default: nothing."""

    colormap = traitlets.Unicode(colormaps.AUTO)
    """str: a colour map name or ``"auto"``. Default: ``"auto"``."""

    opacity = traitlets.Float(0.6)
    """float: heatmap opacity, 0 to 1. Default: 0.6."""

    @traitlets.validate("method")
    def _check_method(self, proposal: dict[str, Any]) -> str:
        name = str(proposal["value"])
        if name not in METHOD_NAMES:
            raise traitlets.TraitError(
                f"method must be one of {', '.join(METHOD_NAMES)}; got {name!r}"
            )
        return name

    @traitlets.validate("methods")
    def _check_methods(self, proposal: dict[str, Any]) -> list[str]:
        names = list(dict.fromkeys(proposal["value"]))
        unknown = [n for n in names if n not in METHOD_NAMES]
        if unknown:
            raise traitlets.TraitError(
                f"methods must be among {', '.join(METHOD_NAMES)}; got {unknown}"
            )
        return names

    @traitlets.validate("opacity")
    def _check_opacity(self, proposal: dict[str, Any]) -> float:
        return check_opacity(proposal["value"])

    @traitlets.validate("colormap")
    def _check_colormap(self, proposal: dict[str, Any]) -> str:
        return check_colormap(proposal["value"])

    @traitlets.validate("selection")
    def _check_selection(self, proposal: dict[str, Any]) -> dict[str, Any]:
        try:
            return normalize_selection(proposal["value"], self._shape(), self._segments)
        except ValueError as error:
            raise traitlets.TraitError(str(error)) from error

    def __init__(
        self,
        model: Any = None,
        image: ArrayLike | None = None,
        *,
        method: str | None = None,
        methods: list[str] | tuple[str, ...] | None = None,
        target: Any = None,
        seed: int = 0,
        colormap: str = colormaps.AUTO,
        opacity: float = 0.6,
        **params: Any,
    ) -> None:
        unknown = sorted(
            set(params) - set(controls.PARAMETERS) - _image_method_params()
        )
        if unknown:
            raise TypeError(
                f"ImageExplainer takes no parameter {', '.join(map(repr, unknown))}; "
                "the image methods' parameters are: "
                f"{', '.join(sorted(_image_method_params()))}"
            )
        self.view = ImageView()
        self.charts = DrillCharts()
        super().__init__(children=[self.view, ipywidgets.HBox(self.charts.figures)])
        self.add_class("ssx-explainer")

        self._runner = JobRunner(
            self._deliver, self._fail, self._finish, name=f"ssx-image-{id(self)}"
        )
        self._drill_runner = JobRunner(
            self._deliver_drill, self._fail_drill, name=f"ssx-drill-{id(self)}"
        )
        self._lock = self._runner.lock
        self.view.sync_lock = self._lock
        self._internal = 0
        self._user_set: set[str] = set()
        self._extra = {k: v for k, v in params.items() if k not in controls.PARAMETERS}
        self._model = model
        self._adapter: Any = None
        self._inputs: NDArray[np.float32] | None = None
        self._segments: NDArray[np.int64] | None = None
        self._segments_key: Any = None
        self._target_options: list[dict[str, str]] | None = None
        self._bound: dict[Any, Any] = {}
        self._plan: Plan | None = None
        self._explanation: Any = None
        self._explanations: dict[str, Any] = {}
        self._panels: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, Any] = {}
        self._sent_at = {"main": 0.0, "panels": 0.0, "chart": 0.0}
        self._version = 0
        self._closed = False
        self.bytes_per_frame: list[int] = []

        differentiable = True
        if model is not None:
            self._adapter = self._make_adapter(model, image)
            differentiable = bool(self._adapter.differentiable)
        chosen = method or (
            methods[0] if methods else "saliency" if differentiable else "lime"
        )

        with self._quiet():
            self.method = chosen
            for name in controls.PARAMETERS:
                if name in params:
                    self.set_trait(name, _plain(params[name]))
                    self._user_set.add(name)
                else:
                    self.set_trait(name, controls.default_for(chosen, name))
            self.seed = seed
            self.target = target
            self.colormap = colormap
            self.opacity = opacity
            self.methods = list(methods or [])
            self.selection = None
            for name in _LINKED:
                traitlets.link((self, name), (self.view, name))
            self.view.method_options = controls.method_options(differentiable)
            self.view.compare_default = [
                m for m in COMPARE_DEFAULT if controls.applicable(m, differentiable)[0]
            ]
            self._push_keys()
            self._apply_method()

        self.view.observe(self._on_view_setting, names=list(_SETTINGS))
        self.view.observe(self._on_brush, names="brush")
        self.observe(self._on_value, names=["target", "segmentation", "baseline"])
        self.observe(self._on_selection, names="selection")

        if image is not None:
            self.set_image(image)

    # -- public ------------------------------------------------------------------

    @property
    def explanation(self) -> Any:
        """The `Explanation` on screen (the latest partial or the final
        result of `method`), or ``None`` (read only)."""
        return self._explanation

    @property
    def explanations(self) -> dict[str, Any]:
        """The latest `Explanation` of every method computed by the current
        job, by name (read only)."""
        return dict(self._explanations)

    @property
    def segments(self) -> NDArray[np.int64] | None:
        """``(H, W)`` the superpixel ids that selections refer to, or
        ``None`` before they are computed (read only)."""
        return self._segments

    @property
    def version(self) -> int:
        """The version of the heatmap on screen (0 before the first)."""
        return int(self.view.version)

    @property
    def error(self) -> str:
        """The error shown in the widget, empty when there is none."""
        return str(self.view.error)

    @property
    def busy(self) -> bool:
        """Whether a computation runs or waits."""
        return self._runner.busy or self._drill_runner.busy

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the computation and the drill-down are done;
        ``False`` when ``timeout`` (seconds) passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for runner in (self._runner, self._drill_runner, self._runner):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not runner.wait(left):
                return False
        return True

    def refresh(self) -> None:
        """Restart the computation with the current settings."""
        if self._adapter is None or self._inputs is None:
            raise ValueError(
                "refresh needs a model and an image; this widget was made without one"
            )
        with self._lock:
            self._restart()

    def set_image(self, image: ArrayLike) -> None:
        """Show ``image`` (``(H, W, C)`` or ``(1, H, W, C)``), keep it as the
        model's input, clear the selection, and recompute."""
        array = np.asarray(image)
        if array.ndim == 4 and array.shape[0] > 1:
            warnings.warn(
                f"ImageExplainer shows one image; got a batch of {array.shape[0]}, "
                "showing the first. Pass images[i] to choose another.",
                SsxWarning,
                stacklevel=2,
            )
            array = array[:1]
        pixels, shape = display_image(array)
        with self._lock:
            if self._adapter is not None:
                self._inputs = self._adapter.prepare_inputs(array)
            self._segments = None
            self._segments_key = None
            self._target_options = None
            self._bound.clear()
            with self.view.hold_sync():
                self.view.image = pixels.tobytes()
                self.view.image_shape = shape
                self.view.segments = b""
                self.view.segments_shape = (0, 0)
            with self._quiet():
                self.selection = {}
                self.view.brush = {}
            if self._adapter is not None:
                self._restart()

    def show_map(
        self,
        values: ArrayLike,
        *,
        method: str | None = None,
        device: str | None = None,
        status: str = "",
        value_range: tuple[float, float] | None = None,
    ) -> int:
        """Show an ``(H, W)`` map as a new version, without a model.

        Parameters
        ----------
        values
            ``(H, W)`` floats; NaN is drawn transparent.
        method, device, status
            Text shown with it; ``None`` keeps the current one.
        value_range
            ``(lo, hi)`` in the map's units; by default
            :func:`value_range_for` of ``values``.

        Returns
        -------
        int
            The version the map was sent as.
        """
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"expected an (H, W) map; got shape {array.shape}")
        with self._lock:
            return self._send_map(
                display_map(array),
                job=int(self.view.current_job),
                method=method,
                device=device,
                status=status,
                value_range=value_range,
            )

    def heatmap_values(self) -> NDArray[np.float32]:
        """The ``(h, w)`` map as the front end received it, in map units."""
        view = self.view
        shape = (int(view.heatmap_shape[0]), int(view.heatmap_shape[1]))
        return decode_heatmap(view.heatmap, shape, view.value_scale)

    def to_png(self) -> bytes:
        """A PNG of the current view: the image with the heatmap on top, a
        colour bar, the compared methods; what viewers without JavaScript
        show."""
        from ._png import render_png

        return render_png(self.view)

    def save_html(self, path: str | Path) -> Path:
        """Write the current view as one self-contained HTML file that
        renders offline (`ssxwidgets.report.write_widget_html`); returns its
        path."""
        from ..report import write_widget_html

        return write_widget_html(self, path)

    def close(self) -> None:
        """Stop every computation, join the worker threads, and close the
        widget with its view and charts."""
        with self._lock:
            self._closed = True
        self._runner.close()
        self._drill_runner.close()
        self.view.close()
        self.charts.close()
        for child in self.children:
            child.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view plus a static PNG of it, for viewers without
        widgets; waits up to `DISPLAY_WAIT_S` for a running computation."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        if self._runner.busy:
            self._runner.wait(DISPLAY_WAIT_S)
        try:
            data = {**data, "image/png": self.to_png()}
        except Exception as exc:  # a picture is a courtesy; never block display
            logger.warning("no static picture of the widget: %s", exc)
        return data, metadata

    # -- settings --------------------------------------------------------------------

    def _make_adapter(self, model: Any, image: ArrayLike | None) -> Any:
        """One adapter per widget, shared with `ssx.attribute` for the same
        model so that sampling caches carry over; a callable of unknown input
        shape gets the image's."""
        from ..models import ModelAdapter, adapt

        adapter = adapt(model)
        if adapter.input_shape is None and image is not None:
            array = np.asarray(image)
            shape = array.shape[1:] if array.ndim == 4 else array.shape
            adapter = ModelAdapter(
                adapter.model, input_shape=tuple(int(d) for d in shape)
            )
        return adapter

    def _quiet(self) -> _Quiet:
        """A context in which trait changes are the widget's own: they do not
        count as the user's and restart nothing."""
        return _Quiet(self)

    def _shape(self) -> tuple[int, int]:
        h, w = (int(x) for x in self.view.image_shape[:2])
        return (h, w)

    def _push_keys(self) -> None:
        """Show the Python-side target, segmentation and baseline in the
        front end's controls."""
        view = self.view
        key = controls.target_key(self.target)
        if self.target is None and self._target_options:
            key = self._target_options[0]["value"]  # the model's default
        view.target = key
        options = self._target_options or [
            {"value": view.target, "label": _target_label(self.target)}
        ]
        if view.target not in {o["value"] for o in options}:
            options = [
                *options,
                {"value": view.target, "label": _target_label(self.target)},
            ]
        view.target_options = options
        view.segmentation = controls.segmentation_key(self.segmentation)
        view.segmentation_options = controls.segmentation_options(self.segmentation)
        view.baseline = controls.baseline_key(self.baseline)
        view.baseline_options = controls.baseline_options(self.method, self.baseline)

    def _apply_method(self) -> None:
        """Show the new method's controls and take its defaults for every
        parameter the user has not set."""
        method = self.method
        with self._quiet():
            for name in controls.PARAMETERS:
                own = name in controls.method_defaults(method)
                keep = name in self._user_set
                if name == "baseline" and keep:
                    keep = controls.accepts_baseline(method, self.baseline)
                if own and not keep:
                    self.set_trait(name, controls.default_for(method, name))
            self.view.controls = controls.shown_controls(method)
            self.view.show_borders = controls.uses_segments(method)
            self._push_keys()

    def _on_view_setting(self, change: dict[str, Any]) -> None:
        """A control changed, in the front end or through a linked trait."""
        with self._lock:
            if self._internal:
                return
            name = change["name"]
            with self._quiet():
                if name == "target":
                    self.target = controls.target_value(change["new"], self.target)
                elif name == "segmentation":
                    self.segmentation = controls.segmentation_value(
                        change["new"], self.segmentation
                    )
                elif name == "baseline":
                    self.baseline = controls.baseline_value(
                        change["new"], self.baseline
                    )
            self._user_set.add(name)
            if name == "method":
                self._apply_method()
            self._restart()

    def _on_value(self, change: dict[str, Any]) -> None:
        """`target`, `segmentation` or `baseline` set from Python."""
        with self._lock:
            if self._internal:
                return
            self._user_set.add(change["name"])
            with self._quiet():
                self._push_keys()
            self._restart()

    # -- the computation -----------------------------------------------------------

    def _params_for(self, method: str) -> dict[str, Any]:
        """The parameters ``method`` runs with: the controls' values where
        they apply (the method's own defaults for those the user left alone
        when it is not the main method), plus the extra parameters it
        takes."""
        defaults = controls.method_defaults(method)
        params: dict[str, Any] = {}
        for name in defaults:
            if name in controls.PARAMETERS:
                value = getattr(self, name)
                own = method == self.method or name in self._user_set
                if name == "baseline" and not controls.accepts_baseline(method, value):
                    own = False
                params[name] = value if own else defaults[name]
            elif name in self._extra:
                params[name] = self._extra[name]
        return params

    def _make_plan(self) -> Plan:
        methods = (self.method, *(m for m in self.methods if m != self.method))
        return Plan(
            methods=methods,
            params={m: self._params_for(m) for m in methods},
            target=self.target,
            seed=int(self.seed),
            segmentation=self.segmentation,
            n_segments=int(self.n_segments),
        )

    def _restart(self) -> None:
        """Cancel what runs and start the current settings (under the lock)."""
        if self._closed or self._adapter is None or self._inputs is None:
            return
        plan = self._make_plan()
        self._plan = plan
        self._pending.clear()
        self._panels = {}
        self._explanations = {}
        job = self._runner.submit(lambda cancelled: self._work(plan, cancelled))
        title = get_spec(plan.main).title
        with self.view.hold_sync():
            self.view.current_job = job
            self.view.running = True
            self.view.progress = 0.0
            self.view.elapsed = 0.0
            self.view.error = ""
            self.view.status = f"{title}: computing…"
            if not self.methods:
                self.view.panels = []
        logger.info("image explainer job %s: %s", job, ", ".join(plan.methods))
        if self.selection.get("kind", "none") != "none":
            self._drill()

    def _work(self, plan: Plan, cancelled: Any) -> Iterator[tuple[Any, ...]]:
        """The job (on the worker thread): see `run_plan`."""
        assert self._inputs is not None
        return run_plan(
            plan,
            self._adapter,
            self._inputs,
            cancelled,
            with_targets=self._target_options is None,
            have=self._segments_key,
        )

    def _deliver(self, job: int, event: tuple[Any, ...]) -> None:
        """One event of the newest job (under the runner's lock)."""
        if self._closed or self._plan is None:
            return
        kind = event[0]
        if kind == "targets":
            self._target_options = event[1]
            with self._quiet():
                self.view.target_options = event[1]
                if self.target is None:
                    self.view.target = event[1][0]["value"]
        elif kind == "segments":
            self._segments_key = event[1]
            self._set_segments(event[2])
        elif kind == "partial":
            self._partial(job, event[1], event[2])
        elif kind == "error":
            self._method_failed(event[1], event[2])

    def _partial(self, job: int, method: str, result: Any) -> None:
        assert self._plan is not None
        self._explanations[method] = result
        final = result.progress >= 1.0
        now = time.perf_counter()
        if method == self._plan.main:
            self._explanation = result
            if final or now - self._sent_at["main"] >= FRAME_INTERVAL_S:
                self._pending.pop(method, None)
                self._send_main(job, result)
            else:
                self._pending[method] = result
        if self.methods:
            self._panels[method] = self._panel(job, method, result)
            if final or now - self._sent_at["panels"] >= PANEL_INTERVAL_S:
                self._send_panels()
            else:
                self._pending["panels"] = True

    def _send_main(self, job: int, result: Any) -> None:
        """The main heatmap frame: data, job, version and progress in one
        message."""
        assert self._plan is not None
        segments = None
        if result.segments is not None:
            own = np.asarray(result.segments[0], np.int64)
            if self._segments is None or not np.array_equal(own, self._segments):
                segments = own
        title = get_spec(result.method).title
        state = "done" if result.progress >= 1.0 else f"{result.progress:.0%}"
        with self.view.hold_sync():
            self._send_map(
                display_map(result.map[0]),
                job=job,
                method=result.method,
                device=result.device,
                status=f"{title} · {result.target} · {state}",
            )
            view = self.view
            view.progress = float(result.progress)
            view.n_evaluations = int(result.n_evaluations)
            view.elapsed = time.perf_counter() - self._plan.started
            view.convergence = (
                None if result.convergence is None else float(result.convergence)
            )
            if segments is not None:
                self._set_segments(segments)
        self._sent_at["main"] = time.perf_counter()
        if self.selection.get("kind", "none") != "none":
            final = result.progress >= 1.0
            if final or self._sent_at["main"] - self._sent_at["chart"] >= (
                CHART_INTERVAL_S
            ):
                self._show_waterfall()

    def _send_map(
        self,
        values: NDArray[np.float64],
        *,
        job: int,
        method: str | None,
        device: str | None,
        status: str,
        value_range: tuple[float, float] | None = None,
    ) -> int:
        lo, hi = value_range if value_range is not None else value_range_for(values)
        scale = scale_for((lo, hi))
        data = encode_heatmap(values, scale)
        self._version += 1
        view = self.view
        with view.hold_sync():
            view.heatmap = data
            view.heatmap_shape = values.shape
            view.value_scale = scale
            view.value_range = (lo / scale, hi / scale)
            view.job = job
            view.version = self._version
            if method is not None:
                view.heatmap_method = method
            if device is not None:
                view.device = device
            view.status = status
        self.bytes_per_frame.append(len(data))
        return self._version

    def _panel(self, job: int, method: str, result: Any) -> dict[str, Any]:
        self._version += 1
        return panel_frame(job, self._version, method, result)

    def _send_panels(self) -> None:
        assert self._plan is not None
        self._pending.pop("panels", None)
        self.view.panels = [
            self._panels.get(m, {"method": m, "title": get_spec(m).title})
            for m in self._plan.methods
        ]
        self._sent_at["panels"] = time.perf_counter()

    def _set_segments(self, segments: NDArray[np.integer]) -> None:
        self._segments = np.asarray(segments, np.int64)
        with self.view.hold_sync():
            self.view.segments = encode_segments(self._segments)
            self.view.segments_shape = self._segments.shape
        # The selection's ids follow the new superpixels: its pixels stay,
        # unless it was given as ids before any superpixels were known.
        selection = self.selection
        if selection.get("kind", "none") == "none":
            return
        had_pixels = bool(selection["mask"].any())
        if had_pixels:
            value = {"kind": selection["kind"], "mask": selection["mask"]}
        else:
            value = {"kind": selection["kind"], "segments": selection["segments"]}
        try:
            with self._quiet():
                self.selection = value
                self.view.brush = self._brush_state()
        except traitlets.TraitError as error:  # ids beyond the new superpixels
            self._show_error(f"The selection no longer fits: {error}")
            return
        if not had_pixels:
            self._drill()

    def _method_failed(self, method: str, error: BaseException) -> None:
        assert self._plan is not None
        logger.warning("%s failed: %s", method or "segmentation", error)
        title = get_spec(method).title if method else "Segmentation"
        if method in self._panels or (self.methods and method):
            panel = dict(self._panels.get(method, {"method": method, "title": title}))
            panel["error"] = _describe(error)
            self._panels[method] = panel
            self._send_panels()
        if method in ("", self._plan.main):
            self._show_error(f"{title} failed: {_describe(error)}\n{_HINT}")

    def _show_error(self, message: str) -> None:
        with self.view.hold_sync():
            self.view.error = message
            self.view.status = message.splitlines()[0]

    def _finish(self, job: int, seconds: float) -> None:
        """The newest job is done: flush what was held back, stop the clock."""
        if self._closed or self._plan is None:
            return
        held = self._pending.pop(self._plan.main, None)
        if held is not None:
            self._send_main(job, held)
        if self._pending.pop("panels", None):
            self._send_panels()
        with self.view.hold_sync():
            self.view.running = False
            self.view.elapsed = seconds
        if self.selection.get("kind", "none") != "none":
            self._show_waterfall()

    def _fail(self, job: int, error: BaseException) -> None:
        if self._closed:
            return
        with self.view.hold_sync():
            self._show_error(f"The computation failed: {_describe(error)}\n{_HINT}")
            self.view.running = False

    # -- selection and drill-down ------------------------------------------------------

    def _brush_state(self) -> dict[str, Any]:
        selection = self.selection
        return {
            "kind": selection["kind"],
            "mask": encode_mask(selection["mask"]),
            "segments": [int(i) for i in selection["segments"]],
            "shape": list(selection["mask"].shape),
        }

    def _on_brush(self, change: dict[str, Any]) -> None:
        """The front end brushed (debounced there)."""
        with self._lock:
            if self._internal:
                return
            brush = change["new"] or {}
            try:
                value: dict[str, Any] = {}
                if brush.get("kind"):
                    shape = self._shape()
                    value = {"kind": brush["kind"], "segments": brush.get("segments")}
                    if brush.get("mask") is not None:
                        value["mask"] = decode_mask(brush["mask"], shape)
                with self._quiet():
                    self.selection = value
            except (ValueError, traitlets.TraitError) as error:
                self._show_error(f"The selection was not understood: {error}")
                return
            self._drill()

    def _on_selection(self, change: dict[str, Any]) -> None:
        """`selection` set from Python: show it and drill down."""
        with self._lock:
            if self._internal:
                return
            with self._quiet():
                self.view.brush = self._brush_state()
            self._drill()

    def _drill(self) -> None:
        """Redraw the waterfall and recompute the counterfactual."""
        if self._closed:
            return
        selection = self.selection
        if selection.get("kind", "none") == "none":
            self._drill_runner.cancel()
            self.charts.show_waterfall(None, "Brush the image to drill down")
            self.charts.show_counterfactual(None, "Counterfactual")
            return
        self._show_waterfall()
        if self._adapter is None or self._inputs is None:
            return
        mask = selection["mask"].copy()
        target, baseline, seed = self.target, self.baseline, int(self.seed)
        segments = self._segments

        def work(cancelled: Any) -> Iterator[tuple[Counterfactual, str, int]]:
            bound = self._bound_target(target)
            fill = self._fill(baseline, segments, seed)
            assert self._inputs is not None
            result = counterfactual(self._adapter, self._inputs, bound, mask, fill)
            yield result, bound.description, int(mask.sum())

        self._drill_runner.submit(work)

    def _bound_target(self, target: Any) -> Any:
        from ..targets import resolve_target

        name = controls.target_key(target)
        key: Any = (name, id(target)) if name == "custom" else name
        if key not in self._bound:
            assert self._inputs is not None
            resolved = resolve_target(target, self._adapter)
            self._bound[key] = resolved.bind(self._adapter, self._inputs)
        return self._bound[key]

    def _fill(
        self, baseline: Any, segments: NDArray[np.int64] | None, seed: int
    ) -> NDArray[np.float32]:
        from ..segmentation import resolve_fill

        assert self._inputs is not None
        if baseline is None:
            baseline = 0.0
        if controls.baseline_key(baseline) == "superpixel_mean" and segments is None:
            baseline = "mean"
        maps = None if segments is None else segments[None]
        return resolve_fill(baseline, self._inputs, maps, seed)

    def _show_waterfall(self) -> None:
        """The waterfall of the selection over the explanation on screen."""
        self._sent_at["chart"] = time.perf_counter()
        selection = self.selection
        result = self._explanation
        if result is None or self._segments is None:
            self.charts.show_waterfall(None, "Waiting for the explanation…")
            return
        segments = self._segments
        if result.segments is not None and result.segments.shape[1:] == segments.shape:
            segments = np.asarray(result.segments[0], np.int64)
        values = segment_values(result, segments)
        ids = selection["segments"]
        ids = ids[ids < len(values)]
        base = float(result.base_values[0])
        output = float(result.outputs[0])
        steps = waterfall(base, output, values, ids)
        title = get_spec(result.method).title
        self.charts.show_waterfall(
            steps,
            f"{title}: {len(ids)} superpixel(s), "
            f"{controls.format_score(base)} → {controls.format_score(output)}",
        )

    def _deliver_drill(self, job: int, event: tuple[Counterfactual, str, int]) -> None:
        """The counterfactual is in (under the drill runner's lock, which
        touches only the counterfactual chart)."""
        if self._closed:
            return
        result, description, pixels = event
        self.charts.show_counterfactual(
            result, f"{description}: {pixels} pixel(s) selected"
        )

    def _fail_drill(self, job: int, error: BaseException) -> None:
        if self._closed:
            return
        self.charts.show_counterfactual(
            None, f"The counterfactual failed: {_describe(error)}"
        )


class _Quiet:
    """The context of `ImageExplainer._quiet` (under the widget's lock)."""

    def __init__(self, widget: ImageExplainer) -> None:
        self._widget = widget

    def __enter__(self) -> None:
        self._widget._lock.acquire()
        self._widget._internal += 1

    def __exit__(self, *exc: object) -> None:
        self._widget._internal -= 1
        self._widget._lock.release()


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number an Int or Float trait takes."""
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        return value.item()
    return value


def _target_label(target: Any) -> str:
    if target is None:
        return "Default target"
    if target == "top":
        return "Predicted class"
    if controls.target_key(target) == "embedding":
        return "Similarity to its own embedding (label-free)"
    if isinstance(target, int | np.integer):
        return f"class {int(target)}"
    return f"custom: {target!r}"


def explain_image(model: Any, image: ArrayLike, **kwargs: Any) -> ImageExplainer:
    """An `ImageExplainer` of ``model`` on ``image``; the computation starts
    at once on a worker thread (``w.wait()`` blocks until it is done).

    Parameters
    ----------
    model
        See `ImageExplainer`.
    image
        One image ``(H, W, C)`` or ``(1, H, W, C)``.
    **kwargs
        ``method``, ``methods``, ``target``, ``seed``, ``colormap``,
        ``opacity`` and the methods' parameters.
    """
    return ImageExplainer(model, image, **kwargs)
