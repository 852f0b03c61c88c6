"""``vqrec-fast`` command line. Each command group lives in its own module under
``vqrec_fast.cli`` and exposes ``register(subparsers)``; the modules are listed in COMMANDS."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# Module names under vqrec_fast.cli, each with register(subparsers) adding its commands.
COMMANDS: List[str] = [
    "info",
    "data",
    "encode",
    "codes",
    "train",
    "quickstart",
    "pretrain",
    "finetune",
    "experiment",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqrec-fast",
        description="Fast VQ-Rec: vector-quantized item codes for transferable sequential recommenders.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"vqrec-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
