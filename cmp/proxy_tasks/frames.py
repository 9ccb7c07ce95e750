"""The real frames shipped in ``cmp/data/frames`` (see SOURCE.md there): the motion tasks'
frame pair and the 'other image' of instance discrimination."""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

FRAMES_DIR = Path(__file__).resolve().parents[1] / "data" / "frames"
FRAME_PAIR = ("box_0328.png", "box_0334.png")
OTHER_IMAGE = "cup_0100.png"


def _read_png(name: str) -> np.ndarray:
    bgr = cv2.imread(str(FRAMES_DIR / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"missing shipped frame {FRAMES_DIR / name}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=1)
def _shipped_pair() -> tuple[np.ndarray, np.ndarray]:
    return _read_png(FRAME_PAIR[0]), _read_png(FRAME_PAIR[1])


def load_frame_pair() -> tuple[np.ndarray, np.ndarray]:
    """The shipped frame pair (frame 328 and 334 of OpenCV's box.mp4), two (240, 320, 3) uint8 RGB."""
    f0, f1 = _shipped_pair()
    return f0.copy(), f1.copy()


def load_other_image() -> np.ndarray:
    """The shipped 'other image' (a cup, from OpenCV's cup.mp4), (240, 320, 3) uint8 RGB."""
    return _read_png(OTHER_IMAGE)


def example_paths() -> list[str]:
    """Files usable as Gallery examples (first frame of the pair, the cup)."""
    return [str(FRAMES_DIR / FRAME_PAIR[0]), str(FRAMES_DIR / OTHER_IMAGE)]
