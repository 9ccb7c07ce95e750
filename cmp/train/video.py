"""Frame pairs from unlabeled video with DIS optical flow as the only teacher.

Input is any folder of videos (.avi/.mp4/.mov/.mkv/.webm, optionally .gz) or of
frame images. Shot cuts are skipped; flow comes with a forward-backward
consistency mask (True = trusted).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..flow import dis_flow, fb_consistency
from ..images import resize_rgb
from ..scenes.photos import read_photo
from ..scenes.video import open_video, rgb_frames

VIDEO_EXT = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v"}
FRAME_EXT = {".png", ".jpg", ".jpeg", ".bmp"}


def read_video(path: str | Path, long_side: int = 384, max_frames: int = 2000, min_short: int = 0) -> np.ndarray:
    """All frames (T, H, W, 3) uint8 RGB, resized so the long side is ``long_side``
    (or larger, so that the short side is at least ``min_short``)."""
    path = Path(path)
    with open_video(path) as cap:
        frames = [_resize(rgb, long_side, min_short) for rgb in rgb_frames(cap, max_frames)]
    if not frames:
        raise ValueError(f"no frames could be read from {path.name}")
    return np.stack(frames)


def read_frame_folder(folder: str | Path, long_side: int = 384, min_short: int = 0) -> np.ndarray:
    """The folder's frame images in name order, (T, H, W, 3) uint8 RGB, long side ``long_side``
    (short side at least ``min_short``)."""
    frames = []
    for p in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_EXT):
        rgb = read_photo(p)
        if rgb is None:
            raise ValueError(f"cannot read frame {p.name} in {Path(folder).name}")
        frames.append(_resize(rgb, long_side, min_short))
    return np.stack(frames)


def _resize(rgb: np.ndarray, long_side: int, min_short: int = 0) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = max(long_side / max(h, w), min_short / min(h, w))
    if abs(s - 1) < 1e-6:
        return rgb
    return resize_rgb(rgb, round(w * s), round(h * s))


def find_sources(root: str | Path) -> list[Path]:
    """Videos and frame folders under ``root`` (a single video file is accepted too)."""
    root = Path(root)
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and (p.suffix.lower() in VIDEO_EXT or (p.suffix == ".gz" and Path(p.stem).suffix in VIDEO_EXT)):
            out.append(p)
        elif p.is_dir() and sum(1 for q in p.iterdir() if q.suffix.lower() in FRAME_EXT) >= 2:
            out.append(p)
    return out


def shot_cuts(frames: np.ndarray, thresh: float = 0.5) -> np.ndarray:
    """Boolean (T,) array: True at t when frame t starts a new shot (colour-histogram jump)."""
    cuts = np.zeros(len(frames), bool)
    prev = None
    for t, f in enumerate(frames):
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 16], [0, 180, 0, 256])
        hist = cv2.normalize(hist, None).flatten()
        if prev is not None:
            cuts[t] = cv2.compareHist(prev, hist, cv2.HISTCMP_BHATTACHARYYA) > thresh
        prev = hist
    return cuts


@dataclass
class PairSet:
    """Frame pairs with teacher flow. images (N, H, W, 3) uint8; flows (N, H, W, 2)
    float16 px; valid (N, H, W) bool; all pairs share one size per set."""

    images: np.ndarray
    flows: np.ndarray
    valid: np.ndarray
    source: list[str]


def pairs_from_frames(frames: np.ndarray, rng: np.random.Generator, n_pairs: int, *,
                      max_gap: int = 5, name: str = "") -> PairSet:
    """Sample ``n_pairs`` pairs (gap 1..max_gap) not crossing a shot cut; teacher flow by DIS."""
    cuts = shot_cuts(frames)
    shot_id = np.cumsum(cuts)
    imgs, flows, valids, src = [], [], [], []
    tries = 0
    while len(imgs) < n_pairs and tries < n_pairs * 20:
        tries += 1
        gap = int(rng.integers(1, max_gap + 1))
        if len(frames) <= gap:
            break
        t = int(rng.integers(0, len(frames) - gap))
        if shot_id[t] != shot_id[t + gap]:
            continue
        a, b = frames[t], frames[t + gap]
        fw, bw = dis_flow(a, b), dis_flow(b, a)
        valid = fb_consistency(fw, bw)
        if valid.mean() < 0.5:
            continue
        imgs.append(a)
        flows.append(fw.astype(np.float16))
        valids.append(valid)
        src.append(f"{name}:{t}+{gap}")
    if not imgs:
        raise ValueError(f"no usable frame pairs in {name or 'video'}")
    return PairSet(np.stack(imgs), np.stack(flows), np.stack(valids), src)
