"""The ``ssx`` command.

Usage::

    ssx demo            # JupyterLab on the quickstart notebook, on 127.0.0.1
    ssx demo --port 8890 --dir ~/work
    ssx --version
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from ._log import logger
from ._version import __version__

QUICKSTART = "quickstart.ipynb"


def quickstart_path(folder: Path) -> Path:
    """The quickstart notebook to open from `folder`.

    In a checkout it is ``notebooks/quickstart.ipynb``; from an installed
    wheel the packaged copy is written to `folder` once (never overwritten).
    """
    checkout = folder / "notebooks" / QUICKSTART
    if checkout.exists():
        return checkout
    target = folder / f"ssx-{QUICKSTART}"
    if not target.exists():
        packaged = resources.files("ssxwidgets") / "_notebooks" / QUICKSTART
        with resources.as_file(packaged) as source:
            shutil.copyfile(source, target)
        logger.info("wrote the quickstart notebook to %s", target)
    return target


def lab_command(notebook: Path, folder: Path, port: int | None) -> list[str]:
    """The ``jupyter lab`` command line serving `notebook` on 127.0.0.1."""
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        str(notebook.relative_to(folder)),
        "--ip=127.0.0.1",
        "--no-browser",
        f"--ServerApp.root_dir={folder}",
    ]
    if port is not None:
        command.append(f"--port={port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def main(argv: list[str] | None = None) -> int:
    """Run the ``ssx`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="ssx", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="open JupyterLab on the quickstart")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path.cwd(),
        help="folder to serve (default: the current one)",
    )
    args = parser.parse_args(argv)

    folder = args.dir.resolve()
    notebook = quickstart_path(folder)
    command = lab_command(notebook, folder, args.port)
    sys.stderr.write(f"ssx demo: serving {notebook} — open the URL below\n")
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
