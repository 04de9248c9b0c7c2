"""Reproduce the shipped demo models: ``python -m ssxwidgets.demo.train NAME``.

``NAME`` is one of ``shapes`` (contrastive encoder and linear probe),
``shortcut`` (supervised classifier on the shortcut variant), ``medical``
(tabular self-supervised encoder, probe and plain classifier) and ``credit``
(credit-default model). ``--quick`` runs a few steps only, into a scratch
folder, which is how the test suite keeps every script from rotting.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

WEIGHTS = Path(__file__).with_name("weights")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ssxwidgets.demo.train")
    parser.add_argument("name", choices=["shapes", "shortcut", "medical", "credit"])
    parser.add_argument("--quick", action="store_true", help="a few steps only")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    if args.name in ("shapes", "shortcut"):
        from . import train_images as trainer
    else:
        from . import train_tables as trainer  # type: ignore[no-redef]
    trainer.train(args.name, out=args.out, seed=args.seed, quick=args.quick)


if __name__ == "__main__":
    main()
