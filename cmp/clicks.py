"""The RITM click protocol's next click (Sofiiuk et al. 2022): where a simulated user clicks.

The next click is at the interior point (maximum of the distance transform, the grid's border
counted as boundary, points already clicked excluded) of the error region that reaches deepest:
positive when that region is missed object, negative when it is false background. The
evaluation clicks with it (:mod:`cmp.eval.segmentation`), and so does the trainer's loss on the
walk's answer (:func:`cmp.train.losses.walk_solve_loss`), which must not import the evaluation's
sets. Arrays: (H, W) bool masks; clicks (x, y). No model, no Gradio.
"""
from __future__ import annotations

import cv2
import numpy as np


def _interior(region: np.ndarray, allowed: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Max distance to the region boundary (image border counts) and its (row, col)."""
    padded = np.pad(region, 1).astype(np.uint8)
    dt = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1] * allowed
    idx = int(np.argmax(dt))
    return float(dt.flat[idx]), divmod(idx, dt.shape[1])


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray | None = None) -> tuple[int, int, bool] | None:
    """The protocol's next click (x, y, is_positive), or None when nothing is left to fix.

    ``clicked``: (H, W) bool of pixels already clicked (never clicked twice).
    """
    allowed = np.ones(gt.shape, np.float32) if clicked is None else (~clicked).astype(np.float32)
    fn_d, fn_rc = _interior(gt & ~pred, allowed)
    fp_d, fp_rc = _interior(pred & ~gt, allowed)
    if max(fn_d, fp_d) <= 0:
        return None
    positive = fn_d > fp_d
    r, c = fn_rc if positive else fp_rc
    return int(c), int(r), bool(positive)
