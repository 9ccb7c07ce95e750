"""Whole-image pretext tasks: rotation, colorization, inpainting, instance discrimination."""
from __future__ import annotations

import math

import cv2
import numpy as np

from .base import (SQUARE, ProxyTask, block_reduce, border, caption, check_difficulty, check_image, check_seed,
                   fit_image, grey3, hstack, resize, square_image, task_rng)
from .frames import load_other_image


# -- rotation ------------------------------------------------------------------

ROTATION = {  # classes, fraction of the square shown, grey input
    "easy": dict(angles=(0, 180), crop=1.0, grey=False),
    "normal": dict(angles=(0, 90, 180, 270), crop=1.0, grey=False),
    "difficult": dict(angles=(0, 90, 180, 270), crop=0.55, grey=False),
    "hell": dict(angles=(0, 90, 180, 270), crop=0.35, grey=True),
}


def rotation(image: np.ndarray, difficulty: str = "normal", seed: int = 0) -> ProxyTask:
    """Rotate a square view by a multiple of 90 deg; the label is the angle (counter-clockwise).

    ``arrays["upright"]`` is the view before rotation: ``np.rot90(input, -k) == upright``
    with ``k = meta["degrees"] // 90``.
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    cfg, rng = ROTATION[d], task_rng("rotation", seed)
    sq = square_image(image)
    c = max(16, round(SQUARE * cfg["crop"]))
    x0, y0 = (int(rng.integers(0, SQUARE - c + 1)) for _ in range(2))
    view = resize(sq[y0:y0 + c, x0:x0 + c], SQUARE, SQUARE)
    if cfg["grey"]:
        view = grey3(view)
    label = int(rng.integers(len(cfg["angles"])))
    deg = cfg["angles"][label]
    given = np.ascontiguousarray(np.rot90(view, deg // 90))
    answer = f"label {label}: turned {deg} deg counter-clockwise"
    target = caption(view, f"{answer}; this is upright")
    return ProxyTask(
        "rotation", "Rotation prediction", d, seed, given, target,
        given=f"an image turned by one of {len(cfg['angles'])} angles ({', '.join(map(str, cfg['angles']))} deg)",
        predict="which angle it was turned by (a class label)",
        why=("To tell which way is up a network has to know what things look like: skies above, feet "
             "below, faces with eyes over mouths. The physical prior of gravity gives the label for free "
             "(Gidaris et al. 2018). Harder settings show less of the image and drop colour, so the "
             "answer must come from objects rather than from a blue band at the top."),
        shortcut=("Only multiples of 90 deg on square views: an arbitrary angle leaves black corners and "
                  "interpolation blur, and a non-square view gives 90/270 away by its shape, so the "
                  "network would learn to spot artefacts instead of objects."),
        source="prior (physics)",
        answer=answer,
        meta={"label": label, "degrees": deg, "classes": list(cfg["angles"]),
              "crop_box": [x0, y0, c, c], "grey": cfg["grey"]},
        arrays={"upright": view},
    )


# -- colorization --------------------------------------------------------------

COLORIZATION = {  # target downsampling factor, ab quantisation step (Zhang et al. use 10)
    "easy": dict(factor=8, step=40),
    "normal": dict(factor=4, step=20),
    "difficult": dict(factor=2, step=10),
    "hell": dict(factor=1, step=5),
}
#: Lightness used to show the ab target on its own.
AB_DISPLAY_L = 70.0


def rgb_to_lab(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB -> (L (H, W) float32 in 0..100, ab (H, W, 2) float32, roughly -110..110)."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab[..., 0].copy(), lab[..., 1:].copy()


def lab_to_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab`: (H, W) L + (H, W, 2) ab -> uint8 RGB (out-of-gamut clipped)."""
    lab = np.concatenate([np.asarray(L, np.float32)[..., None], np.asarray(ab, np.float32)], axis=-1)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def colorization(image: np.ndarray, difficulty: str = "normal", seed: int = 0) -> ProxyTask:
    """Given lightness L, predict the colour channels ab (CIE Lab), quantised into bins.

    ``arrays``: ``L``, ``ab`` (full resolution, exact), ``ab_target`` (coarser, quantised
    to bin centres), ``rgb`` (the working image); ``lab_to_rgb(L, ab)`` gives ``rgb`` back.
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    cfg = COLORIZATION[d]
    rgb = fit_image(image)
    L, ab = rgb_to_lab(rgb)
    step = cfg["step"]
    coarse = block_reduce(ab, cfg["factor"])
    # Bins centred on multiples of the step, so neutral grey (a = b = 0) is a bin centre.
    idx = np.rint(coarse / step)
    q = idx * step
    bins = (2 * int(128 // step) + 1) ** 2
    used = len(np.unique(idx.reshape(-1, 2), axis=0))
    h, w = rgb.shape[:2]
    shown = resize(q, w, h, nearest=True)
    answer = f"ab at 1/{cfg['factor']} resolution in {step}-wide bins ({used} of {bins} used)"
    target = caption(lab_to_rgb(np.full((h, w), AB_DISPLAY_L, np.float32), shown),
                     f"ab at 1/{cfg['factor']} res, {step}-wide bins ({used} used)")
    given = np.repeat(np.clip(L / 100.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return ProxyTask(
        "colorization", "Colorization", d, seed, given, target,
        given="the lightness channel L of the image (a grey picture)",
        predict="the two colour channels a, b at every pixel, as a class among quantised ab bins",
        why=("Grass is green, sky is blue, skin has a narrow range of hues: to colour a grey photo a "
             "network must recognise what is in it. The appearance prior of the world is the label "
             "(Zhang et al. 2016; Larsson et al. 2016). Harder settings ask for colour at finer "
             "resolution and in finer bins; the target shown here is ab alone at a fixed lightness."),
        shortcut=("Colour is ambiguous (a car may be red or blue), and a plain regression loss is "
                  "minimised by the average colour: grey-brown pictures, a trivial answer that needs "
                  "little understanding. Predicting a distribution over ab bins, reweighted towards rare "
                  "saturated colours, removes that escape."),
        source="prior (appearance)",
        answer=answer,
        meta={"target_factor": cfg["factor"], "ab_step": step, "ab_bins": bins, "ab_bins_used": used,
              "display_L": AB_DISPLAY_L},
        arrays={"L": L, "ab": ab, "ab_target": q.astype(np.float32), "rgb": rgb},
    )


# -- inpainting ----------------------------------------------------------------

INPAINTING = {"easy": 0.2, "normal": 0.3, "difficult": 0.45, "hell": 0.6}  # hole side / short image side


def inpainting(image: np.ndarray, difficulty: str = "normal", seed: int = 0) -> ProxyTask:
    """Erase a square hole (filled with the image's mean colour); predict its pixels.

    ``arrays``: ``rgb`` (working image), ``mask`` (bool, True in the hole), ``hole``
    ((h, w, 3) uint8, the original pixels in the hole, 0 elsewhere).
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    rng = task_rng("inpainting", seed)
    rgb = fit_image(image)
    h, w = rgb.shape[:2]
    side = max(4, round(INPAINTING[d] * min(h, w)))
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    mask = np.zeros((h, w), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    fill = np.round(rgb.reshape(-1, 3).mean(0)).astype(np.uint8)
    given = rgb.copy()
    given[mask] = fill
    hole = np.where(mask[..., None], rgb, 0).astype(np.uint8)
    faded = (rgb.astype(np.float32) * 0.25 + 255 * 0.75).astype(np.uint8)
    shown = np.where(mask[..., None], rgb, faded)
    cv2.rectangle(shown, (x0 - 1, y0 - 1), (x0 + side, y0 + side), (255, 0, 0), 1)
    answer = f"hole {side}x{side} px = {100 * mask.mean():.0f}% of the image"
    target = caption(shown, answer)
    return ProxyTask(
        "inpainting", "Inpainting", d, seed, given, target,
        given="the image with a region erased (filled with its mean colour)",
        predict="the missing pixels inside the hole",
        why=("Filling a hole plausibly needs to know what objects look like and how they continue: the "
             "rest of a face, the other half of a window. The appearance prior again (Pathak et al. "
             "2016, context encoders). A small hole can be filled by smearing its border; a large one "
             "needs understanding, so harder settings erase more."),
        shortcut=("Copying and blurring the pixels at the hole border solves small holes without any "
                  "semantics, and a fixed, always-central hole lets features specialise to its edge. "
                  "Large holes at random places (and an adversarial loss against blurry averages) remove "
                  "that easy path."),
        source="prior (appearance)",
        answer=answer,
        meta={"hole_box": [x0, y0, side, side], "hole_fraction": float(mask.mean()), "fill_rgb": fill.tolist()},
        arrays={"rgb": rgb, "mask": mask, "hole": hole},
    )


# -- instance discrimination ---------------------------------------------------

INSTANCE = {  # min crop area fraction, colour jitter strength, grayscale and blur probabilities
    "easy": dict(min_area=0.6, jitter=0.1, p_grey=0.0, p_blur=0.0),
    "normal": dict(min_area=0.35, jitter=0.4, p_grey=0.2, p_blur=0.3),
    "difficult": dict(min_area=0.2, jitter=0.6, p_grey=0.3, p_blur=0.5),
    "hell": dict(min_area=0.08, jitter=0.8, p_grey=0.5, p_blur=0.5),
}
VIEW_SIDE = 112
VIEW_COLOURS = ((220, 40, 40), (40, 110, 230), (40, 170, 60))


def _random_resized_crop(img: np.ndarray, rng: np.random.Generator, min_area: float) -> tuple[np.ndarray, list[int]]:
    h, w = img.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(min_area, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            break
    else:
        cw = ch = min(h, w)
        x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = resize(img[y0:y0 + ch, x0:x0 + cw], VIEW_SIDE, VIEW_SIDE)
    return crop, [x0, y0, cw, ch]


def _colour_jitter(img: np.ndarray, rng: np.random.Generator, s: float) -> tuple[np.ndarray, dict]:
    f = img.astype(np.float32) / 255.0
    b, c, sat = (float(rng.uniform(1 - s, 1 + s)) for _ in range(3))
    hue = float(rng.uniform(-s / 4, s / 4))  # fraction of the colour circle, as SimCLR's 0.2 at s = 0.8
    f = f * b
    grey = (f @ np.array([0.299, 0.587, 0.114], np.float32)).mean()
    f = np.clip((f - grey) * c + grey, 0, 1)
    g = (f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    f = np.clip(g + (f - g) * sat, 0, 1)
    hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + hue * 360.0) % 360.0
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8), {
        "brightness": round(b, 3), "contrast": round(c, 3), "saturation": round(sat, 3), "hue": round(hue, 3)}


def _augment(img: np.ndarray, rng: np.random.Generator, cfg: dict) -> tuple[np.ndarray, dict]:
    view, box = _random_resized_crop(img, rng, cfg["min_area"])
    params: dict = {"crop_box": box, "flip": bool(rng.random() < 0.5)}
    if params["flip"]:
        view = np.ascontiguousarray(view[:, ::-1])
    if cfg["jitter"] > 0 and rng.random() < 0.8:
        view, params["colour_jitter"] = _colour_jitter(view, rng, cfg["jitter"])
    params["grey"] = bool(rng.random() < cfg["p_grey"])
    if params["grey"]:
        view = grey3(view)
    if rng.random() < cfg["p_blur"]:
        sigma = float(rng.uniform(0.1, 2.0))
        view = cv2.GaussianBlur(view, (0, 0), sigma)
        params["blur_sigma"] = round(sigma, 3)
    return view, params


def instance_discrimination(image: np.ndarray, difficulty: str = "normal", seed: int = 0, *,
                            other: np.ndarray | None = None) -> ProxyTask:
    """Two augmented views of ``image`` (a positive pair) and one of ``other`` (a negative).

    ``other`` defaults to the shipped cup frame. ``arrays["views"]``: (3, 112, 112, 3),
    views 0 and 1 from ``image``, view 2 from ``other``; ``meta["views"]`` their parameters
    (crop boxes in pixels of the working images).
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    other = check_image(load_other_image() if other is None else other)
    cfg, rng = INSTANCE[d], task_rng("instance_discrimination", seed)
    a, b = fit_image(image), fit_image(other)
    views, params = [], []
    for src in (a, a, b):
        v, p = _augment(src, rng, cfg)
        views.append(v)
        params.append(p)
    given = caption(hstack([border(v, col) for v, col in zip(views, VIEW_COLOURS)]),
                    "three views: which two come from the same image?")
    thumbs = []
    for src, ks in ((a, (0, 1)), (b, (2,))):
        t = src.copy()
        for k in ks:
            x, y, w_, h_ = params[k]["crop_box"]
            cv2.rectangle(t, (x, y), (x + w_ - 1, y + h_ - 1), VIEW_COLOURS[k], 3)
        thumbs.append(resize(t, round(t.shape[1] * 150 / t.shape[0]), 150))
    answer = "views 1+2: same image (pull together); 3: another (push apart)"
    target = caption(hstack(thumbs), answer)
    return ProxyTask(
        "instance_discrimination", "Instance discrimination", d, seed, given, target,
        given="augmented views (crops, flips, colour jitter, blur, grey) of several images",
        predict="which views come from the same image: features of the two views of one image close, "
                "views of other images far (a contrastive loss)",
        why=("Each image is its own class. To match two very different crops of the same photo, and "
             "tell them from crops of other photos, the features must keep what survives the "
             "augmentations: object identity, shape, parts. The structure of the data is the label "
             "(NPID, CPC, MoCo, SimCLR, BYOL). Stronger augmentation (smaller crops, stronger jitter, "
             "blur, grey) makes the task harder and the features more semantic."),
        shortcut=("Two crops of one photo share its colour histogram, so with crops alone the network "
                  "can match colours instead of content; colour jitter and grayscale remove that cue "
                  "(SimCLR). Batch-norm statistics can also leak which samples sit together in a batch "
                  "(MoCo shuffles BN across GPUs)."),
        source="structure of data",
        answer=answer,
        meta={"positive_pairs": [[0, 1]], "negative_pairs": [[0, 2], [1, 2]], "views": params,
              "min_crop_area": cfg["min_area"], "jitter_strength": cfg["jitter"],
              "p_grey": cfg["p_grey"], "p_blur": cfg["p_blur"]},
        arrays={"views": np.stack(views)},
    )
