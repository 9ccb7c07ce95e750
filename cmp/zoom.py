"""Where the model looks for a click: the zoom crop around the clicks (and, at a later click,
around the object's mask so far), as integer pixel boxes of the caller's image.

Used by :func:`cmp.segment.segment`; the crop is what the engine encodes and caches, so these
rules also decide which clicks reuse an encoding. Coordinates are (x, y) = (column, row).
Never imports Gradio.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Zoom crop side = extent of the clicks times this (the reference demo's 4).
ZOOM_FACTOR = 4.0
#: A zoom crop is never smaller than this fraction of the image's short side,
#: nor than ZOOM_MIN_SIDE pixels: one click has zero extent, and a crop much
#: tighter than the object would cut it.
ZOOM_MIN_FRACTION = 0.5
ZOOM_MIN_SIDE = 64
#: Later clicks on an object zoom on it as it is now (RITM's zoom-in): the crop's side is this
#: many times the extent of the object's current mask and the clicks (at least the minimums
#: above), centred on them. A click that would flood a look-alike background region then
#: finds most of that region outside the crop, where everything is background.
MASK_ZOOM_FACTOR = 1.4
#: The crop of the click before is kept (with its cached encoding) while the object's mask and
#: the clicks lie inside it, this share of its side away from its edges, and its side is
#: within these bounds of the crop the click would get otherwise.
MASK_ZOOM_KEEP_MARGIN = 0.05
MASK_ZOOM_KEEP_SIDE = (0.9, 1.5)
#: A crop covering at least this share of the image zooms in by under 1.33x (0.75 squared):
#: the whole image is used instead, whose encoding the pages keep from the upload, rather
#: than encoding one more view that is nearly the same.
ZOOM_MAX_AREA = 0.5625

@dataclass(frozen=True)
class Box:
    """Integer pixel box [x0, x1) x [y0, y1) in the full image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def crop(self, a: np.ndarray) -> np.ndarray:
        return a[self.y0:self.y1, self.x0:self.x1]

    def paste(self, part: np.ndarray, height: int, width: int, fill=0) -> np.ndarray:
        """Place a crop-sized array back into a full (height, width, ...) array."""
        out = np.full((height, width) + part.shape[2:], fill, dtype=part.dtype)
        out[self.y0:self.y1, self.x0:self.x1] = part
        return out

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) full-image (x, y) -> crop (x, y)."""
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) - [self.x0, self.y0]


def mask_box(mask: np.ndarray) -> Box | None:
    """The bounding box of a mask's pixels (None for an empty mask)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def zoom_box(points: np.ndarray, height: int, width: int, *, factor: float = ZOOM_FACTOR,
             min_fraction: float = ZOOM_MIN_FRACTION, min_side: int = ZOOM_MIN_SIDE,
             around: Box | None = None, keep: Box | None = None) -> Box | None:
    """Square crop around the clicks, side = factor x their extent (at least the minimum).

    Centred on the first point (the object's first click: every other click lies within the
    extent of it, so inside the crop with a quarter of the side to spare; and while the
    clicks span at most a quarter of the minimum side, the crop and its cached encoding stay
    the same) and shifted to stay inside the image; a side longer than an image
    dimension is clipped to that dimension. Returns None when the crop would cover
    :data:`ZOOM_MAX_AREA` of the image or more (zoom gains little: the whole image is used).

    ``around``: the box of the object's current mask (a later click). The crop is then
    :data:`MASK_ZOOM_FACTOR` x the extent of that box and the clicks, centred on them (so
    they lie inside it with a seventh of its side to spare at least). ``keep``: the crop of the
    click before, used again while it fits (:data:`MASK_ZOOM_KEEP_MARGIN`,
    :data:`MASK_ZOOM_KEEP_SIDE`), so that small changes of the mask keep its cached encoding.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return None
    floor = max(min_fraction * min(height, width), float(min_side))
    if around is not None:
        lo = np.minimum(pts.min(axis=0), [around.x0, around.y0])
        hi = np.maximum(pts.max(axis=0), [around.x1, around.y1])
        side = max(MASK_ZOOM_FACTOR * float((hi - lo).max()), floor)
        if keep is not None and _fits(keep, lo, hi, side):
            return keep
        side = int(np.ceil(side))
        cx, cy = ((lo + hi) / 2.0).tolist()
    else:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        side = int(np.ceil(max(factor * float((hi - lo).max()), floor)))
        cx, cy = pts[0]
    box = _square(cx, cy, side, height, width)
    if box.width * box.height >= ZOOM_MAX_AREA * width * height:
        return None
    return box


def _fits(crop: Box, lo: np.ndarray, hi: np.ndarray, side: float) -> bool:
    """Whether a kept crop still suits content spanning lo..hi that would get a crop of ``side``."""
    k = max(crop.width, crop.height)
    if not MASK_ZOOM_KEEP_SIDE[0] * side <= k <= MASK_ZOOM_KEEP_SIDE[1] * side:
        return False
    m = MASK_ZOOM_KEEP_MARGIN * k
    return bool(lo[0] >= crop.x0 + m and lo[1] >= crop.y0 + m and hi[0] <= crop.x1 - m and hi[1] <= crop.y1 - m)


def _square(cx: float, cy: float, side: int, height: int, width: int) -> Box:
    """The square of ``side`` centred on (cx, cy), shifted (and clipped) to stay inside the image."""
    boxes = []
    for c, n in ((cx, width), (cy, height)):
        s = min(side, n)
        a = int(round(c + 0.5 - s / 2.0))
        a = min(max(a, 0), n - s)
        boxes.append((a, a + s))
    (x0, x1), (y0, y1) = boxes
    return Box(x0, y0, x1, y1)
