"""Object masks as data and files: label maps, COCO run-length encoding, COCO JSON, PNG export.

Masks are (H, W) bool, row-major, True = object; several objects are a list of
masks of one size, object k (1-based) drawn over the ones before it. Format
facts follow pycocotools, so the JSON loads there unchanged. No model, no Gradio.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


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


# -- COCO run-length encoding -----------------------------------------------------
# Format facts (as pycocotools): the mask is flattened column-major (Fortran
# order); counts alternate runs of 0 and 1 starting with 0 (a leading 0-length
# run when the first pixel is 1). The compressed form writes each count, from
# the third on as the difference to the count two before, in 5-bit groups,
# least significant first, as chr(48 + group) with 0x20 = "more groups follow"
# and 0x10 the sign bit of the last group.

def rle_counts(mask: np.ndarray) -> list[int]:
    """(H, W) bool -> run lengths over the column-major flattening, starting with zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0] + runs if flat[0] else runs


def counts_to_string(counts: Sequence[int]) -> str:
    """Compress run lengths to the COCO (pycocotools) counts string."""
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            g = x & 0x1F
            x >>= 5  # arithmetic shift: negative numbers end at -1
            more = (x != -1) if (g & 0x10) else (x != 0)
            out.append(chr(48 + (g | 0x20 if more else g)))
    return "".join(out)


def string_to_counts(s: str) -> list[int]:
    """Inverse of :func:`counts_to_string`."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE counts string")
            g = ord(s[p]) - 48
            if not 0 <= g < 64:
                raise ValueError("invalid character in RLE counts string")
            x |= (g & 0x1F) << (5 * k)
            more = bool(g & 0x20)
            p += 1
            k += 1
            if not more and (g & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict:
    """(H, W) bool -> {"size": [H, W], "counts": str (compressed) or list[int]}."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    counts = rle_counts(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])],
            "counts": counts_to_string(counts) if compressed else counts}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of :func:`rle_encode` (either counts form) -> (H, W) bool."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = string_to_counts(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if np.any(counts < 0) or counts.sum() != h * w:
        raise ValueError(f"RLE counts do not describe a {w}x{h} mask")
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((h, w), order="F")


def rle_area(rle: dict) -> int:
    counts = rle["counts"]
    counts = string_to_counts(counts) if isinstance(counts, str) else list(counts)
    return int(sum(counts[1::2]))


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO bbox [x, y, width, height] of a bool mask ([0, 0, 0, 0] when empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def coco_dict(masks: Sequence[np.ndarray], *, file_name: str = "image.png", compressed: bool = True,
              category: str = "object", image_id: int = 1) -> dict:
    """COCO-style dataset dict (images, annotations with RLE, categories) for one image."""
    if not masks:
        raise ValueError("no masks to export")
    h, w = np.asarray(masks[0]).shape
    anns = []
    for k, m in enumerate(masks, start=1):
        m = np.asarray(m, dtype=bool)
        if m.shape != (h, w):
            raise ValueError("all masks must have the image's size")
        anns.append({"id": k, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                     "segmentation": rle_encode(m, compressed), "area": int(m.sum()), "bbox": mask_bbox(m)})
    return {"images": [{"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)}],
            "annotations": anns,
            "categories": [{"id": 1, "name": category, "supercategory": category}]}


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


def save_label_png(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Label map -> PNG (8-bit for uint8 labels, 16-bit otherwise); pixel value = object id."""
    path = Path(path)
    labels = np.asarray(labels)
    im = Image.fromarray(labels.astype(np.uint8), mode="L") if labels.dtype == np.uint8 \
        else Image.fromarray(labels.astype(np.uint16))
    im.save(path, "PNG")
    return path


def export_objects(out_dir: str | os.PathLike, masks: Sequence[np.ndarray], *, stem: str = "image",
                   file_name: str | None = None) -> list[Path]:
    """Write ``{stem}_object{k}.png`` (0/255) per object, ``{stem}_labels.png`` and
    ``{stem}_coco.json`` (compressed RLE) into ``out_dir``; returns the paths."""
    if not masks:
        raise ValueError("no objects to export yet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [save_mask_png(out / f"{stem}_object{k}.png", m) for k, m in enumerate(masks, start=1)]
    paths.append(save_label_png(out / f"{stem}_labels.png", label_map(masks)))
    coco = coco_dict(masks, file_name=file_name or f"{stem}.png")
    p = out / f"{stem}_coco.json"
    p.write_text(json.dumps(coco))
    paths.append(p)
    return paths
