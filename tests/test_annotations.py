"""Annotation formats (cmp.masks, cmp.annotations): COCO RLE and polygons, YOLO-seg, checked with pycocotools."""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from cmp.masks import counts_to_string, rle_counts


def test_old_encoder_agrees_with_pycocotools():
    rng = np.random.default_rng(3)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = rng.random((h, w)) < rng.random()
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert counts_to_string(rle_counts(m)) == ref["counts"].decode("ascii")
        assert ref["size"] == [h, w]
