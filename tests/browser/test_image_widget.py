"""The image explainer drawn by real JupyterLab, read back pixel by pixel."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssxwidgets import colormaps

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# A small Keras CNN built in the cell, explained through the public call; a
# second cell computes the same saliency map directly for the comparison.
CNN_CELLS = [
    """\
import json
import numpy as np
import keras
import ssxwidgets as ssx

keras.utils.set_random_seed(3)
model = keras.Sequential([
    keras.Input((24, 32, 3)),
    keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
    keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(4),
])
image = np.random.default_rng(3).random((24, 32, 3), dtype=np.float32)""",
    "w = ssx.explain(model, image, method='saliency')\nw",
    """\
expected = ssx.attribute(model, image, method="saliency").map[0]
np.save("expected_map.npy", expected)
with open("widget.json", "w") as f:
    json.dump({"value_range": list(w.value_range), "value_scale": w.value_scale,
               "colormap": w.colormap, "version": w.version,
               "heatmap_shape": list(w.heatmap_shape)}, f)""",
]

READ_CANVAS = """(selector) => {
    const canvas = document.querySelector(selector);
    const ctx = canvas.getContext('2d');
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    return {
        width: canvas.width,
        height: canvas.height,
        version: canvas.dataset.ssxVersion,
        colormap: canvas.dataset.ssxColormap,
        pixels: Array.from(data),
    };
}"""


@pytest.mark.browser
def test_canvas_pixels_match_the_python_heatmap(
    lab: Any,
    page: Any,
    notebook_dir: Path,
    write_notebook: Any,
    timings: dict[str, float],
) -> None:
    """The heatmap canvas holds, pixel for pixel, the saliency map computed in
    Python, colour-mapped with ssxwidgets.colormaps, and names its version."""
    started = time.perf_counter()
    write_notebook(notebook_dir / "cnn.ipynb", CNN_CELLS)
    lab.run_notebook(page, f"{notebook_dir.name}/cnn.ipynb", timings=timings)

    # The last cell wrote the kernel's numbers once the kernel went idle.
    info = json.loads((notebook_dir / "widget.json").read_text())
    expected_map = np.load(notebook_dir / "expected_map.npy")
    drawn = page.evaluate(READ_CANVAS, ".ssx-heatmap")

    assert drawn["version"] == str(info["version"]) == "1"
    assert (drawn["height"], drawn["width"]) == (24, 32) == tuple(expected_map.shape)
    value_range = tuple(info["value_range"])
    name = colormaps.resolve(info["colormap"], value_range)
    assert drawn["colormap"] == name

    # The map as the front end receives it: float16 in units of value_scale.
    sent = (expected_map / info["value_scale"]).astype("<f2")
    want = colormaps.apply(sent, value_range, name).astype(int)
    got = np.asarray(drawn["pixels"], dtype=int).reshape(24, 32, 4)
    close = np.all(np.abs(got - want) <= 2, axis=-1)
    assert close.mean() >= 0.98, f"only {close.mean():.1%} of pixels match"
    assert np.ptp(want[..., :3]) > 50, "a flat map proves nothing"

    widget = page.locator(".ssx-image").first
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "cnn-widget.png"))
    timings["test_s"] = time.perf_counter() - started


QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"


@pytest.mark.browser
def test_quickstart_notebook_shows_the_widget(
    lab: Any, page: Any, notebook_dir: Path, timings: dict[str, float]
) -> None:
    """notebooks/quickstart.ipynb runs top to bottom in JupyterLab and shows
    a drawn image explainer without errors."""
    try:
        import ssxwidgets.demo  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"ssxwidgets.demo is not importable yet: {exc}")
    started = time.perf_counter()
    shutil.copy(QUICKSTART, notebook_dir / "quickstart.ipynb")
    lab.run_notebook(page, f"{notebook_dir.name}/quickstart.ipynb", timings=timings)

    heatmap = page.locator(".ssx-heatmap[data-drawn]").first
    assert int(heatmap.get_attribute("data-ssx-version") or "0") >= 1
    assert page.locator(".ssx-error:visible").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".ssx-image").first.screenshot(
        path=str(ARTIFACTS / "quickstart-widget.png")
    )
    timings["test_s"] = time.perf_counter() - started
