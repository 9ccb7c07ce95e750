"""Synthetic segmentation data with exact masks: a shape cut from one photo, pasted on another.

Photos are the ones bundled with scikit-image (no download). Each composite
is a pure function of its seed. Evaluation seeds start at
:data:`EVAL_SEED_START`; anything that trains on composites must use seeds
below it, so evaluation images are never seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ..scenes.photos import fit_crop, photo
from ..scenes.shapes import largest_component, random_shape

#: scikit-image photos that ship inside the wheel (greyscale ones are made RGB).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
          "retina", "stereo_motorcycle", "camera", "coins", "grass", "gravel", "brick", "clock",
          "moon", "colorwheel", "cell")
#: First seed of the held-out evaluation set; training seeds must stay below.
EVAL_SEED_START = 10_000
SHAPES = ("blob", "polygon", "ellipses")  # kinds of cmp.scenes.shapes.random_shape


@dataclass(frozen=True)
class Composite:
    """rgb (H, W, 3) uint8; mask (H, W) bool, True exactly where the pasted object is."""

    rgb: np.ndarray
    mask: np.ndarray
    seed: int
    background: str
    source: str
    shape: str


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
    shape = ndimage.binary_fill_holes(largest_component(shape))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    mask = np.zeros((h, w), bool)
    mask[y0:y0 + side, x0:x0 + side] = shape
    back = fit_crop(bg, (h, w), rng)
    fore = fit_crop(photo(src_name), (h, w), rng, zoom=float(rng.uniform(1.0, 1.6)))
    rgb = np.where(mask[..., None], fore, back).astype(np.uint8)
    return Composite(rgb, mask, seed, bg_name, src_name, kind)


def eval_composites(n: int, *, start: int = EVAL_SEED_START, **kw) -> list[Composite]:
    """The first ``n`` held-out composites (seeds start, start + 1, ...)."""
    if start < EVAL_SEED_START:
        raise ValueError(f"evaluation seeds must be >= {EVAL_SEED_START} (lower ones are for training)")
    return [make_composite(start + i, **kw) for i in range(n)]
