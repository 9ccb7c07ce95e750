"""`python -m cmp animate`: image + arrows -> MP4 or GIF, the CLI twin of the Motion page."""
from __future__ import annotations

import argparse
import sys
import time

from . import CLIError
from .options import add_image_flag, add_model_flags, add_scene_flag, numbers, output_path

HELP = "animate an image along the flow CMP predicts from a few arrows (writes .mp4 or .gif)"


def register(sub: argparse._SubParsersAction) -> None:
    from ..animate import DEFAULT_FPS, DEFAULT_FRAMES, LOOPS, TIMINGS

    p = sub.add_parser("animate", help=HELP, description=HELP + ". Coordinates are (x, y) pixels of the image.")
    add_image_flag(p)
    p.add_argument("--arrow", type=numbers("X,Y,DX,DY"), action="append", default=[], metavar="X,Y,DX,DY",
                   help="motion guidance: the pixel at (X, Y) moves by (DX, DY); repeatable")
    p.add_argument("--pin", type=numbers("X,Y"), action="append", default=[], metavar="X,Y",
                   help="zero-motion guidance holding (X, Y) still; repeatable")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help=f"number of frames (default {DEFAULT_FRAMES})")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS})")
    p.add_argument("--strength", type=float, default=1.0, help="multiplies the predicted motion (default 1)")
    p.add_argument("--timing", choices=TIMINGS, default="linear", help="progress curve (default linear)")
    p.add_argument("--loop", choices=LOOPS, default="once",
                   help="once: 0->1; pingpong: 0->1->0; loop: seamless cycle (default once)")
    p.add_argument("--max-side", type=int, default=1024,
                   help="render at most this many pixels on the long side (default 1024)")
    add_scene_flag(p)
    add_model_flags(p)
    p.add_argument("--out", required=True, help="output file, .mp4 (H.264) or .gif")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..animate import check_settings, render_frames, write_video
    from ..engine import Engine
    from ..images import load_image

    out = output_path(args.out, (".mp4", ".gif"))
    if not args.arrow:
        raise CLIError("give at least one --arrow X,Y,DX,DY")
    if args.max_side < 16:
        raise CLIError("--max-side must be at least 16")
    check_settings(args.frames, args.fps, args.strength, args.timing, args.loop)

    rgb, note = load_image(args.image)
    if note:
        print(note, file=sys.stderr)
    engine = Engine.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    t0 = time.perf_counter()
    flow = engine.flow_for(rgb, arrows=args.arrow, pins=args.pin, scene_motion=args.scene_motion)
    t1 = time.perf_counter()
    frames = render_frames(rgb, flow, args.frames, strength=args.strength, timing=args.timing,
                           loop=args.loop, max_side=args.max_side)
    t2 = time.perf_counter()
    write_video(out, frames, args.fps, loop=args.loop)
    t3 = time.perf_counter()
    h, w = frames.shape[1:3]
    print(f"wrote {out} ({len(frames)} frames, {w}x{h}, {args.fps:g} fps; "
          f"flow {t1 - t0:.2f} s, frames {t2 - t1:.2f} s, encode {t3 - t2:.2f} s)")
    return 0
