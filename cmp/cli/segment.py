"""`python -m cmp segment`: image + clicks -> object mask PNG, the CLI twin of the Segment page."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import CLIError
from .options import add_image_flag, add_model_flags, numbers, output_path


def register(sub: argparse._SubParsersAction) -> None:
    from ..segment import DEFAULT_THRESHOLD

    p = sub.add_parser(
        "segment", help="cut out the object under a few clicks (writes a 0/255 mask PNG)",
        description="Segment the object marked by positive clicks (and not by negative clicks) with "
                    "CMP motion probes. Coordinates are (x, y) pixels of IMG (x = column, y = row); "
                    "repeat a flag per click, in click order. The mask has the size of IMG.")
    add_image_flag(p)
    p.add_argument("--positive", type=numbers("X,Y"), action="append", default=[], metavar="X,Y",
                   help="a click on the object; repeat for more (at least one)")
    p.add_argument("--negative", type=numbers("X,Y"), action="append", default=[], metavar="X,Y",
                   help="a click on the background; repeat for more")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"mask = normalised motion score > threshold, in (0, 1) (default {DEFAULT_THRESHOLD})")
    p.add_argument("--no-zoom", action="store_true",
                   help="run on the whole image instead of a crop around the clicks")
    p.add_argument("--no-clean", action="store_true",
                   help="skip the clean-up (small holes, islands away from the positive clicks)")
    p.add_argument("--no-pin-frame", action="store_true",
                   help="do not pin the border of the view still (use when the object fills the frame)")
    add_model_flags(p)
    p.add_argument("--coco", default=None, metavar="JSON",
                   help="also write a COCO-style JSON with the mask as compressed RLE")
    p.add_argument("--out", required=True, metavar="MASK.png", help="output mask PNG (0 = background, 255 = object)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Cheap checks first: no model is loaded for a typo.
    out = output_path(args.out, (".png",))
    if args.coco:
        output_path(args.coco, flag="--coco")
    if not 0.0 < args.threshold < 1.0:
        raise CLIError(f"--threshold must be between 0 and 1 (exclusive); got {args.threshold:g}")
    positive, negative = args.positive, args.negative
    if not positive:
        raise CLIError("give at least one --positive X,Y click on the object")

    from ..engine import Engine
    from ..images import load_image
    from ..masks import coco_dict, save_mask_png
    from ..segment import check_clicks, segment

    # Full resolution: the mask must match IMG pixel for pixel.
    rgb, _ = load_image(args.image, max_side=sys.maxsize)
    h, w = rgb.shape[:2]
    check_clicks(positive, negative, h, w)
    engine = Engine.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    res = segment(engine, rgb, positive, negative, threshold=args.threshold, zoom=not args.no_zoom,
                  clean=not args.no_clean, pin_frame=not args.no_pin_frame)
    save_mask_png(out, res.mask)
    if args.coco:
        Path(args.coco).write_text(json.dumps(coco_dict([res.mask], file_name=Path(args.image).name)))
    area = int(res.mask.sum())
    zoom = f"zoom {res.box.width}x{res.box.height} at ({res.box.x0}, {res.box.y0})" if res.box else "no zoom"
    print(f"wrote {out} ({w}x{h}, object {area} px = {100 * area / (h * w):.1f} %, {zoom}; "
          f"model {engine.name} on {engine.device.type}/{engine.precision})")
    return 0
