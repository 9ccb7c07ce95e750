"""Pretext tasks on a real frame pair: motion prediction, moving-foreground segmentation,
conditional motion propagation (CMP's own task, run through an :class:`cmp.engine.Engine`)."""
from __future__ import annotations

import hashlib
import math
import threading

import cv2
import numpy as np
from cachetools import LRUCache

from ..flow import dis_flow, endpoint_error, flow_to_color
from ..guidance import sample_guidance
from .base import ProxyTask, block_reduce, caption, check_difficulty, check_image, check_seed, hstack, resize, task_rng
from .frames import load_frame_pair

MOTION_FACTOR = {"easy": 8, "normal": 4, "difficult": 2, "hell": 1}  # target resolution 1/factor
#: Guidance per difficulty: at most ``max_points``; grid + watershed (CMP's sampler) plus
#: ``n_random`` random points. "easy" adds random points (dense guidance: interpolation
#: nearly solves it), "normal" is CMP's own sampling, harder levels keep only a few.
GUIDANCE = {
    "easy": dict(max_points=24, n_random=18),
    "normal": dict(max_points=12, n_random=0),
    "difficult": dict(max_points=4, n_random=0),
    "hell": dict(max_points=2, n_random=0),
}
#: A pixel moves when |flow| exceeds max(MIN_MOTION, MOTION_FRACTION * 99th percentile of |flow|).
MIN_MOTION = 1.0
MOTION_FRACTION = 0.3



_flow_cache: LRUCache[str, np.ndarray] = LRUCache(4)  # the last few frame pairs
_flow_lock = threading.Lock()


def dense_flow(frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    """Optical flow frame0 -> frame1 by OpenCV DIS (medium preset): (H, W, 2) float32 px, (dx, dy).

    :func:`cmp.flow.dis_flow` with input checks. Results for the last few pairs are
    kept (flow is deterministic, the pair rarely changes).
    """
    frame0, frame1 = check_image(frame0), check_image(frame1)
    if frame0.shape != frame1.shape:
        raise ValueError(f"frames differ in size: {frame0.shape[:2]} vs {frame1.shape[:2]}")
    key = hashlib.blake2b(frame0.tobytes() + frame1.tobytes() + repr(frame0.shape).encode(), digest_size=16).hexdigest()
    with _flow_lock:
        if (cached := _flow_cache.get(key)) is not None:
            return cached.copy()
    flow = dis_flow(frame0, frame1)
    with _flow_lock:
        _flow_cache[key] = flow
    return flow.copy()


def _pair(frames) -> tuple[np.ndarray, np.ndarray]:
    if frames is None:
        return load_frame_pair()
    f0, f1 = frames
    return check_image(f0), check_image(f1)


def _display_max(flow: np.ndarray) -> float:
    return max(float(np.percentile(np.hypot(flow[..., 0], flow[..., 1]), 99.5)), 1.0)


def motion_prediction(frames=None, difficulty: str = "normal", seed: int = 0) -> ProxyTask:
    """From one frame, predict the dense flow to a later frame (target at 1/factor resolution).

    ``frames``: (frame0, frame1) uint8 RGB, default the shipped pair. ``arrays["flow"]``
    is the full-resolution target flow, ``arrays["flow_target"]`` the coarse one.
    """
    d, seed = check_difficulty(difficulty), check_seed(seed)
    f0, f1 = _pair(frames)
    flow = dense_flow(f0, f1)
    k = MOTION_FACTOR[d]
    coarse = block_reduce(flow, k)
    h, w = f0.shape[:2]
    answer = f"flow at 1/{k} res, max {float(np.hypot(flow[..., 0], flow[..., 1]).max()):.1f} px"
    target = caption(flow_to_color(resize(coarse, w, h, nearest=True), _display_max(flow)), answer)
    return ProxyTask(
        "motion_prediction", "Motion prediction", d, seed, f0.copy(), target,
        given="a single video frame",
        predict="the dense optical flow to a later frame (computed by an off-the-shelf flow method)",
        why=("What can move, and how, depends on what things are: a hand moves the box, the table "
             "stays. The flow between two frames, found without labels, is the target (Walker et al. "
             "2015; the talk's motion tendency prior). Motion from one image is ambiguous, so harder "
             "settings ask for finer flow fields."),
        shortcut=("The ambiguity invites an average answer (a blur of all motions, mostly zero), and "
                  "camera motion or compression flicker can dominate the target. Predict distributions, "
                  "and prefer static-camera clips where the flow reflects the objects."),
        source="prior (motion tendency)",
        answer=answer,
        meta={"target_factor": k, "flow_shape": [h, w], "flow_method": "OpenCV DIS, medium preset",
              "max_motion_px": float(np.hypot(flow[..., 0], flow[..., 1]).max())},
        arrays={"flow": flow, "flow_target": coarse, "frame0": f0, "frame1": f1},
    )


def motion_mask(flow: np.ndarray) -> tuple[np.ndarray, float]:
    """(H, W) bool mask of moving pixels and the threshold in px used."""
    mag = np.hypot(flow[..., 0], flow[..., 1])
    thr = max(MIN_MOTION, MOTION_FRACTION * float(np.percentile(mag, 99)))
    mask = (mag > thr).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    return mask.astype(bool), thr


def moving_segmentation(frames=None, difficulty: str = "normal", seed: int = 0) -> ProxyTask:
    """From one frame, predict which pixels move (the flow magnitude thresholded).

    ``arrays["mask"]`` is the full-resolution mask, ``arrays["mask_target"]`` the coarse one.
    """
    d, seed = check_difficulty(difficulty), check_seed(seed)
    f0, f1 = _pair(frames)
    flow = dense_flow(f0, f1)
    mask, thr = motion_mask(flow)
    k = MOTION_FACTOR[d]
    coarse = block_reduce(mask.astype(np.float32), k) > 0.5
    h, w = f0.shape[:2]
    shown = resize(coarse.astype(np.uint8), w, h, nearest=True).astype(bool)
    vis = np.where(shown[..., None], f0, (f0 * 0.15).astype(np.uint8))
    answer = f"moving: {100 * mask.mean():.0f}% of pixels, |flow| > {thr:.1f} px, 1/{k} res"
    target = caption(vis, answer)
    return ProxyTask(
        "moving_segmentation", "Moving-foreground segmentation", d, seed, f0.copy(), target,
        given="a single video frame",
        predict="a mask of the pixels that move (flow magnitude above a threshold)",
        why=("Pixels that move together usually belong to one object, so the moving region is a free, "
             "rough object mask; a network that predicts it from a still frame has to find objects "
             "(Pathak et al. 2017, learning features by watching objects move). Harder settings ask "
             "for the mask at finer resolution."),
        shortcut=("Noisy flow and camera motion make the mask track textures or the whole frame; "
                  "thresholding relative to the strongest motion and discarding specks keeps it on "
                  "objects. Static objects never appear as foreground, a bias the task cannot remove."),
        source="prior (motion consistency)",
        answer=answer,
        meta={"threshold_px": thr, "foreground_fraction": float(mask.mean()), "target_factor": k},
        arrays={"mask": mask, "mask_target": coarse, "flow": flow},
    )


def _draw_guidance(img: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, float]:
    out = img.copy()
    mags = np.hypot(pts[:, 2], pts[:, 3]) if len(pts) else np.zeros(0)
    scale = float(np.clip(25.0 / max(float(mags.max()) if len(mags) else 1.0, 1e-6), 1.0, 4.0))
    for x, y, dx, dy in pts:
        p0 = (int(round(x)), int(round(y)))
        if math.hypot(dx, dy) < 0.5:
            cv2.circle(out, p0, 4, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, p0, 4, (0, 0, 0), 1, cv2.LINE_AA)
            continue
        p1 = (int(round(x + dx * scale)), int(round(y + dy * scale)))
        cv2.arrowedLine(out, p0, p1, (0, 0, 0), 4, cv2.LINE_AA, tipLength=0.3)
        cv2.arrowedLine(out, p0, p1, (255, 230, 0), 2, cv2.LINE_AA, tipLength=0.3)
    return out, scale


def motion_propagation(frames=None, difficulty: str = "normal", seed: int = 0, *,
                       engine=None) -> ProxyTask:
    """CMP's own task: frame + sparse guidance sampled from the flow -> the dense flow.

    Guidance comes from :func:`cmp.guidance.sample_guidance` (grid + watershed, plus a
    random points on "easy"), at most ``GUIDANCE[difficulty]["max_points"]``. With an
    ``engine`` the model's prediction is shown beside the target with its EPE
    (``meta["epe"]``); without one only the target is shown. ``arrays["guidance"]``:
    (N, 4) (x, y, dx, dy) in frame pixels, each carrying ``arrays["flow"][y, x]``.
    """
    d, seed = check_difficulty(difficulty), check_seed(seed)
    f0, f1 = _pair(frames)
    flow = dense_flow(f0, f1)
    rng = task_rng("motion_propagation", seed)
    cfg = GUIDANCE[d]
    pts = sample_guidance(flow, rng, max_points=cfg["max_points"], n_random=cfg["n_random"])
    given, scale = _draw_guidance(f0, pts)
    given = caption(given, f"{len(pts)} guidance points (arrows drawn x{scale:.1f})")
    m = _display_max(flow)
    panels = [caption(flow_to_color(flow, m), "target flow (DIS)")]
    meta = {"n_points": int(len(pts)), "guidance": np.round(pts, 3).tolist(), "arrow_scale": scale,
            "epe": None, "model": None}
    arrays = {"flow": flow, "guidance": pts, "frame0": f0, "frame1": f1}
    if engine is not None:
        handle = engine.set_image(f0)
        pred = engine.propagate_batch(handle, [pts])[0]
        epe = endpoint_error(pred, flow)
        zero = endpoint_error(np.zeros_like(flow), flow)
        meta.update(epe=epe, epe_zero_motion=zero, model=getattr(engine, "name", "model"))
        arrays["prediction"] = pred
        panels.append(caption(flow_to_color(pred, m), f"model: EPE {epe:.2f} px (zero: {zero:.2f})"))
    answer = f"dense flow from {len(pts)} points" + (f"; model EPE {meta['epe']:.2f} px" if engine is not None else "")
    return ProxyTask(
        "motion_propagation", "Conditional motion propagation", d, seed, given, hstack(panels),
        given="one frame plus a few motion vectors sampled from the true flow (grid + watershed)",
        predict="the dense optical flow of the whole frame",
        why=("A few arrows say how some points move; the rest follows from what the object is and how "
             "it is built: a rigid box moves as one, an arm bends at the elbow. Learning to propagate "
             "sparse motion teaches kinematic structure without labels (Zhan et al. CVPR 2019, the "
             "model of this platform). Fewer guidance points leave more to infer."),
        shortcut=("Without guidance the target is ambiguous and the network learns the average (no "
                  "motion); with dense guidance (the easy level adds random points) it can just "
                  "interpolate between arrows. Watershed sampling puts about one point inside each "
                  "moving part, so the network must spread it over the part's extent and stop at its "
                  "boundary."),
        source="prior (kinematics)",
        answer=answer,
        meta=meta,
        arrays=arrays,
    )
