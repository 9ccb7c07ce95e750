"""Your own photos as evaluation sets, so a model can be judged on real photos this project
never saw (annotators' own images, a reviewer's held-out set) with the same commands, methods
and reports as the built-in sets:

* with their masks, ``python -m cmp eval segmentation --images DIR`` (:func:`folder_set`: the
  click protocol of :mod:`cmp.eval.segmentation`);
* with their true motion, ``python -m cmp eval propagation --pairs DIR`` (:func:`folder_pairs`:
  the guidance points of :mod:`cmp.eval.propagation`).

Segmentation: ``DIR`` holds ``images/`` (any image file the app reads) and ``masks/``: one mask per image,
with the same file name before its extension (``images/plant.jpg`` and ``masks/plant.png``).
A mask is read by :func:`cmp.masks.read_mask`: the object where it is brighter than half (a
matte: alpha > 0.5), a palette mask's non-zero entries, or an alpha channel. Images are read
as the app reads an upload (:func:`cmp.images.load_image`: upright by EXIF, shrunk to the app's
size limit), a shrunk image's mask with it. Images are taken in file-name order; an image
without a mask, a mask without an image or an empty mask is an error, never skipped in silence.
Arrays as :class:`cmp.eval.composites.Composite`: rgb (H, W, 3) uint8, mask (H, W) bool.

Propagation: ``DIR`` holds ``images/`` and ``flow/``: per image its true motion, the same name
before the extension, as ``.flo`` (Middlebury's optical flow to the next frame; unknown where a
component is 1e9 or more), ``.pfm`` (a disparity map with the image as the *left* view of a
rectified stereo pair, as Middlebury's ``disp0.pfm``: the motion to the right view is (-d, 0);
unknown where not finite or not positive) or ``.npy`` ((H, W, 2) flow or (H, W) disparity; unknown
where not finite). The image and its motion have the same size (an image larger than its
motion is shrunk to it); both are then taken to the benchmark's width, as the built-in pairs.
Never imports Gradio.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..flow import FlowFileError, read_flo
from ..images import ImageError, load_image
from ..masks import read_mask
from .composites import Composite

if TYPE_CHECKING:
    from .propagation import Pair

#: The report's label for such a set: what it is, only its owner knows.
KIND = "own (your images in {path}, real or composite as you know them; masks from {path}/masks)"
PAIRS_KIND = "own (your images in {path}, real or composite as you know them; motion from {path}/flow)"
#: Files of a true motion, by extension.
MOTION_SUFFIXES = (".flo", ".pfm", ".npy")


class FolderError(ValueError):
    """A folder that cannot be read as a set; the message is one line naming the file."""


def _folders(root: Path, sub: str, what: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """The files of ``root/images`` and ``root/<sub>`` by name stem, every image with one ``what``."""
    images, other = root / "images", root / sub
    for d in (images, other):
        if not d.is_dir():
            raise FolderError(f"{root} has no {d.name}/ folder (expected {root}/images and {root}/{sub})")
    imgs, oth = _files(images), _files(other)
    if not imgs:
        raise FolderError(f"{images} holds no image")
    if missing := sorted(set(imgs) - set(oth)):
        raise FolderError(f"no {what} in {other} for {imgs[missing[0]].name}"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra := sorted(set(oth) - set(imgs)):
        raise FolderError(f"no image in {images} for the {what} {oth[extra[0]].name}")
    return imgs, oth


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
    imgs, msks = _folders(Path(path), "masks", "mask")
    out = []
    for i, stem in enumerate(imgs):
        try:
            rgb, _note = load_image(imgs[stem])
            mask = read_mask(msks[stem])
        except ImageError as exc:
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


def read_motion(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A true-motion file (see the module docstring) -> (flow (H, W, 2) float32, valid (H, W) bool)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MOTION_SUFFIXES:
        raise FolderError(f"{path.name}: a true motion is a {', '.join(MOTION_SUFFIXES)} file")
    try:
        if suffix == ".flo":
            a = read_flo(path)
        elif suffix == ".pfm":
            a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        else:
            a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, FlowFileError, cv2.error) as exc:
        raise FolderError(f"{path.name}: not a readable {suffix} file ({exc.__class__.__name__})") from None
    if a is None or a.size == 0:
        raise FolderError(f"{path.name}: not a readable {suffix} file")
    a = np.asarray(a, np.float64)
    if a.ndim == 3 and a.shape[2] == 3 and suffix == ".pfm":  # a colour PFM: the disparity in every channel
        a = a[..., 0]
    if a.ndim == 2:  # disparity of the left view: it moves left by d to the right view
        valid = np.isfinite(a) & (a > 0 if suffix == ".pfm" else True)
        flow = np.stack([np.where(valid, -a, 0.0), np.zeros_like(a)], -1)
    elif a.ndim == 3 and a.shape[2] == 2:
        valid = np.isfinite(a).all(-1) & (np.abs(a).max(-1) < 1e9)
        flow = np.where(valid[..., None], a, 0.0)
    else:
        raise FolderError(f"{path.name}: a motion is (H, W, 2) flow or (H, W) disparity, not {a.shape}")
    if not valid.any():
        raise FolderError(f"{path.name}: no pixel with a known motion")
    return flow.astype(np.float32), valid


def folder_pairs(path: str | os.PathLike) -> list[Pair]:
    """The images of ``path`` with their true motions as :class:`cmp.eval.propagation.Pair` at the
    benchmark's width (see the module docstring), in file-name order, named by file name."""
    from .propagation import Pair, resize_pair

    imgs, motions = _folders(Path(path), "flow", "motion file")
    out = []
    for stem in imgs:
        flow, valid = read_motion(motions[stem])
        h, w = valid.shape
        try:
            rgb, _note = load_image(imgs[stem], max_side=max(h, w))
        except ImageError as exc:
            raise FolderError(f"{imgs[stem].name}: {exc}") from None
        if rgb.shape[:2] != (h, w):
            raise FolderError(f"{motions[stem].name} is {w}x{h} px, its image {imgs[stem].name} "
                              f"{rgb.shape[1]}x{rgb.shape[0]}")
        out.append(Pair(imgs[stem].name, *resize_pair(rgb, flow, valid)))
    return out
