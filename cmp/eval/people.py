"""A real tuning set for segmentation: people cut out of a still-camera video by their motion.

OpenCV's ``vtest.avi`` (Debian ``opencv-doc``) films a square from a fixed camera. The
median of the clip's frames is its empty background; in a frame, what differs from that
background by more than :data:`DIFF_THRESHOLD` (the largest channel difference, both
blurred by 1 px) is what moves: opened, closed, holes filled, every component that is
person-shaped (:data:`MIN_AREA` px or more, taller than wide, :data:`EDGE_MARGIN` px or more
from the image border) is one object. Each object is shown in a square crop of its own frame, :data:`CROP_FACTOR` x its
extent (at least :data:`MIN_CROP` px), at the video's own resolution: a real photo with a real
person in real clutter, and the other people in the crop as background.

The masks are a pseudo ground truth (shadows, colours close to the background's and motion
blur move the outline by a pixel or two), good enough to rank settings, not to report.

Frames: only the last 20% of the clip, which :mod:`cmp.train` holds out of training (the
``val`` frames of ``python -m cmp data prepare``); the propagation set ``video`` reads the
same frames for another task. This set chooses settings; the evaluation sets confirm them.
Never imports Gradio.
"""
from __future__ import annotations

import numpy as np
import cv2
from scipy import ndimage

from ..scenes import SourceUnavailable
from ..scenes.video import VAL_FRACTION, open_video, rgb_frames
from .composites import Composite

CLIP = "vtest.avi"
DIFF_THRESHOLD = 25.0
MIN_AREA = 500
MIN_HEIGHT = 45
#: Height over width of a standing or walking person (merged groups are wider).
ASPECT = (1.3, 5.0)
CROP_FACTOR = 2.0
MIN_CROP = 160
#: An object this close to the frame's edge may be cut off by it (the opening erodes what
#: touches the edge, so "touching" is read with a margin).
EDGE_MARGIN = 3
#: The difference image is blurred by 1 px, so what passes the threshold reaches about a pixel
#: past the person: each chosen person's mask is eroded by this element (a 1 px cross) after it
#: is chosen (the same people, their outline moved in). Measured: the photo's gradient along the
#: mask's outline peaks one pixel inside it without this, on the outline itself with it, as it
#: does on masks known exactly (checkpoints/cmp-slim-affinity-log.md, "Where the real sets'
#: borders sit").
OUTLINE_INSET = ndimage.generate_binary_structure(2, 1)
#: Frames this far apart (a walker moves about 8 px).
FRAME_STEP = 4


def read_clip(path) -> np.ndarray:
    """All frames of a video as (T, H, W, 3) uint8 RGB."""
    with open_video(path) as cap:
        if not cap.isOpened():
            raise SourceUnavailable(f"cannot decode {path}")
        frames = list(rgb_frames(cap))
    if not frames:
        raise SourceUnavailable(f"no frames in {path}")
    return np.stack(frames)


def moving_objects(frame: np.ndarray, background: np.ndarray, *,
                   threshold: float = DIFF_THRESHOLD) -> list[np.ndarray]:
    """Masks (H, W) bool of the person-shaped things in ``frame`` that are not ``background``
    (both (H, W, 3); see the module docstring), largest first."""
    blur = [cv2.GaussianBlur(np.asarray(a, np.float32), (0, 0), 1.0) for a in (frame, background)]
    m = np.abs(blur[0] - blur[1]).max(axis=-1) > threshold
    m = ndimage.binary_fill_holes(ndimage.binary_closing(ndimage.binary_opening(m, np.ones((3, 3))),
                                                         np.ones((5, 5))))
    lab, _ = ndimage.label(m)
    h, w = m.shape
    out = []
    for i, sl in enumerate(ndimage.find_objects(lab), 1):
        if sl is None:
            continue
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        obj = lab == i
        if (int(obj[sl].sum()) < MIN_AREA or bh < MIN_HEIGHT or not ASPECT[0] <= bh / bw <= ASPECT[1]
                or min(sl[0].start, sl[1].start, h - sl[0].stop, w - sl[1].stop) < EDGE_MARGIN):
            continue
        out.append(ndimage.binary_erosion(obj, OUTLINE_INSET))
    return sorted(out, key=lambda o: -int(o.sum()))


def crop_around(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The square crop of :data:`CROP_FACTOR` x the mask's extent around it (inside the image)."""
    h, w = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    ext = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    side = int(min(max(CROP_FACTOR * ext, MIN_CROP), h, w))
    cy, cx = (rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2
    y0, x0 = int(np.clip(cy - side // 2, 0, h - side)), int(np.clip(cx - side // 2, 0, w - side))
    return (np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side]),
            np.ascontiguousarray(mask[y0:y0 + side, x0:x0 + side]))


def people_tuning(n: int) -> list[Composite]:
    """The first ``n`` objects of the set: frame ``j`` (every :data:`FRAME_STEP` th of the
    held-out frames) gives its ``j % 3`` th largest person (or its largest), so neighbouring
    frames show different people. Raises :class:`SourceUnavailable` without ``opencv-doc``
    or with fewer than ``n`` objects."""
    from .real import opencv_data_dir

    d = opencv_data_dir()
    if d is None or not (d / CLIP).is_file():
        raise SourceUnavailable(f"OpenCV's sample clip {CLIP} (opencv-doc) is not installed")
    frames = read_clip(d / CLIP)
    background = np.median(frames[::3], axis=0).astype(np.uint8)
    out = []
    for j, k in enumerate(range(int(len(frames) * (1 - VAL_FRACTION)), len(frames), FRAME_STEP)):
        if len(out) == n:
            break
        objs = moving_objects(frames[k], background)
        if not objs:
            continue
        rgb, mask = crop_around(frames[k], objs[j % 3 if len(objs) > j % 3 else 0])
        out.append(Composite(rgb, mask, k, CLIP, CLIP, "person (background subtraction)"))
    if len(out) < n:
        raise SourceUnavailable(f"{CLIP} gives {len(out)} people, fewer than {n}")
    return out
