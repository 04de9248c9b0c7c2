"""The built wheel, installed alone into a fresh environment, draws in Lab."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# Runs in the fresh environment's kernel: the package must come from the
# installed wheel, not from this checkout.
CELLS = [
    """\
import numpy as np
import keras
import ssxwidgets as ssx

assert "site-packages" in ssx.__file__, ssx.__file__
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((16, 16, 3)),
    keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(3),
])
image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)""",
    "ssx.explain(model, image, method='saliency')",
]


def _run(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _source_tree(destination: Path) -> Path:
    """What a fresh clone holds: the files git tracks or would track; no
    built bundle, no node_modules."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.mark.browser
@pytest.mark.slow
def test_wheel_installs_and_draws_offline(
    tmp_path: Path,
    start_lab: Any,
    page: Any,
    write_notebook: Any,
    timings: dict[str, float],
) -> None:
    """A wheel built from a clean source tree carries the front end, installs
    with its dependencies into a fresh venv, and its widget draws in
    JupyterLab started from that venv, with no network in the page."""
    started = time.perf_counter()
    source = _source_tree(tmp_path / "src")
    assert not (source / "ssxwidgets" / "static" / "widget.js").exists()
    dist = tmp_path / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(source),
        ]
    )
    (wheel,) = dist.glob("ssxwidgets-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ssxwidgets/static/widget.js" in names
    assert "ssxwidgets/static/widget.css" in names
    assert not any(n.startswith("js/") for n in names)
    timings["build_wheel_s"] = time.perf_counter() - started

    started = time.perf_counter()
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            str(wheel),
            "tensorflow-cpu",
            "jupyterlab",
        ]
    )
    timings["install_s"] = time.perf_counter() - started

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "wheel.ipynb", CELLS)
    started = time.perf_counter()
    with start_lab(python, root, tmp_path / "lab-state", {"PYTHONPATH": None}) as lab:
        timings["server_ready_s"] = lab.timings["server_ready_s"]
        lab.run_notebook(page, "wheel.ipynb", timings=timings)
        version = page.locator(".ssx-heatmap[data-drawn]").get_attribute(
            "data-ssx-version"
        )
        assert version == "1"
        assert page.locator(".ssx-error:visible").count() == 0
    timings["lab_s"] = time.perf_counter() - started
