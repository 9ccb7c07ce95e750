"""`python -m cmp flow`: one image + arrows/pins -> dense flow file (.npy, .flo or .png)."""
from __future__ import annotations

import argparse
import sys

from . import CLIError
from .options import add_image_flag, add_model_flags, add_scene_flag, numbers, output_path

OUT_TYPES = (".npy", ".flo", ".png")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flow", help="predict dense flow from an image and a few arrows",
        description="Predict the dense motion of IMG given sparse arrows (and pins that stay still). "
                    "Coordinates and motions are in pixels of IMG (after EXIF rotation); x = column, "
                    "y = row, +dx = right, +dy = down. The output has the height and width of IMG.")
    add_image_flag(p)
    p.add_argument("--arrow", type=numbers("X,Y,DX,DY"), action="append", default=[], metavar="X,Y,DX,DY",
                   help="a motion: the pixel at (X, Y) moves by (DX, DY); repeat for more arrows")
    p.add_argument("--pin", type=numbers("X,Y"), action="append", default=[], metavar="X,Y",
                   help="a still point (zero motion) at (X, Y); repeat for more pins")
    add_scene_flag(p)
    add_model_flags(p)
    p.add_argument("--max-mag", type=float, default=None, metavar="PX",
                   help="for .png: magnitude of full colour saturation (default: the largest motion)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output: .npy (HxWx2 float32 dx,dy), .flo (Middlebury) or .png (colour wheel)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Check everything cheap before loading a model.
    out = output_path(args.out, OUT_TYPES)
    if args.max_mag is not None and not args.max_mag > 0:
        raise CLIError("--max-mag must be a positive number of pixels")
    arrows, pins = args.arrow, args.pin

    from ..engine import Engine
    from ..flow import save_flow
    from ..guidance import as_points, validate_points
    from ..images import load_image

    # Full resolution: the output must match IMG, and the engine resizes for the model anyway.
    rgb, _ = load_image(args.image, max_side=sys.maxsize)
    h, w = rgb.shape[:2]
    validate_points(as_points(arrows, pins), h, w)
    engine = Engine.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    flow = engine.propagate(engine.set_image(rgb), arrows=arrows, pins=pins, scene_motion=args.scene_motion)
    save_flow(out, flow, max_mag=args.max_mag)
    mag = float((flow ** 2).sum(-1).max() ** 0.5)
    print(f"wrote {out} ({w}x{h}, max |flow| {mag:.2f} px, model {engine.name} on "
          f"{engine.device.type}/{engine.precision})")
    return 0
