"""The image explainer drawn by real JupyterLab, read back pixel by pixel."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from ssxwidgets import colormaps

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# Appended to the quickstart: once the widget is done, the kernel writes the
# map it sent, the same map computed directly, and where the object is.
CHECK_CELL = """\
import json
import numpy as np
w.wait()
np.save("expected_map.npy", ssx.attribute(model, image, method="saliency").map[0])
rows, cols = np.nonzero(data.masks[0])
with open("widget.json", "w") as f:
    json.dump({"value_range": list(w.view.value_range),
               "value_scale": w.view.value_scale,
               "colormap": w.colormap, "version": w.version,
               "heatmap_shape": list(w.view.heatmap_shape),
               "object": [int(rows.min()), int(cols.min()),
                          int(rows.max()) + 1, int(cols.max()) + 1]}, f)"""

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


QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"


@pytest.mark.browser
def test_quickstart_draws_the_python_heatmap(
    lab: Any, page: Any, notebook_dir: Path, timings: dict[str, float]
) -> None:
    """notebooks/quickstart.ipynb runs top to bottom in JupyterLab; the
    heatmap canvas holds, pixel for pixel, the saliency map computed in
    Python, colour-mapped with ssxwidgets.colormaps; brushing the object
    draws the drill-down. The view is kept as docs/screenshot.png."""
    try:
        from ssxwidgets.demo import image_models
    except ImportError as exc:
        pytest.skip(f"ssxwidgets.demo is not importable yet: {exc}")
    if not (image_models.WEIGHTS_DIR / image_models.PROBE_FILE).is_file():
        pytest.skip("the demo probe's weights are not trained yet")
    started = time.perf_counter()
    page.set_viewport_size({"width": 1280, "height": 1500})
    notebook = nbformat.read(str(QUICKSTART), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    nbformat.write(notebook, str(notebook_dir / "quickstart.ipynb"))
    lab.run_notebook(page, f"{notebook_dir.name}/quickstart.ipynb", timings=timings)

    # The last cell wrote the kernel's numbers once the kernel went idle.
    info = json.loads((notebook_dir / "widget.json").read_text())
    expected_map = np.load(notebook_dir / "expected_map.npy")
    page.wait_for_function(
        "(v) => document.querySelector('.ssx-heatmap').dataset.ssxVersion === v",
        arg=str(info["version"]),
    )
    drawn = page.evaluate(READ_CANVAS, ".ssx-heatmap")
    assert (drawn["height"], drawn["width"]) == tuple(expected_map.shape)
    assert tuple(info["heatmap_shape"]) == expected_map.shape
    value_range = tuple(info["value_range"])
    name = colormaps.resolve(info["colormap"], value_range)
    assert drawn["colormap"] == name

    # The map as the front end receives it: float16 in units of value_scale.
    sent = (expected_map / info["value_scale"]).astype("<f2")
    want = colormaps.apply(sent, value_range, name).astype(int)
    got = np.asarray(drawn["pixels"], dtype=int).reshape(*expected_map.shape, 4)
    close = np.all(np.abs(got - want) <= 2, axis=-1)
    assert close.mean() >= 0.98, f"only {close.mean():.1%} of pixels match"
    assert np.ptp(want[..., :3]) > 50, "a flat map proves nothing"
    assert page.locator(".ssx-error:visible").count() == 0

    # Brush the object, as a user would, for the drill-down in the picture.
    overlay = page.locator(".ssx-image .ssx-stage .ssx-overlay").first
    page.locator(".ssx-explainer").first.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    assert box is not None
    h, w = expected_map.shape
    top, left, bottom, right = info["object"]
    page.mouse.move(
        box["x"] + left / w * box["width"], box["y"] + top / h * box["height"]
    )
    page.mouse.down()
    page.mouse.move(
        box["x"] + right / w * box["width"],
        box["y"] + bottom / h * box["height"],
        steps=6,
    )
    page.mouse.up()
    page.wait_for_function(
        """() => document.querySelector('.ssx-counterfactual')
            .querySelectorAll('.bargroup').length === 3""",
        timeout=60_000,
    )
    widget = page.locator(".ssx-explainer").first
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "quickstart-widget.png"))
    widget.screenshot(path=str(REPO / "docs" / "screenshot.png"))
    timings["test_s"] = time.perf_counter() - started
