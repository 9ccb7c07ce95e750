"""The one mapping between a user's image and the model input, with its inverse.

The original demo resizes the short side to 416 and centre-crops 384x384,
which throws the image edges away. We keep the whole image instead: scale it
so its long side is ``side`` pixels (aspect kept), then pad bottom/right
(edge replicate) to a multiple of 8 and at least 64 px (the network's
minimum). Coordinates use the pixel-centre convention: user pixel (x, y)
maps to ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5). All coordinates here
are (x, y) = (column, row).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .images import resize_rgb

PAD_MULTIPLE = 8
MIN_SIDE = 8
#: Smallest model input side: the decoder max-pools the 1/8 features by 8 more,
#: so a side under 64 px would leave nothing to pool (a crash, not an answer).
MIN_MODEL_SIDE = 64


class ImageSizeError(ValueError):
    """The image cannot be mapped to the model (too small or too thin)."""


@dataclass(frozen=True)
class ImageTransform:
    """Maps an image of ``height x width`` to the model input and back."""

    height: int
    width: int
    side: int = 384

    def __post_init__(self):
        if min(self.height, self.width) < MIN_SIDE:
            raise ImageSizeError(
                f"image is {self.width}x{self.height} px; each side must be at least {MIN_SIDE} px")
        if min(self.inner_size) < MIN_SIDE:
            raise ImageSizeError(
                f"image is {self.width}x{self.height} px; its aspect ratio is too extreme "
                f"(at most {self.side // MIN_SIDE}:1)")

    # -- sizes -------------------------------------------------------------
    @property
    def scale(self) -> float:
        return self.side / max(self.height, self.width)

    @property
    def inner_size(self) -> tuple[int, int]:
        """(h, w) of the resized image inside the padded model input."""
        s = self.scale
        return max(1, round(self.height * s)), max(1, round(self.width * s))

    @property
    def model_size(self) -> tuple[int, int]:
        """(H, W) of the padded model input; multiples of 8, at least ``MIN_MODEL_SIDE``."""
        h, w = self.inner_size
        m = PAD_MULTIPLE
        return max(-(-h // m) * m, MIN_MODEL_SIDE), max(-(-w // m) * m, MIN_MODEL_SIDE)

    @property
    def sx(self) -> float:
        return self.inner_size[1] / self.width

    @property
    def sy(self) -> float:
        return self.inner_size[0] / self.height

    # -- images ------------------------------------------------------------
    def apply_image(self, rgb: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 -> (H, W, 3) uint8 model input (resized + padded)."""
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"expected a {self.width}x{self.height} image, got {rgb.shape[1]}x{rgb.shape[0]}")
        ih, iw = self.inner_size
        out = resize_rgb(rgb, iw, ih)
        H, W = self.model_size
        return cv2.copyMakeBorder(np.ascontiguousarray(out), 0, H - ih, 0, W - iw, cv2.BORDER_REPLICATE)

    # -- points and vectors ------------------------------------------------
    def apply_points(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) user-pixel (x, y) -> model-input (x, y), float."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.stack([(xy[:, 0] + 0.5) * self.sx - 0.5, (xy[:, 1] + 0.5) * self.sy - 0.5], axis=1)

    def unapply_points(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`apply_points`."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.stack([(xy[:, 0] + 0.5) / self.sx - 0.5, (xy[:, 1] + 0.5) / self.sy - 0.5], axis=1)

    def apply_vectors(self, dxy: np.ndarray) -> np.ndarray:
        """(N, 2) motion (dx, dy) in user pixels -> model-input pixels."""
        dxy = np.asarray(dxy, dtype=np.float64).reshape(-1, 2)
        return dxy * np.array([self.sx, self.sy])

    def unapply_vectors(self, dxy: np.ndarray) -> np.ndarray:
        dxy = np.asarray(dxy, dtype=np.float64).reshape(-1, 2)
        return dxy / np.array([self.sx, self.sy])

    # -- dense flow --------------------------------------------------------
    def unapply_map(self, a: np.ndarray) -> np.ndarray:
        """(H, W) or (H, W, C) model-input map -> float32 in user pixels: the padding cropped,
        the rest resized bilinearly (values unchanged; may share memory with ``a``)."""
        ih, iw = self.inner_size
        f = np.ascontiguousarray(a[:ih, :iw], dtype=np.float32)
        if (ih, iw) != (self.height, self.width):
            f = cv2.resize(f, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return f

    def unapply_flow(self, flow: np.ndarray) -> np.ndarray:
        """(H, W, 2) model-input flow -> (h, w, 2) float32 flow in user pixels."""
        f = self.unapply_map(flow).copy()
        f[..., 0] /= self.sx
        f[..., 1] /= self.sy
        return f

    def apply_flow(self, flow: np.ndarray) -> np.ndarray:
        """(h, w, 2) user flow -> (H, W, 2) model-input flow (padding is zero)."""
        ih, iw = self.inner_size
        f = np.ascontiguousarray(flow, dtype=np.float32)
        if (ih, iw) != f.shape[:2]:
            f = cv2.resize(f, (iw, ih), interpolation=cv2.INTER_LINEAR)
        f = f * np.array([self.sx, self.sy], dtype=np.float32)
        H, W = self.model_size
        out = np.zeros((H, W, 2), np.float32)
        out[:ih, :iw] = f
        return out
