"""The ``ssx`` command: ``ssx demo`` serves the quickstart on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ssxwidgets import cli


def test_quickstart_is_copied_once_outside_a_checkout(tmp_path: Path) -> None:
    """Outside a checkout the packaged quickstart is written once and a
    user's edits to it are never overwritten."""
    notebook = cli.quickstart_path(tmp_path)
    assert notebook == tmp_path / "ssx-quickstart.ipynb"
    assert '"python3"' in notebook.read_text()
    notebook.write_text("edited")
    assert cli.quickstart_path(tmp_path).read_text() == "edited"


def test_url_opens_the_notebook_on_localhost(tmp_path: Path) -> None:
    """The printed URL points at the notebook, on 127.0.0.1, with the token."""
    url = cli.notebook_url(tmp_path / "a b.ipynb", tmp_path, 8890, "t0k")
    assert url == "http://127.0.0.1:8890/lab/tree/a%20b.ipynb?token=t0k"
    command = cli.lab_command(tmp_path / "a b.ipynb", tmp_path, 8890, "t0k")
    assert "--ip=127.0.0.1" in command and "--IdentityProvider.token=t0k" in command


def test_ssx_demo_serves_the_quickstart(tmp_path: Path) -> None:
    """``ssx demo`` starts JupyterLab, prints a URL, and that URL serves the
    quickstart notebook's page."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssxwidgets.cli",
            "demo",
            "--dir",
            str(tmp_path),
            "--port",
            str(cli.free_port(18890)),
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        match = re.search(r"open (http://127\.0\.0\.1:\d+/lab/tree/\S+)", first)
        assert match, first
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(match.group(1), timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
