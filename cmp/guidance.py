"""Sparse motion guidance: validation, the 4-channel encoding, and sampling from a flow.

A guidance point is (x, y, dx, dy): at pixel column x, row y the motion is
(dx, dy) pixels. A pin is a point with dx = dy = 0 ("this stays still").
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from scipy import ndimage

#: Hard bound on points per guidance set (UI, API and CLI all share it).
MAX_POINTS = 64
#: Magnitude bound for one vector, in user pixels; larger input is an error.
MAX_VECTOR = 10_000.0


class GuidanceError(ValueError):
    """Guidance that cannot be used (outside the image, not finite, too many points)."""


def as_points(arrows: Iterable[Sequence[float]] = (), pins: Iterable[Sequence[float]] = ()) -> np.ndarray:
    """Combine arrows (x, y, dx, dy) and pins (x, y) into an (N, 4) float64 array."""
    rows = []
    for a in arrows:
        a = list(a)
        if len(a) != 4:
            raise GuidanceError(f"an arrow needs 4 numbers x,y,dx,dy; got {len(a)}")
        rows.append([float(v) for v in a])
    for p in pins:
        p = list(p)
        if len(p) != 2:
            raise GuidanceError(f"a pin needs 2 numbers x,y; got {len(p)}")
        rows.append([float(p[0]), float(p[1]), 0.0, 0.0])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


#: The words of the validation messages, by what the points are: (plural, not-finite message).
_KINDS = {"point": ("guidance points", "guidance values must be finite numbers (no NaN or infinity)"),
          "click": ("clicks", "click coordinates must be finite numbers")}


def check_count(n: int, what: str = "guidance points") -> None:
    """The one limit on points per guidance set: :class:`GuidanceError` when ``n`` > MAX_POINTS."""
    if n > MAX_POINTS:
        raise GuidanceError(f"too many {what} ({n}); the limit is {MAX_POINTS}")


def validate_points(points: np.ndarray, height: int, width: int, *, kind: str = "point") -> np.ndarray:
    """Check points against an image of ``height x width``; returns them as float64.

    ``kind`` "point": (N, 4) guidance (x, y, dx, dy), vectors bounded by MAX_VECTOR;
    "click": (N, 2) clicks (x, y). Both: at most MAX_POINTS, finite, (x, y) inside the
    image (pixel centres -0.5 ... size - 0.5). Errors are one-line :class:`GuidanceError`
    worded for the kind (the wording users see from every page, the CLI and the API).
    """
    plural, not_finite = _KINDS[kind]
    points = np.asarray(points, dtype=np.float64).reshape(-1, 4 if kind == "point" else 2)
    check_count(len(points), plural)
    if not np.all(np.isfinite(points)):
        raise GuidanceError(not_finite)
    if points.shape[1] == 4 and np.any(np.abs(points[:, 2:]) > MAX_VECTOR):
        raise GuidanceError(f"a motion vector is larger than {MAX_VECTOR:g} px")
    x, y = points[:, 0], points[:, 1]
    bad = (x < -0.5) | (y < -0.5) | (x > width - 0.5) | (y > height - 0.5)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise GuidanceError(f"{kind} ({x[i]:g}, {y[i]:g}) lies outside the {width}x{height} image")
    return points


def guidance_pixels(points_model: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels :func:`encode_sparse` marks: rows, columns (int64) and (K, 2) float32 motion.

    Points are rounded to the nearest pixel and clipped inside ``size`` (H, W); a later
    point overwrites an earlier one on the same pixel; rows come in row-major order (as
    ``torch.nonzero`` reads them back from the map).
    """
    H, W = size
    p = np.asarray(points_model, dtype=np.float64).reshape(-1, 4)
    xi = np.clip(np.rint(p[:, 0]), 0, W - 1).astype(np.int64)
    yi = np.clip(np.rint(p[:, 1]), 0, H - 1).astype(np.int64)
    # One per pixel, the last point there: unique of the reversed order keeps it; the unique
    # flat indices come sorted, which is row-major order.
    flat, first = np.unique((yi * W + xi)[::-1], return_index=True)
    keep = len(p) - 1 - first
    return flat // W, flat % W, p[keep, 2:4].astype(np.float32)


def encode_sparse(points_model: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Rasterise (N, 4) model-input points to the (4, H, W) float32 guidance map.

    Channels: 0 = dx, 1 = dy (model-input pixels), 2 = 3 = 1 at guidance pixels
    (:func:`guidance_pixels` says which).
    """
    sparse = np.zeros((4, *size), np.float32)
    if len(points_model):
        ys, xs, vec = guidance_pixels(points_model, size)
        sparse[0, ys, xs], sparse[1, ys, xs] = vec[:, 0], vec[:, 1]
        sparse[2:, ys, xs] = 1.0
    return torch.from_numpy(sparse)


# -- sampling guidance from a dense flow (training and evaluation) ---------

GRID_DENSITY = 5.74e-5  # points per pixel of the original "grid" sampler


def grid_points(height: int, width: int, stride: int | None = None) -> np.ndarray:
    """Centred regular grid, (N, 2) integer (x, y); stride 131 px as the original."""
    stride = stride or int(math.sqrt(1.0 / GRID_DENSITY))
    xs = np.arange((width % stride) // 2 + stride // 2, width, stride)
    ys = np.arange((height % stride) // 2 + stride // 2, height, stride)
    if len(xs) == 0:
        xs = np.array([width // 2])
    if len(ys) == 0:
        ys = np.array([height // 2])
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int64)


def watershed_points(flow: np.ndarray, rng: np.random.Generator, *, edge_thresh: float = 0.1,
                     kernel: int = 41, border: int = 8, min_dist: float = 20.0) -> np.ndarray:
    """Points at the interior of coherently moving regions, (N, 2) integer (x, y).

    Sobel edge magnitude of the flow, normalised by max(its max, 0.01) and
    thresholded; distance transform of the non-edge area; local maxima over a
    ``kernel`` window; border dropped; of two points closer than ``min_dist``
    one (random) is dropped.
    """
    f = flow.astype(np.float32)
    edge = np.zeros(f.shape[:2], np.float32)
    for c in range(2):
        gx = cv2.Sobel(f[..., c], cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(f[..., c], cv2.CV_32F, 0, 1, ksize=3)
        edge += np.sqrt(gx * gx + gy * gy)
    edge /= max(float(edge.max()), 0.01)
    nonedge = (edge < edge_thresh).astype(np.uint8)
    dist = cv2.distanceTransform(nonedge, cv2.DIST_L2, 5)
    peak = (dist == ndimage.maximum_filter(dist, size=kernel)) & (dist > 0)
    h, w = dist.shape
    peak[:border] = peak[-border:] = False
    peak[:, :border] = peak[:, -border:] = False
    ys, xs = np.nonzero(peak)
    pts = np.stack([xs, ys], axis=1)
    if len(pts) > 1:
        order = rng.permutation(len(pts))
        kept: list[np.ndarray] = []
        for p in pts[order]:
            if all(np.hypot(*(p - q)) >= min_dist for q in kept):
                kept.append(p)
        pts = np.array(kept)
    return pts.reshape(-1, 2).astype(np.int64)


def sample_guidance(flow: np.ndarray, rng: np.random.Generator, *, valid: np.ndarray | None = None,
                    max_points: int | None = None, grid: bool = True, watershed: bool = True,
                    n_random: int = 0) -> np.ndarray:
    """Sample (N, 4) guidance (x, y, dx, dy) from a dense (H, W, 2) flow.

    Points fall on integer pixels inside the image, on ``valid`` pixels when a
    mask is given, and carry the flow at their pixel exactly.
    """
    h, w = flow.shape[:2]
    parts = []
    if grid:
        parts.append(grid_points(h, w))
    if watershed:
        parts.append(watershed_points(flow, rng))
    if n_random:
        parts.append(np.stack([rng.integers(0, w, n_random), rng.integers(0, h, n_random)], axis=1))
    pts = np.concatenate(parts, axis=0) if parts else np.zeros((0, 2), np.int64)
    pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)]
    if valid is not None and len(pts):
        pts = pts[valid[pts[:, 1], pts[:, 0]]]
    if max_points is not None and len(pts) > max_points:
        pts = pts[rng.choice(len(pts), max_points, replace=False)]
    vec = flow[pts[:, 1], pts[:, 0]] if len(pts) else np.zeros((0, 2))
    return np.concatenate([pts.astype(np.float64), vec.astype(np.float64)], axis=1).reshape(-1, 4)


# -- what kind of motion the guidance describes ---------------------------------------

#: A guidance point moving less than this share of the largest vector (or 0.5 px) is a pin.
PIN_SHARE = 0.05
#: "Whole scene moves" needs at least this many moving points, no pins, directions this
#: consistent (mean resultant length of the unit vectors) and points spread at least this
#: far (RMS distance from their centroid over the image's half-diagonal). Chosen on
#: training data only (pairs from the first 80% of the OpenCV training videos with DIS
#: flow, synthetic and parallax scenes of seeds 2000-2009; 4-20 points, random and
#: watershed): consistency 0.7-0.95 x spread 0.2-0.4, lowest mean EPE over the three kinds.
SCENE_MIN_POINTS = 4
SCENE_MIN_CONSISTENCY = 0.7
SCENE_MIN_SPREAD = 0.3


def infer_scene_motion(points: np.ndarray, height: int, width: int) -> bool:
    """Whether guidance (N, 4) (x, y, dx, dy), in pixels of a ``height x width`` image,
    reads as camera motion (the whole scene moves) rather than objects on a still scene.

    A camera move is told by many arrows spread over the image, all pointing about
    the same way, and no pin; one or a few arrows, or any pin, mean an object moves
    against a still background (the default reading). Thresholds: ``SCENE_*``.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 4)
    if len(p) < SCENE_MIN_POINTS:
        return False
    mag = np.hypot(p[:, 2], p[:, 3])
    if np.any(mag <= max(0.5, PIN_SHARE * float(mag.max()))):
        return False
    consistency = float(np.hypot(*(p[:, 2:] / mag[:, None]).mean(axis=0)))
    spread = float(np.sqrt(((p[:, :2] - p[:, :2].mean(axis=0)) ** 2).sum(axis=1).mean()))
    return bool(consistency >= SCENE_MIN_CONSISTENCY and spread >= SCENE_MIN_SPREAD * 0.5 * np.hypot(height, width))
