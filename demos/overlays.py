"""Drawing on copies of user images: arrows, pins, click markers, masks, flow arrows, legends.

Gradio has no point or arrow widgets, so pages draw their own overlays here
and return the result. The page-level functions take an (H, W, 3) uint8 RGB image
and return a new one of the same size (the input is never modified), so the
click coordinates Gradio reports stay valid on the drawn copy; the primitives
they use (``draw_arrow``, ``draw_point``, ``tint_mask``) draw in place on that copy. Points are
(x, y) = (column, row) in image pixels. Line widths scale with image size so
marks stay visible on large photos shown small.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import cv2
import numpy as np

from cmp.flow import color_wheel_legend

ARROW_COLOR = (255, 64, 32)
PIN_COLOR = (32, 200, 255)
PENDING_COLOR = (255, 230, 0)
POSITIVE_COLOR = (40, 220, 70)
NEGATIVE_COLOR = (235, 40, 40)
OUTLINE = (0, 0, 0)


def line_width(shape: Sequence[int]) -> int:
    """Stroke width in pixels for an image of ``shape`` (H, W, ...)."""
    return max(1, round(max(shape[0], shape[1]) / 256))


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


def draw_arrow(img: np.ndarray, x: float, y: float, dx: float, dy: float,
               color=ARROW_COLOR, width: int | None = None) -> None:
    """In place: an outlined arrow from (x, y) to (x + dx, y + dy) with a dot at its start."""
    w = width or line_width(img.shape)
    a, b = _pt(x, y), _pt(x + dx, y + dy)
    length = max(1.0, float(np.hypot(dx, dy)))
    tip = min(0.45, max(0.15, 6.0 * w / length))  # visible head on short arrows, not huge on long ones
    for col, extra in ((OUTLINE, 2 * max(1, w // 2)), (color, 0)):
        cv2.arrowedLine(img, a, b, col, w + extra, cv2.LINE_AA, tipLength=tip)
        cv2.circle(img, a, w + 1 + extra // 2, col, -1, cv2.LINE_AA)


def draw_point(img: np.ndarray, x: float, y: float, color, radius: int | None = None,
               filled: bool = True, cross: bool = False) -> None:
    """In place: an outlined round marker at (x, y); ``cross`` adds an x (used for pins)."""
    w = line_width(img.shape)
    r = radius or 3 * w + 2
    c = _pt(x, y)
    cv2.circle(img, c, r + max(1, w // 2) + 1, OUTLINE, -1 if filled else w + 2, cv2.LINE_AA)
    cv2.circle(img, c, r, color, -1 if filled else w, cv2.LINE_AA)
    if cross:
        d = int(r * 0.6)
        for p, q in (((c[0] - d, c[1] - d), (c[0] + d, c[1] + d)), ((c[0] - d, c[1] + d), (c[0] + d, c[1] - d))):
            cv2.line(img, p, q, OUTLINE, max(1, w), cv2.LINE_AA)


def draw_guidance(rgb: np.ndarray, points: Iterable[Sequence[float]] = (),
                  pending: Sequence[float] | None = None) -> np.ndarray:
    """A copy of ``rgb`` with guidance drawn: arrows for (x, y, dx, dy), pins for dx = dy = 0,
    and a hollow marker at a ``pending`` start point (x, y) awaiting its end click."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    for x, y, dx, dy in points:
        if dx == 0 and dy == 0:
            draw_point(img, x, y, PIN_COLOR, cross=True)
        else:
            draw_arrow(img, x, y, dx, dy)
    if pending is not None:
        draw_point(img, pending[0], pending[1], PENDING_COLOR, filled=False)
    return img


TRACK_COLOR = (255, 140, 0)


def dim_outside(rgb: np.ndarray, region: np.ndarray, amount: float = 0.55) -> np.ndarray:
    """A copy of ``rgb`` darkened outside the (H, W) bool ``region`` (what stays still)."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    img[~region] = (img[~region].astype(np.float32) * (1 - amount)).astype(np.uint8)
    return img


def draw_tracks(rgb: np.ndarray, tracks: Iterable[Sequence[Sequence[float]]] = (),
                path: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """A copy of ``rgb`` with paths drawn: each finished track as its smoothed curve with an
    arrow head and a dot per keyframe, and the ``path`` being drawn as a dashed-looking
    polyline of its clicks so far (hollow markers)."""
    from cmp.tracks import track_positions

    img = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    w = line_width(img.shape)
    for tr in tracks:
        curve = track_positions(tr, np.linspace(0, 1, 64))
        pts = np.rint(curve).astype(np.int32).reshape(-1, 1, 2)
        for col, extra in ((OUTLINE, 2 * max(1, w // 2)), (TRACK_COLOR, 0)):
            cv2.polylines(img, [pts], False, col, w + extra, cv2.LINE_AA)
        (x0, y0), (x1, y1) = curve[-4], curve[-1]
        draw_arrow(img, x0, y0, x1 - x0, y1 - y0, TRACK_COLOR, w)
        for k in tr:
            draw_point(img, k[0], k[1], TRACK_COLOR, radius=2 * w + 1)
    if path:
        pts = np.rint(np.asarray([p[:2] for p in path])).astype(np.int32).reshape(-1, 1, 2)
        for col, extra in ((OUTLINE, 2 * max(1, w // 2)), (PENDING_COLOR, 0)):
            cv2.polylines(img, [pts], False, col, w + extra, cv2.LINE_AA)
        for p in path:
            draw_point(img, p[0], p[1], PENDING_COLOR, filled=False)
    return img


def draw_clicks(rgb: np.ndarray, clicks: Iterable[Sequence[float]]) -> np.ndarray:
    """A copy with click markers for (x, y, label): label 1 = positive (green dot),
    0 = negative (red dot with a white minus bar)."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    w = line_width(img.shape)
    r = 3 * w + 2
    for x, y, label in clicks:
        c = _pt(x, y)
        cv2.circle(img, c, r + w + 1, OUTLINE, -1, cv2.LINE_AA)
        cv2.circle(img, c, r, POSITIVE_COLOR if label else NEGATIVE_COLOR, -1, cv2.LINE_AA)
        if not label:
            cv2.line(img, (c[0] - r // 2, c[1]), (c[0] + r // 2, c[1]), (255, 255, 255), w, cv2.LINE_AA)
    return img


def tint_mask(img: np.ndarray, mask: np.ndarray, color, alpha: float = 0.45, width: int | None = None) -> None:
    """In place: blend the (H, W) bool ``mask`` with ``color`` and outline it ``width`` px wide."""
    if not mask.any():
        return
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # blend the mask's box only
    part = img[box]
    tinted = cv2.addWeighted(part, 1 - alpha, np.full_like(part, color), alpha, 0.0)
    np.copyto(part, tinted, where=mask[box][..., None])
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, tuple(int(v) for v in color), width or line_width(img.shape), cv2.LINE_AA)


def draw_flow_arrows(rgb: np.ndarray, flow: np.ndarray, step: int | None = None,
                     min_length: float = 0.5, color=(255, 255, 255)) -> np.ndarray:
    """A copy of ``rgb`` (dimmed) with the (H, W, 2) flow drawn as a grid of arrows.

    ``step`` is the grid spacing in pixels (default: about 24 arrows on the long
    side). Arrows shorter than ``min_length`` pixels are drawn as dots.
    """
    h, w = rgb.shape[:2]
    if flow.shape[:2] != (h, w):
        raise ValueError(f"flow {flow.shape[:2]} does not match image {(h, w)}")
    step = step or max(8, max(h, w) // 24)
    img = (np.asarray(rgb, dtype=np.float32) * 0.6).astype(np.uint8)
    lw = line_width(img.shape)
    for y in range(step // 2, h, step):
        for x in range(step // 2, w, step):
            dx, dy = (float(v) for v in flow[y, x])
            if np.hypot(dx, dy) < min_length:
                cv2.circle(img, (x, y), lw, color, -1, cv2.LINE_AA)
                continue
            cv2.arrowedLine(img, (x, y), _pt(x + dx, y + dy), OUTLINE, lw + 2, cv2.LINE_AA, tipLength=0.3)
            cv2.arrowedLine(img, (x, y), _pt(x + dx, y + dy), color, lw, cv2.LINE_AA, tipLength=0.3)
    return img


@lru_cache(maxsize=8)
def _legend_disk(size: int) -> np.ndarray:
    """The colour-wheel disc of a legend (read-only: drawn once per size, then copied)."""
    disk = color_wheel_legend(size)
    disk.setflags(write=False)
    return disk


def wheel_legend(max_magnitude: float, size: int = 96) -> np.ndarray:
    """The key to :func:`cmp.flow.flow_to_color` with ``max_mag=max_magnitude``: its colour-wheel
    disc, ``size`` px wide, over a line of text giving the rim's magnitude in px."""
    wheel = _legend_disk(size)
    text = f"max {max_magnitude:.1f} px"
    scale = max(14, size // 5) / 30.0
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    label_h = th + base + 4
    width = max(size, tw + 6)
    out = np.full((size + label_h, width, 3), 255, np.uint8)
    x0 = (width - size) // 2
    out[:size, x0:x0 + size] = wheel
    cv2.putText(out, text, ((width - tw) // 2, size + 2 + th), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(out, (0, 0), (width - 1, size + label_h - 1), (128, 128, 128), 1)
    return out


def paste_corner(img: np.ndarray, inset: np.ndarray, margin: int | None = None) -> np.ndarray:
    """A copy of ``img`` with ``inset`` pasted in the top-right corner (shrunk if it does not fit)."""
    out = np.ascontiguousarray(img, dtype=np.uint8).copy()
    h, w = out.shape[:2]
    margin = margin if margin is not None else max(2, min(h, w) // 50)
    ih, iw = inset.shape[:2]
    s = min(1.0, (h - 2 * margin) / ih / 2, (w - 2 * margin) / iw / 2)  # at most half the image
    if s <= 0:
        return out
    if s < 1.0:
        inset = cv2.resize(inset, (max(1, int(iw * s)), max(1, int(ih * s))), interpolation=cv2.INTER_AREA)
        ih, iw = inset.shape[:2]
    out[margin:margin + ih, w - margin - iw:w - margin] = inset
    return out


def placeholder(width: int = 640, height: int = 400, text: str = "Upload an image or pick an example") -> np.ndarray:
    """A grey picture with a hint across the middle three quarters: the canvas before an upload
    (clicking it explains what to do), the flow view before the first arrow."""
    img = np.full((height, width, 3), 236, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = 0.75 * width / cv2.getTextSize(text, font, 1.0, 2)[0][0]
    thick = max(1, round(2.5 * scale))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    cv2.putText(img, text, ((width - tw) // 2, (height + th) // 2), font, scale, (90, 90, 90), thick, cv2.LINE_AA)
    return img
