"""Object masks as data and files: label maps, COCO run-length encoding (pycocotools), PNG.

Masks are (H, W) bool, row-major, True = object; several objects are a list of
masks of one size, object k (1-based) drawn over the ones before it. The
annotation files built from them (COCO JSON, YOLO-seg) are :mod:`cmp.annotations`.
No model, no Gradio.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


# -- several objects --------------------------------------------------------------

def label_map(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Object masks -> (H, W) label map, 0 = background, k = k-th mask (1-based).

    Where masks overlap the later object wins (it was drawn last, on top).
    uint8 up to 255 objects, else uint16.
    """
    if not masks:
        raise ValueError("no masks given")
    dtype = np.uint8 if len(masks) <= 255 else np.uint16
    out = np.zeros(np.asarray(masks[0]).shape, dtype)
    for k, m in enumerate(masks, start=1):
        out[np.asarray(m, dtype=bool)] = k
    return out


# -- COCO run-length encoding (pycocotools) ----------------------------------------

def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO compressed RLE {"size": [H, W], "counts": str}, as pycocotools writes it."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def _pyco(rle: dict) -> dict:
    """A JSON RLE (counts str, bytes or list of ints) -> the compressed form pycocotools takes."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        if any(int(c) < 0 for c in counts) or sum(int(c) for c in counts) != h * w:
            raise ValueError(f"RLE counts do not describe a {w}x{h} mask")
        return mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO RLE (compressed or a list of counts) -> (H, W) bool."""
    with warnings.catch_warnings():  # pycocotools 2.0.11 under NumPy 2: a harmless copy= deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(_pyco(rle)).astype(bool)


def rle_area(rle: dict) -> int:
    return int(mask_utils.area(_pyco(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """COCO bbox [x, y, width, height] (pixel edges) of an RLE; [0, 0, 0, 0] when empty."""
    return [float(v) for v in mask_utils.toBbox(_pyco(rle))]


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO bbox [x, y, width, height] of a bool mask ([0, 0, 0, 0] when empty)."""
    return rle_bbox(rle_encode(mask))


# -- files --------------------------------------------------------------------------

def mask_png(mask: np.ndarray) -> bytes:
    """(H, W) bool -> 8-bit greyscale PNG bytes, 0 = background, 255 = object."""
    buf = io.BytesIO()
    Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8), mode="L").save(buf, "PNG")
    return buf.getvalue()


def save_mask_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    path = Path(path)
    path.write_bytes(mask_png(mask))
    return path


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask file (any format PIL reads), upright by its EXIF orientation -> (H, W) bool: the
    object where any channel is brighter than half its range (a matte: alpha > 0.5; a coloured
    stroke on black), or non-zero when its values are only 0 and 1; a palette mask's non-zero
    entries (DAVIS-style label maps); the alpha channel when the file has one that is not opaque
    everywhere (a cut-out). The only reader of mask files: the Motion page's and ``cmp animate``'s
    regions (:func:`cmp.recipe.load_region`) and ``eval segmentation --images`` use it. Within
    :mod:`cmp.images`' decoding limits; raises :class:`cmp.images.ImageError` (one line) for a
    file that is not an image, or is too large or too small."""
    from PIL import ImageOps

    from .images import MAX_DECODE_BYTES, MAX_PIXELS, ImageError, check_shape, decoded_bytes

    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS or decoded_bytes(im) > MAX_DECODE_BYTES:
                raise ImageError(f"{path.name} is too large to decode safely ({im.width}x{im.height} {im.mode})")
            check_shape(im.height, im.width)
            im.load()
            return _mask_values(ImageOps.exif_transpose(im))
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ImageError(f"{path.name}: not a mask image ({exc.__class__.__name__})") from None


def _mask_values(im: Image.Image) -> np.ndarray:
    """The object of a decoded mask image (see :func:`read_mask`)."""
    if im.mode == "P":
        return np.asarray(im) != 0
    if "A" in im.getbands():
        alpha = np.asarray(im.getchannel("A"))
        if (alpha < 255).any():
            return alpha > 127
    wide = im.mode in ("I;16", "I;16B", "I;16L", "I")
    a = np.asarray(im) if wide else np.asarray(im.convert("RGB")).max(axis=2)
    top = int(a.max())
    if top <= 1:
        return a > 0
    return a > (32767 if wide and top > 255 else 127)


def save_label_png(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Label map -> PNG (8-bit for uint8 labels, 16-bit otherwise); pixel value = object id."""
    path = Path(path)
    labels = np.asarray(labels)
    im = Image.fromarray(labels.astype(np.uint8), mode="L") if labels.dtype == np.uint8 \
        else Image.fromarray(labels.astype(np.uint16))
    im.save(path, "PNG")
    return path
