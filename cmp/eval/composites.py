"""Synthetic segmentation data with exact masks: a shape cut from one photo, pasted on another.

Photos are the ones bundled with scikit-image (no download). Each composite
is a pure function of its seed. Evaluation seeds start at
:data:`EVAL_SEED_START`; anything that trains on composites must use seeds
below it, so evaluation images are never seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

#: scikit-image photos that ship inside the wheel (greyscale ones are made RGB).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
          "retina", "stereo_motorcycle", "camera", "coins", "grass", "gravel", "brick", "clock",
          "moon", "colorwheel", "cell")
#: First seed of the held-out evaluation set; training seeds must stay below.
EVAL_SEED_START = 10_000
SHAPES = ("blob", "polygon", "ellipses")


@dataclass(frozen=True)
class Composite:
    """rgb (H, W, 3) uint8; mask (H, W) bool, True exactly where the pasted object is."""

    rgb: np.ndarray
    mask: np.ndarray
    seed: int
    background: str
    source: str
    shape: str


@lru_cache(maxsize=len(PHOTOS))
def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as (H, W, 3) uint8 RGB (read-only, cached)."""
    from skimage import data

    im = getattr(data, name)()
    if isinstance(im, tuple):  # stereo pairs
        im = im[0]
    im = np.asarray(im)
    if im.dtype != np.uint8:
        im = (np.clip(im.astype(np.float64) / max(float(im.max()), 1e-9), 0, 1) * 255).astype(np.uint8)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    im = np.ascontiguousarray(im[..., :3])
    im.setflags(write=False)
    return im


def _fit(rgb: np.ndarray, h: int, w: int, rng: np.random.Generator, zoom: float = 1.0) -> np.ndarray:
    """Scale ``rgb`` to cover (h, w) times ``zoom`` and take a random (h, w) crop."""
    ih, iw = rgb.shape[:2]
    s = max(h / ih, w / iw) * zoom
    nh, nw = max(h, int(np.ceil(ih * s))), max(w, int(np.ceil(iw * s)))
    big = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y = int(rng.integers(0, nh - h + 1))
    x = int(rng.integers(0, nw - w + 1))
    return np.ascontiguousarray(big[y:y + h, x:x + w])


def _largest_component(m: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(m)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == sizes.argmax()


def random_shape(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A smooth, connected, hole-free (size, size) bool shape touching no border."""
    n = size
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
    elif kind == "ellipses":
        m = np.zeros((n, n), np.uint8)
        for _ in range(int(rng.integers(2, 5))):
            c = (int(n / 2 + rng.uniform(-0.18, 0.18) * n), int(n / 2 + rng.uniform(-0.18, 0.18) * n))
            axes = (int(rng.uniform(0.08, 0.3) * n), int(rng.uniform(0.08, 0.3) * n))
            cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        m = m.astype(bool)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; choose from {', '.join(SHAPES)}")
    m[0] = m[-1] = m[:, 0] = m[:, -1] = False
    return ndimage.binary_fill_holes(_largest_component(m))


def make_composite(seed: int, *, long_side: int = 384, min_area: float = 0.01,
                   max_area: float = 0.2) -> Composite:
    """The composite for ``seed``: background photo, object from another photo.

    The object covers between ``min_area`` and ``max_area`` of the image
    (log-uniform), so small objects, where zoom matters, are common.
    """
    rng = np.random.default_rng(seed)
    bg_name, src_name = (PHOTOS[i] for i in rng.choice(len(PHOTOS), 2, replace=False))
    bg = photo(bg_name)
    s = long_side / max(bg.shape[:2])
    h, w = max(64, round(bg.shape[0] * s)), max(64, round(bg.shape[1] * s))
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    area = float(np.exp(rng.uniform(np.log(min_area), np.log(max_area)))) * h * w
    # Draw the shape large, then scale it so its area matches the target.
    shape = random_shape(rng, 256, kind)
    side = int(np.clip(round(256 * np.sqrt(area / max(shape.sum(), 1))), 12, min(h, w) - 2))
    shape = cv2.resize(shape.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST).astype(bool)
    shape = ndimage.binary_fill_holes(_largest_component(shape))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    mask = np.zeros((h, w), bool)
    mask[y0:y0 + side, x0:x0 + side] = shape
    back = _fit(bg, h, w, rng)
    fore = _fit(photo(src_name), h, w, rng, zoom=float(rng.uniform(1.0, 1.6)))
    rgb = np.where(mask[..., None], fore, back).astype(np.uint8)
    return Composite(rgb, mask, seed, bg_name, src_name, kind)


def eval_composites(n: int, *, start: int = EVAL_SEED_START, **kw) -> list[Composite]:
    """The first ``n`` held-out composites (seeds start, start + 1, ...)."""
    if start < EVAL_SEED_START:
        raise ValueError(f"evaluation seeds must be >= {EVAL_SEED_START} (lower ones are for training)")
    return [make_composite(start + i, **kw) for i in range(n)]
