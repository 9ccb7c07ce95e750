"""Click annotation (the Segment page's use case) as pure functions: no Gradio, no files.

The per-session state is a dict of plain values (it lives in the page's ``gr.State``;
a Python user keeps it in a variable)::

    {"size": [h, w], "clicks": [[x, y, 1 | 0], ...],   # current object, 1 = positive
     "mask": RLE counts str | None,                     # current object's chosen mask
     "candidates": [{"name", "confidence", "mask", "clicks": how many clicks it answers}], "chosen": int,
     "answered": clicks the mask answers, "history": [what was shown before each of them],
     "t0": epoch s of the object's first click | None, "n_clicks": clicks made (undone ones too),
     "objects": [{"clicks", "mask", "label", "n_clicks", "seconds"}, ...]}   # finished objects

Masks are compressed COCO RLE strings (a few kB), so finished objects never need the
model again. The wire format of points (what ``/segment_mask`` takes) is
``{"positive": [[x, y], ...], "negative": [[x, y], ...], "order": "pnp"}`` (``order``, optional:
the clicks' signs in the order they were made; each later click then zooms around the mask
before it, as on the page): :func:`read_points` (and :func:`parse_points`) read it,
:func:`points_json` writes it, :func:`check_points` is the one validator the page,
the HTTP API and ``python -m cmp segment`` share. Model work (:func:`recompute`,
:func:`mask_from_points`, :func:`candidates_from_points`) goes through
:func:`cmp.lease.run_model`.

    from cmp import annotate
    st = annotate.new_state(rgb.shape[:2])
    st = annotate.add_click(st, 120, 80, positive=True)
    st, chosen = annotate.recompute(engine, rgb, st)        # part / object / group, most confident chosen
    st = annotate.finish_object(st, "dog")
    objects = annotate.annotations(st)                      # -> cmp.annotations.export_annotations
"""
from __future__ import annotations

import json
import time

import numpy as np

from . import lease
from .annotations import ObjectAnnotation, class_name
from .guidance import MAX_POINTS, GuidanceError, check_count
from .masks import rle_decode, rle_encode
from .candidates import CANDIDATE_SCALES, best_candidate, scale_named, segment_candidates
from .segment import DEFAULT_THRESHOLD, check_clicks, following, segment, segment_clicks, zoom_history
from .tracks import is_numbers, parse_json
from .zoom import Box

MAX_OBJECTS = 255  # label maps are 8-bit
POINTS_HELP = '{"positive": [[x, y]], "negative": [[x, y]], "order": "pn"}'


# -- the per-session state machine ------------------------------------------------

def new_state(size=None) -> dict:
    return {"size": list(size) if size else None, "clicks": [], "mask": None, "objects": []}


def add_click(state: dict, x: float, y: float, positive: bool, now: float | None = None) -> dict:
    """One more click on the current object; the object's clock starts at its first click."""
    clicks = [list(c) for c in state.get("clicks", [])]
    if len(clicks) >= MAX_POINTS:
        raise GuidanceError(f"at most {MAX_POINTS} clicks per object; undo some or start the next object")
    clicks.append([float(x), float(y), 1 if positive else 0])
    t0 = state.get("t0") if state.get("t0") is not None else (time.time() if now is None else now)
    return {**state, "clicks": clicks, "t0": t0, "n_clicks": int(state.get("n_clicks") or 0) + 1}


def split_clicks(clicks) -> tuple[list[list[float]], list[list[float]]]:
    pos = [[c[0], c[1]] for c in clicks if c[2]]
    neg = [[c[0], c[1]] for c in clicks if not c[2]]
    return pos, neg


def undo(state: dict) -> dict:
    """Drop the last click; with no clicks, reopen the last finished object for editing."""
    clicks = [list(c) for c in state.get("clicks", [])]
    objects = list(state.get("objects", []))
    history = list(state.get("history") or [])
    if clicks and len(history) == len(clicks) == state.get("answered"):  # what was shown before the click
        return {**state, "clicks": clicks[:-1], **history[-1], "history": history[:-1], "answered": len(clicks) - 1}
    if clicks:
        return {**state, "clicks": clicks[:-1], "mask": None, "candidates": [], "history": [], "answered": 0}
    if objects:
        last = objects.pop()
        return {**state, "clicks": [list(c) for c in last["clicks"]], "mask": last["mask"], "objects": objects,
                "candidates": [], "n_clicks": last.get("n_clicks"), "answered": len(last["clicks"]), "history": [],
                "t0": None if last.get("seconds") is None else time.time() - last["seconds"]}
    return state


def set_candidates(state: dict, candidates: list[dict], chosen: int | None = None) -> dict:
    """Store the click's candidates ({"name", "confidence", "mask"}) and choose one (default: most confident)."""
    if not candidates:
        return {**state, "candidates": [], "chosen": 0, "mask": None}
    if chosen is None:
        chosen = int(np.argmax([c["confidence"] for c in candidates]))
    chosen %= len(candidates)
    return {**state, "candidates": candidates, "chosen": chosen, "mask": candidates[chosen]["mask"]}


def candidate_choices(state: dict) -> list[str]:
    return [f"{c['name']} · {c['confidence']:.2f}" for c in state.get("candidates") or []]


def finish_object(state: dict, label: str | None = None, now: float | None = None) -> dict:
    """Keep the current mask as a finished object (with its class and speed) and start a new, empty one."""
    if not state.get("mask"):
        raise GuidanceError("nothing to keep yet: click the object first")
    if len(state.get("objects", [])) >= MAX_OBJECTS:
        raise GuidanceError(f"at most {MAX_OBJECTS} objects per image")
    t0 = state.get("t0")
    seconds = None if t0 is None else round(max(0.0, (time.time() if now is None else now) - t0), 2)
    obj = {"clicks": state["clicks"], "mask": state["mask"], "label": class_name(label),
           "n_clicks": state.get("n_clicks") or len(state["clicks"]), "seconds": seconds}
    return {**state, "clicks": [], "mask": None, "candidates": [], "chosen": 0, "t0": None, "n_clicks": 0,
            "answered": 0, "history": [], "objects": list(state.get("objects", [])) + [obj]}


def decode(state: dict, counts: str) -> np.ndarray:
    return rle_decode({"size": state["size"], "counts": counts})


def all_masks(state: dict) -> list[np.ndarray]:
    """Finished objects then the current one (if it has a mask), as (H, W) bool."""
    masks = [decode(state, o["mask"]) for o in state.get("objects", [])]
    if state.get("mask"):
        masks.append(decode(state, state["mask"]))
    return masks


def annotations(state: dict, label: str | None = None) -> list[ObjectAnnotation]:
    """Finished objects, then the current one (class ``label``, not yet timed), for export."""
    out = [ObjectAnnotation(decode(state, o["mask"]), class_name(o.get("label")), o.get("n_clicks"), o.get("seconds"))
           for o in state.get("objects", [])]
    if state.get("mask"):
        out.append(ObjectAnnotation(decode(state, state["mask"]), class_name(label), state.get("n_clicks")))
    return out


def speed_table(state: dict, label: str | None = None) -> str:
    """Markdown: per object its class, clicks, seconds from first click to "Next object" and area."""
    if not state.get("size"):
        return ""
    rows = ["| # | class | clicks | seconds | area px |", "|---|---|---|---|---|"]
    objs = annotations(state, label)
    for k, o in enumerate(objs, start=1):
        secs = "…" if o.seconds is None else f"{o.seconds:.1f}"
        rows.append(f"| {k} | {o.category} | {o.clicks or 0} | {secs} | {int(o.mask.sum()):,} |")
    if not objs:
        return "Speed: no objects yet."
    timed = [o for o in objs if o.seconds is not None]
    total = sum(o.seconds for o in timed)
    clicks = sum(o.clicks or 0 for o in objs)
    rows.append(f"\nSession: {len(objs)} object{'s' * (len(objs) != 1)}, {clicks} clicks"
                + (f", {total:.1f} s for {len(timed)} finished ({total / len(timed):.1f} s each)" if timed else ""))
    return "\n".join(rows)


# -- the points wire format and its one validator ------------------------------------

def check_points(positive, negative=(), height: int | None = None, width: int | None = None):
    """The one check of clicks (page, HTTP API, CLI): at least one positive click, at most
    ``MAX_POINTS`` in all, finite and (given the image size) inside the image."""
    if not len(positive):
        raise GuidanceError("give at least one positive point on the object")
    if height is not None and width is not None:
        check_clicks(positive, negative, height, width)
    else:
        check_count(len(positive) + len(negative), "clicks")
    return positive, negative


def read_points(text: str | None, height: int | None = None, width: int | None = None):
    """A points JSON -> (positive, negative, clicks): the points checked by :func:`check_points`,
    and with an ``order`` the same points as clicks in the order they were made,
    ``[(x, y, positive), ...]`` (None without one: the points are then a set, with no history)."""
    if text is None or not str(text).strip():
        raise GuidanceError(f'give points as JSON: {POINTS_HELP}')
    data = parse_json(str(text), "points")
    if not isinstance(data, dict):
        raise GuidanceError('points JSON must be an object {"positive": [...], "negative": [...]}')
    unknown = set(data) - {"positive", "negative", "order"}
    if unknown:
        raise GuidanceError(f"unknown keys {sorted(unknown)}; use 'positive', 'negative' and 'order'")
    out = []
    for key in ("positive", "negative"):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise GuidanceError(f"'{key}' must be a list of [x, y] pairs")
        pts = []
        for it in items:
            if not is_numbers(it, 2):
                raise GuidanceError(f"each {key} point must be [x, y] numbers; got {json.dumps(it)[:60]}")
            pts.append([float(it[0]), float(it[1])])
        out.append(pts)
    pos, neg = check_points(out[0], out[1], height, width)
    order = data.get("order")
    if order is not None and (not isinstance(order, str) or set(order) - {"p", "n"}
                              or order.count("p") != len(pos) or order.count("n") != len(neg)):
        raise GuidanceError(f"'order' must be one letter per point in click order, p (positive) or n "
                            f"(negative): {len(pos)} p and {len(neg)} n here")
    if order is None:
        return pos, neg, None
    its = {"p": iter(pos), "n": iter(neg)}
    return pos, neg, [(*next(its[c]), c == "p") for c in order]


def parse_points(text: str | None, height: int | None = None,
                 width: int | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """Points JSON ``{"positive": [[x, y], ...], "negative": [[x, y], ...]}`` -> (positive, negative),
    checked by :func:`check_points` (inside the image when its size is given)."""
    pos, neg, _ = read_points(text, height, width)
    return pos, neg


def points_json(clicks) -> str:
    pos, neg = split_clicks(clicks)
    r = lambda p: [round(p[0], 1), round(p[1], 1)]  # noqa: E731
    return json.dumps({"positive": [r(p) for p in pos], "negative": [r(p) for p in neg],
                       "order": "".join("p" if c[2] else "n" for c in clicks)})


# -- model work (through cmp.lease.run_model) ---------------------------------------

def _candidates(engine, rgb, positive, negative, threshold, pin_frame, scales, previous=None, evidence=False):
    """``previous``: the kept candidate this click follows (a later click), or None; ``evidence``:
    the probes' flows too (:func:`cmp.segment.segment`)."""
    history = {} if previous is None else {k: None if not previous.get(k) else Box(*previous[k])
                                           for k in ("around", "keep")}  # none kept by older states
    return lease.run_model(segment_candidates, engine, rgb, positive, negative, threshold=float(threshold),
                           pin_frame=bool(pin_frame), scales=scales, evidence=bool(evidence), **history)


def _as_candidate(c, clicks: int) -> dict:
    """A candidate as the state keeps it: its mask (RLE counts), how many of the object's clicks
    that mask answers, and what the object's next click zooms around
    (:func:`cmp.segment.zoom_history`) as [x0, y0, x1, y1] boxes."""
    history = {k: None if b is None else [b.x0, b.y0, b.x1, b.y1] for k, b in zoom_history(c).items()}
    return {"name": c.name, "confidence": round(c.confidence, 3), "mask": rle_encode(c.mask)["counts"],
            "clicks": clicks, **history}


def recompute(engine, rgb: np.ndarray, state: dict, threshold: float = DEFAULT_THRESHOLD, pin_frame: bool = True,
              evidence: bool = False):
    """State with the current object's candidates recomputed from its clicks, and the chosen
    :class:`cmp.segment.Segmentation` (None without a positive click).

    The first click of an object is ambiguous (part, object or group?): all three candidates
    are computed and the most confident is chosen. Later clicks refine the reading already
    chosen, at its one scale (a third of the work), as SAM answers later clicks with one mask,
    zoomed around that candidate's mask so far (:func:`cmp.zoom.zoom_box`);
    the other candidates keep their last masks until chosen (:func:`choose` recomputes them;
    each candidate records how many clicks its mask answers).
    A new click (one more than the mask answered) adds to the chosen mask or takes away from it
    by its sign (:func:`cmp.segment.follow_click`), and what was shown before it is kept for
    :func:`undo`; a call for the same clicks (a changed threshold or frame setting) reads them
    afresh. After an undo with nothing kept all three are computed again. ``evidence``: the
    results carry the probes' flows (the page's evidence, when it is open).
    """
    pos, neg = split_clicks(state["clicks"])
    n = len(state["clicks"])
    clicked = n == int(state.get("answered") or 0) + 1
    history = list(state.get("history") or []) if clicked else []
    if clicked:
        history.append({"candidates": state.get("candidates") or [], "chosen": state.get("chosen") or 0,
                        "mask": state.get("mask")})
    state = {**state, "answered": n, "history": history}
    if not pos:
        return set_candidates(state, []), None
    cands = state.get("candidates") or []
    if n > 1 and cands:
        k = state.get("chosen", 0) % len(cands)
        (res,) = _candidates(engine, rgb, pos, neg, threshold, pin_frame, scale_named(cands[k]["name"]),
                             cands[k], evidence)
        if clicked:
            res = following(res, decode(state, cands[k]["mask"]), bool(state["clicks"][-1][2]))
        cands = [*cands[:k], _as_candidate(res, n), *cands[k + 1:]]
        return set_candidates(state, cands, k), res
    results = _candidates(engine, rgb, pos, neg, threshold, pin_frame, CANDIDATE_SCALES, evidence=evidence)
    # chosen by their confidence as computed (the state keeps it rounded), as the CLI and API choose
    state = set_candidates(state, [_as_candidate(c, n) for c in results], best_candidate(results))
    return state, results[state["chosen"]]


def _reading(engine, rgb: np.ndarray, state: dict, k: int, threshold: float, pin_frame: bool, evidence: bool = False):
    """Candidate ``k`` read from all the object's clicks afresh, at its one scale."""
    cands = state["candidates"]
    pos, neg = split_clicks(state["clicks"])
    (res,) = _candidates(engine, rgb, pos, neg, threshold, pin_frame, scale_named(cands[k]["name"]),
                         cands[k] if len(state["clicks"]) > 1 else None, evidence)
    return res


def choose(engine, rgb: np.ndarray, state: dict, index: int, threshold: float = DEFAULT_THRESHOLD,
           pin_frame: bool = True, evidence: bool = False):
    """Choose candidate ``index`` (wrapping); returns the state and that candidate's reading of
    the clicks. A candidate whose mask answers every click so far (the one shown at the last
    click, chosen again after a look at another) comes back as it was: its mask may add up
    several clicks (:func:`cmp.segment.follow_click`), and switching must not lose it. Any
    other is recomputed from all the object's clicks at its one scale. ``evidence``: as for
    :func:`recompute`."""
    cands = state["candidates"]
    k = index % len(cands)
    res = _reading(engine, rgb, state, k, threshold, pin_frame, evidence)
    if cands[k].get("clicks") == len(state["clicks"]):
        return set_candidates(state, cands, k), res
    return set_candidates(state, [*cands[:k], _as_candidate(res, len(state["clicks"])), *cands[k + 1:]], k), res


def reading(engine, rgb: np.ndarray, state: dict, threshold: float = DEFAULT_THRESHOLD, pin_frame: bool = True):
    """The chosen candidate read from the object's clicks (its score and probe flows: what the
    page's evidence shows), the state left as it is: the mask shown may add up several clicks'
    readings (:func:`cmp.segment.follow_click`), and looking at the evidence must not change it.
    None without a candidate."""
    cands = state.get("candidates") or []  # none until a positive click (recompute keeps none without one)
    if not cands:
        return None
    return _reading(engine, rgb, state, state.get("chosen", 0) % len(cands), threshold, pin_frame, evidence=True)


def mask_from_points(engine, rgb: np.ndarray, positive, negative=(), threshold: float = DEFAULT_THRESHOLD,
                     zoom: bool = True, pin_frame: bool = True, clicks=None):
    """:func:`cmp.segment.segment` for checked points, under the GPU lease; given ``clicks``
    (the same points in click order, :func:`read_points`), :func:`cmp.segment.segment_clicks`."""
    if clicks:
        return lease.run_model(segment_clicks, engine, rgb, clicks, threshold=float(threshold), zoom=bool(zoom),
                               pin_frame=bool(pin_frame))
    return lease.run_model(segment, engine, rgb, positive, negative, threshold=float(threshold), zoom=bool(zoom),
                           pin_frame=bool(pin_frame))


def candidates_from_points(engine, rgb: np.ndarray, positive, negative=(), threshold: float = DEFAULT_THRESHOLD,
                           pin_frame: bool = True, scales=CANDIDATE_SCALES):
    """:func:`cmp.candidates.segment_candidates` for checked points, under the GPU lease."""
    return _candidates(engine, rgb, positive, negative, threshold, pin_frame, scales)
