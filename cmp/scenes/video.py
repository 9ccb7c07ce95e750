"""Opening video files, plain or gzip-compressed (OpenCV's sample clips ship as ``.mp4.gz``)."""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import cv2


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
