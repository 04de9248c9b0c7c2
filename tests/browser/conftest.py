"""Real JupyterLab in headless Chromium, offline.

Fixtures:

- ``start_lab``: a context manager that starts ``jupyter lab`` from any
  Python on a free port with isolated settings, and stops it by PID;
- ``lab``: one server from this environment for the session, serving a
  temporary folder;
- ``browser``: headless Chromium (Debian's when present);
- ``page``: a fresh page per test that aborts every request not to this
  machine, fails the test if one was tried, and leaves a screenshot in
  ``tests/browser/artifacts/``.

``LabServer.run_notebook(page, path)`` opens a notebook, runs every cell and
waits for what the page shows: the kernel idle and the widget drawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
LOCAL_SCHEMES = {"data", "blob", "file", "about"}

#: seconds to wait for the server, a kernel going idle, a widget drawing
SERVER_TIMEOUT_S = 90
KERNEL_TIMEOUT_S = 180

# Stops the news prompt and the update check of JupyterLab's notifications.
NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}

DRAWN = ".ssx-heatmap[data-drawn]"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The open notebook, read from JupyterLab's own model: whether every code
# cell has run, and the tracebacks of those that raised (null: no notebook).
NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model) {
        return null;
    }
    const errors = [];
    let done = true;
    for (const cell of panel.content.model.cells) {
        if (cell.type !== 'code') {
            continue;
        }
        if (cell.executionCount === null || cell.executionState === 'running') {
            done = false;
        }
        for (const out of cell.outputs.toJSON()) {
            if (out.output_type === 'error') {
                errors.push(out.traceback.join('\\n'));
            }
        }
    }
    return { done, errors };
}"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab: where it listens and how to reach a notebook."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    def log_tail(self, n: int = 60) -> str:
        """The last ``n`` lines of the server's log."""
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def notebook_url(self, name: str) -> str:
        """The Lab URL that opens ``name`` (relative to the root) afresh."""
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def run_notebook(
        self,
        page: Any,
        name: str,
        *,
        widgets: int = 1,
        timings: dict[str, float] | None = None,
    ) -> None:
        """Open notebook ``name``, run all its cells, and wait until the
        kernel is idle and ``widgets`` heatmaps are drawn.

        Fails with the cell's traceback when a cell raises. Records
        ``open_to_idle_s`` and ``run_to_drawn_s`` in ``timings``.
        """
        timings = self.timings if timings is None else timings
        started = time.perf_counter()
        page.goto(self.notebook_url(name), wait_until="domcontentloaded")
        wait_kernel_idle(page)
        timings["open_to_idle_s"] = time.perf_counter() - started

        started = time.perf_counter()
        page.wait_for_function(f"() => ({NOTEBOOK_STATE})() !== null")
        # Not awaited: its promise settles only when every cell has run.
        page.evaluate(
            "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
        )
        # Wait until the widgets are drawn and every cell has run, or a cell
        # failed: then stop at once with its traceback.
        page.wait_for_function(
            f"""([drawn, n]) => {{
                const state = ({NOTEBOOK_STATE})();
                return state.errors.length > 0 || (state.done &&
                    document.querySelectorAll(drawn).length >= n);
            }}""",
            arg=[DRAWN, widgets],
            timeout=KERNEL_TIMEOUT_S * 1000,
        )
        state = page.evaluate(f"() => ({NOTEBOOK_STATE})()")
        if state["errors"]:
            traceback = ANSI.sub("", "\n".join(state["errors"]))
            pytest.fail(f"a cell of {name} raised:\n{traceback}")
        wait_kernel_idle(page)
        timings["run_to_drawn_s"] = time.perf_counter() - started


def wait_kernel_idle(page: Any) -> None:
    """Wait until the status bar shows the notebook's kernel idle."""
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('#jp-main-statusbar');
            return bar !== null && /\\|\\s*Idle/.test(bar.textContent || '');
        }""",
        timeout=KERNEL_TIMEOUT_S * 1000,
    )


def _write_settings(settings_dir: Path) -> None:
    plugin = settings_dir / "@jupyterlab" / "apputils-extension"
    plugin.mkdir(parents=True, exist_ok=True)
    (plugin / "notification.jupyterlab-settings").write_text(
        json.dumps(NOTIFICATION_SETTINGS)
    )


@contextlib.contextmanager
def _start_lab(
    python: str | Path,
    root_dir: Path,
    state_dir: Path,
    extra_env: dict[str, str | None] | None = None,
) -> Iterator[LabServer]:
    """Start ``python -m jupyter lab`` serving ``root_dir``; stop it by PID.

    ``extra_env`` adds variables to the server's (and its kernels')
    environment; a value of ``None`` removes one.
    """
    settings = state_dir / "settings"
    _write_settings(settings)
    for name in ("workspaces", "runtime", "config", "ipython"):
        (state_dir / name).mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state_dir / "config"),
        "IPYTHONDIR": str(state_dir / "ipython"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for key, value in (extra_env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    port = _free_port()
    token = uuid.uuid4().hex
    log = state_dir / "server.log"
    command = [
        str(python),
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.expose_app_in_browser=True",
    ]
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root_dir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, process, log)
    try:
        _wait_ready(server)
        server.timings["server_ready_s"] = time.perf_counter() - started
        yield server
    finally:
        _stop(process)


def _wait_ready(server: LabServer) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    status = f"{server.url}/api/status?token={server.token}"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with {server.process.returncode}:\n"
                + server.log_tail()
            )
        try:
            with urllib.request.urlopen(status, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"jupyter lab not ready after {SERVER_TIMEOUT_S} s:\n" + server.log_tail()
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (it shuts its kernels down), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


KERNELSPEC = {
    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)"},
    "language_info": {"name": "python"},
}


def _write_notebook(path: Path, cells: list[str]) -> Path:
    """An nbformat 4 notebook of code cells that opens on the python3 kernel
    without a kernel dialog."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata=KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, str(path))
    return path


#: seconds each browser test spent in each phase, reported at the end
TIMINGS: dict[str, dict[str, float]] = {}


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> dict[str, float]:
    """A dict for this test's phase timings (seconds), shown in the summary
    and written to artifacts/timings.json."""
    return TIMINGS.setdefault(request.node.name, {})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print and save the phase timings of the browser tests that ran."""
    if not TIMINGS:
        return
    terminalreporter.section("browser test timings (s)")
    for name, phases in TIMINGS.items():
        line = ", ".join(f"{k}={v:.1f}" for k, v in phases.items())
        terminalreporter.write_line(f"{name}: {line}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=2))


@pytest.fixture(scope="session")
def write_notebook() -> Any:
    """``write_notebook(path, cells)``: a notebook of those code cells."""
    return _write_notebook


@pytest.fixture(scope="session")
def start_lab() -> Any:
    """``start_lab(python, root_dir, state_dir, extra_env=None)``: a context
    manager giving a running `LabServer`."""
    return _start_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab from this environment, its kernels importing this
    checkout, serving an empty temporary folder."""
    if not (REPO / "ssxwidgets" / "static" / "widget.js").is_file():
        pytest.fail("the front end is not built: run `npm --prefix js run build`")
    root = tmp_path_factory.mktemp("lab-root")
    state = tmp_path_factory.mktemp("lab-state")
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with _start_lab(sys.executable, root, state, {"PYTHONPATH": path}) as server:
        TIMINGS["jupyterlab (session server)"] = server.timings
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium: Debian's binary when present, else Playwright's."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        options: dict[str, Any] = {"headless": True, "args": CHROMIUM_FLAGS}
        if DEBIAN_CHROMIUM.exists():
            options["executable_path"] = str(DEBIAN_CHROMIUM)
        chromium = playwright.chromium.launch(**options)
        try:
            yield chromium
        finally:
            chromium.close()


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.hostname in LOCAL_HOSTS


@contextlib.contextmanager
def _offline_page(browser: Any, name: str) -> Iterator[Any]:
    """A page whose every request not to this machine is aborted and
    recorded (``page.ssx_blocked``); a full-page screenshot named ``name``
    is saved in the artifacts folder at the end, and the caller fails if a
    request was blocked."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    blocked: list[str] = []
    problems: list[str] = []

    def guard(route: Any) -> None:
        if _is_local(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    tab = context.new_page()
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on(
        "console",
        lambda msg: problems.append(msg.text) if msg.type == "error" else None,
    )
    tab.ssx_console_errors = problems
    tab.ssx_blocked = blocked
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        safe = re.sub(r"[^\w.-]+", "_", name)
        with contextlib.suppress(Exception):
            tab.screenshot(path=str(ARTIFACTS / f"{safe}.png"), full_page=True)
        context.close()


def fail_if_blocked(page: Any) -> None:
    """Fail the test when the page tried to reach the network."""
    if page.ssx_blocked:
        pytest.fail(
            "the page tried to reach the network:\n" + "\n".join(page.ssx_blocked)
        )


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page that may reach only this machine.

    Every other request is aborted and recorded; the test fails if there was
    one. A full-page screenshot is saved in the artifacts folder either way.
    """
    with _offline_page(browser, request.node.name) as tab:
        yield tab
    fail_if_blocked(tab)


@pytest.fixture(scope="module")
def module_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """One offline page (as `page`) shared by the tests of a module, so they
    open one notebook once; the last test's state is screenshotted."""
    with _offline_page(browser, f"{request.module.__name__}-shared") as tab:
        yield tab
    fail_if_blocked(tab)


@pytest.fixture
def notebook_dir(lab: LabServer, request: pytest.FixtureRequest) -> Path:
    """A fresh folder inside the server's root for one test's notebook; kept
    (pytest's temporary folders clean up) so the page can still see it."""
    folder = lab.root_dir / re.sub(r"[^\w-]+", "_", request.node.name)
    folder.mkdir()
    return folder
