"""Interactive segmentation benchmark: the RITM click protocol on held-out images.

Sets (:data:`SETS`): the project's own composites, real objects of a real photo (also pasted
onto other real photos), emoji silhouettes on real photos (:mod:`cmp.eval.real`); every
report names its kind.

Protocol (as RITM, Sofiiuk et al. 2022): the first click is at the interior
point of the object; every next click is at the interior point (maximum of
the distance transform, image border counted as boundary, pixels already
clicked excluded) of the error region that reaches deepest, positive when
that region is missed object (false negative), negative when it is false
background (:func:`cmp.clicks.next_click`). NoC@t = clicks until IoU >= t, or ``max_clicks`` when never
reached. Reported: mean NoC@85, NoC@90 and mean IoU after 1, 3 and 5 clicks.

Two methods share the same 4-probe recipe (:func:`cmp.segment.segment`,
with zoom and clean-up), only the propagator differs: the CMP engine, and a
classical edge-aware geodesic propagator
(:class:`cmp.eval.baselines.GeodesicPropagator`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import annotate
from ..clicks import next_click
from ..candidates import best_candidate, segment_candidates
from ..segment import DEFAULT_THRESHOLD, DEFAULT_WALK, following, segment, zoom_history
from .baselines import GeodesicPropagator
from .composites import EVAL_SEED_START, Composite, eval_composites

MAX_CLICKS = 20
IOU_THRESHOLDS = (0.85, 0.90)
IOU_AT = (1, 3, 5)
#: A click after which the IoU falls by more than this is a *fall* (a positive click that
#: floods a look-alike region, a negative one that takes a part away); "falls" in a report
#: counts the images that had at least one.
FALL_IOU = 0.2

#: A method maps (rgb, positive clicks, negative clicks) to an (H, W) bool mask. A method with a
#: true ``needs_truth`` attribute is also given the true mask (``truth=``): a measuring device, not
#: something a user has (:func:`truth_choice_method`).
Method = Callable[[np.ndarray, list, list], np.ndarray]


# -- protocol ---------------------------------------------------------------------

def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    inter = np.logical_and(pred, gt).sum()
    union = np.logical_or(pred, gt).sum()
    return float(inter / union) if union else 1.0


def click_ious(method: Method, rgb: np.ndarray, gt: np.ndarray, *, max_clicks: int = MAX_CLICKS,
               stop_iou: float | None = max(IOU_THRESHOLDS), min_clicks: int = max(IOU_AT)) -> list[float]:
    """IoU after each simulated click (length <= max_clicks).

    Stops early once IoU >= ``stop_iou`` after at least ``min_clicks`` clicks
    (the numbers reported do not depend on later clicks).
    """
    pos: list[list[int]] = []
    neg: list[list[int]] = []
    pred = np.zeros(gt.shape, bool)
    clicked = np.zeros(gt.shape, bool)
    truth = {"truth": gt} if getattr(method, "needs_truth", False) else {}
    out: list[float] = []
    for _ in range(max_clicks):
        click = next_click(gt, pred, clicked)
        if click is None:  # perfect mask: stays perfect
            out.append(out[-1] if out else 1.0)
            continue
        x, y, is_pos = click
        clicked[y, x] = True
        (pos if is_pos else neg).append([x, y])
        pred = np.asarray(method(rgb, list(pos), list(neg), **truth), dtype=bool)
        out.append(iou(pred, gt))
        if stop_iou is not None and len(out) >= min_clicks and out[-1] >= stop_iou:
            break
    return out


def noc(ious: Sequence[float], threshold: float, max_clicks: int = MAX_CLICKS) -> int:
    """Clicks needed to reach ``threshold`` IoU (``max_clicks`` when never reached)."""
    for k, v in enumerate(ious, start=1):
        if v >= threshold:
            return k
    return max_clicks


def has_fall(ious: Sequence[float], drop: float = FALL_IOU) -> bool:
    """Whether the IoU ever fell by more than ``drop`` from one click to the next."""
    return any(b < a - drop for a, b in zip(ious, ious[1:]))


def iou_after(ious: Sequence[float], k: int) -> float:
    """IoU after k clicks; a run that stopped early keeps its last IoU."""
    if not ious:
        return 0.0
    return float(ious[min(k, len(ious)) - 1])


# -- methods ----------------------------------------------------------------------

def _clicking(engine, candidates: bool = False, by_truth: bool = False, **recipe) -> Method:
    """:func:`cmp.segment.segment` as the pages run it, click after click: a later click on
    the same image zooms around the object's mask after the click before it (``around``).
    :func:`click_ious` calls a method once per click, in order; an object's first click
    (one point) starts afresh. ``candidates``: the most confident of
    :func:`cmp.candidates.segment_candidates` at each click instead (``python -m cmp segment``'s
    default; the next click zooms around it); with ``by_truth``, the one with the best IoU
    against the true mask instead of the most confident. The probes' flows (the page's
    evidence) are not computed when the walk gives the score."""
    last: dict = {}

    def run(rgb, pos, neg, truth=None):
        later = len(pos) + len(neg) > 1 and last.get("image") is rgb
        before = last.get("result") if later and last.get("positives") else None
        history = zoom_history(before)
        kept = None if before is None else before.mask
        newest_positive = len(pos) > (last.get("positives", 0) if later else 0)  # it added to the positives

        def shown(r):  # the mask after the click's sign (cmp.segment.follow_click)
            return following(r, kept, newest_positive) if pos else r

        if candidates:
            cands = segment_candidates(engine, rgb, pos, neg, **history, **recipe)
            if by_truth:  # judged as shown
                res = max((shown(c) for c in cands), key=lambda c: iou(c.mask, truth))
            else:
                res = shown(cands[best_candidate(cands)])
        else:
            res = shown(segment(engine, rgb, pos, neg, **history, **recipe))
        last.update(image=rgb, result=res, positives=len(pos))
        return res.mask
    run.needs_truth = by_truth
    return run


def candidates_method(engine, *, threshold: float = DEFAULT_THRESHOLD, pin_frame: bool = True,
                      walk: bool = DEFAULT_WALK) -> Method:
    """The most confident of the part / object / group candidates at every click
    (``python -m cmp segment``'s default; ``walk`` False: with ``--no-walk``, the probes)."""
    return _clicking(engine, candidates=True, threshold=threshold, pin_frame=pin_frame, walk=walk)


def truth_choice_method(engine, *, threshold: float = DEFAULT_THRESHOLD, pin_frame: bool = True) -> Method:
    """The part / object / group candidate with the best IoU against the true mask at every
    click, each click then as :func:`candidates_method`'s: what a perfect choice among the three
    would need, an upper bound of the choice (no user has the truth; the click after a greedy
    choice is not always the best one). Against ``candidates_method`` it says how much of a
    set's clicks the confidence's choice costs and how much the candidates themselves do."""
    return _clicking(engine, candidates=True, by_truth=True, threshold=threshold, pin_frame=pin_frame)


def page_method(engine, *, threshold: float = DEFAULT_THRESHOLD, pin_frame: bool = True) -> Method:
    """The Segment page itself, click by click (:func:`cmp.annotate.add_click` and
    :func:`cmp.annotate.recompute` on the page's state): the most confident candidate at an object's
    first click, then that one candidate, at its scale, at every later click (SAM answers later
    clicks with one mask), each click adding or taking away by its sign."""
    last: dict = {}

    def run(rgb, pos, neg):
        later = len(pos) + len(neg) > 1 and last.get("image") is rgb
        state = last["state"] if later else annotate.new_state(rgb.shape[:2])
        positive = len(pos) > sum(1 for c in state["clicks"] if c[2])
        x, y = pos[-1] if positive else neg[-1]
        state, _ = annotate.recompute(engine, rgb, annotate.add_click(state, x, y, positive), threshold, pin_frame)
        last.update(image=rgb, state=state)
        return annotate.decode(state, state["mask"]) if state.get("mask") else np.zeros(rgb.shape[:2], bool)
    return run


def model_method(engine, *, threshold: float = DEFAULT_THRESHOLD, zoom: bool = True,
                 pin_frame: bool = True) -> Method:
    return _clicking(engine, threshold=threshold, zoom=zoom, pin_frame=pin_frame)


def refine_methods(engine, kinds: Sequence[str], *, threshold: float = DEFAULT_THRESHOLD, zoom: bool = True,
                   pin_frame: bool = True) -> dict[str, Method]:
    """The model's recipe with each refinement of ``kinds`` (:mod:`cmp.refine`; "none" =
    the plain threshold), whatever the default is."""
    return {("cmp, plain threshold" if k == "none" else f"cmp + {k}"):
            _clicking(engine, threshold=threshold, zoom=zoom, pin_frame=pin_frame,
                      refine=None if k == "none" else k) for k in kinds}


def baseline_method(*, threshold: float = DEFAULT_THRESHOLD, zoom: bool = True, pin_frame: bool = True) -> Method:
    """The same recipe as :func:`model_method` on the geodesic propagator."""
    return model_method(GeodesicPropagator(), threshold=threshold, zoom=zoom, pin_frame=pin_frame)


# -- benchmark --------------------------------------------------------------------

@dataclass
class MethodResult:
    name: str
    per_image: list[list[float]] = field(default_factory=list)  # IoU after each click
    seconds: float = 0.0
    max_clicks: int = MAX_CLICKS

    def summary(self) -> dict:
        runs = self.per_image
        out = {"images": len(runs), "seconds": round(self.seconds, 1),
               "clicks": int(sum(len(r) for r in runs))}
        for t in IOU_THRESHOLDS:
            out[f"NoC@{round(t * 100)}"] = float(np.mean([noc(r, t, self.max_clicks) for r in runs]))
        for k in IOU_AT:
            out[f"IoU@{k}"] = float(np.mean([iou_after(r, k) for r in runs]))
        out["falls"] = int(sum(has_fall(r) for r in runs))
        # each image's clicks, in the set's order, so two reports can be compared image by image
        # (:mod:`cmp.eval.compare`)
        out["per_image"] = {f"NoC@{round(t * 100)}": [noc(r, t, self.max_clicks) for r in runs]
                            for t in IOU_THRESHOLDS}
        return out

    def curve(self) -> list[float]:
        """Mean IoU after 1..max_clicks clicks (runs that stopped early keep their last IoU)."""
        return [float(np.mean([iou_after(r, k) for r in self.per_image])) for k in range(1, self.max_clicks + 1)]


def evaluate(methods: dict[str, Method], composites: Sequence[Composite], *, max_clicks: int = MAX_CLICKS,
             progress: Callable[[str], None] | None = None) -> dict[str, MethodResult]:
    results = {name: MethodResult(name, max_clicks=max_clicks) for name in methods}
    for i, comp in enumerate(composites):
        for name, method in methods.items():
            t = time.perf_counter()
            ious = click_ious(method, comp.rgb, comp.mask, max_clicks=max_clicks)
            res = results[name]
            res.seconds += time.perf_counter() - t
            res.per_image.append(ious)
            if progress:
                progress(f"[{i + 1}/{len(composites)}] seed {comp.seed} {name}: "
                         f"{len(ious)} clicks, IoU {ious[-1]:.3f}")
    return results


#: Evaluation sets (kinds in :data:`cmp.eval.real.SET_KINDS`): the project's own
#: composites, real objects of the stereo motorcycle (in its left photo; in both photos of the
#: pair, each also mirrored; pasted onto three other real photos), the whole motorcycle (the
#: same three ways), emoji silhouettes on real photos; all at 384 px, and three of them again
#: at a photo's size (``-full``: the motorcycle's own 741 px; ``emoji-1024``), larger than
#: the refinement's working size.
SETS = ("composites", "motorcycle-objects", "motorcycle-views", "motorcycle-pasted", "motorcycle-whole",
        "motorcycle-whole-views", "motorcycle-whole-pasted", "emoji",
        "motorcycle-views-full", "motorcycle-whole-views-full", "emoji-1024", "sign-letters")
#: Sets for choosing a setting before the evaluation sets confirm it (training glyphs and
#: photos only; people in the held-out frames of a training video, :mod:`cmp.eval.people`;
#: :data:`cmp.eval.real.SET_KINDS` says so). Run on request, never by default.
TUNING_SETS = ("emoji-tune", "people-tune")


def load_set(name: str, n_images: int, start: int = EVAL_SEED_START) -> list[Composite]:
    """The images of one evaluation set (``n_images`` for the generated ones; the
    motorcycle has its fixed objects). Raises :class:`cmp.eval.real.SourceUnavailable`."""
    from . import real
    from .people import people_tuning

    loaders = {  # name -> the set's images; n: how many, for the generated sets
        "composites": lambda n: eval_composites(n, start=start),
        "motorcycle-objects": lambda n: real.motorcycle_objects(),
        "motorcycle-views": lambda n: real.motorcycle_views(),
        "motorcycle-pasted": lambda n: real.motorcycle_pasted(),
        "motorcycle-whole": lambda n: real.motorcycle_whole(),
        "motorcycle-whole-views": lambda n: real.motorcycle_whole_views(),
        "motorcycle-whole-pasted": lambda n: real.motorcycle_whole_pasted(),
        "emoji": lambda n: real.emoji_composites(n),
        "motorcycle-views-full": lambda n: real.motorcycle_views(None),
        "motorcycle-whole-views-full": lambda n: real.motorcycle_whole_views(None),
        "emoji-1024": lambda n: real.emoji_composites(n, long_side=1024),
        "sign-letters": lambda n: real.sign_letters(),
        "emoji-tune": lambda n: real.emoji_tuning_composites(n),
        "people-tune": lambda n: people_tuning(n),
    }
    if name in loaders:
        return loaders[name](n_images)
    raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS + TUNING_SETS)}")


def first_click(engine, composites: Sequence[Composite], *, threshold: float = DEFAULT_THRESHOLD,
                pin_frame: bool = True) -> dict:
    """What an object's first click offers and what is chosen from it: mean IoU of each of
    :func:`cmp.candidates.segment_candidates`' candidates after the protocol's first click, of the
    most confident one (:func:`cmp.candidates.best_candidate`, what the CLI and the page choose) and
    of the best one by IoU (what a perfect choice would give); ``chosen_is_best``: the share of
    images where the two are the same candidate."""
    per: list[list[float]] = []
    chosen: list[int] = []
    names: list[str] = []
    for comp in composites:
        x, y, _ = next_click(comp.mask, np.zeros_like(comp.mask))
        cands = segment_candidates(engine, comp.rgb, [(x, y)], [], threshold=threshold, pin_frame=pin_frame)
        names = [c.name for c in cands]
        per.append([iou(c.mask, comp.mask) for c in cands])
        chosen.append(best_candidate(cands))
    ious = np.array(per)
    picked = ious[np.arange(len(ious)), chosen]
    return {"images": len(ious), "iou": {n: float(v) for n, v in zip(names, ious.mean(axis=0))},
            "most_confident": float(picked.mean()), "best": float(ious.max(axis=1).mean()),
            "chosen_is_best": float(np.mean(picked >= ious.max(axis=1)))}


def run(engine=None, *, n_images: int = 30, max_clicks: int = MAX_CLICKS, baseline: bool = True,
        zoom: bool = True, threshold: float = DEFAULT_THRESHOLD, start: int = EVAL_SEED_START,
        pin_frame: bool = True, progress: Callable[[str], None] | None = None, dataset: str = "composites",
        extra: dict[str, Method] | None = None, candidates_of=None,
        images: Sequence[Composite] | None = None, kind: str | None = None) -> dict:
    """Benchmark the engine (if given) and the geodesic baseline on one set; a JSON-able dict.

    ``extra``: more methods by name (e.g. refinements of the model's score). ``candidates_of``:
    an engine whose first-click candidates are reported too (:func:`first_click`). ``images``:
    the set's images themselves (e.g. :func:`cmp.eval.folder.folder_set`), named ``dataset`` and
    described by ``kind``, instead of a built-in set.
    """
    from .real import SET_KINDS

    if n_images < 1:
        raise ValueError("n_images must be at least 1")
    if max_clicks < max(IOU_AT):
        raise ValueError(f"max_clicks must be at least {max(IOU_AT)}")
    if dataset == "composites" and start < EVAL_SEED_START:
        raise ValueError(f"evaluation seeds must be >= {EVAL_SEED_START} (lower ones are for training)")
    methods: dict[str, Method] = {}
    recipe = {"threshold": threshold, "zoom": zoom, "pin_frame": pin_frame}
    if engine is not None:
        methods[f"cmp ({getattr(engine, 'name', 'model')})"] = model_method(engine, **recipe)
    methods.update(extra or {})
    if baseline:
        methods["geodesic baseline"] = baseline_method(**recipe)
    if not methods:
        raise ValueError("nothing to evaluate")
    if images is not None and not images:
        raise ValueError("no images given")
    comps = list(images) if images is not None else load_set(dataset, n_images, start)
    results = evaluate(methods, comps, max_clicks=max_clicks, progress=progress)
    seeds = [comps[0].seed, comps[-1].seed]
    out = {"protocol": f"RITM clicks on {dataset}", "dataset": dataset,
           "kind": kind if kind is not None else SET_KINDS[dataset],
           "seeds": seeds, "image_ids": [c.seed for c in comps], "max_clicks": max_clicks, **recipe,
           "methods": {name: {**r.summary(), "curve": r.curve()} for name, r in results.items()}}
    if candidates_of is not None:
        out["first_click"] = first_click(candidates_of, comps, threshold=threshold, pin_frame=pin_frame)
    return out


def format_table(report: dict) -> str:
    cols = ["NoC@85", "NoC@90", "IoU@1", "IoU@3", "IoU@5", "falls", "images", "seconds"]
    names = list(report["methods"])
    width = max(len("method"), *(len(n) for n in names))
    lines = [f"{'method':<{width}}  " + "  ".join(f"{c:>7}" for c in cols)]
    for n in names:
        s = report["methods"][n]
        cells = [f"{s[c]:7.2f}" if c.startswith("NoC") else f"{s[c]:7.3f}" if c.startswith("IoU")
                 else f"{s.get(c, '-'):>7}" for c in cols]
        lines.append(f"{n:<{width}}  " + "  ".join(cells))
    lines.insert(0, f"{report.get('dataset', 'composites')}: {report.get('kind', 'composite')}")
    fc = report.get("first_click")
    if fc:
        lines.append("first click, IoU of each candidate: "
                     + ", ".join(f"{n} {v:.3f}" for n, v in fc["iou"].items())
                     + f"; the most confident {fc['most_confident']:.3f}, the best of them {fc['best']:.3f} "
                     f"(the same one on {100 * fc['chosen_is_best']:.0f}% of images)")
    lines.append(f"(seeds {report['seeds'][0]}-{report['seeds'][1]}, max {report['max_clicks']} clicks, "
                 f"zoom {'on' if report['zoom'] else 'off'}, frame pins "
                 f"{'on' if report.get('pin_frame', False) else 'off'}, threshold {report['threshold']}; "
                 f"falls: images whose IoU fell by more than {FALL_IOU} after a click)")
    return "\n".join(lines)


def plot(report: dict, path: str | os.PathLike) -> Path:
    """mIoU against number of clicks, one line per method, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for name, s in report["methods"].items():
        ks = np.arange(1, len(s["curve"]) + 1)
        ax.plot(ks, s["curve"], marker="o", ms=3, label=f"{name} (NoC@90 {s['NoC@90']:.1f})")
    for t in IOU_THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("clicks")
    ax.set_ylabel("mean IoU")
    ax.set_ylim(0, 1)
    ax.set_title(f"{report.get('dataset', 'composites')}: {report.get('kind', 'composite').split(' (')[0]}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
