"""Synthetic scenes with exact flow (FlyingChairs-style), for training and held-out eval.

Foreground cut-outs of photos with random smooth shapes (or, on request, emoji
silhouettes with parts, holes and thin structures: ``cmp.scenes.emoji``) move by their
own affine motions over a (sometimes moving) background; all pixels of one cut-out,
thin parts included, share its one motion. Because every pixel's
motion is known exactly, the scenes teach "motion stays inside the object",
which click segmentation relies on. Seeds below ``HELDOUT_SEED_BASE`` are for
training; seeds at or above it are never used by the trainer.
"""
from __future__ import annotations

import cv2
import numpy as np

from .emoji import place_silhouette
from .photos import default_photos, fit_crop
from .shapes import random_shape

HELDOUT_SEED_BASE = 900_000
#: How these scenes crop photos (kept so that every seed keeps its pixels).
_CROP = dict(jitter=(1.0, 1.6), upscale=cv2.INTER_LINEAR, round_up=False)


def random_affine(center: tuple[float, float], rng: np.random.Generator, *, max_shift: float,
                  max_rot: float, max_scale: float) -> np.ndarray:
    """2x3 matrix mapping frame-1 (x, y) to frame-2 (x, y), rotating/scaling about ``center``."""
    ang = rng.uniform(-max_rot, max_rot)
    sc = 1.0 + rng.uniform(-max_scale, max_scale)
    M = cv2.getRotationMatrix2D(center, ang, sc)
    M[:, 2] += rng.uniform(-max_shift, max_shift, size=2)
    return M


def _affine_flow(M: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    fx = M[0, 0] * xx + M[0, 1] * yy + M[0, 2] - xx
    fy = M[1, 0] * xx + M[1, 1] * yy + M[1, 2] - yy
    return np.stack([fx, fy], axis=2).astype(np.float32)


def make_scene(seed: int, size: tuple[int, int] = (288, 384), photos: list[np.ndarray] | None = None, *,
               max_objects: int = 3, static_bg_prob: float = 0.5, bg_shift: float = 10.0,
               silhouettes=None, emoji_prob: float = 0.0, same_photo_prob: float = 0.0,
               parts_prob: float = 0.0) -> dict:
    """One scene; ``bg_shift`` bounds the background's translation in px (a panning camera).

    ``silhouettes``: (code point, bool mask) pairs (``cmp.scenes.emoji.emoji_silhouettes``,
    the caller picks the split); each cut-out takes one of them instead of a smooth random
    shape with probability ``emoji_prob``. At ``emoji_prob`` 0 a seed gives the same scene
    as before the option existed (no extra random draws). ``shapes`` in the result: the
    code point of each cut-out's silhouette, 0 for a smooth shape.

    ``same_photo_prob``: each cut-out takes its texture from another crop of the background's
    own photo, without a brightness shift, with this probability. Such an object differs from
    its surroundings only by what lies across its border, not by the statistics of a second
    photo (colour cast, noise, brightness), as objects in one real photo do. At 0 a seed gives
    the same scene as before the option existed.

    ``parts_prob``: each cut-out is textured in 2-4 parts (:func:`_parts_texture`), each from a
    photo crop of its own, with this probability; it still moves by its one motion. Real
    objects are like that (a pot and its leaves, a seat and a tank): parts that look different
    and move together, which one-texture cut-outs never show. At 0 a seed gives the same
    scene as before the option existed.

    Returns image1, image2 (H, W, 3) uint8; flow (H, W, 2) float32 from
    image1 to image2 in px; valid (H, W) bool (all True: the flow is exact);
    masks (K, H, W) bool visible object masks in image1; labels (H, W) int32 (0 = background)."""
    rng = np.random.default_rng(seed)
    if photos is None:
        photos = default_photos()
    H, W = size
    bg_photo = int(rng.integers(len(photos)))
    bg = fit_crop(photos[bg_photo], size, rng, **_CROP)
    if rng.random() < static_bg_prob:
        Mb = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    else:
        Mb = random_affine((W / 2, H / 2), rng, max_shift=bg_shift, max_rot=3, max_scale=0.04)
    img1 = bg.copy()
    img2 = cv2.warpAffine(bg, Mb, (W, H), borderMode=cv2.BORDER_REFLECT)
    flow = _affine_flow(Mb, size)
    labels = np.zeros(size, np.int32)
    k_obj = int(rng.integers(1, max_objects + 1))
    order2, shapes = [], []
    for k in range(1, k_obj + 1):
        same = same_photo_prob > 0 and rng.random() < same_photo_prob
        tex, mask, cp = _cutout(size, photos, rng, silhouettes, emoji_prob, photo=bg_photo if same else None)
        shapes.append(cp)
        if parts_prob > 0 and rng.random() < parts_prob:
            tex = _parts_texture(tex, mask, photos, rng)
        if mask.sum() < 64:
            continue
        ys, xs = np.nonzero(mask)
        c = (float(xs.mean()), float(ys.mean()))
        M = random_affine(c, rng, max_shift=30, max_rot=20, max_scale=0.12)
        img1[mask] = tex[mask]
        flow[mask] = _affine_flow(M, size)[mask]
        labels[mask] = k
        order2.append((tex, mask, M))
    for tex, mask, M in order2:  # same stacking order in frame 2: later objects stay in front
        t2 = cv2.warpAffine(tex, M, (W, H), flags=cv2.INTER_LINEAR)
        m2 = cv2.warpAffine(mask.astype(np.uint8) * 255, M, (W, H), flags=cv2.INTER_LINEAR) > 127
        img2[m2] = t2[m2]
    return {**_scene(img1, img2, flow, labels, k_obj), "shapes": shapes}


def _texture(photos: list[np.ndarray], size: tuple[int, int], rng: np.random.Generator,
             photo: int | None = None) -> np.ndarray:
    """A 1-2x zoomed crop of a random photo, brightness shifted by up to +/-30 (so it is not
    always the background's statistics); of ``photo`` if given, then unshifted."""
    own = photo is not None
    photo = int(rng.integers(len(photos))) if photo is None else photo
    tex = fit_crop(photos[photo], size, rng, zoom=rng.uniform(1.0, 2.0), **_CROP)
    if not own:
        tex = np.clip(tex.astype(np.int16) + int(rng.integers(-30, 31)), 0, 255).astype(np.uint8)
    return tex


def _cutout(size: tuple[int, int], photos: list[np.ndarray], rng: np.random.Generator, silhouettes=None,
            emoji_prob: float = 0.0, photo: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """An object: a photo texture (brightness shifted a little, so it is not always the
    background's statistics; given ``photo``, another crop of that photo, unshifted) and a
    shape (bool mask) to cut it with: a random smooth one, or with probability
    ``emoji_prob`` one of ``silhouettes`` (then its code point, else 0)."""
    H, W = size
    tex = _texture(photos, size, rng, photo)
    if silhouettes and emoji_prob > 0 and rng.random() < emoji_prob:
        cp, sil = silhouettes[int(rng.integers(len(silhouettes)))]
        return tex, place_silhouette(sil, size, rng, extent=rng.uniform(0.35, 0.8) * min(H, W)), int(cp)
    return tex, random_shape(rng, size, "radial", extent=rng.uniform(0.2, 0.6) * min(H, W)), 0


def _parts_texture(tex: np.ndarray, mask: np.ndarray, photos: list[np.ndarray],
                   rng: np.random.Generator) -> np.ndarray:
    """``tex`` with the object (``mask``) cut into 2-4 parts, the Voronoi cells of points
    drawn inside it; every part but the first takes another photo crop (:func:`_texture`).
    A mask of fewer than 2 pixels comes back unchanged."""
    ys, xs = np.nonzero(mask)
    n = min(int(rng.integers(2, 5)), len(ys))
    if n < 2:
        return tex
    pick = rng.choice(len(ys), size=n, replace=False)
    H, W = mask.shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d = [(xx - xs[j]) ** 2 + (yy - ys[j]) ** 2 for j in pick]
    part = np.argmin(np.stack(d), axis=0)
    out = tex.copy()
    for k in range(1, n):
        other = _texture(photos, (H, W), rng)
        sel = part == k
        out[sel] = other[sel]
    return out


def _scene(img1, img2, flow, labels, k_obj: int) -> dict:
    """The scene dict: visible object masks from the label map (objects fully hidden dropped)."""
    masks = np.stack([labels == k for k in range(1, k_obj + 1)]) if k_obj else np.zeros((0, *labels.shape), bool)
    keep = masks.reshape(len(masks), -1).any(axis=1)
    return {"image1": img1, "image2": img2, "flow": flow, "valid": np.ones(labels.shape, bool),
            "masks": masks[keep], "labels": labels}


def _plane(size: tuple[int, int], rng: np.random.Generator, base: float, tilt: float) -> np.ndarray:
    """A positive disparity field ``base`` +- ``tilt`` x base, linear in x and y (a slanted plane)."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    gx, gy = rng.uniform(-tilt, tilt, 2) * base
    return (base + gx * (xx / max(W - 1, 1) - 0.5) + gy * (yy / max(H - 1, 1) - 0.5)).astype(np.float32)


def make_parallax_scene(seed: int, size: tuple[int, int] = (288, 384), photos: list[np.ndarray] | None = None, *,
                        max_objects: int = 4, max_disparity: float = 25.0) -> dict:
    """A camera moving sideways past a layered scene: every pixel moves, by its depth.

    A slanted background plane and 1-``max_objects`` cut-outs in front of it,
    each a plane of its own disparity (nearer = larger). All motion is along
    one direction ``u`` (horizontal half the time, as in a stereo pair):
    flow = disparity x u. Nearer layers hide farther ones in frame 1; frame 2
    is each layer shifted by its flow (an approximation at layer edges; the
    flow is exact). Same keys as :func:`make_scene`.
    """
    rng = np.random.default_rng(seed)
    if photos is None:
        photos = default_photos()
    H, W = size
    ang = 0.0 if rng.random() < 0.5 else rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(ang), np.sin(ang)], np.float32) * (1 if rng.random() < 0.5 else -1)
    base = float(rng.uniform(2.0, 0.6 * max_disparity))
    disp = _plane(size, rng, base, tilt=0.8)
    img1 = fit_crop(photos[int(rng.integers(len(photos)))], size, rng, **_CROP)
    layers = [(img1.copy(), None, disp.copy())]  # (texture, mask, disparity); the background has no mask
    labels = np.zeros(size, np.int32)
    k_obj = int(rng.integers(1, max_objects + 1))
    depths = np.sort(rng.uniform(1.2, 3.0, k_obj))  # far to near: nearer objects are painted last
    for k, near in enumerate(depths, start=1):
        tex, mask, _ = _cutout(size, photos, rng)
        if mask.sum() < 64:
            continue
        d_obj = _plane(size, rng, min(base * float(near), max_disparity), tilt=0.3)
        img1[mask] = tex[mask]
        disp[mask] = d_obj[mask]
        labels[mask] = k
        layers.append((tex, mask, d_obj))
    flow = disp[..., None] * u[None, None, :]  # float32
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

    def shifted(a, d, border):  # layer ``a`` where it lands in frame 2
        return cv2.remap(a, xx - d * u[0], yy - d * u[1], cv2.INTER_LINEAR, borderMode=border)
    img2 = shifted(layers[0][0], layers[0][2], cv2.BORDER_REFLECT)  # the background covers the frame
    for tex, mask, d in layers[1:]:  # back to front
        m2 = shifted(mask.astype(np.uint8) * 255, d, cv2.BORDER_CONSTANT) > 127
        img2[m2] = shifted(tex, d, cv2.BORDER_REFLECT)[m2]
    return _scene(img1, img2, flow, labels, k_obj)
