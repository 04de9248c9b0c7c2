"""Sharing a widget: an exported file opened offline, Notebook 7 and Voilà.

The exported file is opened from ``file://`` in a page that may reach nothing
but files, ``data:`` and ``blob:`` URLs; the notebook servers are real ones
(``jupyter notebook``, ``voila``) started on free ports with isolated
settings, their pages allowed only this machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

pytestmark = pytest.mark.browser


def _harness() -> ModuleType:
    """``tests/browser/conftest.py`` as pytest loaded it (its helpers are
    shared, not copied)."""
    path = Path(__file__).with_name("conftest.py")
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(path):
            return module
    spec = importlib.util.spec_from_file_location("ssx_browser_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = _harness()
REPO = harness.REPO
ARTIFACTS = harness.ARTIFACTS
DRAWN = harness.DRAWN
OFFLINE_SCHEMES = {"file", "data", "blob", "about"}

# Voilà's own "lab" template links Font Awesome from a CDN (its icons are
# bundled too); those two requests are aborted like every other, and only
# they are tolerated: the widget itself must need nothing from outside.
VOILA_TEMPLATE_CDN = re.compile(
    r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/fontawesome-free@[^/]+/css/"
    r"(all|v4-shims)\.min\.css$"
)

# The widget as a user makes it: a small CNN built in the cell, then the
# one public call under it.
CELLS = [
    """\
import numpy as np
import keras
import ssxwidgets as ssx

keras.utils.set_random_seed(5)
model = keras.Sequential([
    keras.Input((20, 20, 3)),
    keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(3),
])
image = np.random.default_rng(5).random((20, 20, 3), dtype=np.float32)""",
    "w = ssx.explain(model, image, method='saliency')\nw",
]

READ_CANVAS = """(selector) => {
    const canvas = document.querySelector(selector);
    const ctx = canvas.getContext('2d');
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    return { width: canvas.width, height: canvas.height,
             pixels: Array.from(data) };
}"""

# Whether the page's notebook kernel is idle: Lab and Notebook 7 share the
# application object (exposed by --*App.expose_app_in_browser).
KERNEL_IDLE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const context = panel && panel.sessionContext;
    return !!context && !!context.session &&
        context.kernelDisplayStatus === 'idle';
}"""


def _screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.suppress(Exception):
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _assert_canvas_drawn(page: Any) -> None:
    """The heatmap canvas names a version and holds a map, not a flat fill."""
    heatmap = page.locator(DRAWN).first
    assert int(heatmap.get_attribute("data-ssx-version") or "0") >= 1
    drawn = page.evaluate(READ_CANVAS, DRAWN)
    pixels = np.asarray(drawn["pixels"], dtype=int).reshape(-1, 4)
    assert drawn["width"] > 0 and drawn["height"] > 0
    colours = {tuple(p) for p in pixels[:, :3]}
    assert len(colours) > 8, f"only {len(colours)} colours on the heatmap"
    assert np.ptp(pixels[:, :3]) > 50, "a flat heatmap proves nothing"


@contextlib.contextmanager
def _guarded_page(
    browser: Any,
    name: str,
    allow_hosts: set[str],
    tolerate: re.Pattern[str] | None,
    errors_of: re.Pattern[str] | None,
) -> Iterator[Any]:
    """A page that may load files, data: and blob: URLs and ``allow_hosts``;
    every other request is aborted and fails the test, unless ``tolerate``
    matches it. Console and page errors fail it too: all of them, or those
    matching ``errors_of`` where the host page is not ours. A screenshot is
    left in the artifacts either way."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    blocked: list[str] = []
    tolerated: list[str] = []
    problems: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in OFFLINE_SCHEMES or parts.hostname in allow_hosts:
            route.continue_()
            return
        (tolerated if tolerate and tolerate.match(url) else blocked).append(url)
        route.abort()

    def note(text: str) -> None:
        if errors_of is None or errors_of.search(text):
            problems.append(text)

    def console(msg: Any) -> None:
        if msg.type == "error":
            note(msg.text)

    context.route("**/*", guard)
    tab = context.new_page()
    tab.on("pageerror", lambda error: note(str(error)))
    tab.on("console", console)
    try:
        yield tab
    finally:
        _screenshot(tab, re.sub(r"[^\w.-]+", "_", name))
        context.close()
    if blocked:
        pytest.fail("the page tried to reach the network:\n" + "\n".join(blocked))
    if problems:
        pytest.fail("the page logged errors:\n" + "\n".join(problems))


@pytest.fixture
def offline_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page that may load only files, data: and blob: URLs."""
    with _guarded_page(browser, request.node.name, set(), None, None) as tab:
        yield tab


@pytest.fixture
def voila_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page that may reach only this machine, tolerating the aborted Font
    Awesome links of Voilà's template; errors of Voilà's own extensions are
    its business, those naming ssxwidgets or anywidget fail the test."""
    ours = re.compile(r"ssx|anywidget", re.IGNORECASE)
    with _guarded_page(
        browser, request.node.name, harness.LOCAL_HOSTS, VOILA_TEMPLATE_CDN, ours
    ) as tab:
        yield tab


def _finished_widget() -> Any:
    """`ssx.explain` on a small CNN, once its explanation is complete."""
    import keras

    import ssxwidgets as ssx

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    image = np.random.default_rng(5).random((20, 20, 3), dtype=np.float32)
    widget = ssx.explain(model, image, method="saliency")
    if not widget.wait(60):
        pytest.fail("the widget was still computing after 60 s")
    assert not widget.error, widget.error
    assert widget.explanation is not None and widget.explanation.done
    return widget


def test_exported_widget_draws_from_a_file_offline(
    offline_page: Any, tmp_path: Path, timings: dict[str, float]
) -> None:
    """The file ``save_html`` (or ``write_widget_html``) writes draws the live
    widget from ``file://`` with no kernel and no network: the heatmap
    carries its version and holds a real map, and a control that would need
    the kernel says there is none."""
    widget = _finished_widget()
    path = tmp_path / "shared widget.html"
    started = time.perf_counter()
    try:
        widget.save_html(path)
    finally:
        widget.close()  # no worker thread outlives the test
    timings["export_s"] = time.perf_counter() - started
    timings["export_kib"] = path.stat().st_size / 1024

    page = offline_page
    started = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_selector(DRAWN, state="attached", timeout=30_000)
    timings["open_to_drawn_s"] = time.perf_counter() - started
    _assert_canvas_drawn(page)

    notice = page.locator("#ssx-notice")
    assert notice.is_hidden()
    # The Method select needs the kernel; any select will do where a view
    # has none.
    method = page.locator('.ssx-export-view [data-control="method"] select')
    choices = method if method.count() else page.locator(".ssx-export-view select")
    assert choices.count() > 0, "the exported widget shows no control"
    select = choices.first
    options = select.locator("option").evaluate_all("os => os.map(o => o.value)")
    current = select.input_value()
    select.select_option(next(v for v in options if v != current))
    notice.wait_for(state="visible", timeout=5_000)
    assert "No kernel: static export" in (notice.text_content() or "")
    _screenshot(page, "exported-widget")


# ---------------------------------------------------------------------------
# Notebook 7 and Voilà


@dataclass
class Server:
    """A running notebook server: where it listens and how it logs."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    def log_tail(self, n: int = 60) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


def _environment(state_dir: Path) -> dict[str, str]:
    """Isolated settings, runtime and config folders; this checkout on the
    kernel's path."""
    settings = state_dir / "settings"
    harness._write_settings(settings)
    for name in ("workspaces", "runtime", "config", "ipython", "data"):
        (state_dir / name).mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state_dir / "config"),
        "IPYTHONDIR": str(state_dir / "ipython"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": path,
    }


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _serve(
    command: list[str], port: int, token: str, root: Path, state_dir: Path
) -> Iterator[Server]:
    """Run ``command`` (a server on ``port``) until the block ends; stop it
    by its PID."""
    env = _environment(state_dir)
    log = state_dir / "server.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + harness.SERVER_TIMEOUT_S
        while not _listening(port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{command[2]} exited with {process.returncode}:\n"
                    + server.log_tail()
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[2]} never listened:\n{server.log_tail()}")
            time.sleep(0.25)
        server.timings["server_ready_s"] = time.perf_counter() - started
        yield server
    finally:
        harness._stop(process)


@pytest.fixture
def shared_notebook(tmp_path: Path) -> Path:
    """A folder holding ``shared.ipynb``: the widget cells, never run."""
    root = tmp_path / "root"
    root.mkdir()
    harness._write_notebook(root / "shared.ipynb", CELLS)
    return root


def test_notebook_7_draws_the_widget(
    page: Any,
    shared_notebook: Path,
    tmp_path: Path,
    timings: dict[str, float],
) -> None:
    """The notebook, opened and run in Notebook 7 (``/notebooks/...``),
    shows the drawn widget without errors."""
    port, token = harness._free_port(), uuid.uuid4().hex
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "notebook",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={shared_notebook}",
        "--ServerApp.terminals_enabled=False",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]
    with _serve(command, port, token, shared_notebook, tmp_path / "state") as server:
        timings.update(server.timings)
        started = time.perf_counter()
        page.goto(
            f"{server.url}/notebooks/shared.ipynb?token={token}",
            wait_until="domcontentloaded",
        )
        page.wait_for_function(KERNEL_IDLE, timeout=harness.KERNEL_TIMEOUT_S * 1000)
        timings["open_to_idle_s"] = time.perf_counter() - started

        started = time.perf_counter()
        page.evaluate(
            "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
        )
        page.wait_for_function(
            f"""(drawn) => {{
                const state = ({harness.NOTEBOOK_STATE})();
                return state !== null && (state.errors.length > 0 ||
                    (state.done && document.querySelector(drawn) !== null));
            }}""",
            arg=DRAWN,
            timeout=harness.KERNEL_TIMEOUT_S * 1000,
        )
        state = page.evaluate(f"() => ({harness.NOTEBOOK_STATE})()")
        if state["errors"]:
            traceback = harness.ANSI.sub("", "\n".join(state["errors"]))
            pytest.fail(f"a cell raised in Notebook 7:\n{traceback}")
        timings["run_to_drawn_s"] = time.perf_counter() - started
        _assert_canvas_drawn(page)
        assert page.locator(".ssx-error:visible").count() == 0
        _screenshot(page, "notebook7-widget")


def test_voila_draws_the_widget(
    voila_page: Any,
    shared_notebook: Path,
    tmp_path: Path,
    timings: dict[str, float],
) -> None:
    """The notebook served by Voilà renders as an app: the widget draws, and
    no cell's traceback shows."""
    port, token = harness._free_port(), uuid.uuid4().hex
    command = [
        sys.executable,
        "-m",
        "voila",
        str(shared_notebook / "shared.ipynb"),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        f"--Voila.token={token}",
        "--show_tracebacks=True",
    ]
    page = voila_page
    with _serve(command, port, token, shared_notebook, tmp_path / "state") as server:
        timings.update(server.timings)
        started = time.perf_counter()
        page.goto(f"{server.url}/?token={token}", wait_until="domcontentloaded")
        page.wait_for_function(
            """(drawn) => document.querySelector(drawn) !== null ||
                document.querySelector('.jp-OutputArea-output pre') !== null &&
                /Traceback|Error/.test(document.body.innerText)""",
            arg=DRAWN,
            timeout=harness.KERNEL_TIMEOUT_S * 1000,
        )
        timings["open_to_drawn_s"] = time.perf_counter() - started
        if page.locator(DRAWN).count() == 0:
            pytest.fail(
                "Voilà showed an error:\n"
                + page.locator("body").inner_text()[-3000:]
                + "\n--- server log ---\n"
                + server.log_tail()
            )
        _assert_canvas_drawn(page)
        assert page.locator(".ssx-error:visible").count() == 0
        _screenshot(page, "voila-widget")
