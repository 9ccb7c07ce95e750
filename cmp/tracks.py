"""Motion tracks: the guidance wire format, the Motion page's click state machine, and path maths.

A *track* is a path of keyframes [(x, y), ...] that one image point follows over the
clip; a straight arrow (x, y, dx, dy) is the two-point track [(x, y), (x + dx, y + dy)].
A *pin* (x, y) holds a point still. Coordinates are (x, y) = (column, row) in pixels
of the working image. Keyframes are spread evenly over the clip's progress t in [0, 1]
unless they carry times: [x, y, t] with t increasing from 0 to 1.

Guidance JSON (what the page, the CLI and the HTTP API all parse here)::

    {"arrows": [[x, y, dx, dy], ...], "pins": [[x, y], ...],
     "tracks": [[[x, y], [x, y], ...], ...],         # or [[x, y, t], ...] keyframes
     "region": {"size": [height, width], "counts": "..."}}   # optional COCO RLE: 1 = may move

or a bare list of [x, y, dx, dy] arrows and [x, y] pins. This module never imports Gradio.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .guidance import MAX_POINTS, MAX_VECTOR, GuidanceError

#: Keyframes per track (the smoothing is cubic; more than this is a drawing, not a path).
MAX_KEYFRAMES = 32
#: Longest JSON text parsed (guidance, recipes); MAX_POINTS entries need a few kB.
MAX_JSON_CHARS = 100_000
#: A click within this many pixels of the last one finishes a path (or, for an arrow, makes a pin).
SAME_POINT_PX = 3.0


def parse_json(text: str, what: str, limit: int = MAX_JSON_CHARS):
    """``json.loads`` with one-line :class:`GuidanceError` messages for ``what`` (e.g. "guidance")."""
    if len(text) > limit:
        raise GuidanceError(f"{what} JSON is too long ({len(text):,} characters; the limit is {limit:,})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuidanceError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise GuidanceError(f"{what} JSON is nested too deeply") from None


def is_numbers(item, n: int) -> bool:
    """True for a JSON list of exactly ``n`` numbers (booleans are not numbers here)."""
    return (isinstance(item, list) and len(item) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item))


@dataclass
class Guidance:
    """Parsed guidance. points: [[x, y, dx, dy], ...] (arrows, and pins with dx = dy = 0);
    tracks: [[[x, y], ...] or [[x, y, t], ...], ...], each with at least two keyframes;
    region: COCO RLE dict of the (H, W) mask where motion is allowed, or None (everywhere)."""

    points: list = field(default_factory=list)
    tracks: list = field(default_factory=list)
    region: dict | None = None

    def region_mask(self) -> np.ndarray | None:
        """(H, W) bool region or None."""
        from .masks import rle_decode
        return None if self.region is None else rle_decode(self.region)

    @property
    def has_motion(self) -> bool:
        return bool(self.tracks) or any(dx or dy for _, _, dx, dy in self.points)

    def check(self, height: int, width: int) -> "Guidance":
        """Raise :class:`GuidanceError` unless the counts are within limits and every point and
        keyframe lies inside a ``width x height`` image."""
        if len(self.points) + len(self.tracks) > MAX_POINTS:
            raise GuidanceError(f"too many guidance points ({len(self.points) + len(self.tracks)}); "
                                f"the limit is {MAX_POINTS}")
        for tr in self.tracks:
            _check_track(tr)
            for k in tr:
                x, y = k[0], k[1]
                if x < -0.5 or y < -0.5 or x > width - 0.5 or y > height - 0.5:
                    raise GuidanceError(f"track keyframe ({x:g}, {y:g}) lies outside the {width}x{height} image")
        from .guidance import validate_points
        validate_points(np.asarray(self.points, np.float64).reshape(-1, 4), height, width)
        if self.region is not None and list(self.region["size"]) != [height, width]:
            h, w = self.region["size"]
            raise GuidanceError(f"the region is {w}x{h} px; the image is {width}x{height}")
        return self


def _check_track(tr) -> list[list[float]]:
    shape = "a list of [x, y] (or [x, y, t]) keyframes"
    if not isinstance(tr, list) or not tr:
        raise GuidanceError(f"each track must be {shape}; got {json.dumps(tr)[:60]}")
    n = len(tr[0]) if isinstance(tr[0], list) else 0
    if n not in (2, 3) or not all(is_numbers(k, n) for k in tr):
        raise GuidanceError(f"each track must be {shape}, all of one form; got {json.dumps(tr)[:60]}")
    if len(tr) < 2:
        raise GuidanceError("a track needs at least two keyframes (a start and an end)")
    if len(tr) > MAX_KEYFRAMES:
        raise GuidanceError(f"a track has {len(tr)} keyframes; the limit is {MAX_KEYFRAMES}")
    out = [[float(v) for v in k] for k in tr]
    if not all(math.isfinite(v) for k in out for v in k):
        raise GuidanceError("track keyframes must be finite numbers (no NaN or infinity)")
    if max(abs(k[i] - out[0][i]) for k in out for i in (0, 1)) > MAX_VECTOR:
        raise GuidanceError(f"a track moves further than {MAX_VECTOR:g} px")
    if n == 3:
        t = [k[2] for k in out]
        if t[0] != 0.0 or t[-1] != 1.0 or any(b <= a for a, b in zip(t, t[1:])):
            raise GuidanceError("keyframe times must increase from 0 to 1")
    return out


def parse_motion(text: str | None) -> Guidance:
    """Guidance JSON (see the module docstring) -> :class:`Guidance`; empty text = none.

    Raises :class:`GuidanceError` with a one-line message for anything else.
    """
    if text is None or not str(text).strip():
        return Guidance()
    data = parse_json(str(text), "guidance")
    tracks, region = [], None
    if isinstance(data, dict):
        unknown = set(data) - {"arrows", "pins", "tracks", "region"}
        if unknown:
            raise GuidanceError(f"unknown guidance keys {sorted(unknown)}; use 'arrows', 'pins', 'tracks', 'region'")
        for key, shape in (("arrows", "[x, y, dx, dy]"), ("pins", "[x, y]"), ("tracks", "[[x, y], ...]")):
            if not isinstance(data.get(key) or [], list):
                raise GuidanceError(f"'{key}' must be a list of {shape} lists")
        items = [("arrow", a) for a in data.get("arrows") or []] + [("pin", p) for p in data.get("pins") or []]
        tracks = [_check_track(tr) for tr in data.get("tracks") or []]
        region = check_region(data.get("region"))
    elif isinstance(data, list):
        items = [("pin" if isinstance(a, list) and len(a) == 2 else "arrow", a) for a in data]
    else:
        raise GuidanceError("guidance JSON must be an object {\"arrows\": [...], \"pins\": [...]} or a list")
    points = []
    for kind, item in items:
        n = 4 if kind == "arrow" else 2
        if not is_numbers(item, n):
            raise GuidanceError(f"each {kind} must be {n} numbers ({'x, y, dx, dy' if n == 4 else 'x, y'}); "
                                f"got {json.dumps(item)[:60]}")
        points.append([float(v) for v in item] + ([0.0, 0.0] if n == 2 else []))
    if len(points) + len(tracks) > MAX_POINTS:
        raise GuidanceError(f"too many guidance points ({len(points) + len(tracks)}); the limit is {MAX_POINTS}")
    return Guidance(points, tracks, region)


def check_region(rle) -> dict | None:
    """A COCO RLE region ({"size": [H, W], "counts": str or [int]}) checked by decoding it; None stays None."""
    if rle is None:
        return None
    from .masks import rle_decode
    try:
        if not isinstance(rle, dict) or set(rle) != {"size", "counts"}:
            raise ValueError
        rle_decode(rle)
    except (TypeError, ValueError, KeyError):
        raise GuidanceError("region must be COCO RLE {\"size\": [height, width], \"counts\": \"...\"} "
                            "describing the whole image") from None
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"]}


def parse_guidance(text: str | None) -> list[list[float]]:
    """Arrows and pins only: JSON -> [[x, y, dx, dy], ...] (pins as dx = dy = 0).

    For callers that take one flow (``/motion_flow``): a track counts as the arrow from
    its first to its last keyframe.
    """
    return end_arrows(parse_motion(text)).tolist()


def guidance_json(points, tracks=(), region: dict | None = None) -> str:
    """Points [[x, y, dx, dy], ...], tracks and a region RLE -> the JSON the API takes
    (rounded to 0.1 px; keyframe times to 0.001)."""
    r = lambda v: round(float(v), 1)  # noqa: E731
    arrows = [[r(x), r(y), r(dx), r(dy)] for x, y, dx, dy in points if dx or dy]
    pins = [[r(x), r(y)] for x, y, dx, dy in points if not (dx or dy)]
    out = {"arrows": arrows, "pins": pins}
    if tracks:
        out["tracks"] = [[[r(k[0]), r(k[1])] + ([round(float(k[2]), 3)] if len(k) > 2 else []) for k in tr]
                         for tr in tracks]
    if region is not None:
        out["region"] = region
    return json.dumps(out)


# -- the Motion page's click state machine (pure; the page only draws and wires) ---------
# State: {"points": [[x, y, dx, dy], ...], "pending": [x, y] | None} plus, once paths are
# drawn, "tracks": [[[x, y], ...], ...], "path": [[x, y], ...] (the path being drawn) and
# "order": "p"/"t" per finished item (what undo removes first).


def _added(state: dict, kind: str) -> dict:
    """The "order" entry for a newly finished point ("p") or track ("t"), once paths exist."""
    if "order" not in state and kind == "p":
        return {}
    order = state.get("order")
    if order is None:
        order = ["p"] * len(state.get("points", [])) + ["t"] * len(state.get("tracks", []))
    return {"order": list(order) + [kind]}

def new_state() -> dict:
    return {"points": [], "pending": None}


def _count(state: dict) -> int:
    return len(state.get("points", [])) + len(state.get("tracks", []))


def _check_room(state: dict) -> None:
    """The guidance limit (:data:`MAX_POINTS`, as :func:`cmp.guidance.check_count` applies it to a
    whole set), worded for the one more a click would add."""
    if _count(state) >= MAX_POINTS:
        raise GuidanceError(f"at most {MAX_POINTS} arrows, paths and pins; undo or clear some first")


def add_click(state: dict, x: float, y: float, pin_mode: bool = False) -> dict:
    """Next state after a click at (x, y): start an arrow, finish it, or add a pin."""
    points = [list(p) for p in state.get("points", [])]
    pending = state.get("pending")
    _check_room(state)
    if pin_mode:
        points.append([x, y, 0.0, 0.0])
        return {**state, "points": points, "pending": None, **_added(state, "p")}
    if pending is None:
        return {**state, "points": points, "pending": [x, y]}
    sx, sy = pending
    if math.hypot(x - sx, y - sy) <= SAME_POINT_PX:
        points.append([sx, sy, 0.0, 0.0])
    else:
        points.append([sx, sy, x - sx, y - sy])
    return {**state, "points": points, "pending": None, **_added(state, "p")}


def add_path_click(state: dict, x: float, y: float) -> dict:
    """Path mode: the first click starts a path, each next one adds a keyframe, and a
    click on the last keyframe again finishes it (see :func:`finish_path`)."""
    path = [list(p) for p in state.get("path") or []]
    if path and math.hypot(x - path[-1][0], y - path[-1][1]) <= SAME_POINT_PX:
        return finish_path(state)
    if not path:
        _check_room(state)
    if len(path) >= MAX_KEYFRAMES:
        raise GuidanceError(f"a path has at most {MAX_KEYFRAMES} points; finish it first")
    return {**state, "pending": None, "path": path + [[x, y]]}


def finish_path(state: dict) -> dict:
    """End the path being drawn: two keyframes become an arrow, more a track, one a pin."""
    path = state.get("path") or []
    st = {**state, "path": None}
    if not path:
        return st
    if len(path) == 1:
        return {**st, "points": [list(p) for p in state.get("points", [])] + [[*path[0], 0.0, 0.0]],
                **_added(state, "p")}
    if len(path) == 2:
        (x0, y0), (x1, y1) = path
        return {**st, "points": [list(p) for p in state.get("points", [])] + [[x0, y0, x1 - x0, y1 - y0]],
                **_added(state, "p")}
    return {**st, "tracks": [list(t) for t in state.get("tracks", [])] + [[list(p) for p in path]],
            **_added(state, "t")}


def undo(state: dict) -> dict:
    """Drop the pending start point or path being drawn if any, else the last finished
    arrow, pin or path."""
    points = [list(p) for p in state.get("points", [])]
    tracks = [list(t) for t in state.get("tracks", [])]
    order = list(state.get("order") or [])
    if state.get("pending") is None and not state.get("path"):
        kind = order.pop() if order else ("p" if points else "t")
        if kind == "t" and tracks:
            tracks.pop()
        elif points:
            points.pop()
    out = {**state, "points": points, "pending": None}
    if "tracks" in state or "path" in state:
        out.update(tracks=tracks, path=None)
    if "order" in state:
        out["order"] = order
    return out


# -- path maths ---------------------------------------------------------------------

def keyframe_times(track) -> np.ndarray:
    """(K,) times in [0, 1] of a track's keyframes: given, or evenly spread."""
    if len(track[0]) > 2:
        return np.asarray([k[2] for k in track], np.float64)
    return np.linspace(0.0, 1.0, len(track))


def catmull_rom(keys: np.ndarray, times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Position on the Catmull-Rom spline through ``keys`` at times ``t``.

    keys: (K, 2) keyframes (x, y), K >= 2; times: (K,) increasing; t: (T,) in
    [times[0], times[-1]]. The curve passes through every keyframe at its time. The
    tangent at an inner keyframe is the finite difference of its neighbours over their
    time span (the non-uniform Catmull-Rom form), at the ends the one-sided difference,
    so two keyframes give a straight line at constant speed. Returns (T, 2).
    """
    keys = np.asarray(keys, np.float64)
    times = np.asarray(times, np.float64)
    t = np.clip(np.asarray(t, np.float64), times[0], times[-1])
    K = len(keys)
    m = np.empty_like(keys)
    m[0] = (keys[1] - keys[0]) / (times[1] - times[0])
    m[-1] = (keys[-1] - keys[-2]) / (times[-1] - times[-2])
    if K > 2:
        m[1:-1] = (keys[2:] - keys[:-2]) / (times[2:] - times[:-2])[:, None]
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, K - 2)
    h = times[i + 1] - times[i]
    s = ((t - times[i]) / h)[:, None]
    h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
    h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * keys[i] + h10 * h[:, None] * m[i] + h01 * keys[i + 1] + h11 * h[:, None] * m[i + 1]


def track_positions(track, t) -> np.ndarray:
    """(T, 2) smoothed position of ``track`` at progress values ``t`` in [0, 1]."""
    keys = np.asarray([k[:2] for k in track], np.float64)
    return catmull_rom(keys, keyframe_times(track), np.asarray(t, np.float64).reshape(-1))


def guidance_sets(guidance: Guidance, t) -> list[np.ndarray]:
    """Per-frame guidance for progress values ``t`` (T,): each track's displacement from
    its start at that time, each arrow scaled by ``t``, and the pins.

    Returns T arrays of shape (N, 4) = (x, y, dx, dy) in image pixels (what
    :meth:`cmp.engine.Engine.propagate_batch` takes).
    """
    t = np.asarray(t, np.float64).reshape(-1)
    pts = np.asarray(guidance.points, np.float64).reshape(-1, 4)
    rows = []
    for tr in guidance.tracks:
        pos = track_positions(tr, t)
        start = np.asarray(tr[0][:2], np.float64)
        rows.append(np.concatenate([np.broadcast_to(start, pos.shape), pos - start], axis=1))  # (T, 4)
    out = []
    for k, tk in enumerate(t):
        cur = pts.copy()
        cur[:, 2:] *= tk
        out.append(np.concatenate([cur] + [r[k:k + 1] for r in rows], axis=0))
    return out


def end_arrows(guidance: Guidance) -> np.ndarray:
    """(N, 4) arrows and pins with every track as the arrow from its start to its end
    (the steady field a seamless loop follows)."""
    tr = [[t[0][0], t[0][1], t[-1][0] - t[0][0], t[-1][1] - t[0][1]] for t in guidance.tracks]
    return np.asarray(list(guidance.points) + tr, np.float64).reshape(-1, 4)
