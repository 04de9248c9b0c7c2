"""The image explainer live: settings restart the computation off the main
thread, the newest always wins, selections drill down, methods compare."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from factories import images, small_cnn, small_encoder

from ssxwidgets.api import attribute
from ssxwidgets.widgets import ImageExplainer
from ssxwidgets.widgets._drill import encode_mask
from ssxwidgets.widgets._frames import decode_heatmap, display_map

SIZE = 24
TIMEOUT = 120


@pytest.fixture(scope="module")
def model() -> Any:
    return small_cnn(size=SIZE)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return images(1, size=SIZE, seed=3)[0]


@pytest.fixture
def widget(model: Any, image: np.ndarray) -> Iterator[ImageExplainer]:
    w = ImageExplainer(model, image)
    yield w
    w.close()


def _threads(w: ImageExplainer) -> list[threading.Thread]:
    prefix = f"ssx-image-{id(w)}"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def _record_frames(w: ImageExplainer) -> list[tuple[int, int, float, int]]:
    """(job, version, progress, n_samples) of every main frame sent."""
    frames: list[tuple[int, int, float, int]] = []

    def record(change: dict[str, Any]) -> None:
        result = w.explanation
        frames.append(
            (
                int(w.view.job),
                int(change["new"]),
                float(result.progress),
                int(result.params.get("n_samples", 0)),
            )
        )

    w.view.observe(record, names="version")
    return frames


def _wait_for(condition: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_settings_round_trip_between_python_and_the_front_end(
    widget: ImageExplainer,
) -> None:
    """Each live setting set in Python shows in the front end's state, and
    each set by the front end (a state update) shows in Python."""
    w = widget
    from_python = {
        "method": "lime",
        "n_samples": 300,
        "n_segments": 12,
        "seed": 5,
        "target": 1,
        "segmentation": "grid",
        "baseline": "blur",
    }
    for name, value in from_python.items():
        setattr(w, name, value)
    w.n_steps, w.noise, w.max_evals = 8, 0.3, 120
    assert w.view.method == "lime"
    assert (w.view.n_samples, w.view.n_segments, w.view.seed) == (300, 12, 5)
    assert (w.view.n_steps, w.view.noise, w.view.max_evals) == (8, 0.3, 120)
    assert w.view.target == "1"
    assert w.view.segmentation == "grid"
    assert w.view.baseline == "blur"

    w.view.set_state(
        {
            "method": "integrated_gradients",
            "n_steps": 16,
            "target": "top",
            "baseline": "mean",
            "n_samples": 400,
            "max_evals": 200,
            "noise": 0.1,
            "n_segments": 20,
            "segmentation": "slic",
            "seed": 2,
            "methods": ["lime"],
        }
    )
    assert w.method == "integrated_gradients"
    assert (w.n_steps, w.n_samples, w.max_evals) == (16, 400, 200)
    assert (w.noise, w.n_segments, w.seed) == (0.1, 20, 2)
    assert w.target == "top"
    assert w.baseline == "mean"
    assert w.segmentation == "slic"
    assert w.methods == ["lime"]
    assert w.wait(TIMEOUT)
    assert w.error == ""
    assert w.explanation.method == "integrated_gradients"
    assert w.explanation.params["n_steps"] == 16


def test_a_parameter_change_cancels_the_stale_job(widget: ImageExplainer) -> None:
    """Changing a setting mid-job stops the running job before it finishes,
    and no frame of it is shown after the newer job's first."""
    w = widget
    w.wait(TIMEOUT)
    frames = _record_frames(w)
    w.method = "rise"
    w.n_samples = 20_000
    old_job = w.view.current_job
    _wait_for(lambda: any(f[0] == old_job for f in frames))
    w.n_samples = 200
    assert w.wait(TIMEOUT)

    new_job = w.view.current_job
    assert new_job > old_job
    old = [f for f in frames if f[0] == old_job]
    assert old and all(f[2] < 1.0 for f in old), "the stale job ran to the end"
    jobs = [f[0] for f in frames]
    assert jobs == sorted(jobs), "an older job's frame came after a newer one's"
    versions = [f[1] for f in frames]
    assert versions == sorted(versions)
    assert frames[-1][0] == new_job and frames[-1][2] == 1.0
    assert w.explanation.params["n_samples"] == 200


def test_a_burst_of_changes_leaves_one_job_and_the_last_setting(
    widget: ImageExplainer,
) -> None:
    """100 rapid changes leave one worker thread with at most one job, and
    the final result is that of the last setting."""
    w = widget
    w.method = "lime"
    for k in range(100):
        w.n_samples = 100 + k
        assert len(_threads(w)) <= 1
    assert len(_threads(w)) == 1
    assert w.wait(TIMEOUT)
    assert w.error == ""
    assert w.view.job == w.view.current_job
    assert w.explanation.params["n_samples"] == 199
    assert w.view.n_samples == 199
    assert w.view.progress == 1.0 and not w.view.running


def test_raising_samples_continues_from_the_samples_drawn(
    widget: ImageExplainer,
) -> None:
    """After n_samples rises, only the new samples are evaluated."""
    w = widget
    w.method = "lime"
    w.n_samples = 256
    assert w.wait(TIMEOUT)
    w.n_samples = 512
    assert w.wait(TIMEOUT)
    assert w.explanation.params["n_samples"] == 512
    assert w.explanation.n_evaluations <= 512 - 256 + 1


def test_closing_mid_job_stops_it_and_leaves_no_thread(
    model: Any, image: np.ndarray
) -> None:
    """close() during a long job returns within seconds, stops the job and
    leaves no worker thread."""
    w = ImageExplainer(model, image, method="rise", n_samples=50_000)
    _wait_for(lambda: w.version >= 1)
    assert w.view.running
    started = time.perf_counter()
    w.close()
    assert time.perf_counter() - started < 10
    assert _threads(w) == []
    assert not any(
        t.name.startswith(f"ssx-drill-{id(w)}") for t in threading.enumerate()
    )
    assert w.view.comm is None


def test_parameter_errors_show_in_the_widget_and_keep_the_settings(
    widget: ImageExplainer,
) -> None:
    """A bad parameter (from Python or the front end) shows the engine's
    message with what to do, keeps every setting, and a good one clears it."""
    w = widget
    w.method = "lime"
    w.n_segments = 0
    assert w.wait(TIMEOUT)
    assert "n_segments" in w.error
    assert "settings are kept" in w.error
    assert (w.method, w.n_segments) == ("lime", 0)

    w.view.set_state({"n_samples": 1})
    assert w.wait(TIMEOUT)
    assert "n_samples" in w.error
    assert w.n_samples == 1

    w.n_segments, w.n_samples = 10, 100
    assert w.wait(TIMEOUT)
    assert w.error == ""
    assert w.explanation.method == "lime"


def test_a_plain_callable_greys_out_gradient_methods(image: np.ndarray) -> None:
    """For a plain callable, methods that need gradients are offered greyed
    out with the reason, and the default is a perturbation method."""

    def scores(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)[:, :4]

    w = ImageExplainer(scores, image, n_samples=64)
    try:
        options = {o["name"]: o for o in w.view.method_options}
        assert not options["integrated_gradients"]["enabled"]
        assert "gradients" in options["integrated_gradients"]["reason"]
        assert options["lime"]["enabled"]
        assert w.method == "lime"
        assert w.wait(TIMEOUT)
        assert w.error == ""
    finally:
        w.close()


def test_controls_follow_the_method(widget: ImageExplainer) -> None:
    """Only the controls of the method's parameters are shown."""
    w = widget
    w.method = "integrated_gradients"
    assert w.view.controls == ["n_steps", "baseline"]
    w.method = "smoothgrad"
    assert w.view.controls == ["n_samples", "noise", "seed"]
    w.method = "partition_shap"
    assert w.view.controls == ["max_evals"]
    w.method = "lime"
    assert "segmentation" in w.view.controls and "n_segments" in w.view.controls
    assert w.view.show_borders
    assert w.wait(TIMEOUT)


def test_targets_list_classes_with_scores(
    widget: ImageExplainer, model: Any, image: np.ndarray
) -> None:
    """The Target control lists the predicted class and every class with its
    score; an encoder gets the label-free target."""
    w = widget
    assert w.wait(TIMEOUT)
    scores = np.asarray(model(image[None]))[0]
    options = w.view.target_options
    assert options[0]["value"] == "top"
    assert [o["value"] for o in options[1:]] == [str(i) for i in range(5)]
    for i, option in enumerate(options[1:]):
        assert option["label"].endswith(f"{scores[i]:.3g}")

    encoder = ImageExplainer(small_encoder(size=SIZE), image)
    try:
        assert encoder.wait(TIMEOUT)
        assert [o["value"] for o in encoder.view.target_options] == ["embedding"]
        assert encoder.error == ""
    finally:
        encoder.close()


def test_a_selection_gives_the_models_own_counterfactual(
    widget: ImageExplainer, model: Any, image: np.ndarray
) -> None:
    """With a selection, the outputs with it removed (baseline-filled) and
    with only it kept equal the model's own outputs on those images."""
    w = widget
    mask = np.zeros((SIZE, SIZE), bool)
    mask[3:14, 5:18] = True
    w.baseline = 0.0
    w.selection = mask
    assert w.wait(TIMEOUT)

    logits = np.asarray(model(image[None]))[0]
    top = int(np.argmax(logits))
    removed = np.where(mask[..., None], 0.0, image)
    kept = np.where(mask[..., None], image, 0.0)
    direct = np.asarray(model(np.stack([image, removed, kept])))[:, top]
    np.testing.assert_allclose(w.charts.outcomes.y, direct, rtol=1e-5, atol=1e-5)
    assert w.selection["kind"] == "mask"
    assert w.selection["segments"].size > 0
    assert len(w.charts.steps.x) >= 3


def test_a_brush_from_the_front_end_reaches_python(
    widget: ImageExplainer,
) -> None:
    """A brush sent by the front end (mask bytes and ids) becomes
    `selection` and drives the drill-down."""
    w = widget
    assert w.wait(TIMEOUT)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[:8, :8] = True
    w.view.set_state(
        {
            "brush": {
                "kind": "rectangle",
                "mask": memoryview(encode_mask(mask)),
                "segments": [0],
                "shape": [SIZE, SIZE],
            }
        }
    )
    assert w.wait(TIMEOUT)
    np.testing.assert_array_equal(w.selection["mask"], mask)
    assert w.selection["kind"] == "rectangle"
    assert w.selection["segments"].tolist() == [0]
    assert len(w.charts.outcomes.y) == 3

    w.view.set_state({"brush": {}})
    assert w.selection["kind"] == "none"
    assert len(w.charts.outcomes.y) == 0


def test_the_waterfall_runs_from_base_to_output_with_shap_values(
    widget: ImageExplainer,
) -> None:
    """For KernelSHAP the selected superpixels' steps are their SHAP values,
    and the waterfall starts at the base value and ends at the output."""
    w = widget
    w.method = "kernel_shap"
    w.n_samples = 200
    w.n_segments = 10
    assert w.wait(TIMEOUT)
    ids = [1, 3]
    w.selection = {"segments": ids}
    assert w.wait(TIMEOUT)
    result = w.explanation
    labels = list(w.charts.steps.x)
    assert labels[0] == "base" and labels[-1] == "output"
    rows = np.asarray(w.charts.steps.y)
    heights = rows[1] + rows[2]
    tops = rows[0] + heights
    for i in ids:
        k = labels.index(f"#{i}")
        assert abs(heights[k]) == pytest.approx(
            abs(float(result.segment_values[0, i])), rel=1e-6, abs=1e-9
        )
    assert np.max(np.abs([rows[:, -1].sum(), tops[-1]])) == pytest.approx(
        abs(float(result.outputs[0])), rel=1e-6
    )
    np.testing.assert_array_equal(w.selection["mask"], np.isin(w.segments, ids))


def test_compare_computes_every_method_through_one_adapter(
    widget: ImageExplainer, model: Any, image: np.ndarray
) -> None:
    """With `methods`, every method is computed in the same job and shown
    in its own panel; each map equals the engine's own."""
    w = widget
    w.methods = ["integrated_gradients", "occlusion"]
    assert w.wait(TIMEOUT)
    panels = {p["method"]: p for p in w.view.panels}
    assert list(panels) == ["saliency", "integrated_gradients", "occlusion"]
    assert set(w.explanations) == set(panels)
    for name, panel in panels.items():
        assert panel["error"] == ""
        assert panel["progress"] == 1.0
        shape = (int(panel["shape"][0]), int(panel["shape"][1]))
        got = decode_heatmap(panel["heatmap"], shape, panel["value_scale"])
        want = attribute(model, image, method=name).map[0]
        peak = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, atol=2e-3 * peak)
    versions = [p["version"] for p in w.view.panels]
    assert len(set(versions)) == 3

    w.methods = []
    assert w.wait(TIMEOUT)
    assert w.view.panels == []


def test_heatmaps_travel_at_display_resolution() -> None:
    """A map larger than the stage is averaged down to fit it; one that
    fits is sent as it is, 2 bytes a pixel."""
    big = np.arange(640 * 480, dtype=np.float64).reshape(480, 640)
    small = display_map(big)
    assert small.shape == (240, 320)
    assert small[0, 0] == pytest.approx(big[:2, :2].mean())
    w = ImageExplainer()
    w.show_map(np.ones((64, 64)))
    assert len(w.view.heatmap) == 64 * 64 * 2
    w.close()


def test_superpixel_ids_set_before_the_superpixels_exist_are_kept(
    model: Any, image: np.ndarray
) -> None:
    """Ids selected before the first superpixels are computed become those
    superpixels' pixels once they are, and drive the counterfactual."""
    w = ImageExplainer(model, image, method="lime", n_samples=64, n_segments=8)
    try:
        w.selection = {"segments": [0]}
        assert w.wait(TIMEOUT)
        assert w.selection["segments"].tolist() == [0]
        np.testing.assert_array_equal(w.selection["mask"], w.segments == 0)
        assert len(w.charts.outcomes.y) == 3
    finally:
        w.close()
