"""Front-end latency of the live image explainer, in real JupyterLab.

Run from the repository root::

    .venv/bin/python -m benchmarks.latency            # 10 changes per scenario
    .venv/bin/python -m benchmarks.latency --changes 20

JupyterLab (the browser tests' harness, ``tests/browser/conftest.py``) runs a
notebook that shows ``ssx.explain(model, image)`` on the demo probe
(``demo.load_probe()``; a small CNN of the same input shape when its weights
are not shipped), in headless Chromium that may reach only this machine. The
page records, with a MutationObserver, when the heatmap's
``data-ssx-version`` changes and when the view's ``data-running`` flips; each
control change is made in the page (as a user's click) and timed from there:

- **first**: the change → the first new heatmap drawn (target ≤ 250 ms);
- **last**: the change → the last heatmap of that computation, drawn once
  the kernel says it is done.

Scenarios: the Method select cycling through gradient methods, and the
Samples slider of LIME moved to a new count (raising it continues from the
samples drawn, lowering it reuses a prefix). Prints median and p95 of each;
writes ``benchmarks/results/latency.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TARGET_FIRST_MS = 250.0
#: seconds one change may take to finish before the run gives up on it
CHANGE_TIMEOUT_S = 120.0
#: quiet time after a computation ends before the next change
SETTLE_S = 0.4

METHOD_CYCLE = ("gradient_x_input", "integrated_gradients", "smoothgrad", "saliency")
#: positions of the log-scaled Samples track (0–1000): about 300 to 2,000
SAMPLES_POSITIONS = (330, 560, 420, 600, 380, 520, 450, 580, 400, 540)

SETUP_CELL = """\
import os
import numpy as np
import ssxwidgets as ssx
from ssxwidgets import demo

try:
    model = demo.load_probe()
    MODEL = "demo probe (encoder + linear probe, 64x64x3 -> 6 logits)"
except FileNotFoundError:
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(24, 5, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(48, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(6),
    ])
    MODEL = "small CNN (probe weights absent), 64x64x3 -> 6 logits"
image = demo.shapes(1, seed=3).images[0]
with open("model.txt", "w") as f:
    f.write(f"{MODEL} on {ssx.models.device_name()}")"""

WIDGET_CELL = "w = ssx.explain(model, image, method='saliency')\nw"

# Installed once in the page: every heatmap version drawn and every change of
# the view's running flag, timestamped on the page's clock.
OBSERVE = """() => {
    const view = document.querySelector('.ssx-image');
    const heatmap = view.querySelector('.ssx-heatmap');
    window.ssxEvents = [];
    const observer = new MutationObserver((records) => {
        const t = performance.now();
        for (const r of records) {
            if (r.target === heatmap && r.attributeName === 'data-ssx-version') {
                window.ssxEvents.push({t, kind: 'frame',
                                       value: heatmap.dataset.ssxVersion});
            } else if (r.target === view && r.attributeName === 'data-running') {
                window.ssxEvents.push({t, kind: 'running',
                                       value: view.dataset.running});
            }
        }
    });
    observer.observe(heatmap, {attributes: true,
                               attributeFilter: ['data-ssx-version']});
    observer.observe(view, {attributes: true, attributeFilter: ['data-running']});
}"""

# A user's change of a control: the value set, then the events a click
# fires; returns the page time just before the events.
CHANGE = """([selector, value]) => {
    const control = document.querySelector(selector);
    control.value = String(value);
    const t0 = performance.now();
    control.dispatchEvent(new Event('input', {bubbles: true}));
    control.dispatchEvent(new Event('change', {bubbles: true}));
    return t0;
}"""

# Done: after t0 the view was seen running and then not running.
DONE = """(t0) => {
    const after = window.ssxEvents.filter((e) => e.t >= t0 &&
                                          e.kind === 'running');
    const started = after.findIndex((e) => e.value === 'true');
    return started >= 0 &&
        after.slice(started).some((e) => e.value === 'false');
}"""

IDLE = """() => document.querySelector('.ssx-image').dataset.running !== 'true'"""


def harness() -> ModuleType:
    """The browser tests' harness, ``tests/browser/conftest.py``."""
    path = REPO / "tests" / "browser" / "conftest.py"
    spec = importlib.util.spec_from_file_location("ssx_browser_harness", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the browser harness at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100), linear between order statistics."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed_change(page: Any, selector: str, value: Any) -> dict[str, float]:
    """Make one change and wait for its computation to end; milliseconds from
    the change to the first and to the last new heatmap."""
    page.wait_for_function(IDLE, timeout=CHANGE_TIMEOUT_S * 1000)
    time.sleep(SETTLE_S)
    t0 = page.evaluate(CHANGE, [selector, value])
    page.wait_for_function(DONE, arg=t0, timeout=CHANGE_TIMEOUT_S * 1000)
    time.sleep(SETTLE_S)  # a final frame may follow the running flag
    events = page.evaluate("(t0) => window.ssxEvents.filter((e) => e.t >= t0)", t0)
    frames = [e["t"] for e in events if e["kind"] == "frame"]
    if not frames:
        raise RuntimeError(f"setting {selector} to {value!r} drew no new heatmap")
    return {
        "first_ms": frames[0] - t0,
        "last_ms": frames[-1] - t0,
        "frames": float(len(frames)),
    }


def summarise(name: str, rows: list[dict[str, float]]) -> dict[str, Any]:
    first = [r["first_ms"] for r in rows]
    last = [r["last_ms"] for r in rows]
    summary = {
        "changes": len(rows),
        "first_median_ms": statistics.median(first),
        "first_p95_ms": percentile(first, 95),
        "last_median_ms": statistics.median(last),
        "last_p95_ms": percentile(last, 95),
        "frames_median": statistics.median(r["frames"] for r in rows),
        "rows": rows,
    }
    first_median = statistics.median(first)
    verdict = "meets" if first_median <= TARGET_FIRST_MS else "misses"
    print(
        f"{name:<34} first: median {summary['first_median_ms']:7.0f} ms, "
        f"p95 {summary['first_p95_ms']:7.0f} ms | last: median "
        f"{summary['last_median_ms']:7.0f} ms, p95 {summary['last_p95_ms']:7.0f} ms"
        f" | frames {summary['frames_median']:.0f} | {verdict} the "
        f"{TARGET_FIRST_MS:.0f} ms target"
    )
    return summary


def run(changes: int) -> dict[str, Any]:
    """Start Lab and Chromium, run both scenarios, stop everything."""
    from playwright.sync_api import sync_playwright

    h = harness()
    work = Path(tempfile.mkdtemp(prefix="ssx-latency-"))
    root, state = work / "root", work / "state"
    root.mkdir()
    h._write_notebook(root / "latency.ipynb", [SETUP_CELL, WIDGET_CELL])
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    results: dict[str, Any] = {}

    with (
        h._start_lab(sys.executable, root, state, {"PYTHONPATH": path}) as lab,
        sync_playwright() as playwright,
    ):
        options: dict[str, Any] = {"headless": True, "args": h.CHROMIUM_FLAGS}
        if h.DEBIAN_CHROMIUM.exists():
            options["executable_path"] = str(h.DEBIAN_CHROMIUM)
        browser = playwright.chromium.launch(**options)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        blocked: list[str] = []

        def guard(route: Any) -> None:
            if h._is_local(route.request.url):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        lab.run_notebook(page, "latency.ipynb")
        page.wait_for_function(IDLE, timeout=CHANGE_TIMEOUT_S * 1000)
        page.evaluate(OBSERVE)
        results["model"] = (root / "model.txt").read_text()
        print(f"model: {results['model']}")

        method = '.ssx-image [data-control="method"] select'
        rows = [
            timed_change(page, method, METHOD_CYCLE[i % len(METHOD_CYCLE)])
            for i in range(changes)
        ]
        results["method select (gradient methods)"] = summarise(
            "method select (gradient methods)", rows
        )

        timed_change(page, method, "lime")  # the scenario's starting point
        samples = '.ssx-image [data-control="n_samples"] input'
        rows = []
        for i in range(changes):
            position = SAMPLES_POSITIONS[i % len(SAMPLES_POSITIONS)]
            row = timed_change(page, samples, position)
            row["n_samples"] = float(
                page.evaluate(
                    "(s) => Number(document.querySelector(s).parentElement"
                    ".querySelector('output').textContent.replace(/,/g, ''))",
                    samples,
                )
            )
            rows.append(row)
        results["samples slider (lime)"] = summarise("samples slider (lime)", rows)

        page.screenshot(path=str(work / "latency.png"), full_page=True)
        context.close()
        browser.close()
        if blocked:
            raise RuntimeError("the page tried to reach the network: " + str(blocked))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=10, help="per scenario")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    results = run(args.changes)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    results["wall_s"] = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latency.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out} in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
