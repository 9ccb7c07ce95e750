"""Argument types and flags that several subcommands share, so they parse and read the same."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..device import PRECISIONS
from . import CLIError


def numbers(form: str):
    """argparse type for ``form`` = names separated by commas, e.g. "X,Y" or "X,Y,DX,DY":
    that many comma-separated numbers -> tuple of floats."""
    n = len(form.split(","))
    example = ",".join(["10", "20", "5", "0"][:n])

    def parse(text: str) -> tuple[float, ...]:
        parts = [t.strip() for t in text.split(",")]
        try:
            if len(parts) != n:
                raise ValueError
            return tuple(float(t) for t in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} must be {form} ({n} comma-separated numbers, e.g. {example})") from None

    parse.__name__ = form  # argparse names the type in its own messages
    return parse


#: What a checkpoint reference is, for every --checkpoint flag.
CHECKPOINT_HELP = ("registry name (see `checkpoints list`), local file or saved-model folder, "
                   "hf://owner/repo[@revision]/path/in/repo.ext, or hf://owner/repo for a model saved by `push`")


def add_image_flag(p: argparse.ArgumentParser) -> None:
    """--image IMG: the input picture of every image command."""
    p.add_argument("--image", required=True, metavar="IMG", help="input image (PNG, JPEG, WebP, ...)")


def segmenting_engine(args: argparse.Namespace):
    """The engine a segmenting command runs on: ``--checkpoint`` when given, else the model the
    embedded default segments with (:func:`cmp.checkpoints.segmentation_ref`; the page does the same)."""
    from ..checkpoints import segmentation_ref
    from ..engine import Engine

    ref = args.checkpoint or segmentation_ref(None)
    return Engine.from_checkpoint(ref, device=args.device, precision=args.precision)


def add_model_flags(p: argparse.ArgumentParser, segmentation: bool = False) -> None:
    """--checkpoint, --device, --precision: which model runs where, as :meth:`cmp.engine.Engine.from_checkpoint`
    takes them; ``segmentation``: the command segments (its default is the one the embedded model segments with)."""
    default = "the model the embedded default segments with" if segmentation else "the embedded model"
    p.add_argument("--checkpoint", default=None, metavar="REF", help=f"{CHECKPOINT_HELP} (default: {default})")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    p.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS],
                   help="autocast precision (default: auto, bf16 where it is fast)")


def add_scene_flag(p: argparse.ArgumentParser) -> None:
    """--scene-motion / --object-motion: force the kind of motion; neither = inferred (None)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scene-motion", action="store_true", default=None,
                   help="the whole scene moves (camera motion): nothing stays still unless pinned, so one "
                        "arrow pans the picture and arrows on near and far things give parallax "
                        "(models with this mode only, such as the embedded one). Without this flag or "
                        "--object-motion the kind is inferred from the guidance (many spread arrows that "
                        "agree, and no pin, move the whole scene)")
    g.add_argument("--object-motion", dest="scene_motion", action="store_false",
                   help="objects move against a still scene: what no arrow reaches stays still")


def output_path(text: str, suffixes: tuple[str, ...] = (), flag: str = "--out") -> Path:
    """``text`` as an output Path, checked before any work: its folder exists and, when
    ``suffixes`` are given, it ends in one of them (case-insensitive)."""
    out = Path(text)
    if suffixes and out.suffix.lower() not in suffixes:
        allowed = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1 else suffixes)
        raise CLIError(f"{flag} must end in {allowed}; got {out.name!r}")
    if not out.parent.is_dir():
        raise CLIError(f"output folder {out.parent} does not exist")
    return out
