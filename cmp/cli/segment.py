"""`python -m cmp segment`: image + clicks -> object mask (PNG, COCO JSON or YOLO-seg); the Segment page's CLI twin."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import CLIError
from .options import add_image_flag, add_model_flags, numbers, output_path, segmenting_engine


class _Click(argparse.Action):
    """``--positive`` / ``--negative``: one list of clicks ``(x, y, positive)`` in the order the
    flags were given (later clicks zoom around the mask of the clicks before them and add to it or
    take away from it by their sign, as on the page)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.clicks = [*(getattr(namespace, "clicks", None) or []), (*values, self.const)]


def register(sub: argparse._SubParsersAction) -> None:
    from ..segment import DEFAULT_THRESHOLD, DEFAULT_WALK

    p = sub.add_parser(
        "segment", help="cut out the object under a few clicks (mask PNG, COCO JSON or YOLO-seg .txt)",
        description="Segment the object marked by positive clicks (and not by negative clicks) with "
                    "CMP (a random walk on its embedding; --no-walk: its motion probes). Coordinates "
                    "are (x, y) pixels of IMG (x = column, y = row); "
                    "repeat a flag per click, in click order (each click after the first zooms around "
                    "the mask of the clicks before it, and a positive click only adds to that mask, a "
                    "negative one only takes away, as on the Segment page). Like the page, it makes "
                    "part / object / group candidate masks (zoom at three scales) and writes the most "
                    "confident one; it makes all three at every click (the page, after an object's first "
                    "click, recomputes only the one it shows). The mask has the size of IMG; --out's "
                    "extension picks the format.")
    add_image_flag(p)
    p.add_argument("--positive", dest="clicks", const=True, type=numbers("X,Y"), action=_Click, default=[],
                   metavar="X,Y",
                   help="a click on the object; repeat for more (at least one)")
    p.add_argument("--negative", dest="clicks", const=False, type=numbers("X,Y"), action=_Click, default=[],
                   metavar="X,Y",
                   help="a click on the background; repeat for more")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"mask = score > threshold, in (0, 1) (default {DEFAULT_THRESHOLD})")
    p.add_argument("--no-zoom", action="store_true",
                   help="one mask, on the whole image instead of a crop around the clicks")
    p.add_argument("--no-clean", action="store_true",
                   help="skip the clean-up (small holes, islands away from the positive clicks)")
    p.add_argument("--no-pin-frame", action="store_true",
                   help="do not pin the border of the view still (use when the object fills the frame)")
    add_model_flags(p, segmentation=True)
    p.add_argument("--object-scale", action="store_true",
                   help="write the object-scale mask alone (one view per click instead of three; the "
                        "default before 2026-12-02)")
    p.add_argument("--candidates", action="store_true",
                   help="write the most confident of the part / object / group candidates (the default)")
    p.add_argument("--all-candidates", action="store_true",
                   help="like --candidates, but write all three in the order part, object, group (PNG: "
                        "FILE_1.png .. FILE_3.png and a label map as FILE; COCO/YOLO: one annotation per "
                        "candidate, COCO with its confidence)")
    p.add_argument("--walk", action=argparse.BooleanOptionalAction, default=DEFAULT_WALK,
                   help="read the object as a random walk on the model's embedding (cmp.walk; the default); "
                        "--no-walk: from the probes' motion alone (the default before the walk). Models "
                        "without an embedding always use the probes")
    p.add_argument("--class", dest="category", default="object", metavar="NAME",
                   help="class name for COCO categories and YOLO classes.txt (default: object)")
    p.add_argument("--coco", default=None, metavar="JSON",
                   help="also write COCO JSON (compressed RLE and polygons)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output by extension: .png (0/255 mask), .json (COCO: RLE + polygons), "
                        ".txt (YOLO-seg, with classes.txt beside it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Cheap checks first: no model is loaded for a typo.
    out = output_path(args.out, (".png", ".json", ".txt"))
    if args.coco:
        output_path(args.coco, flag="--coco")
    from ..annotate import split_clicks
    from ..annotations import AnnotationError, ObjectAnnotation, class_name, coco_dataset, write_annotation
    from ..segment import check_threshold
    try:
        category = class_name(args.category)
    except AnnotationError as e:
        raise CLIError(f"--class: {e}") from None
    if args.no_zoom and (args.candidates or args.all_candidates):
        raise CLIError("--no-zoom does not combine with --candidates (the candidates are three zoom scales)")
    if args.object_scale and (args.candidates or args.all_candidates):
        raise CLIError("--object-scale writes one mask; it does not combine with --candidates or --all-candidates")
    check_threshold(args.threshold)
    positive, negative = split_clicks(args.clicks)
    if not positive:
        raise CLIError("give at least one --positive X,Y click on the object")

    from ..images import load_image
    from ..annotate import check_points
    from ..candidates import best_candidate, candidate_clicks
    from ..segment import segment_clicks

    # Full resolution: the mask must match IMG pixel for pixel.
    rgb, _ = load_image(args.image, max_side=sys.maxsize)
    h, w = rgb.shape[:2]
    check_points(positive, negative, h, w)  # the page's and the HTTP API's validator
    engine = segmenting_engine(args)
    note = ""
    if not (args.no_zoom or args.object_scale):
        cands = candidate_clicks(engine, rgb, args.clicks, threshold=args.threshold,
                                 clean=not args.no_clean, pin_frame=not args.no_pin_frame, walk=args.walk)
        best = best_candidate(cands)
        chosen = cands if args.all_candidates else [cands[best]]
        objects = [ObjectAnnotation(c.mask, category, candidate=c.name, confidence=c.confidence) for c in chosen]
        note = "candidates " + ", ".join(f"{c.name}{'*' * (i == best)} {c.confidence:.2f}" for i, c in enumerate(cands))
        res = cands[best]
    else:
        res = segment_clicks(engine, rgb, args.clicks, threshold=args.threshold, zoom=not args.no_zoom,
                             clean=not args.no_clean, pin_frame=not args.no_pin_frame, walk=args.walk)
        objects = [ObjectAnnotation(res.mask, category)]
    name = Path(args.image).name
    write_annotation(out, objects, file_name=name)
    if args.coco:
        Path(args.coco).write_text(json.dumps(coco_dataset(objects, file_name=name)))
    area = int(res.mask.sum())
    zoom = f"zoom {res.box.width}x{res.box.height} at ({res.box.x0}, {res.box.y0})" if res.box else "no zoom"
    print(f"wrote {out} ({w}x{h}, object {area} px = {100 * area / (h * w):.1f} %, {zoom}"
          f"{'; ' + note if note else ''}; model {engine.name} on {engine.device.type}/{engine.precision})")
    return 0
