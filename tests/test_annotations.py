"""Annotation formats (cmp.masks, cmp.annotations): COCO RLE and polygons, YOLO-seg, checked with pycocotools."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from cmp.annotations import (AnnotationError, ObjectAnnotation, class_name, coco_dataset, coco_dict,
                             export_annotations, joined_polygon, mask_polygons, write_annotation, yolo_lines)
from cmp.masks import label_map, mask_bbox, rle_area, rle_decode, rle_encode


# -- RLE: pycocotools, checked against a small reference of the format ----------------------

def _reference_counts_string(mask: np.ndarray) -> str:
    """The COCO compressed RLE, written out from the format description (what cmp.masks
    used before it switched to pycocotools): run lengths over the column-major
    flattening, starting with a run of zeros; from the third count on, the
    difference to the count two before; 5-bit groups, least significant first,
    chr(48 + group), 0x20 = more groups follow, 0x10 = sign of the last group."""
    flat = np.asarray(mask, bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    counts = [0] + runs if flat[0] else runs
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            g = x & 0x1F
            x >>= 5
            more = (x != -1) if (g & 0x10) else (x != 0)
            out.append(chr(48 + (g | 0x20 if more else g)))
    return "".join(out)


def test_rle_from_pycocotools_agrees_with_the_reference_encoder():
    rng = np.random.default_rng(3)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = rng.random((h, w)) < rng.random()
        r = rle_encode(m)
        assert r == {"size": [h, w], "counts": _reference_counts_string(m)}
        np.testing.assert_array_equal(rle_decode(json.loads(json.dumps(r))), m)
        assert rle_area(r) == int(m.sum())


def test_rle_hand_checked_tiny_mask_and_list_counts():
    m = np.zeros((2, 2), bool)
    m[0, 1] = True                  # column-major index 2: runs 2 zeros, 1 one, 1 zero
    assert rle_encode(m)["counts"] == "211"
    np.testing.assert_array_equal(rle_decode({"size": [2, 2], "counts": [2, 1, 1]}), m)
    assert mask_bbox(m) == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        rle_decode({"size": [2, 2], "counts": [1, 1]})


# -- shapes with parts and holes ----------------------------------------------------------------

def _two_parts(h=90, w=120):
    yy, xx = np.mgrid[:h, :w]
    return ((xx - 30) ** 2 + (yy - 40) ** 2 < 18 ** 2) | ((xx >= 70) & (xx < 110) & (yy >= 20) & (yy < 75))


def _with_hole(h=90, w=120):
    yy, xx = np.mgrid[:h, :w]
    r2 = (xx - 60) ** 2 + (yy - 45) ** 2
    return (r2 < 35 ** 2) & (r2 >= 12 ** 2)


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _raster_coco(polys, h, w):
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)


SHAPES = {"two parts": _two_parts, "hole": _with_hole}


@pytest.mark.parametrize("shape", SHAPES)
def test_coco_rle_and_polygons_and_yolo_reproduce_the_mask(shape, tmp_path):
    m = SHAPES[shape]()
    h, w = m.shape
    objs = [ObjectAnnotation(m, "thing")]
    coco = coco_dataset(objs, file_name="x.png")
    ann = coco["annotations"][0]
    # RLE, decoded by pycocotools: the mask itself, holes included
    assert _iou(mask_utils.decode({"size": ann["segmentation"]["size"],
                                   "counts": ann["segmentation"]["counts"].encode()}).astype(bool), m) >= 0.98
    assert ann["area"] == int(m.sum()) and ann["bbox"] == mask_bbox(m)
    # polygons: one per part, the filled outline
    outline = ndimage.binary_fill_holes(m)
    assert len(ann["polygons"]) == (2 if shape == "two parts" else 1)
    assert _iou(_raster_coco(ann["polygons"], h, w), outline) >= 0.98
    # YOLO-seg: one line, normalised, rasterised back at image size
    (line,) = yolo_lines(objs)
    cls, *xy = line.split()
    xy = np.array(xy, float).reshape(-1, 2)
    assert cls == "0" and xy.min() >= 0 and xy.max() <= 1
    assert _iou(_raster_coco([(xy * [w, h]).ravel().tolist()], h, w), outline) >= 0.98


def test_polygons_follow_pixel_edges():
    m = np.zeros((20, 30), bool)
    m[5:9, 10:17] = True
    (p,) = mask_polygons(m)
    assert p[:, 0].min() == 10 and p[:, 0].max() == 17 and p[:, 1].min() == 5 and p[:, 1].max() == 9
    np.testing.assert_array_equal(_raster_coco([p.ravel().tolist()], 20, 30), m)
    one = np.zeros((5, 5), bool)
    one[2, 2] = True                # a single pixel is still a polygon (its square)
    np.testing.assert_array_equal(_raster_coco([mask_polygons(one)[0].ravel().tolist()], 5, 5), one)
    assert len(joined_polygon(_two_parts())) > len(mask_polygons(_two_parts())[0])


def test_exports_open_in_pycocotools_with_matching_classes(tmp_path):
    a, b, c = np.zeros((3, 60, 80), bool)
    a[5:20, 5:30] = True
    b[30:50, 10:40] = True
    c[10:40, 50:75] = True
    objs = [ObjectAnnotation(a, "cat", clicks=3, seconds=4.0), ObjectAnnotation(b, "dog", clicks=1, seconds=2.0),
            ObjectAnnotation(c, "cat", clicks=2, seconds=None)]
    paths = export_annotations(tmp_path, objs, stem="x", file_name="x.jpg")
    assert sorted(p.name for p in paths) == ["classes.txt", "x.txt", "x_coco.json", "x_coco_polygons.json",
                                             "x_labels.png", "x_object1.png", "x_object2.png", "x_object3.png"]
    poly_api = COCO(str(tmp_path / "x_coco_polygons.json"))  # segmentation as polygon lists: rasterised by pycocotools
    for x, o in zip(poly_api.loadAnns(poly_api.getAnnIds(imgIds=[1])), objs):
        assert isinstance(x["segmentation"], list) and "polygons" not in x
        got = poly_api.annToMask(x).astype(bool)
        assert (got & o.mask).sum() / (got | o.mask).sum() >= 0.98
    api = COCO(str(tmp_path / "x_coco.json"))
    cats = {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())}
    assert cats == {1: "cat", 2: "dog"}
    anns = api.loadAnns(api.getAnnIds(imgIds=[1]))
    assert [cats[x["category_id"]] for x in anns] == ["cat", "dog", "cat"]
    for x, o in zip(anns, objs):
        np.testing.assert_array_equal(api.annToMask(x).astype(bool), o.mask)
    info = api.dataset["info"]["annotation_session"]
    assert info["objects"] == 3 and info["clicks"] == 6 and info["seconds"] == 6.0 and info["timed_objects"] == 2
    names = (tmp_path / "classes.txt").read_text().splitlines()
    lines = (tmp_path / "x.txt").read_text().splitlines()
    assert [names[int(line.split()[0])] for line in lines] == ["cat", "dog", "cat"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x_labels.png")), label_map([a, b, c]))
    m1 = np.asarray(Image.open(tmp_path / "x_object1.png"))
    assert set(np.unique(m1)) == {0, 255} and np.array_equal(m1 == 255, a)


def test_write_annotation_by_extension(tmp_path):
    m = _two_parts()
    objs = [ObjectAnnotation(m)]
    (png,) = write_annotation(tmp_path / "m.png", objs)
    np.testing.assert_array_equal(np.asarray(Image.open(png)) == 255, m)
    (js,) = write_annotation(tmp_path / "m.json", objs, file_name="img.png")
    assert COCO(str(js)).dataset["images"][0]["file_name"] == "img.png"
    txt, names = write_annotation(tmp_path / "m.txt", objs)
    assert names.read_text() == "object\n" and txt.read_text().startswith("0 ")
    two = write_annotation(tmp_path / "both.png", [ObjectAnnotation(m), ObjectAnnotation(~m)])
    assert sorted(p.name for p in two) == ["both.png", "both_1.png", "both_2.png"]
    with pytest.raises(AnnotationError, match=r"\.png"):
        write_annotation(tmp_path / "m.bmp", objs)
    with pytest.raises(AnnotationError, match="no objects"):
        write_annotation(tmp_path / "m.json", [])


def test_class_names_and_coco_dict():
    assert class_name("  red   car ") == "red car" and class_name("") == "object" and class_name(None) == "object"
    with pytest.raises(AnnotationError):
        class_name("x" * 101)
    d = coco_dict([np.eye(8, dtype=bool)], file_name="e.png", category="diag")
    assert d["categories"] == [{"id": 1, "name": "diag", "supercategory": "diag"}]
    assert d["annotations"][0]["area"] == 8 and d["annotations"][0]["polygons"]
