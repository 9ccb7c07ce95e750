"""Click segmentation with CMP: clicks -> a walk on the embedding (or motion probes) -> mask, zoom, clean-up.

The recipe of the CMP annotation demo: every positive click gets motion
(+v, 0), (-v, 0), (0, +v), (0, -v) in four guidance sets, every negative
click gets zero motion in all four; the four sets run as one batch on the
cached image encoding; the score is the mean |flow| over the four outputs
and both axes divided by its maximum; the mask is score > threshold. What
moves with the clicked point is the object. Unless turned off, every set also
pins the border of the view still (:func:`frame_pins`): the surroundings stay.
With a model that has an embedding (the embedded one) the score is by default
(``walk``, :data:`DEFAULT_WALK`) instead the chance that a random walk on that
embedding reaches a positive click before a negative one or the frame
(:mod:`cmp.walk`): parts joined to the clicked one come along. The probes then run
only when their flows are asked for (``evidence``: the Segment page's evidence).

Everything here works on any *propagator*: an object with
``set_image(rgb) -> handle`` (handle has ``.transform``, an
:class:`cmp.geometry.ImageTransform`) and ``propagate_batch(handle, sets)``,
as :class:`cmp.engine.Engine` does. This module never imports Gradio.

Coordinates are (x, y) = (column, row) in pixels of the caller's image;
masks are (H, W) bool, row-major, True = object. Where the model looks (the zoom crop) is
:mod:`cmp.zoom`; the part / object / group candidates of a click and the choice among them,
:mod:`cmp.candidates`; saving masks (PNG, COCO RLE), :mod:`cmp.masks`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
from scipy import ndimage

from . import params
from .geometry import MIN_SIDE, ImageSizeError
from .guidance import MAX_POINTS, GuidanceError, validate_points
from .walk import walk_score
from .zoom import ZOOM_MIN_FRACTION, ZOOM_MIN_SIDE, Box, mask_box, zoom_box

#: Probe motion in model-input pixels (the reference demo's v = 30).
PROBE_MAGNITUDE = 30.0
DEFAULT_THRESHOLD = 0.5
#: Clean-up: holes smaller than this fraction of the mask area are filled;
#: without a positive click inside the mask, islands below it are dropped.
HOLE_FRACTION = 0.02
ISLAND_FRACTION = 0.02
#: Frame pins: zero-motion points spaced along the border of what the model sees
#: (the zoom crop, or the whole image), this many per side, none closer to a
#: positive click than FRAME_PIN_CLEARANCE x the long side.
FRAME_PINS_PER_SIDE = 4
FRAME_PIN_CLEARANCE = 0.1
#: Edge-aware refinement of the mask (:mod:`cmp.refine`; None = the plain threshold).
DEFAULT_REFINE: str | None = "colour-guided"
#: The object's score from a random walk on the model's embedding (:mod:`cmp.walk`) instead of
#: the probes' motion: fewer clicks on the tuning sets and most evaluation sets (the log's "The
#: object as a random walk on the embedding"). The default since its solve reuses one symbolic
#: factorization per grid shape and the probes run only for the page's evidence (the log's
#: "The walk as the default"); ``walk=False``, ``python -m cmp segment --no-walk``: the probes.
DEFAULT_WALK = True


class Propagator(Protocol):
    def set_image(self, rgb: np.ndarray) -> Any: ...

    def propagate_batch(self, handle: Any, guidance_sets: Sequence[np.ndarray], *, blend: str,
                        edges: bool) -> np.ndarray: ...


# -- clicks ---------------------------------------------------------------------

def as_clicks(points: Iterable[Sequence[float]] | None) -> np.ndarray:
    """Clicks [(x, y), ...] -> (N, 2) float64; raises GuidanceError on malformed input."""
    if points is None:
        return np.zeros((0, 2))
    if isinstance(points, np.ndarray):
        if points.size and points.shape[-1] != 2:
            raise GuidanceError(f"clicks need 2 numbers x,y each; got shape {points.shape}")
        return points.astype(np.float64).reshape(-1, 2)
    rows = []
    for p in points:
        p = list(p)
        if len(p) != 2:
            raise GuidanceError(f"a click needs 2 numbers x,y; got {len(p)}")
        try:
            rows.append([float(p[0]), float(p[1])])
        except (TypeError, ValueError):
            raise GuidanceError(f"a click needs numbers x,y; got {p!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def check_clicks(positive, negative, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate clicks for an image of ``height x width``; returns (P (n, 2), N (m, 2)).

    :func:`cmp.guidance.validate_points` (kind "click") on both lists together.
    """
    pos, neg = as_clicks(positive), as_clicks(negative)
    validate_points(np.concatenate([pos, neg]), height, width, kind="click")
    return pos, neg


# -- probes and score -----------------------------------------------------------

def probe_sets(positive: np.ndarray, negative: np.ndarray, vx: float, vy: float) -> list[np.ndarray]:
    """The 4 guidance sets, each (n + m, 4) = (x, y, dx, dy) in image pixels.

    Positive clicks move by (+vx, 0), (-vx, 0), (0, +vy), (0, -vy); negative
    clicks are pinned (0, 0) in all four. Negative rows come last, so a negative
    click on the same model pixel as a positive one wins.
    """
    pos, neg = as_clicks(positive), as_clicks(negative)
    sets = []
    for dx, dy in ((vx, 0.0), (-vx, 0.0), (0.0, vy), (0.0, -vy)):
        moving = np.concatenate([pos, np.tile([dx, dy], (len(pos), 1))], axis=1)
        still = np.concatenate([neg, np.zeros((len(neg), 2))], axis=1)
        sets.append(np.concatenate([moving, still], axis=0).reshape(-1, 4))
    return sets


def probe_flows(engine: Propagator, handle, positive, negative, v: float = PROBE_MAGNITUDE) -> np.ndarray:
    """Run the 4 probes as one batch; returns (4, H, W, 2) float32 flow in image pixels.

    ``v`` is in model-input pixels and converted with the handle's transform,
    so the network sees the same motion whatever the image size. The probes take the plain
    weighted mean of their vectors: a pixel follows the moving clicks or the still ones, and
    an affine fit between the two would smear that choice into a ramp. They skip the flow's
    edge snap (the mask's own refinement, :mod:`cmp.refine`, does that job).
    """
    tf = handle.transform
    return engine.propagate_batch(handle, probe_sets(positive, negative, v / tf.sx, v / tf.sy), blend="mean",
                                  edges=False)


def score_from_flows(flows: np.ndarray) -> np.ndarray:
    """(G, H, W, 2) probe flows -> (H, W) float32 score in [0, 1] (mean |flow| / its max)."""
    flows = np.asarray(flows, dtype=np.float32)
    if len(flows) == 0:
        return np.zeros(flows.shape[1:3], np.float32)
    # Summed plane by plane: ``np.abs(flows).mean(axis=(0, 3))`` reduces over strided axes,
    # 11 ms for four 512 px probes against 0.4 ms this way (the same up to float rounding).
    total = np.abs(flows[0])
    for f in flows[1:]:
        total += np.abs(f)
    mag = (total[..., 0] + total[..., 1]) * np.float32(1.0 / (2 * len(flows)))
    top = float(mag.max()) if mag.size else 0.0
    return mag / top if top > 0 else np.zeros_like(mag)


def probe_score(engine: Propagator, rgb: np.ndarray, positive, negative, v: float = PROBE_MAGNITUDE) -> np.ndarray:
    """Score map (H, W) float32 in [0, 1] for clicks on the whole image (no zoom)."""
    pos, neg = as_clicks(positive), as_clicks(negative)
    if len(pos) == 0:
        return np.zeros(rgb.shape[:2], np.float32)
    handle = engine.set_image(rgb)
    return score_from_flows(probe_flows(engine, handle, pos, neg, v))


def frame_pins(height: int, width: int, positive, *, per_side: int = FRAME_PINS_PER_SIDE,
               clearance: float = FRAME_PIN_CLEARANCE, budget: int = MAX_POINTS) -> np.ndarray:
    """(K, 2) (x, y) zero-motion points around the border of a ``height x width`` view.

    With only moving points, a motion model is free to move the whole view (a
    panning camera moves everything); a still frame says "the object is inside,
    the surroundings stay", which is what a click on an object means. Pins
    within ``clearance`` x the long side of a positive click are left out (the
    object may touch the border there), and at most ``budget`` are returned.
    """
    pos = as_clicks(positive)
    t = np.arange(per_side) / per_side
    w1, h1 = width - 1.0, height - 1.0
    pts = np.concatenate([np.stack([t * w1, np.zeros_like(t)], 1), np.stack([np.full_like(t, w1), t * h1], 1),
                          np.stack([(1 - t) * w1, np.full_like(t, h1)], 1), np.stack([np.zeros_like(t), (1 - t) * h1], 1)])
    if len(pos):
        near = np.linalg.norm(pts[:, None] - pos[None], axis=2).min(axis=1)
        pts = pts[near >= clearance * max(height, width)]
    return pts[:max(0, budget)]


# -- clean-up ---------------------------------------------------------------------

_CLICK_RADIUS = 2  # px: a click this close to a component selects it


def _label_at(labels: np.ndarray, x: float, y: float, radius: int = _CLICK_RADIUS) -> int:
    """Component label at a click, or the most common one within ``radius`` px (0 = none)."""
    h, w = labels.shape
    xi, yi = int(np.clip(round(x), 0, w - 1)), int(np.clip(round(y), 0, h - 1))
    if labels[yi, xi]:
        return int(labels[yi, xi])
    win = labels[max(0, yi - radius):yi + radius + 1, max(0, xi - radius):xi + radius + 1]
    win = win[win > 0]
    return int(np.bincount(win).argmax()) if win.size else 0


def clean_mask(mask: np.ndarray, positive=(), negative=(), *, hole_fraction: float = HOLE_FRACTION,
               island_fraction: float = ISLAND_FRACTION) -> np.ndarray:
    """Light clean-up of a (H, W) bool mask; returns a new bool mask.

    - Keep the 8-connected component(s) that contain a positive click (within
      2 px); if no positive click touches the mask, drop only islands smaller
      than ``island_fraction`` of the mask area.
    - Fill holes smaller than ``hole_fraction`` of the mask area, except holes
      that contain a negative click (the user said that is background).
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return mask.copy()
    pos, neg = as_clicks(positive), as_clicks(negative)
    # The work is done on the mask's box with a margin of background (the click search radius
    # + 1): every background region that reaches the margin reaches the image border through
    # the background around the box, and a click beyond the margin reaches no mask pixel, so
    # the result is the same as on the whole image, for a fraction of the pixels.
    h, w = mask.shape
    m = _CLICK_RADIUS + 1
    y0, y1 = max(int(rows[0]) - m, 0), min(int(rows[-1]) + m + 1, h)
    x0, x1 = max(int(cols[0]) - m, 0), min(int(cols[-1]) + m + 1, w)
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = _clean_view(mask[y0:y1, x0:x1], pos - [x0, y0], neg - [x0, y0], hole_fraction,
                                    island_fraction)
    return out


def _clean_view(mask: np.ndarray, pos: np.ndarray, neg: np.ndarray, hole_fraction: float,
                island_fraction: float) -> np.ndarray:
    """:func:`clean_mask` on a view whose edges count as the image border."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    keep_ids = {_label_at(labels, x, y) for x, y in pos} - {0}
    if keep_ids:
        out = np.isin(labels, sorted(keep_ids))
    else:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        big = np.flatnonzero(sizes >= island_fraction * mask.sum())
        big = big[big > 0]
        out = np.isin(labels, big) if len(big) else mask.copy()
    # Holes: 4-connected background components not touching the image border.
    bg_labels, nb = ndimage.label(~out)
    if nb:
        sizes = np.bincount(bg_labels.ravel(), minlength=nb + 1)
        border = np.unique(np.concatenate([bg_labels[0], bg_labels[-1], bg_labels[:, 0], bg_labels[:, -1]]))
        fill = sizes <= max(1.0, hole_fraction * out.sum())
        fill[0] = False
        fill[border] = False
        h, w = out.shape
        for x, y in neg:
            fill[bg_labels[int(np.clip(round(y), 0, h - 1)), int(np.clip(round(x), 0, w - 1))]] = False
        out = out | fill[bg_labels]
    return out


# -- the whole recipe -------------------------------------------------------------

@dataclass
class Segmentation:
    """Result of :func:`segment`: mask (H, W) bool, score (H, W) float32 in [0, 1]
    (zero outside the zoom box), and the zoom box used (None = whole image).

    flows: the 4 probe flows (4, h, w, 2) float32 of the view the model saw (the
    zoom crop, or the whole image), in pixels of that view; None without a
    positive click, or when the walk made the score and no evidence was asked for
    (:func:`segment`'s ``evidence``). What the clicks move: the Segment page's evidence.
    source: what made the score, ``"walk"`` (:mod:`cmp.walk`) or ``"probes"`` (the flows).
    """

    mask: np.ndarray
    score: np.ndarray
    box: Box | None
    flows: np.ndarray | None = None
    source: str = "probes"


def check_threshold(threshold) -> float:
    """The mask threshold, a number strictly between 0 and 1 (page, API and CLI alike)."""
    t = params.number(threshold, "threshold", 0.0, 1.0)
    if not 0.0 < t < 1.0:
        raise params.ParamError(f"threshold must be between 0 and 1 (exclusive); got {t:g}")
    return t


def segment(engine: Propagator, rgb: np.ndarray, positive, negative=(), *,
            threshold: float = DEFAULT_THRESHOLD, zoom: bool = True, clean: bool = True,
            v: float = PROBE_MAGNITUDE, zoom_min_fraction: float = ZOOM_MIN_FRACTION,
            pin_frame: bool = True, zoom_min_side: int = ZOOM_MIN_SIDE,
            refine: str | None = DEFAULT_REFINE, around: Box | None = None,
            keep: Box | None = None, walk: bool = DEFAULT_WALK, evidence: bool = False) -> Segmentation:
    """Mask of the object marked by clicks on an (H, W, 3) uint8 RGB image.

    positive / negative: [(x, y), ...] in image pixels, in click order.
    With ``zoom`` the model runs on a square crop around the clicks (resized
    to the model size by the engine) and the score is pasted back at full
    resolution; pixels outside the crop are background. With ``pin_frame`` the
    border of what the model sees is pinned still (:func:`frame_pins`) away
    from the positive clicks. ``refine`` snaps the thresholded score to the image's edges
    (:func:`cmp.refine.refine_mask`; None = the plain threshold). ``around``: the box of the
    object's mask before this click (:func:`mask_box`), for a later click's zoom
    (:func:`zoom_box`); None = zoom around the clicks alone. ``keep``: the crop that click
    used (its encoding is reused while it fits). ``walk``: the score is the chance that a random
    walk on the model's embedding reaches a positive click first (:func:`cmp.walk.walk_score`:
    parts joined to the clicked one come along), for models with an embedding (the default,
    :data:`DEFAULT_WALK`); False, or a model without one: the probes' motion
    (:func:`score_from_flows`). ``evidence``: the probes' flows are computed and returned
    (what the clicks move) even when the walk gives the score: only the Segment page asks,
    while its evidence is open; without it ``flows`` is None then (the probes are a third of
    a click's time).
    """
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:  # checked before zooming, so the message names the image, not the crop
        raise ImageSizeError(f"image is {w}x{h} px; each side must be at least {MIN_SIDE} px")
    check_threshold(threshold)
    pos, neg = check_clicks(positive, negative, h, w)
    if len(pos) == 0:
        return Segmentation(np.zeros((h, w), bool), np.zeros((h, w), np.float32), None)
    box = zoom_box(np.concatenate([pos, neg]), h, w, min_fraction=zoom_min_fraction,
                   min_side=zoom_min_side, around=around, keep=keep) if zoom else None
    view = rgb if box is None else np.ascontiguousarray(box.crop(rgb))
    vpos, vneg = (pos, neg) if box is None else (box.to_crop(pos), box.to_crop(neg))
    if pin_frame:
        pins = frame_pins(view.shape[0], view.shape[1], vpos, budget=MAX_POINTS - len(pos) - len(neg))
        vneg = np.concatenate([vneg, pins])
    handle = engine.set_image(view)
    score = walk_score(engine, handle, vpos, vneg, first=len(pos) == 1 and len(neg) == 0,
                       border=pin_frame) if walk else None
    flows = probe_flows(engine, handle, vpos, vneg, v) if evidence or score is None else None
    source = "probes" if score is None else "walk"
    if score is None:  # no embedding to walk on (the original's decoder): what the probes move
        score = score_from_flows(flows)
    if box is not None:
        score = box.paste(score, h, w, 0.0)
    mask = score > threshold
    if refine is not None:
        from .refine import refine_mask
        mask = refine_mask(refine, rgb, score, pos, neg, box=box, threshold=threshold)
    if clean:
        mask = clean_mask(mask, pos, neg)
    return Segmentation(mask, score, box, flows, source)


def zoom_history(previous: Segmentation | None) -> dict:
    """:func:`segment`'s ``around`` and ``keep`` for the object's click after ``previous``
    (its mask's box, its crop); none for a first click."""
    if previous is None:
        return {"around": None, "keep": None}
    return {"around": mask_box(previous.mask), "keep": previous.box}


def follow_click(before: np.ndarray | None, mask: np.ndarray, positive: bool) -> np.ndarray:
    """The object's mask after a click, read with the click's sign: a positive click ("this is
    missing") only adds to ``before``, the mask the click before it gave, and a negative one
    ("this is extra") only takes away from it. ``mask``: what all the clicks give afresh
    (:func:`segment`); ``before`` None (the object's first click): ``mask`` as it is.

    The probes read every click afresh, so without this a click could change the mask far
    from where it was made: a positive click drop a part that was right, a negative one flood
    a look-alike region. Chosen on the tuning sets and kept by a rule written before the
    evaluation sets were run (the model card's log, "A click adds or takes away")."""
    mask = np.asarray(mask, dtype=bool)
    if before is None:
        return mask
    return (before | mask) if positive else (before & mask)


def following(result: Segmentation, before: np.ndarray | None, positive: bool) -> Segmentation:
    """A copy of ``result`` (a :class:`Segmentation` or a :class:`cmp.candidates.Candidate`) whose
    mask follows the click from ``before`` (:func:`follow_click`); its score, crop and confidence
    stay as computed."""
    out = copy.copy(result)
    out.mask = follow_click(before, result.mask, positive)
    return out


def replay_clicks(clicks):
    """(positive, negative, newest is positive) after each click of ``[(x, y, positive), ...]``
    that has a positive one so far (the clicks before the first positive one only add to the
    negatives)."""
    pos: list = []
    neg: list = []
    for x, y, positive in clicks:
        (pos if positive else neg).append((x, y))
        if pos:
            yield list(pos), list(neg), bool(positive)


def segment_clicks(engine: Propagator, rgb: np.ndarray, clicks, **recipe) -> Segmentation:
    """:func:`segment` for clicks in the order they were made, ``[(x, y, positive), ...]``, as
    the pages answer them: each click after the first zooms around the mask the click before
    it gave (``around``), and adds to that mask or takes away from it by its sign
    (:func:`follow_click`). ``recipe``: :func:`segment`'s keywords. Clicks before the first
    positive one only add to the negatives (there is no object yet)."""
    pos = [(x, y) for x, y, p in clicks if p]
    if not pos:
        return segment(engine, rgb, pos, [(x, y) for x, y, _ in clicks], **recipe)
    res = None
    for p, n, positive in replay_clicks(clicks):
        before = None if res is None else res.mask
        res = following(segment(engine, rgb, p, n, **zoom_history(res), **recipe), before, positive)
    return res
