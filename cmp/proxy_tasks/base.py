"""What every pretext task shares: the task record, argument checks, working images, display helpers.

Pure NumPy/OpenCV. Images are (H, W, 3) uint8 RGB; coordinates (x, y) = (column, row).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from .. import params
from ..images import check_rgb, resize_rgb

DIFFICULTIES = ("easy", "normal", "difficult", "hell")
#: Side of the square working image of the tiled tasks; divisible by 2, 3 and 4 grids.
SQUARE = 240
#: Long side of the working image of the whole-image tasks.
WORK_SIDE = 240
MIN_IMAGE_SIDE = 16
MAX_SEED = 2**31 - 1


@dataclass
class ProxyTask:
    """One pretext task instance.

    ``input`` and ``target`` are (h, w, 3) uint8 RGB pictures for people: what the
    network is given and what it must predict, visualised. ``arrays`` holds the raw
    data behind them (tiles, L/ab channels, masks, flows) for checks and reuse;
    ``meta`` is JSON-serialisable (labels, permutation index, parameters).
    """

    name: str
    title: str
    difficulty: str
    seed: int
    input: np.ndarray
    target: np.ndarray
    given: str
    predict: str
    why: str
    shortcut: str
    source: str  # where the supervision comes from: "prior", "coherence" or "structure of data"
    answer: str = ""  # the target in one line (label, index, size), also captioned under the target
    meta: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"task": self.name, "title": self.title, "difficulty": self.difficulty, "seed": self.seed,
                "given": self.given, "predict": self.predict, "why": self.why, "shortcut": self.shortcut,
                "source": self.source, "answer": self.answer, **self.meta}


# -- small helpers -------------------------------------------------------------

def check_difficulty(difficulty: str) -> str:
    if not isinstance(difficulty, str):
        raise params.ParamError(f"difficulty must be one of {', '.join(DIFFICULTIES)}; got {params.kind(difficulty)}")
    d = difficulty.strip().lower()
    if d not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty '{difficulty}'; choose one of {', '.join(DIFFICULTIES)}")
    return d


def check_seed(seed) -> int:
    return params.number(seed, "seed", 0, MAX_SEED, whole=True)


def check_image(image: np.ndarray) -> np.ndarray:
    a = check_rgb(image)
    if min(a.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is {a.shape[1]}x{a.shape[0]} px; each side must be at least {MIN_IMAGE_SIDE} px")
    return a


def task_rng(name: str, seed: int) -> np.random.Generator:
    # Salting by task name keeps tasks independent: the same seed does not make
    # the rotation label and the jigsaw permutation move together.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def resize(img: np.ndarray, w: int, h: int, nearest: bool = False) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == (w, h):
        return img.copy()
    if nearest:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
    return resize_rgb(img, w, h)


def fit_image(image: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """Resize so the long side is ``side`` px (aspect kept): the working image of whole-image tasks."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    return resize(image, max(1, round(w * s)), max(1, round(h * s)))


def square_image(image: np.ndarray, side: int = SQUARE) -> np.ndarray:
    """Centre square crop resized to ``side`` x ``side``: the working image of the tiled tasks."""
    h, w = image.shape[:2]
    m = min(h, w)
    y0, x0 = (h - m) // 2, (w - m) // 2
    return resize(image[y0:y0 + m, x0:x0 + m], side, side)


def caption(img: np.ndarray, text: str, *, height: int = 22) -> np.ndarray:
    """Append a dark strip with one line of text under ``img`` (display only)."""
    strip = np.full((height, img.shape[1], 3), 32, np.uint8)
    scale = 0.42
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > img.shape[1] - 8:
        scale -= 0.02
    cv2.putText(strip, text, (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (240, 240, 240), 1, cv2.LINE_AA)
    return np.vstack([img, strip])


def hstack(images: list[np.ndarray], gap: int = 6, bg: int = 255) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    parts = []
    for k, im in enumerate(images):
        if im.shape[0] < h:
            im = np.vstack([im, np.full((h - im.shape[0], im.shape[1], 3), bg, np.uint8)])
        parts.append(im)
        if k < len(images) - 1:
            parts.append(np.full((h, gap, 3), bg, np.uint8))
    return np.hstack(parts)


def border(img: np.ndarray, colour: tuple[int, int, int], width: int = 4) -> np.ndarray:
    return cv2.copyMakeBorder(img, width, width, width, width, cv2.BORDER_CONSTANT, value=colour)


def grey3(img: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def block_reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """Area-average an (H, W[, C]) float array by ``factor`` (the target at coarser resolution)."""
    if factor == 1:
        return a.astype(np.float32).copy()
    h, w = a.shape[:2]
    return cv2.resize(a.astype(np.float32), (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)

