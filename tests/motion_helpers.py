"""Synthetic scenes and a stand-in propagator for the kinematic-video tests."""
from __future__ import annotations

import numpy as np


def textured_disc(size=(96, 128), centre=(30.0, 30.0), radius=12, seed=0):
    """(H, W, 3) uint8: a red, textured disc on a smooth grey-blue background, and its mask."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([60 + 0 * xx, 90 + 40 * yy / h, 120 + 40 * xx / w], -1)
    disc = np.hypot(xx - centre[0], yy - centre[1]) <= radius
    tex = np.stack([200 + 55 * rng.random((h, w)), 30 * rng.random((h, w)), 30 * rng.random((h, w))], -1)
    img = np.where(disc[..., None], tex, bg)
    return img.clip(0, 255).astype(np.uint8), disc


def red_centroid(frame: np.ndarray) -> np.ndarray:
    """(x, y) centroid of the disc's red pixels."""
    f = frame.astype(int)
    m = (f[..., 0] > 150) & (f[..., 1] < 80) & (f[..., 2] < 80)
    ys, xs = np.nonzero(m)
    return np.array([xs.mean(), ys.mean()])


class RigidPropagator:
    """Stand-in with the Engine interface: an ideal CMP for one rigid object.

    Every pixel of ``mask`` moves by the guidance vector of the point nearest to it that
    lies inside the mask; everything else stays still. Deterministic and exact, so tests of
    the track / splat pipeline do not depend on a trained model.
    """

    name = "rigid-standin"

    def __init__(self, mask: np.ndarray):
        self.mask = np.asarray(mask, bool)

    def set_image(self, rgb):
        return ("rigid", rgb.shape[0], rgb.shape[1])

    def propagate_batch(self, handle, guidance_sets, *, scene_motion=False):
        h, w = self.mask.shape
        out = np.zeros((len(guidance_sets), h, w, 2), np.float32)
        for k, pts in enumerate(guidance_sets):
            for x, y, dx, dy in np.asarray(pts).reshape(-1, 4):
                if self.mask[int(round(y)), int(round(x))] and (dx or dy):
                    out[k][self.mask] = (dx, dy)
                    break
        return out
