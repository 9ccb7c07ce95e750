"""`python -m cmp animate`: image + arrows, paths, pins, a region or a recipe -> MP4, GIF or PNG frames,
the CLI twin of the Motion page (both render through :func:`cmp.recipe.render`)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import CLIError
from .options import add_image_flag, add_model_flags, add_scene_flag, numbers, output_path

HELP = "animate an image along the flow CMP predicts from arrows and paths (writes .mp4, .gif or PNG frames)"


def track(text: str) -> list[list[float]]:
    """argparse type: X0,Y0,X1,Y1[,X2,Y2 ...] -> [[x, y], ...] keyframes."""
    try:
        v = [float(t) for t in text.split(",")]
        if len(v) < 4 or len(v) % 2:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be X0,Y0,X1,Y1[,X2,Y2 ...] (pairs of numbers, at least two "
                                         "keyframes, e.g. 10,20,60,20,60,50)") from None
    return [v[i:i + 2] for i in range(0, len(v), 2)]


track.__name__ = "X0,Y0,X1,Y1[,...]"


def register(sub: argparse._SubParsersAction) -> None:
    from ..animate import DEFAULT_FPS, DEFAULT_FRAMES, LOOPS, TIMINGS

    p = sub.add_parser("animate", help=HELP, description=HELP + ". Coordinates are (x, y) pixels of the image.")
    add_image_flag(p)
    p.add_argument("--arrow", type=numbers("X,Y,DX,DY"), action="append", default=[], metavar="X,Y,DX,DY",
                   help="motion guidance: the pixel at (X, Y) moves by (DX, DY); repeatable")
    p.add_argument("--track", type=track, action="append", default=[], metavar="X0,Y0,X1,Y1[,...]",
                   help="a path: the pixel at (X0, Y0) passes through each next keyframe, evenly spread over "
                        "the clip and smoothed (Catmull-Rom); repeatable")
    p.add_argument("--pin", type=numbers("X,Y"), action="append", default=[], metavar="X,Y",
                   help="zero-motion guidance holding (X, Y) still; repeatable")
    p.add_argument("--region", metavar="MASK.png",
                   help="only the white part of this mask may move; everything else stays exactly still")
    p.add_argument("--recipe", metavar="R.json",
                   help="replay a recipe saved on the Motion page (guidance, region, settings); "
                        "settings flags given here override its settings")
    p.add_argument("--frames", type=int, default=None, help=f"number of frames (default {DEFAULT_FRAMES})")
    p.add_argument("--fps", type=float, default=None, help=f"frames per second (default {DEFAULT_FPS})")
    p.add_argument("--strength", type=float, default=None, help="multiplies the predicted motion (default 1)")
    p.add_argument("--timing", choices=TIMINGS, default=None, help="progress curve (default linear)")
    p.add_argument("--loop", choices=LOOPS, default=None,
                   help="once: 0->1; pingpong: 0->1->0; loop: cross-faded cycle; seamless: pixels flow along "
                        "the field's streamlines and the clip loops without a seam (default once)")
    p.add_argument("--max-side", type=int, default=None,
                   help="render at most this many pixels on the long side (default 1024)")
    add_scene_flag(p)
    add_model_flags(p)
    p.add_argument("--out", required=True,
                   help="output: .mp4 (H.264), .gif, or a folder (ending in / or existing) for numbered PNG frames")
    p.set_defaults(func=run)


CLI_DEFAULTS = {"frames": None, "fps": None, "strength": 1.0, "timing": "linear", "loop": "once", "max_side": 1024}


def _out(text: str) -> tuple[Path, bool]:
    """(path, is_folder): a path ending in a slash, or an existing folder, takes PNG frames."""
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return Path(text), True
    return output_path(text, (".mp4", ".gif")), False


def run(args: argparse.Namespace) -> int:
    from ..animate import DEFAULT_FPS, DEFAULT_FRAMES, write_video
    from ..checkpoints import load_registry
    from ..engine import Engine
    from ..images import load_image
    from ..recipe import frame_names, from_inputs, load_region, parse_recipe, render, write_frames
    from ..tracks import Guidance

    out, folder = _out(args.out)
    rgb, note = load_image(args.image)
    if note:
        print(note, file=sys.stderr)
    size = (rgb.shape[1], rgb.shape[0])
    given = {k: getattr(args, k) for k in ("frames", "fps", "strength", "timing", "loop", "max_side")
             if getattr(args, k) is not None}
    if args.scene_motion:
        given["scene_motion"] = True
    checkpoint = args.checkpoint
    if args.recipe:
        if args.arrow or args.track or args.pin or args.region:
            raise CLIError("--recipe carries the guidance and region; leave out --arrow, --track, --pin and --region")
        try:
            text = Path(args.recipe).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read recipe {args.recipe}: {getattr(exc, 'strerror', None) or exc}") from None
        recipe = parse_recipe(text)
        if given:
            recipe = from_inputs(rgb, recipe.guidance, region=recipe.region, checkpoint=recipe.checkpoint,
                                 **{**recipe.settings, **given})
        if checkpoint is None and recipe.checkpoint:
            if recipe.checkpoint in load_registry():
                checkpoint = recipe.checkpoint
            else:
                print(f"note: the recipe was made with {recipe.checkpoint!r}, which is not a registry name; "
                      "using the embedded model (pass --checkpoint to choose)", file=sys.stderr)
    else:
        if not (args.arrow or args.track):
            raise CLIError("give at least one --arrow X,Y,DX,DY or --track X0,Y0,X1,Y1[,...] (or --recipe R.json)")
        g = Guidance([list(a) for a in args.arrow] + [[x, y, 0.0, 0.0] for x, y in args.pin], list(args.track))
        region = load_region(args.region, size) if args.region else None
        settings = {**CLI_DEFAULTS, "frames": DEFAULT_FRAMES, "fps": float(DEFAULT_FPS), **given}
        recipe = from_inputs(rgb, g, region=region, **settings)
    s = recipe.settings
    engine = Engine.from_checkpoint(checkpoint, device=args.device, precision=args.precision)
    t0 = time.perf_counter()
    frames = render(engine, rgb, recipe)
    t1 = time.perf_counter()
    if folder:
        write_frames(out, frames)
        what = f"{out}{'' if str(out).endswith(('/', os.sep)) else os.sep}{frame_names(len(frames))[0]} ..."
    else:
        write_video(out, frames, s["fps"], loop=s["loop"])
        what = str(out)
    t2 = time.perf_counter()
    h, w = frames.shape[1:3]
    print(f"wrote {what} ({len(frames)} frames, {w}x{h}, {s['fps']:g} fps; "
          f"flow + frames {t1 - t0:.2f} s, write {t2 - t1:.2f} s)")
    return 0
