"""Your own photos and their masks as a segmentation set: ``python -m cmp eval segmentation
--images DIR`` runs the click protocol of :mod:`cmp.eval.segmentation` on them, so a model can
be judged on real photos this project never saw (annotators' own images, a reviewer's held-out
set) with the same command, methods and report as the built-in sets.

``DIR`` holds ``images/`` (any image file the app reads) and ``masks/``: one mask per image,
with the same file name before its extension (``images/plant.jpg`` and ``masks/plant.png``).
A mask is read by :func:`cmp.masks.read_mask`: the object where it is brighter than half (a
matte: alpha > 0.5), a palette mask's non-zero entries, or an alpha channel. Images are read
as the app reads an upload (:func:`cmp.images.load_image`: upright by EXIF, shrunk to the app's
size limit), a shrunk image's mask with it. Images are taken in file-name order; an image
without a mask, a mask without an image or an empty mask is an error, never skipped in silence.
Arrays as :class:`cmp.eval.composites.Composite`: rgb (H, W, 3) uint8, mask (H, W) bool.
Never imports Gradio.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..images import ImageError, load_image
from ..masks import read_mask
from .composites import Composite

#: The report's label for such a set: what it is, only its owner knows.
KIND = "your own images ({path}): real or composite as you know them; masks from {path}/masks"


class FolderError(ValueError):
    """A folder that cannot be read as a set; the message is one line naming the file."""


def _files(d: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            if p.stem in out:
                raise FolderError(f"{d.name}/ has two files named {p.stem!r} ({out[p.stem].name}, {p.name})")
            out[p.stem] = p
    return out


def folder_set(path: str | os.PathLike) -> list[Composite]:
    """The images of ``path`` with their masks (see the module docstring); ``seed`` is the
    image's index in file-name order, ``background`` its file name, ``source`` its mask's."""
    root = Path(path)
    images, masks = root / "images", root / "masks"
    for d in (images, masks):
        if not d.is_dir():
            raise FolderError(f"{root} has no {d.name}/ folder (expected {root}/images and {root}/masks)")
    imgs, msks = _files(images), _files(masks)
    if not imgs:
        raise FolderError(f"{images} holds no image")
    if missing := sorted(set(imgs) - set(msks)):
        raise FolderError(f"no mask in {masks} for {imgs[missing[0]].name}"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra := sorted(set(msks) - set(imgs)):
        raise FolderError(f"no image in {images} for the mask {msks[extra[0]].name}")
    out = []
    for i, stem in enumerate(imgs):
        try:
            rgb, _note = load_image(imgs[stem])
            mask = read_mask(msks[stem])
        except (ImageError, ValueError) as exc:
            raise FolderError(f"{imgs[stem].name}: {exc}") from None
        h, w = rgb.shape[:2]
        if mask.shape != (h, w):
            if abs(mask.shape[0] / mask.shape[1] - h / w) > 0.01 * h / w:  # not the same picture shrunk
                raise FolderError(f"{msks[stem].name} is {mask.shape[1]}x{mask.shape[0]} px, its image "
                                  f"{imgs[stem].name} has another shape")
            mask = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        if not mask.any():
            raise FolderError(f"{msks[stem].name} marks no object (no pixel above half)")
        if mask.all():
            raise FolderError(f"{msks[stem].name} marks the whole image as the object")
        out.append(Composite(rgb, mask, i, imgs[stem].name, msks[stem].name, "your mask"))
    return out
