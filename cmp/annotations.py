"""Annotation files from object masks: COCO JSON (RLE + polygons), YOLO-seg, PNG masks and label maps.

One home per format, shared by the Segment page, the CLI and the HTTP API:

- COCO: :func:`coco_dataset`. ``segmentation`` is compressed RLE from pycocotools
  (exact, holes included), ``area`` and ``bbox`` come from that RLE; every
  annotation also carries ``polygons`` (COCO polygon lists, one per 8-connected
  part, outer outlines only: polygons cannot carry holes, the RLE does).
  Class names become ``categories``; the annotation session's totals go into
  ``info``.
- YOLO-seg: :func:`yolo_lines` (``class x1 y1 x2 y2 ...``, normalised to the
  image, one line per object; the parts of a multi-part object are joined by
  zero-width bridges, as Ultralytics does) and :func:`classes_txt`.
- Files: :func:`export_annotations` (the page's export) and
  :func:`write_annotation` (one file chosen by its extension, the CLI's ``--out``).

Polygon coordinates are pixel *edges*: pixel (col, row) covers [col, col + 1) x
[row, row + 1), the convention of COCO boxes and of YOLO's normalised
coordinates. No model, no Gradio.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .masks import label_map, rle_area, rle_bbox, rle_encode, save_label_png, save_mask_png

DEFAULT_CLASS = "object"
MAX_CLASS_CHARS = 100
#: Output extensions :func:`write_annotation` understands.
FORMATS = {".png": "0/255 mask PNG (a label map for several masks)", ".json": "COCO JSON",
           ".txt": "YOLO-seg (+ classes.txt beside it)"}


class AnnotationError(ValueError):
    """Bad annotation input (empty export, bad class name, unknown format): one line for the user."""


@dataclass
class ObjectAnnotation:
    """One annotated object: (H, W) bool mask, class name and how it was made.

    clicks: clicks the annotator made on it (undone ones included); seconds:
    first click -> "Next object"; candidate / confidence: which of the click's
    candidate masks (part, object, group) it is and how sure. None = not known.
    """

    mask: np.ndarray
    category: str = DEFAULT_CLASS
    clicks: int | None = None
    seconds: float | None = None
    candidate: str | None = None
    confidence: float | None = None


def class_name(text) -> str:
    """A class name as typed -> the stored one (whitespace collapsed; empty = DEFAULT_CLASS)."""
    name = re.sub(r"\s+", " ", str(text or "")).strip()
    if not name:
        return DEFAULT_CLASS
    if len(name) > MAX_CLASS_CHARS:
        raise AnnotationError(f"class name is {len(name)} characters; the limit is {MAX_CLASS_CHARS}")
    return name


def class_list(objects: Sequence[ObjectAnnotation]) -> list[str]:
    """Class names in first-seen order: COCO category id = index + 1, YOLO class = index."""
    out: list[str] = []
    for o in objects:
        if o.category not in out:
            out.append(o.category)
    return out


def _check(objects: Sequence[ObjectAnnotation]) -> tuple[int, int]:
    if not objects:
        raise AnnotationError("no objects to export yet: click an object first")
    h, w = np.asarray(objects[0].mask).shape
    for o in objects:
        if np.asarray(o.mask).shape != (h, w):
            raise AnnotationError("all masks must have the image's size")
    return int(h), int(w)


# -- polygons -----------------------------------------------------------------------

def mask_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Outer outlines of a bool mask, one (K, 2) float array of (x, y) pixel-edge vertices per part.

    Traced on the pixel-corner lattice (each pixel dilated onto a 2x+1 grid), so a
    polygon runs along pixel edges and rasterises back to the filled part
    exactly up to diagonal steps; parts touching only at a corner are one part.
    Holes are not traced (RETR_EXTERNAL).
    """
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    lattice = np.zeros((2 * h + 1, 2 * w + 1), np.uint8)
    lattice[1::2, 1::2] = m
    lattice = cv2.dilate(lattice, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(lattice, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1, 2).astype(np.float64) / 2.0 for c in contours]
    polys = [p for p in polys if len(p) >= 3]
    # Largest part first, then top-to-bottom: a stable order for files and tests.
    return sorted(polys, key=lambda p: (-abs(_signed_area(p)), p[:, 1].min(), p[:, 0].min()))


def _signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def coco_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO ``segmentation`` polygons [[x1, y1, x2, y2, ...], ...], one per part."""
    return [[round(float(v), 2) for v in p.ravel()] for p in mask_polygons(mask)]


def joined_polygon(mask: np.ndarray) -> np.ndarray:
    """All parts as one (K, 2) polygon: each other part hangs off the largest by a zero-width bridge
    between their nearest vertices (the bridge is walked there and back, so it adds no area)."""
    polys = mask_polygons(mask)
    if not polys:
        return np.zeros((0, 2))
    main, rest = polys[0], polys[1:]
    hang: dict[int, list[np.ndarray]] = {}
    for p in rest:
        d = np.linalg.norm(main[:, None] - p[None], axis=2)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([np.roll(p, -j, axis=0), p[j:j + 1]])  # p from its nearest vertex, closed
        hang.setdefault(int(i), []).append(loop)
    out = []
    for i, v in enumerate(main):
        out.append(v[None])
        for loop in hang.get(i, []):
            out += [loop, v[None]]
    return np.concatenate(out)


# -- COCO ---------------------------------------------------------------------------

def session_info(objects: Sequence[ObjectAnnotation]) -> dict:
    """Annotation-speed totals over the objects that were timed (COCO ``info["annotation_session"]``)."""
    timed = [o for o in objects if o.seconds is not None]
    clicks = [o.clicks for o in objects if o.clicks is not None]
    seconds = float(sum(o.seconds for o in timed))
    return {"objects": len(objects), "clicks": int(sum(clicks)), "timed_objects": len(timed),
            "seconds": round(seconds, 2),
            "seconds_per_object": round(seconds / len(timed), 2) if timed else None,
            "clicks_per_object": round(sum(clicks) / len(clicks), 2) if clicks else None}


def coco_annotation(obj: ObjectAnnotation, *, ann_id: int, image_id: int, category_id: int,
                    polygon_segmentation: bool = False) -> dict:
    """One COCO annotation. ``segmentation`` is the compressed RLE (exact, holes included) and
    ``polygons`` the outlines; with ``polygon_segmentation`` the polygons are the
    ``segmentation`` itself (what polygon-only tools read; holes are lost) and no extra key."""
    m = np.asarray(obj.mask, dtype=bool)
    rle = rle_encode(m)
    polys = coco_polygons(m)
    ann = {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
           "segmentation": polys if polygon_segmentation else rle, "area": rle_area(rle), "bbox": rle_bbox(rle)}
    if not polygon_segmentation:
        ann["polygons"] = polys
    extra = {k: v for k, v in (("clicks", obj.clicks),
                               ("seconds", None if obj.seconds is None else round(float(obj.seconds), 2)),
                               ("candidate", obj.candidate),
                               ("confidence", None if obj.confidence is None else round(float(obj.confidence), 4)))
             if v is not None}
    if extra:
        ann["attributes"] = extra
    return ann


def coco_dataset(objects: Sequence[ObjectAnnotation], *, file_name: str = "image.png", image_id: int = 1,
                 description: str = "CMP Studio click annotation", polygon_segmentation: bool = False) -> dict:
    """COCO dataset dict for one image: images, annotations (RLE + polygons, or polygons as the
    segmentation: see :func:`coco_annotation`), categories, info."""
    h, w = _check(objects)
    classes = class_list(objects)
    anns = [coco_annotation(o, ann_id=k, image_id=image_id, category_id=classes.index(o.category) + 1,
                            polygon_segmentation=polygon_segmentation)
            for k, o in enumerate(objects, start=1)]
    return {"info": {"description": description, "date_created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "annotation_session": session_info(objects)},
            "images": [{"id": image_id, "file_name": file_name, "height": h, "width": w}],
            "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": n} for i, n in enumerate(classes, start=1)]}


def coco_dict(masks: Sequence[np.ndarray], *, file_name: str = "image.png", category: str = DEFAULT_CLASS) -> dict:
    """COCO dict for plain masks of one class (what the API and the CLI return for one click set)."""
    return coco_dataset([ObjectAnnotation(m, class_name(category)) for m in masks], file_name=file_name)


def coco_with_candidates(candidates: Sequence[ObjectAnnotation], chosen: int, *, file_name: str = "image.png") -> dict:
    """COCO dict whose one annotation is ``candidates[chosen]``; every candidate (with its
    name and confidence in ``attributes``) is listed under the extra top-level key
    ``candidates`` in the same annotation format (pycocotools ignores the key)."""
    if not 0 <= chosen < len(candidates):
        raise AnnotationError(f"no candidate {chosen}")
    out = coco_dataset([candidates[chosen]], file_name=file_name)
    out["candidates"] = [{**coco_annotation(c, ann_id=k, image_id=1, category_id=1), "chosen": k - 1 == chosen}
                         for k, c in enumerate(candidates, start=1)]
    return out


# -- YOLO-seg -------------------------------------------------------------------------

def yolo_lines(objects: Sequence[ObjectAnnotation], classes: Sequence[str] | None = None) -> list[str]:
    """``class x1 y1 x2 y2 ...`` per non-empty object, coordinates / image width and height."""
    h, w = _check(objects)
    classes = list(classes) if classes is not None else class_list(objects)
    lines = []
    for o in objects:
        poly = joined_polygon(o.mask)
        if len(poly) < 3:
            continue
        xy = np.clip(poly / [w, h], 0.0, 1.0).ravel()
        lines.append(" ".join([str(classes.index(o.category))] + [f"{v:.6f}" for v in xy]))
    return lines


def classes_txt(classes: Sequence[str]) -> str:
    """classes.txt: one name per line, line k = YOLO class k."""
    return "".join(f"{n}\n" for n in classes)


# -- files ----------------------------------------------------------------------------

def export_annotations(out_dir: str | os.PathLike, objects: Sequence[ObjectAnnotation], *, stem: str = "image",
                       file_name: str | None = None) -> list[Path]:
    """Everything for one image in ``out_dir``: ``{stem}_object{k}.png`` (0/255) per object,
    ``{stem}_labels.png`` (pixel = object id), ``{stem}_coco.json`` (RLE segmentation, exact),
    ``{stem}_coco_polygons.json`` (polygon segmentation, for tools that read only polygons),
    ``{stem}.txt`` (YOLO-seg) and ``classes.txt``; returns the paths."""
    _check(objects)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [save_mask_png(out / f"{stem}_object{k}.png", o.mask) for k, o in enumerate(objects, start=1)]
    paths.append(save_label_png(out / f"{stem}_labels.png", label_map([o.mask for o in objects])))
    for suffix, polygons in (("_coco.json", False), ("_coco_polygons.json", True)):
        p = out / f"{stem}{suffix}"
        p.write_text(json.dumps(coco_dataset(objects, file_name=file_name or f"{stem}.png",
                                             polygon_segmentation=polygons)))
        paths.append(p)
    paths += _write_yolo(out / f"{stem}.txt", objects)
    return paths


def _write_yolo(path: Path, objects: Sequence[ObjectAnnotation]) -> list[Path]:
    classes = class_list(objects)
    path.write_text("".join(f"{line}\n" for line in yolo_lines(objects, classes)))
    names = path.with_name("classes.txt")
    names.write_text(classes_txt(classes))
    return [path, names]


def check_format(path: str | os.PathLike) -> str:
    """The output extension of ``path`` (.png, .json or .txt), or AnnotationError naming the choices."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise AnnotationError(f"cannot tell the format from {Path(path).name!r}: use "
                              + ", ".join(f"{e} ({d})" for e, d in FORMATS.items()))
    return ext


def write_annotation(path: str | os.PathLike, objects: Sequence[ObjectAnnotation], *,
                     file_name: str = "image.png") -> list[Path]:
    """Write ``objects`` as the format named by ``path``'s extension; returns the files written.

    .png: one object -> 0/255 mask, several -> ``{stem}_{k}.png`` each plus a label map at ``path``;
    .json: COCO; .txt: YOLO-seg plus ``classes.txt`` in the same folder.
    """
    ext = check_format(path)
    _check(objects)
    path = Path(path)
    if ext == ".json":
        path.write_text(json.dumps(coco_dataset(objects, file_name=file_name)))
        return [path]
    if ext == ".txt":
        return _write_yolo(path, objects)
    if len(objects) == 1:
        return [save_mask_png(path, objects[0].mask)]
    paths = [save_mask_png(path.with_name(f"{path.stem}_{k}.png"), o.mask) for k, o in enumerate(objects, start=1)]
    return paths + [save_label_png(path, label_map([o.mask for o in objects]))]

