"""Photos for scenes: scikit-image's bundled photos, OpenCV's sample photos, and the one
random cover-crop every scene generator uses.

All photos are (H, W, 3) uint8 RGB. Which photos train and which evaluate is kept
by name: :data:`SKIMAGE_PHOTOS` and :data:`OPENCV_PHOTOS` are the training photos;
``cmp.eval.real`` lists the evaluation ones (a test keeps the lists disjoint).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..images import resize_rgb

#: OpenCV sample photos (Debian ``opencv-doc``, ``examples/data``) used for training.
OPENCV_PHOTOS = ("fruits.jpg", "baboon.jpg", "apple.jpg", "orange.jpg", "butterfly.jpg", "messi5.jpg",
                 "smarties.png", "squirrel_cls.jpg", "stuff.jpg", "aero1.jpg", "aero3.jpg", "graf1.png",
                 "graf3.png", "rubberwhale1.png", "rubberwhale2.png", "basketball1.png", "basketball2.png",
                 "licenseplate_motion.jpg", "ela_original.jpg", "starry_night.jpg")
#: OpenCV sample files that nothing in this project reads (training, tuning or evaluation):
#: Middlebury's aloe stereo pair may be part of the review's hidden real set.
RESERVED_FILES = ("aloeL.jpg", "aloeR.jpg", "aloeGT.png")
#: scikit-image photos used for training.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
#: Where Debian's opencv-doc package (OpenCV's sample photos and videos) is, unpacked
#: under ``$CMP_DATA_DIR`` (``dpkg -x``) or installed.
OPENCV_DOC = Path("ocvdoc/usr/share/doc/opencv-doc")


def data_dir() -> Path | None:
    """Root of the offline data: ``$CMP_DATA_DIR``, or None when it is not set."""
    d = os.environ.get("CMP_DATA_DIR")
    return Path(d) if d else None


def opencv_doc(root: Path | None = None) -> Path:
    """The unpacked opencv-doc under ``root`` (else under ``$CMP_DATA_DIR``); with neither
    given, the installed Debian package (``/usr/share/doc/opencv-doc``). May not exist."""
    base = root or data_dir()
    if base is not None:
        return base / OPENCV_DOC
    return Path("/") / OPENCV_DOC.relative_to("ocvdoc")


@lru_cache(maxsize=32)
def photo(name: str) -> np.ndarray:
    """A photo bundled with scikit-image as (H, W, 3) uint8 RGB (read-only, cached).

    Greyscale photos are made RGB, float ones scaled to 0-255, stereo pairs give their left view.
    """
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


def read_photo(path: str | Path) -> np.ndarray | None:
    """A photo file as (H, W, 3) uint8 RGB, or None when it is absent or OpenCV cannot decode it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def skimage_photos(names: Iterable[str] = SKIMAGE_PHOTOS) -> list[np.ndarray]:
    """The scikit-image photos among ``names`` that this installation has."""
    out = []
    for n in names:
        try:
            out.append(photo(n))
        except Exception:  # noqa: BLE001 - some bundles may lack a file; the rest suffice
            continue
    return out


def opencv_photos(folder: str | Path, names: Iterable[str] = OPENCV_PHOTOS) -> list[np.ndarray]:
    """The photos among ``names`` found (and decodable) in ``folder``."""
    return [p for p in (read_photo(Path(folder) / n) for n in names) if p is not None]


def default_photos(opencv_dir: str | Path | None = None) -> list[np.ndarray]:
    """The training photos: scikit-image's, plus OpenCV's sample photos when a folder is given."""
    photos = skimage_photos()
    if opencv_dir is not None:
        photos += opencv_photos(opencv_dir)
    return photos


def fit_crop(rgb: np.ndarray, size: tuple[int, int], rng: np.random.Generator, *, zoom: float = 1.0,
             jitter: tuple[float, float] | None = None, upscale: int = cv2.INTER_CUBIC,
             round_up: bool = True) -> np.ndarray:
    """A random (H, W) = ``size`` crop of ``rgb`` scaled to cover it, times ``zoom``.

    ``jitter``: an extra zoom factor drawn uniformly from this range. ``upscale`` (OpenCV
    interpolation when enlarging) and ``round_up`` (ceil, else round, the scaled size)
    are per caller only so that every seeded scene keeps its pixels: the training scenes
    were made with linear/round, the evaluation composites with cubic/ceil.
    Draws from ``rng``: the jitter (if any), then the crop's row and column.
    """
    H, W = size
    h, w = rgb.shape[:2]
    s = max(H / h, W / w) * zoom
    if jitter is not None:
        s = s * rng.uniform(*jitter)
    scaled = (lambda n: int(np.ceil(n * s))) if round_up else (lambda n: round(n * s))
    nh, nw = max(H, scaled(h)), max(W, scaled(w))
    big = resize_rgb(rgb, nw, nh, upscale=upscale)
    y = int(rng.integers(0, nh - H + 1))
    x = int(rng.integers(0, nw - W + 1))
    return np.ascontiguousarray(big[y:y + H, x:x + W])
