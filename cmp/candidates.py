"""Part or whole: several candidate masks per click, each with a confidence (SAM's multi-mask
output), and the rule that picks one.

Each candidate is :func:`cmp.segment.segment` with the model shown another share of the image
around the clicks (:data:`CANDIDATE_SCALES`); :func:`mask_confidence` reads how much to trust a
mask from its own score map. The Segment page, the ``/segment_*`` API and ``python -m cmp
segment`` all choose with :func:`best_candidate`. Never imports Gradio.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .geometry import MIN_SIDE
from .segment import (DEFAULT_THRESHOLD, DEFAULT_WALK, PROBE_MAGNITUDE, Propagator, Segmentation, following,
                      replay_clicks, segment, zoom_history)
from .zoom import ZOOM_MIN_FRACTION, ZOOM_MIN_SIDE, Box

#: The candidates: (name, zoom_min_fraction) - how much of the image the model
#: sees around the clicks. A tight crop with its frame pinned still groups only
#: what moves with the click nearby (a part); the default crop, the object; the
#: whole image, the larger group the object moves with. The grouping changes
#: because the model sees another scene, not because one score map is cut at
#: other thresholds.
CANDIDATE_SCALES: tuple[tuple[str, float | None], ...] = (("part", 0.25), ("object", ZOOM_MIN_FRACTION),
                                                           ("group", None))


def scale_named(name: str) -> list[tuple[str, float | None]]:
    """The one entry of :data:`CANDIDATE_SCALES` called ``name`` (as ``segment_candidates``' scales)."""
    return [s for s in CANDIDATE_SCALES if s[0] == name]


#: Stability margin: confidence compares the masks at threshold +- this.
STABILITY_DELTA = 0.15


@dataclass
class Candidate(Segmentation):
    """One of :func:`segment_candidates`' masks: a :class:`Segmentation` with a name
    (``part`` / ``object`` / ``group``) and a confidence in [0, 1]."""

    name: str = ""
    confidence: float = 0.0


def mask_confidence(res: Segmentation, threshold: float = DEFAULT_THRESHOLD, delta: float = STABILITY_DELTA) -> float:
    """How much to trust a mask, in [0, 1], from its own score map (no ground truth).

    Stability (SAM's stability score): IoU of ``score > threshold + delta`` and
    ``score > threshold - delta`` - a mask whose outline sits on a sharp step of
    the score does not move with the threshold. Times the share of its outline
    that is not cut by the zoom crop's edge: a mask running into the border of a
    crop smaller than the image is an object the crop cut off.
    """
    hi, lo = res.score > min(threshold + delta, 0.999), res.score > max(threshold - delta, 0.0)
    union = int(lo.sum())
    if union == 0 or not res.mask.any():
        return 0.0
    stability = int((hi & lo).sum()) / union
    if res.box is None:
        return float(stability)
    # the outline, on the mask's bounding box and one pixel more (the same as on the whole
    # image, in a fraction of its time): the image's own border does not cut a mask
    m = res.mask
    (h, w), (y0, y1), (x0, x1) = m.shape, _extent(m.any(1)), _extent(m.any(0))
    y0, x0, y1, x1 = max(y0 - 1, 0), max(x0 - 1, 0), min(y1 + 1, h), min(x1 + 1, w)
    part = np.ascontiguousarray(m[y0:y1, x0:x1])
    inner = cv2.erode(part.view(np.uint8), _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    outline = part & (inner == 0)
    n = int(outline.sum())
    if n == 0:
        return float(stability)
    # the crop's edges that lie inside the image, drawn on the same box
    b = res.box
    cut = np.zeros(part.shape, bool)
    rows = slice(max(b.y0 - y0, 0), max(min(b.y1, y1) - y0, 0))
    cols = slice(max(b.x0 - x0, 0), max(min(b.x1, x1) - x0, 0))
    for inside, x in ((b.x0 > 0, b.x0), (b.x1 < w, b.x1 - 1)):
        if inside and x0 <= x < x1:
            cut[rows, x - x0] = True
    for inside, y in ((b.y0 > 0, b.y0), (b.y1 < h, b.y1 - 1)):
        if inside and y0 <= y < y1:
            cut[y - y0, cols] = True
    return float(stability * (1.0 - (outline & cut).sum() / n))


def _extent(rows: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) of the True entries of a 1-D array with at least one."""
    idx = np.flatnonzero(rows)
    return int(idx[0]), int(idx[-1]) + 1


_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)


def segment_candidates(engine: Propagator, rgb: np.ndarray, positive, negative=(), *,
                       threshold: float = DEFAULT_THRESHOLD, clean: bool = True, v: float = PROBE_MAGNITUDE,
                       pin_frame: bool = True,
                       scales: Sequence[tuple[str, float | None]] = CANDIDATE_SCALES,
                       around: Box | None = None, keep: Box | None = None,
                       walk: bool = DEFAULT_WALK, evidence: bool = False) -> list[Candidate]:
    """Part / object / group masks for the same clicks, each with a confidence (SAM's multi-mask output).

    Each candidate is :func:`segment` with zoom at another scale (``scales``:
    (name, zoom_min_fraction), None = the whole image; the crop's minimum side in
    pixels scales with the fraction, so a part crop stays tighter than the
    object crop on small images too); the image encoding of each view is cached by the
    engine, so repeating the clicks is cheap. Returns the candidates in the
    order of ``scales``; :func:`best_candidate` picks the most confident.
    Without a positive click every candidate is empty with confidence 0. ``around``,
    ``keep``, ``walk`` and ``evidence``: as for :func:`segment` (``around``, ``keep``: a later
    click of the candidate's object).
    """
    out = []
    for name, fraction in scales:
        res = segment(engine, rgb, positive, negative, threshold=threshold, zoom=fraction is not None,
                      clean=clean, v=v, zoom_min_fraction=ZOOM_MIN_FRACTION if fraction is None else float(fraction),
                      pin_frame=pin_frame,
                      zoom_min_side=ZOOM_MIN_SIDE if fraction is None else
                      max(MIN_SIDE, round(ZOOM_MIN_SIDE * float(fraction) / ZOOM_MIN_FRACTION)), around=around,
                      keep=keep, walk=walk, evidence=evidence)
        out.append(Candidate(**vars(res), name=name,
                             confidence=mask_confidence(res, threshold)))
    return out


def candidate_clicks(engine: Propagator, rgb: np.ndarray, clicks, **recipe) -> list[Candidate]:
    """:func:`segment_candidates` for clicks in the order they were made, as ``python -m cmp
    segment`` answers them: all three candidates at every click, each click after the first
    zoomed around the most confident candidate of the click before it. Returns the last click's
    candidates; ``recipe``: :func:`segment_candidates`' keywords. (The Segment page answers a
    later click with the candidate it shows alone, at its scale, :func:`cmp.annotate.recompute`;
    on the tuning sets the two rules are within half a click of each other, the log's "Two
    rules for later clicks".) Each later click's candidates add to the kept mask of the click
    before it or take away from it by the click's sign (:func:`cmp.segment.follow_click`); which one is most
    confident is read from their own scores, as at a first click."""
    pos = [(x, y) for x, y, p in clicks if p]
    if not pos:
        return segment_candidates(engine, rgb, [], [(x, y) for x, y, _ in clicks], **recipe)
    kept, cands = None, []
    for p, n, positive in replay_clicks(clicks):
        before = None if kept is None else kept.mask
        cands = [following(c, before, positive)
                 for c in segment_candidates(engine, rgb, p, n, **zoom_history(kept), **recipe)]
        kept = cands[best_candidate(cands)]
    return cands


def best_candidate(candidates: Sequence[Candidate]) -> int:
    """Index of the most confident candidate (the first one on a tie)."""
    return int(np.argmax([c.confidence for c in candidates]))
