"""The `python -m cmp` command line. Each subcommand lives in its own module here
and exposes ``register(subparsers)``, which adds a parser whose ``func(args) -> int``
does the work. User errors print one line on stderr and exit non-zero.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand modules, in the order `--help` lists them.
COMMANDS = [
    "flow",
    "animate",
    "segment",
    "checkpoints",
    "push",
    "train",
    "eval",
    "bench",
]


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit 2), like our own errors.

    Subparsers inherit the class, so every subcommand behaves the same.
    """

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message.splitlines()[0]} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m cmp", description="CMP Studio command line.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..checkpoints import CheckpointError
    from ..device import tune_malloc, tune_onednn
    from ..geometry import ImageSizeError
    from ..guidance import GuidanceError
    from ..images import ImageError

    args = build_parser().parse_args(argv)
    tune_malloc()  # as the app does: numpy temporaries from the heap, not fresh pages each time
    tune_onednn()  # and oneDNN keeps the convolutions of every image size it has built
    try:
        return int(args.func(args) or 0)
    except (CLIError, CheckpointError, ImageError, ImageSizeError, GuidanceError, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
