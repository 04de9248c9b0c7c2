"""The image explainer live in real JupyterLab: sliders stream newer
heatmaps, a brushed rectangle reaches Python and the drill-down charts, the
comparison renders. One notebook on one page serves every test here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# A small Keras CNN explained with LIME; the last cell writes the widget's
# Python-side state to state.json whenever it changes, for the test to read.
CELLS = [
    """\
import json
from pathlib import Path
import numpy as np
import keras
import ssxwidgets as ssx

keras.utils.set_random_seed(3)
model = keras.Sequential([
    keras.Input((32, 32, 3)),
    keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
    keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(4),
])
image = np.random.default_rng(3).random((32, 32, 3), dtype=np.float32)""",
    "w = ssx.explain(model, image, method='lime', n_samples=300, n_segments=16)\nw",
    """\
def dump(*_):
    selection = w.selection
    state = {
        "n_samples": w.n_samples,
        "methods": list(w.methods),
        "version": w.version,
        "kind": selection["kind"],
        "pixels": int(selection["mask"].sum()),
        "segments": [int(i) for i in selection["segments"]],
        "outcomes": [float(v) for v in w.charts.outcomes.y],
        "steps": [str(x) for x in w.charts.steps.x],
        "error": w.error,
    }
    Path("state.tmp").write_text(json.dumps(state))
    Path("state.tmp").replace("state.json")

w.observe(dump, names=["selection", "n_samples", "methods"])
w.view.observe(dump, names="version")
w.charts.outcomes.observe(dump, names="y")
w.wait()
dump()""",
]

VERSION = ".ssx-image .ssx-heatmap"

# Every data-ssx-version the main heatmap shows from now on, in order.
WATCH_VERSIONS = """() => {
    const canvas = document.querySelector('.ssx-image .ssx-heatmap');
    window.ssxVersions = [];
    new MutationObserver(() => {
        window.ssxVersions.push(Number(canvas.dataset.ssxVersion));
    }).observe(canvas, { attributes: true, attributeFilter: ['data-ssx-version'] });
}"""

# The bqplot bars of a figure: per bar group, the rects' heights.
READ_BARS = """(figure) => {
    const root = document.querySelector(figure);
    if (!root) { return null; }
    return Array.from(root.querySelectorAll('.bargroup')).map((group) =>
        Array.from(group.querySelectorAll('rect.bar')).map((bar) =>
            Number(bar.getAttribute('height'))));
}"""


@dataclass
class Live:
    """The shared page with the notebook open and where its files are."""

    page: Any
    folder: Path

    def state(self) -> dict[str, Any]:
        """The widget's Python-side state, as the kernel last wrote it."""
        path = self.folder / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def wait_state(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        """Wait until the kernel's state satisfies ``check``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state and check(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"kernel state never matched; last: {state}")
            time.sleep(0.1)

    def version(self) -> int:
        return int(self.page.locator(VERSION).get_attribute("data-ssx-version") or 0)

    def wait_idle(self) -> None:
        """Wait until the widget's job is done (no progress running)."""
        self.page.wait_for_function(
            "() => document.querySelector('.ssx-image').dataset.running === 'false'",
            timeout=120_000,
        )


@pytest.fixture(scope="module")
def live(lab: Any, module_page: Any, write_notebook: Any) -> Live:
    folder = lab.root_dir / "live"
    folder.mkdir(exist_ok=True)
    write_notebook(folder / "live.ipynb", CELLS)
    module_page.set_viewport_size({"width": 1280, "height": 1500})
    lab.run_notebook(module_page, "live/live.ipynb")
    session = Live(module_page, folder)
    session.wait_state(lambda s: s["version"] >= 1)
    return session


@pytest.mark.browser
def test_moving_samples_streams_newer_versions(
    live: Live, timings: dict[str, float]
) -> None:
    """Moving the Samples slider reaches the kernel (debounced) and streams
    partial heatmaps: the canvas shows several newer versions."""
    page = live.page
    live.wait_idle()
    before = live.version()
    page.evaluate(WATCH_VERSIONS)
    slider = page.get_by_label("Samples", exact=True)
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box is not None

    started = time.perf_counter()
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function(
        f"() => (window.ssxVersions || []).some((v) => v > {before})",
        timeout=60_000,
    )
    timings["change_to_first_heatmap_s"] = time.perf_counter() - started
    live.wait_idle()
    timings["change_to_done_s"] = time.perf_counter() - started

    readout = page.locator(".ssx-field[data-control='n_samples'] output")
    shown = int((readout.text_content() or "0").replace(",", ""))
    state = live.wait_state(lambda s: s["n_samples"] == shown)
    assert shown > 300
    versions = page.evaluate("() => window.ssxVersions")
    newer = [v for v in versions if v > before]
    assert len(newer) >= 2, f"no partial heatmaps streamed: {versions}"
    assert newer == sorted(newer)
    assert state["error"] == ""
    assert "evaluations" in (page.locator(".ssx-stats").text_content() or "")


@pytest.mark.browser
def test_a_brushed_rectangle_reaches_python_and_the_charts(live: Live) -> None:
    """A rectangle dragged with the mouse becomes `selection` in Python,
    and the drill-down's bqplot bars show the waterfall and the three
    counterfactual outputs."""
    page = live.page
    live.wait_idle()
    overlay = page.locator(".ssx-image .ssx-stage .ssx-overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    assert box is not None
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.2 * w, y + 0.25 * h)
    page.mouse.down()
    page.mouse.move(x + 0.4 * w, y + 0.4 * h, steps=4)
    page.mouse.move(x + 0.6 * w, y + 0.65 * h, steps=4)
    page.mouse.up()

    state = live.wait_state(
        lambda s: s["kind"] == "rectangle" and len(s["outcomes"]) == 3
    )
    # 32 px image on a 320 px stage: the rectangle covers about 13 × 13 px.
    assert 100 <= state["pixels"] <= 260
    assert state["segments"], "no superpixel selected"
    summary = page.locator(".ssx-selection").text_content() or ""
    assert summary.startswith(f"{state['pixels']} pixels")

    page.wait_for_function(
        f"""() => {{
            const bars = ({READ_BARS})('.ssx-waterfall');
            return bars !== null && bars.length === {len(state["steps"])};
        }}""",
        timeout=30_000,
    )
    steps = page.evaluate(READ_BARS, ".ssx-waterfall")
    assert len(steps) == len(state["steps"]) >= 3
    assert all(sum(group) > 0 for group in steps), "a waterfall bar is empty"
    outcomes = page.evaluate(READ_BARS, ".ssx-counterfactual")
    assert len(outcomes) == 3
    heights = [sum(group) for group in outcomes]
    want = [abs(v) for v in state["outcomes"]]
    # bars are drawn from zero: their heights keep the outputs' proportions
    if max(want) > 0 and min(want) * max(want) > 0:
        ratio = [a / b for a, b in zip(heights, want, strict=True)]
        assert max(ratio) == pytest.approx(min(ratio), rel=0.05)


@pytest.mark.browser
def test_the_compare_view_renders(live: Live, timings: dict[str, float]) -> None:
    """Turning Compare on computes the default methods together and draws
    each in its own panel, with a version."""
    page = live.page
    live.wait_idle()
    started = time.perf_counter()
    page.get_by_label("Compare methods").check()
    state = live.wait_state(lambda s: len(s["methods"]) > 0)
    page.wait_for_function(
        """(n) => document.querySelectorAll(
            '.ssx-panel .ssx-panel-heatmap[data-drawn]').length >= n""",
        arg=len(state["methods"]),
        timeout=120_000,
    )
    live.wait_idle()
    timings["compare_s"] = time.perf_counter() - started
    titles = page.locator(".ssx-panel-title").all_text_contents()
    assert len(titles) == len(set(state["methods"]) | {"lime"})
    assert page.locator(".ssx-panel-error:visible").count() == 0
    assert page.locator(".ssx-error:visible").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".ssx-explainer").first.screenshot(
        path=str(ARTIFACTS / "live-widget.png")
    )
