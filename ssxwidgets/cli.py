"""The ``ssx`` command.

Usage::

    ssx demo            # JupyterLab on the quickstart notebook, on 127.0.0.1
    ssx demo --port 8890 --dir ~/work
    ssx report --model model.keras --inputs images.npy --out report.html
    ssx report --model demo:probe --inputs demo:shapes:4 \
        --method integrated_gradients --method lime --param n_samples=500 --metrics
    ssx --version
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
            # an editable install has no packaged copy; its checkout has one
            if not source.is_file():
                source = Path(__file__).parents[1] / "notebooks" / QUICKSTART
            shutil.copyfile(source, target)
        logger.info("wrote the quickstart notebook to %s", target)
    return target


def free_port(start: int = 8888, tries: int = 50) -> int:
    """The first port from `start` that nothing listens on at 127.0.0.1."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {start}-{start + tries - 1}; pass --port")


def lab_command(notebook: Path, folder: Path, port: int, token: str) -> list[str]:
    """The ``jupyter lab`` command line serving `notebook` on 127.0.0.1."""
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--ip=127.0.0.1",
        "--no-browser",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def notebook_url(notebook: Path, folder: Path, port: int, token: str) -> str:
    """The URL that opens `notebook` in JupyterLab."""
    relative = notebook.relative_to(folder).as_posix()
    return f"http://127.0.0.1:{port}/lab/tree/{quote(relative)}?token={token}"


# ---------------------------------------------------------------------------
# ssx report

#: ``demo:<name>`` models: loader module and function in ``ssxwidgets.demo``
DEMO_MODELS = {
    "probe": "load_probe",
    "encoder": "load_encoder",
    "shortcut": "load_shortcut_classifier",
    "random_encoder": "load_random_encoder",
    "credit": "load_credit_model",
    "medical_probe": "load_medical_probe",
    "medical_encoder": "load_medical_encoder",
    "medical_classifier": "load_medical_classifier",
}

#: ``demo:<name>:N[:seed]`` inputs
DEMO_INPUTS = ("shapes", "credit", "breast_cancer")

#: rows of generated data that stand in for the background of table methods
BACKGROUND_ROWS = 100


@dataclass
class ReportInputs:
    """What ``--inputs`` named, with anything that goes with it."""

    inputs: Any
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    background: Any = None


def load_model(spec: str) -> Any:
    """The model ``--model`` names: ``demo:<name>``, a ``.keras`` / ``.h5``
    file, or a SavedModel folder."""
    if spec.startswith("demo:"):
        name = spec.removeprefix("demo:")
        if name not in DEMO_MODELS:
            raise ValueError(
                f"expected a demo model out of {', '.join(DEMO_MODELS)}; got {name!r}"
            )
        from . import demo

        return getattr(demo, DEMO_MODELS[name])()
    path = Path(spec)
    if path.is_dir():
        import tensorflow as tf

        return tf.saved_model.load(str(path))
    if not path.is_file():
        raise ValueError(
            f"expected a Keras model file (.keras, .h5), a SavedModel folder or "
            f"demo:<name>; {spec!r} does not exist"
        )
    import keras

    return keras.models.load_model(path, compile=False)


def _demo_inputs(spec: str) -> ReportInputs:
    parts = spec.removeprefix("demo:").split(":")
    name = parts[0]
    if name not in DEMO_INPUTS or len(parts) > 3:
        raise ValueError(
            f"expected demo inputs as demo:<{'|'.join(DEMO_INPUTS)}>:N[:seed]; "
            f"got {spec!r}"
        )
    try:
        n = int(parts[1]) if len(parts) > 1 else 4
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise ValueError(f"expected whole numbers for N and seed in {spec!r}") from None
    from . import demo

    if name == "shapes":
        data = demo.shapes(n, seed=seed)
        return ReportInputs(data.images, class_names=list(data.class_names))
    if name == "credit":
        book = demo.credit(n, seed=seed)
        background = demo.credit(BACKGROUND_ROWS, seed=seed + 1).data
        return ReportInputs(book.data, list(book.feature_names), None, background)
    table = demo.breast_cancer()
    return ReportInputs(
        table.x_test[seed : seed + n],
        list(table.feature_names),
        list(table.class_names),
        table.x_train[:BACKGROUND_ROWS],
    )


def load_inputs(specs: list[str]) -> ReportInputs:
    """The batch ``--inputs`` names: ``demo:<data>:N[:seed]``, ``.npy`` /
    ``.npz`` files, or image files (``.png``, ``.jpg``) scaled to [0, 1]."""
    import numpy as np

    if len(specs) == 1 and specs[0].startswith("demo:"):
        return _demo_inputs(specs[0])
    arrays = []
    for spec in specs:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"expected an input file or demo:...; {spec!r} is none")
        suffix = path.suffix.lower()
        if suffix == ".npy":
            arrays.append(np.load(path, allow_pickle=False))
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays.append(archive[archive.files[0]])
        else:
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
            arrays.append(pixels[None] / 255.0)
    batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return ReportInputs(batch)


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value``: a JSON or Python literal, ``@file.npy`` for an array,
    else the text itself."""
    import ast

    import numpy as np

    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"expected --param key=value; got {text!r}")
    if raw.startswith("@"):
        return key, np.load(raw[1:], allow_pickle=False)
    for parse in (json.loads, ast.literal_eval):
        try:
            return key, parse(raw)
        except (ValueError, SyntaxError):
            continue
    return key, raw


def _parse_target(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def add_report_parser(commands: Any) -> None:
    """Add ``ssx report`` to the subcommands."""
    from .methods import METHOD_NAMES

    report = commands.add_parser(
        "report",
        help="explain a model on inputs and write a self-contained HTML report",
        description=(
            "Explain a model on some inputs with one or more methods and write "
            "one HTML file that renders offline."
        ),
    )
    report.add_argument(
        "--model",
        required=True,
        help="a .keras/.h5 file, a SavedModel folder, or demo:<name> "
        f"({', '.join(DEMO_MODELS)})",
    )
    report.add_argument(
        "--inputs",
        required=True,
        nargs="+",
        help=".npy/.npz files, image files, or demo:<data>:N[:seed] "
        f"({', '.join(DEMO_INPUTS)})",
    )
    report.add_argument(
        "--method",
        action="append",
        choices=METHOD_NAMES,
        metavar="METHOD",
        help="an attribution method; repeat for several (default: "
        f"integrated_gradients): {', '.join(METHOD_NAMES)}",
    )
    report.add_argument(
        "--target", help="a class index, 'top' or 'embedding' (default: the model's)"
    )
    report.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method parameter, e.g. n_steps=64 or baseline=blur; "
        "@file.npy for an array; given to every method that takes it",
    )
    report.add_argument("--seed", type=int, default=0, help="seed of every draw")
    report.add_argument(
        "--metrics",
        action="store_true",
        help="also measure deletion and insertion AUC of every explanation",
    )
    report.add_argument("--title", default=None, help="the report's title")
    report.add_argument(
        "--out",
        type=Path,
        default=Path("report.html"),
        help="the HTML file to write (default: report.html)",
    )


def _method_params(methods: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each method's share of ``params``; an error for a parameter none takes."""
    from .methods import get_spec

    specs = [get_spec(m) for m in methods]
    unknown = sorted(k for k in params if not any(k in s.defaults for s in specs))
    if unknown:
        known = sorted({k for s in specs for k in s.defaults})
        raise ValueError(
            f"no chosen method takes {', '.join(unknown)}; they take: "
            f"{', '.join(known) or 'nothing'}"
        )
    return [{k: v for k, v in params.items() if k in s.defaults} for s in specs]


def run_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Compute the explanations ``ssx report`` asks for and write the report."""
    from .api import attribute
    from .methods import get_spec
    from .models import adapt
    from .report import report

    methods = args.method or ["integrated_gradients"]
    try:
        params = dict(parse_param(p) for p in args.param)
        shares = _method_params(methods, params)
        given = load_inputs(args.inputs)
        model = load_model(args.model)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    adapter = adapt(model, class_names=given.class_names)
    target = _parse_target(args.target)
    inputs = adapter.prepare_inputs(given.inputs)

    explanations, metrics = [], []
    for method, share in zip(methods, shares, strict=True):
        if "background" in get_spec(method).defaults and given.background is not None:
            share.setdefault("background", given.background)
        started = time.perf_counter()
        try:
            exp = attribute(adapter, inputs, method, target, seed=args.seed, **share)
        except (ValueError, TypeError) as exc:
            sys.stderr.write(f"ssx report: {method} failed: {exc}\n")
            return 1
        sys.stderr.write(
            f"ssx report: {method} on {len(inputs)} input(s), "
            f"{exp.n_evaluations} evaluations, {time.perf_counter() - started:.1f} s\n"
        )
        explanations.append(exp)
        if args.metrics:
            metrics.append(_faithfulness(adapter, inputs, exp, target))

    out = report(
        explanations,
        args.out,
        title=args.title,
        inputs=inputs,
        metrics=metrics if args.metrics else None,
        feature_names=given.feature_names,
    )
    size = out.stat().st_size
    sys.stderr.write(f"ssx report: wrote {out} ({size / 1024:.0f} KiB)\n")
    return 0


def _faithfulness(adapter: Any, inputs: Any, exp: Any, target: Any) -> dict[str, Any]:
    from . import metrics

    return {
        "deletion": metrics.deletion(adapter, inputs, exp, target=target),
        "insertion": metrics.insertion(adapter, inputs, exp, target=target),
    }


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
    add_report_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "report":
        return run_report(args, parser)

    folder = args.dir.resolve()
    notebook = quickstart_path(folder)
    port = args.port or free_port()
    token = secrets.token_hex(16)
    url = notebook_url(notebook, folder, port, token)
    sys.stderr.write(f"ssx demo: open {url}\n")
    return subprocess.call(lab_command(notebook, folder, port, token))


if __name__ == "__main__":
    raise SystemExit(main())
