"""`python -m cmp eval <task>`: benchmarks. One ``add_<task>`` / ``run_<task>`` pair per task."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import CLIError


def _csv(kind, choices=None):
    """argparse type: comma-separated list of ``kind``, each checked against ``choices``."""
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        try:
            out = [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of {kind.__name__}: {text!r}")
        if choices is not None:
            bad = [t for t in out if t not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown {', '.join(map(str, bad))}; choose from {', '.join(choices)}")
        return out
    return parse


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by tasks that run a checkpoint."""
    p.add_argument("--checkpoint", default=None,
                   help="registry name or file path (default: the embedded default model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16 (default auto)")


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="benchmarks (interactive segmentation NoC, ...)",
                              description="Run a benchmark. See `python -m cmp eval TASK --help`.")
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    add_segmentation(tasks)


# -- segmentation -----------------------------------------------------------

def add_segmentation(tasks) -> None:
    from ..eval.segmentation import MAX_CLICKS
    from ..segment import DEFAULT_THRESHOLD

    q = tasks.add_parser(
        "segmentation", help="clicks to 85/90 % IoU (RITM protocol), model and geodesic baseline",
        description="Simulated clicks (RITM protocol: next click at the interior of the largest "
                    "error region) on held-out synthetic composites with exact masks (seeds >= 10000). "
                    "Reports NoC@85, NoC@90 and IoU after 1/3/5 clicks for the model and for an "
                    "edge-aware geodesic propagator using the same 4-probe recipe.")
    add_model_flags(q)
    q.add_argument("--n-images", type=int, default=30, help="number of composites (default 30)")
    q.add_argument("--max-clicks", type=int, default=MAX_CLICKS, help=f"click budget (default {MAX_CLICKS})")
    q.add_argument("--methods", type=_csv(str, ("model", "baseline")), default=["model", "baseline"],
                   help="comma-separated, from model,baseline (default both; without 'model' no "
                        "checkpoint is loaded)")
    q.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"mask threshold on the normalised score (default {DEFAULT_THRESHOLD})")
    q.add_argument("--no-zoom", action="store_true", help="never crop around the clicks")
    q.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write results as JSON to PATH (or stdout without PATH, instead of the table)")
    q.add_argument("--plot", default=None, metavar="PATH", help="PNG of mean IoU against clicks")
    q.set_defaults(func=run_segmentation)


def run_segmentation(args) -> int:
    from ..eval import segmentation as S

    if args.n_images < 1:
        raise CLIError("--n-images must be at least 1")
    if args.max_clicks < max(S.IOU_AT):
        raise CLIError(f"--max-clicks must be at least {max(S.IOU_AT)}")
    if not 0.0 < args.threshold < 1.0:
        raise CLIError("--threshold must be between 0 and 1 (exclusive)")
    if args.plot and not Path(args.plot).parent.is_dir():
        raise CLIError(f"output folder {Path(args.plot).parent} does not exist")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    engine, info = None, {}
    if "model" in args.methods:
        from ..engine import Engine
        engine = Engine.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
        info = {"checkpoint": engine.info.get("checkpoint"), "config": engine.info.get("config"),
                "device": str(engine.device), "precision": engine.precision}
        log(f"model: {info['checkpoint']} ({info['config']}) on {info['device']} {info['precision']}")
    report = S.run(engine, n_images=args.n_images, max_clicks=args.max_clicks,
                   baseline="baseline" in args.methods, zoom=not args.no_zoom,
                   threshold=args.threshold, progress=log)
    report["info"] = info
    if args.plot:
        log(f"plot: {S.plot(report, args.plot)}")
    doc = json.dumps(report, indent=2)
    if args.json == "-":
        print(doc)
    else:
        print(S.format_table(report))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(doc + "\n")
            log(f"json: {args.json}")
    return 0
