"""Random smooth object shapes (bool masks) for synthetic scenes and composites."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

#: Kinds of :func:`random_shape`. "radial" (a blob whose radius varies smoothly with the
#: angle, at a random place in the frame) is what the training scenes cut objects with;
#: the others (centred, connected, hole-free) are the evaluation composites' shapes.
SHAPES = ("blob", "polygon", "ellipses", "radial")


def largest_component(m: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a bool mask (the mask itself if it has <= 1)."""
    lab, n = ndimage.label(m)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


def random_shape(rng: np.random.Generator, size: int | tuple[int, int], kind: str = "blob", *,
                 extent: float | None = None) -> np.ndarray:
    """A random smooth shape, bool (H, W).

    ``size``: (H, W), or one int for a square. "blob", "polygon", "ellipses": centred in a
    square, connected, hole-free, touching no border. "radial": about ``extent`` px across
    (default half the short side) at a random place, possibly cut by the border.
    The draws from ``rng`` are part of the contract: a seed gives the same shape forever.
    """
    H, W = (size, size) if isinstance(size, (int, np.integer)) else size
    if kind == "radial":
        return _radial(rng, H, W, extent if extent is not None else min(H, W) / 2)
    if kind not in SHAPES:
        raise ValueError(f"unknown shape kind {kind!r}; choose from {', '.join(SHAPES)}")
    if H != W:
        raise ValueError(f"{kind!r} shapes are square; got size {H}x{W}")
    n = H
    if kind == "blob":
        noise = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma=n / 10)
        yy, xx = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
        field = noise / (noise.std() + 1e-9) - 6.0 * (xx ** 2 + yy ** 2) * 4
        m = field > np.quantile(field, 0.6)
    elif kind == "polygon":
        k = int(rng.integers(5, 11))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = rng.uniform(0.25, 0.48, k) * n
        pts = np.stack([n / 2 + rad * np.cos(ang), n / 2 + rad * np.sin(ang)], axis=1)
        m = np.zeros((n, n), np.uint8)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
        m = ndimage.gaussian_filter(m.astype(np.float64), sigma=n / 40) > 0.5
    else:  # ellipses
        m = np.zeros((n, n), np.uint8)
        for _ in range(int(rng.integers(2, 5))):
            c = (int(n / 2 + rng.uniform(-0.18, 0.18) * n), int(n / 2 + rng.uniform(-0.18, 0.18) * n))
            axes = (int(rng.uniform(0.08, 0.3) * n), int(rng.uniform(0.08, 0.3) * n))
            cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        m = m.astype(bool)
    m[0] = m[-1] = m[:, 0] = m[:, -1] = False
    return ndimage.binary_fill_holes(largest_component(m))


def _radial(rng: np.random.Generator, H: int, W: int, extent: float) -> np.ndarray:
    r = extent / 2
    cy, cx = rng.uniform(r * 0.6, H - r * 0.6), rng.uniform(r * 0.6, W - r * 0.6)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    # radius varies smoothly with angle: a few random harmonics
    rad = np.full_like(ang, r)
    for k in range(1, 5):
        rad += r * rng.uniform(0, 0.25 / k) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    ecc = rng.uniform(0.6, 1.0)
    th = rng.uniform(0, np.pi)
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(th) + dy * np.sin(th)
    v = (-dx * np.sin(th) + dy * np.cos(th)) / ecc
    return np.sqrt(u * u + v * v) < rad
