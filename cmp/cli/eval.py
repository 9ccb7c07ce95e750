"""`python -m cmp eval <task>`: benchmarks. One ``add_<task>`` / ``run_<task>`` pair per task."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import CLIError
from .options import add_model_flags, output_path, segmenting_engine

SHIPPED_PLOT = Path("checkpoints/eval/propagation.png")


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


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _load_engine(args, segmentation: bool = False):
    """The model named by --checkpoint/--device/--precision, and what the report says about it;
    with ``segmentation`` and no --checkpoint, the one the default model segments with."""
    from ..engine import Engine

    engine = (segmenting_engine(args) if segmentation else
              Engine.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision))
    info = {"checkpoint": engine.info.get("checkpoint"), "config": engine.info.get("config"),
            "device": str(engine.device), "precision": engine.precision}
    _log(f"model: {info['checkpoint']} ({info['config']}) on {info['device']} {info['precision']}")
    return engine, info


def _report(args, doc: dict, table: str) -> None:
    """``--json`` without a path: the JSON on stdout instead of the table; otherwise the
    table on stdout and, with ``--json PATH``, the JSON written there too."""
    text = json.dumps(doc, indent=2)
    if args.json == "-":
        print(text)
        return
    print(table, end="")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
        _log(f"json: {args.json}")


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="benchmarks: EPE of motion propagation, clicks-to-IoU of segmentation",
                              description="Run a benchmark. See `python -m cmp eval TASK --help`.")
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    tasks.required = True
    add_propagation(tasks)
    add_segmentation(tasks)
    add_compare(tasks)


# -- propagation ------------------------------------------------------------

def add_propagation(tasks) -> None:
    from ..eval.propagation import DATASETS, METHODS, POINTS, SAMPLINGS

    q = tasks.add_parser(
        "propagation", help="EPE vs number of guidance points, model and baselines",
        description="End-point error (px at 384 px width) of dense flow propagated from N guidance "
                    "points drawn from the ground truth, for the model and the zero / nearest / RBF / "
                    "geodesic baselines. Missing datasets are skipped with a note.")
    add_model_flags(q)
    every_set = list(DATASETS)  # the default; with --pairs, only the folders run unless --datasets is given
    q.add_argument("--datasets", type=_csv(str, DATASETS), default=every_set,
                   help=f"comma-separated, from {','.join(DATASETS)} (default all, none with --pairs)")
    q.add_argument("--pairs", action="append", default=[], metavar="DIR",
                   help="also a set of your own: DIR/images/ and DIR/flow/ (per image its true motion, the "
                        "same file name before the extension: .flo optical flow, .pfm disparity of the image "
                        "as the left view of a stereo pair, or .npy flow or disparity); repeatable; the set "
                        "is named after DIR")
    q.add_argument("--methods", type=_csv(str, METHODS), default=list(METHODS),
                   help=f"comma-separated, from {','.join(METHODS)} (default all; model-scene is the "
                        "model's 'whole scene moves' mode, model-auto the mode inferred from the guidance "
                        "(the app's default), model-auto-mean the same with the weighted mean of the arrows in "
                        "place of the whole-scene mode's affine fit, model-auto-raw model-auto without the edge "
                        "snap of the flow; without a model-* method no checkpoint is loaded)")
    q.add_argument("--sampling", type=_csv(str, SAMPLINGS), default=list(SAMPLINGS),
                   help=f"comma-separated, from {','.join(SAMPLINGS)} (default both)")
    q.add_argument("--points", type=_csv(int), default=list(POINTS),
                   help=f"numbers of guidance points (default {','.join(map(str, POINTS))})")
    q.add_argument("--seeds", type=int, default=5, help="random draws of points per pair (default 5)")
    q.add_argument("--quick", action="store_true",
                   help="tiny subset (1 seed, 2 synthetic scenes, 1 video pair) for smoke tests")
    q.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write results as JSON to PATH (or stdout without PATH, instead of the tables)")
    q.add_argument("--plot", default=None, metavar="PATH",
                   help=f"PNG of EPE vs N (default none, so evaluating another checkpoint never overwrites "
                        f"the embedded model's {SHIPPED_PLOT}; 'none' also skips it)")
    q.set_defaults(func=run_propagation, every_set=every_set)


def run_propagation(args) -> int:
    from ..eval import propagation as P
    from ..guidance import MAX_POINTS

    if any(n < 1 or n > MAX_POINTS for n in args.points):
        raise CLIError(f"--points must lie between 1 and {MAX_POINTS}")
    if args.seeds < 1:
        raise CLIError("--seeds must be at least 1")
    seeds = 1 if args.quick else args.seeds
    own = _own_sets(args.pairs, "--pairs", P.DATASETS, _own_pairs)
    if own and args.datasets is args.every_set:  # --pairs without --datasets: the folders alone
        args.datasets = []

    methods = {}
    info = {}
    if any(m.startswith("model") for m in args.methods):
        engine, info = _load_engine(args)
        info["scene_blend"] = engine.scene_blend
        if "model" in args.methods:
            methods["model"] = P.model_method(engine)
        if "model-scene" in args.methods:
            if engine.supports_scene_motion:
                methods["model-scene"] = P.model_method(engine, scene_motion=True)
            else:
                _log(f"note: skipping model-scene: {engine.name} has no 'whole scene moves' mode")
        for name, blend, edges in (("model-auto", None, None), ("model-auto-mean", "mean", None),
                                   ("model-auto-raw", None, False)):
            if name not in args.methods:
                continue
            if engine.supports_scene_motion:
                methods[name] = P.model_method(engine, scene_motion=None, blend=blend, edges=edges)
            else:
                _log(f"note: skipping {name}: {engine.name} has one mode only ({name} = model)")
    baselines = P.baseline_methods()
    methods.update({m: baselines[m] for m in args.methods if m in baselines})

    res = P.run(args.datasets, methods, points=args.points, seeds=seeds, samplings=args.sampling,
                quick=args.quick, log=_log, own=own)
    res.info.update(info, quick=bool(args.quick))
    if not res.datasets:
        raise CLIError("no dataset could be loaded: " + "; ".join(f"{k}: {v}" for k, v in res.skipped.items()))

    if args.plot and args.plot.lower() != "none":
        path = P.plot(res, args.plot)
        res.info["plot"] = str(path)
        _log(f"plot: {path}")
    _report(args, res.to_dict(), P.format_tables(res))
    return 0


def _own_pairs(d):
    from ..eval.folder import PAIRS_KIND, folder_pairs
    return folder_pairs(d), PAIRS_KIND.format(path=d)


def _own_images(d):
    from ..eval.folder import KIND, folder_set
    return folder_set(d), KIND.format(path=d)


def _own_sets(dirs, flag: str, builtin, read) -> dict:
    """``{name: read(dir)}`` for the folders of ``flag``, named after each folder, read before
    any model is loaded; a folder that cannot be read, or a name taken twice, is a one-line error."""
    from ..eval.folder import FolderError

    own = {}
    for d in dirs:
        name = Path(d).resolve().name or str(d)
        if name in own or name in builtin:
            raise CLIError(f"{flag} {d}: a set named {name!r} is already in the run; rename the folder")
        try:
            own[name] = read(d)
        except FolderError as exc:
            raise CLIError(f"{flag} {d}: {exc}") from None
    return own


# -- segmentation -----------------------------------------------------------

#: ``eval segmentation``'s methods that read the three candidates (each needs the zoom's scales).
CANDIDATE_METHODS = ("candidates", "page", "probes", "truth")


def add_segmentation(tasks) -> None:
    from ..eval.segmentation import MAX_CLICKS, SETS, TUNING_SETS
    from ..refine import REFINERS
    from ..segment import DEFAULT_THRESHOLD

    q = tasks.add_parser(
        "segmentation", help="clicks to 85/90 % IoU (RITM protocol), model and geodesic baseline",
        description="Simulated clicks (RITM protocol: next click at the interior of the largest "
                    "error region) on held-out sets: the project's synthetic composites (seeds >= 10000), "
                    "real objects of the stereo motorcycle (masks from true disparity) in its left photo, in both "
                    "photos of the pair each also mirrored, and pasted onto three other real photos, the whole "
                    "motorcycle (wheels, fork, mirrors: one object with thin parts) the same three ways, emoji silhouettes "
                    "on real photos never trained on, the letters of signs in three real photos with hand-made masks "
                    "(sign-letters), all at 384 px, and three sets again at a photo's size (-full: the "
                    "stereo photos' own 741 px; emoji-1024). Each table says whether its set is real or composite. "
                    "Reports NoC@85, NoC@90 and IoU after 1/3/5 clicks for the model and for an "
                    "edge-aware geodesic propagator using the same 4-probe recipe.")
    add_model_flags(q, segmentation=True)
    every_set = list(SETS)  # the default; with --images, only the folders run unless --datasets is given
    q.add_argument("--datasets", type=_csv(str, SETS + TUNING_SETS), default=every_set,
                   help=f"comma-separated, from {','.join(SETS)} (default all, none with --images; a missing "
                        "source is skipped), "
                        f"or the tuning set{'s' if len(TUNING_SETS) > 1 else ''} {','.join(TUNING_SETS)} "
                        "(training glyphs on training photos: for choosing a setting, not for reporting)")
    q.add_argument("--images", action="append", default=[], metavar="DIR",
                   help="also a set of your own: DIR/images/ and DIR/masks/ (a mask per image, the same file "
                        "name before the extension; object = brighter than half, or a palette mask's non-zero "
                        "entries, or an alpha channel), at the photos' own size up to the app's limit; "
                        "repeatable; the set is named after DIR")
    q.add_argument("--n-images", type=int, default=30, help="number of composites per generated set (default 30)")
    q.add_argument("--refine", type=_csv(str, ("none", *REFINERS)), default=[],
                   help=f"also score the model with these refinements of its mask, from none,{','.join(REFINERS)} "
                        "(the model's own row uses the default of cmp.segment)")
    q.add_argument("--max-clicks", type=int, default=MAX_CLICKS, help=f"click budget (default {MAX_CLICKS})")
    q.add_argument("--methods", type=_csv(str, ("model", *CANDIDATE_METHODS, "baseline")), default=None,
                   help="comma-separated, from model,candidates,page,probes,truth,baseline (default model,candidates,"
                        "page,baseline; with --no-zoom model,baseline): 'model' is the object-scale mask at every "
                        "click, 'candidates' the most confident of the part / object / group candidates at every "
                        "click (`python -m cmp segment`), 'page' the Segment page's own code (the most confident "
                        "at an object's first click, then that candidate at its scale), 'probes' the candidates "
                        "read from the probes' motion instead of the walk (`python -m cmp segment --no-walk`), "
                        "'truth' the candidate best against the true mask at every click (an upper bound of the "
                        "choice among the three: no user has the truth); without a model method no checkpoint is "
                        "loaded")
    q.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"mask threshold on the score (default {DEFAULT_THRESHOLD})")
    q.add_argument("--no-zoom", action="store_true", help="never crop around the clicks")
    q.add_argument("--no-pin-frame", action="store_true", help="do not pin the border of the view still")
    q.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write results as JSON to PATH (or stdout without PATH, instead of the table)")
    q.add_argument("--plot", default=None, metavar="PATH", help="PNG of mean IoU against clicks")
    q.set_defaults(func=run_segmentation, every_set=every_set)


def run_segmentation(args) -> int:
    from ..eval import segmentation as S

    if args.n_images < 1:
        raise CLIError("--n-images must be at least 1")
    if args.max_clicks < max(S.IOU_AT):
        raise CLIError(f"--max-clicks must be at least {max(S.IOU_AT)}")
    if not 0.0 < args.threshold < 1.0:
        raise CLIError("--threshold must be between 0 and 1 (exclusive)")
    if args.plot:
        output_path(args.plot, flag="--plot")

    from ..eval.real import SourceUnavailable

    own = _own_sets(args.images, "--images", S.SETS + S.TUNING_SETS, _own_images)
    if own and args.datasets is args.every_set:  # --images without --datasets: the folders alone
        args.datasets = []
    if args.methods is None:
        args.methods = ["model", "baseline"] if args.no_zoom else ["model", "candidates", "page", "baseline"]
    if args.no_zoom and set(CANDIDATE_METHODS) & set(args.methods):
        raise CLIError("--no-zoom does not combine with the candidates, page, probes or truth methods "
                       "(three zoom scales)")
    uses_model = bool({"model", *CANDIDATE_METHODS} & set(args.methods))
    engine, info = _load_engine(args, segmentation=True) if uses_model else (None, {})
    extra = {}
    if "candidates" in args.methods:
        extra["cmp, most confident of 3"] = S.candidates_method(engine, threshold=args.threshold,
                                                                pin_frame=not args.no_pin_frame)
    if "page" in args.methods:
        extra["cmp, the page's rule"] = S.page_method(engine, threshold=args.threshold,
                                                      pin_frame=not args.no_pin_frame)
    if "probes" in args.methods:
        extra["cmp, most confident of 3, probes"] = S.candidates_method(engine, threshold=args.threshold,
                                                                        pin_frame=not args.no_pin_frame, walk=False)
    if "truth" in args.methods:
        extra["cmp, best of 3 by the truth"] = S.truth_choice_method(engine, threshold=args.threshold,
                                                                     pin_frame=not args.no_pin_frame)
    if engine is not None and args.refine:
        extra.update(S.refine_methods(engine, args.refine))
    model_row = engine if "model" in args.methods else None
    reports, tables = {}, []
    names = list(args.datasets) + list(own)
    for name in names:
        images, kind = own.get(name, (None, None))
        try:
            rep = S.run(model_row, n_images=args.n_images, max_clicks=args.max_clicks,
                        baseline="baseline" in args.methods, zoom=not args.no_zoom,
                        threshold=args.threshold, pin_frame=not args.no_pin_frame, progress=_log,
                        dataset=name, extra=extra,
                        candidates_of=engine if "candidates" in args.methods else None,
                        images=images, kind=kind)
        except SourceUnavailable as exc:
            _log(f"note: skipping {name}: {exc}")
            continue
        rep["info"] = info
        reports[name] = rep
        tables.append(S.format_table(rep) + "\n")
        if args.plot:
            plot = args.plot if len(names) == 1 else str(Path(args.plot).with_suffix(f".{name}.png"))
            _log(f"plot: {S.plot(rep, plot)}")
    if not reports:
        raise CLIError("no set could be loaded")
    # one set: its report as before; several: {"sets": {name: report}}
    doc = next(iter(reports.values())) if len(names) == 1 else {"sets": reports}
    _report(args, doc, "\n".join(tables))
    return 0


# -- comparison -------------------------------------------------------------

def add_compare(tasks) -> None:
    q = tasks.add_parser(
        "compare", help="two evaluation reports case by case: which differences exceed the noise",
        description="Compare two `eval segmentation --json` reports of the same images, or two `eval "
                    "propagation --json` reports of the same cases (e.g. two checkpoints): per set and method, "
                    "each image's clicks to 85/90 % IoU (or each case's end-point error at each number of "
                    "points) in B minus in A, the mean difference and a bootstrap 95% interval of it. An "
                    "interval wholly above zero: B is worse; wholly below: B is better; otherwise the set shows "
                    "no difference.")
    q.add_argument("a", metavar="A.json", help="the reference report (e.g. the shipped model)")
    q.add_argument("b", metavar="B.json", help="the report compared with it")
    q.add_argument("--method", action="append", default=None, metavar="NAME",
                   help="only this method, repeatable (segmentation: cmp, 'cmp, most confident of 3', ...; "
                        "propagation: model-auto, ...; default every segmentation method, every model method of "
                        "propagation)")
    q.add_argument("--points", default=None, metavar="N1,N2",
                   help="propagation: only these numbers of guidance points (default all in both reports)")
    q.add_argument("--by-view", action="store_true",
                   help="segmentation: also each view of the stereo sets on its own (motorcycle-views [left], "
                        "[right], [left mirrored], [right mirrored]; the [left] rows are motorcycle-objects' images)")
    q.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                   help="write the differences as JSON to PATH (or stdout without PATH, instead of the table)")
    q.set_defaults(func=run_compare)


def run_compare(args) -> int:
    from dataclasses import asdict

    from ..eval.compare import ReportMismatch, compare, format_table

    docs = []
    for path in (args.a, args.b):
        try:
            docs.append(json.loads(Path(path).read_text()))
        except OSError as exc:
            raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise CLIError(f"{path} is not JSON") from None
    methods = args.method
    try:
        points = [int(n) for n in args.points.split(",") if n.strip()] if args.points else None
    except ValueError:
        raise CLIError(f"--points takes whole numbers separated by commas; got {args.points!r}") from None
    if args.by_view:
        from ..eval.compare import is_propagation, split_views
        from ..eval.real import VIEW_SETS, VIEWS
        if any(is_propagation(d) for d in docs):
            raise CLIError("--by-view splits segmentation reports only")
        try:
            docs = [split_views(d, VIEW_SETS, VIEWS) for d in docs]
        except ReportMismatch as exc:
            raise CLIError(str(exc)) from None
    try:
        diffs = compare(*docs, methods=methods, points=points)
    except ReportMismatch as exc:
        raise CLIError(str(exc)) from None
    doc = {"a": str(args.a), "b": str(args.b), "differences": [{**asdict(d), "verdict": d.verdict} for d in diffs]}
    _report(args, doc, format_table(diffs, Path(args.a).stem, Path(args.b).stem) + "\n")
    return 0
