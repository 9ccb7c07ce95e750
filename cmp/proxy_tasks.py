"""Self-supervised pretext ("proxy") tasks for the Gallery: what a network is given, what it must predict.

Each generator is a pure function ``(image, difficulty, seed) -> ProxyTask``: the same
arguments give the same result, nothing is cached between users, no Gradio. The
image is (H, W, 3) uint8 RGB; everything a task returns for display is (h, w, 3) uint8
RGB; coordinates are (x, y) = (column, row) in pixels of the task's working image.

Difficulty follows the talk this page grows from ("easy / normal / difficult / hell"):
harder settings remove information or shortcuts (more tiles, larger holes, fewer
guidance points, stronger augmentation, finer targets). Motion tasks work on a real
frame pair shipped in ``cmp/data/frames`` (see SOURCE.md there); the motion
propagation task runs the model through an :class:`cmp.engine.Engine` passed in.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import math
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .flow import flow_to_color
from .guidance import sample_guidance

DIFFICULTIES = ("easy", "normal", "difficult", "hell")
#: Side of the square working image of the tiled tasks; divisible by 2, 3 and 4 grids.
SQUARE = 240
#: Long side of the working image of the whole-image tasks.
WORK_SIDE = 240
MIN_IMAGE_SIDE = 16
MAX_SEED = 2**31 - 1

FRAMES_DIR = Path(__file__).resolve().parent / "data" / "frames"
FRAME_PAIR = ("box_0328.png", "box_0334.png")
OTHER_IMAGE = "cup_0100.png"



@dataclass
class ProxyTask:
    """One pretext task instance.

    ``input`` and ``target`` are (h, w, 3) uint8 RGB pictures for people: what the
    network is given and what it must predict, visualised. ``arrays`` holds the raw
    data behind them (tiles, L/ab channels, masks, flows) for checks and reuse;
    ``meta`` is JSON-serialisable (labels, permutation index, parameters).
    """

    name: str
    title: str
    difficulty: str
    seed: int
    input: np.ndarray
    target: np.ndarray
    given: str
    predict: str
    why: str
    shortcut: str
    source: str  # where the supervision comes from: "prior", "coherence" or "structure of data"
    answer: str = ""  # the target in one line (label, index, size), also captioned under the target
    meta: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"task": self.name, "title": self.title, "difficulty": self.difficulty, "seed": self.seed,
                "given": self.given, "predict": self.predict, "why": self.why, "shortcut": self.shortcut,
                "source": self.source, "answer": self.answer, **self.meta}


# -- small helpers -------------------------------------------------------------

def check_difficulty(difficulty: str) -> str:
    d = str(difficulty).strip().lower()
    if d not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty '{difficulty}'; choose one of {', '.join(DIFFICULTIES)}")
    return d


def check_seed(seed) -> int:
    try:
        s = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"seed must be a whole number, got {seed!r}") from None
    if isinstance(seed, float) and s != seed:
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    if not 0 <= s <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {s}")
    return s


def check_image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {a.shape} {a.dtype}")
    if min(a.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is {a.shape[1]}x{a.shape[0]} px; each side must be at least {MIN_IMAGE_SIDE} px")
    return a


def _rng(name: str, seed: int) -> np.random.Generator:
    # Salting by task name keeps tasks independent: the same seed does not make
    # the rotation label and the jigsaw permutation move together.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _resize(img: np.ndarray, w: int, h: int, nearest: bool = False) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == (w, h):
        return img.copy()
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if w * h < img.shape[0] * img.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(img, (w, h), interpolation=interp)


def fit_image(image: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """Resize so the long side is ``side`` px (aspect kept): the working image of whole-image tasks."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    return _resize(image, max(1, round(w * s)), max(1, round(h * s)))


def square_image(image: np.ndarray, side: int = SQUARE) -> np.ndarray:
    """Centre square crop resized to ``side`` x ``side``: the working image of the tiled tasks."""
    h, w = image.shape[:2]
    m = min(h, w)
    y0, x0 = (h - m) // 2, (w - m) // 2
    return _resize(image[y0:y0 + m, x0:x0 + m], side, side)


def caption(img: np.ndarray, text: str, *, height: int = 22) -> np.ndarray:
    """Append a dark strip with one line of text under ``img`` (display only)."""
    strip = np.full((height, img.shape[1], 3), 32, np.uint8)
    scale = 0.42
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > img.shape[1] - 8:
        scale -= 0.02
    cv2.putText(strip, text, (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (240, 240, 240), 1, cv2.LINE_AA)
    return np.vstack([img, strip])


def _hstack(images: list[np.ndarray], gap: int = 6, bg: int = 255) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    parts = []
    for k, im in enumerate(images):
        if im.shape[0] < h:
            im = np.vstack([im, np.full((h - im.shape[0], im.shape[1], 3), bg, np.uint8)])
        parts.append(im)
        if k < len(images) - 1:
            parts.append(np.full((h, gap, 3), bg, np.uint8))
    return np.hstack(parts)


def _border(img: np.ndarray, colour: tuple[int, int, int], width: int = 4) -> np.ndarray:
    return cv2.copyMakeBorder(img, width, width, width, width, cv2.BORDER_CONSTANT, value=colour)


def _grey3(img: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def flow_image(flow: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """(H, W, 2) flow in px -> (H, W, 3) uint8 RGB colour-wheel picture."""
    return flow_to_color(flow, max_mag=max_mag)


def _block_reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """Area-average an (H, W[, C]) float array by ``factor`` (the target at coarser resolution)."""
    if factor == 1:
        return a.astype(np.float32).copy()
    h, w = a.shape[:2]
    return cv2.resize(a.astype(np.float32), (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)


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
    cfg, rng = ROTATION[d], _rng("rotation", seed)
    sq = square_image(image)
    c = max(16, round(SQUARE * cfg["crop"]))
    x0, y0 = (int(rng.integers(0, SQUARE - c + 1)) for _ in range(2))
    view = _resize(sq[y0:y0 + c, x0:x0 + c], SQUARE, SQUARE)
    if cfg["grey"]:
        view = _grey3(view)
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


# -- jigsaw --------------------------------------------------------------------

JIGSAW = {  # grid size, size of the fixed permutation set
    "easy": dict(grid=2, perms=24),
    "normal": dict(grid=3, perms=100),
    "difficult": dict(grid=3, perms=1000),
    "hell": dict(grid=4, perms=1000),
}
JIGSAW_COLOUR = ("off", "jitter", "grey")
#: Tile side as a fraction of its cell when gaps are on (64 of 75 px in Noroozi & Favaro 2016).
TILE_FRACTION = 0.85
#: Largest per-channel spatial shift of the colour jitter, px.
CHANNEL_SHIFT = 2


@functools.lru_cache(maxsize=8)
def permutation_set(n_tiles: int, size: int) -> np.ndarray:
    """A fixed (size, n_tiles) int64 set of permutations, far apart in Hamming distance.

    Greedy max-min selection from a seeded pool, so the set is the same in every
    process. All permutations when ``size`` is at least ``n_tiles!``.
    """
    if size >= math.factorial(n_tiles):
        return np.array(list(itertools.permutations(range(n_tiles))), np.int64)
    rng = np.random.default_rng(4242 + n_tiles)
    pool = rng.permuted(np.tile(np.arange(n_tiles), (max(4 * size, 2000), 1)), axis=1)
    chosen = [0]
    mind = (pool != pool[0]).sum(1)
    for _ in range(size - 1):
        i = int(np.argmax(mind))
        chosen.append(i)
        mind = np.minimum(mind, (pool != pool[i]).sum(1))
    out = pool[chosen]
    out.setflags(write=False)
    return out


def _cut_tile(img: np.ndarray, x0: int, y0: int, size: int, shifts: np.ndarray | None) -> np.ndarray:
    if shifts is None:
        return img[y0:y0 + size, x0:x0 + size].copy()
    H, W = img.shape[:2]
    out = np.empty((size, size, 3), np.uint8)
    for c in range(3):  # each channel from a slightly different place: breaks chromatic aberration cues
        sx = int(np.clip(x0 + shifts[c, 0], 0, W - size))
        sy = int(np.clip(y0 + shifts[c, 1], 0, H - size))
        out[..., c] = img[sy:sy + size, sx:sx + size, c]
    return out


def jigsaw(image: np.ndarray, difficulty: str = "normal", seed: int = 0, *,
           gaps: bool = True, colour: str = "jitter") -> ProxyTask:
    """Cut a square into grid x grid tiles, shuffle them by a permutation from a fixed set.

    Tile i of the input is tile ``perm[i]`` of the image (row-major), so
    ``arrays["tiles"][np.argsort(perm)] == arrays["tiles_in_order"]``.
    ``gaps``: tiles smaller than their cells at random offsets (kills edge continuity).
    ``colour``: "jitter" shifts each colour channel per tile by up to 2 px,
    "grey" drops colour, "off" keeps tiles as cut (both kill chromatic aberration cues).
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    if colour not in JIGSAW_COLOUR:
        raise ValueError(f"unknown jigsaw colour option '{colour}'; choose one of {', '.join(JIGSAW_COLOUR)}")
    cfg, rng = JIGSAW[d], _rng("jigsaw", seed)
    g = cfg["grid"]
    n = g * g
    cell = SQUARE // g
    tile = round(cell * TILE_FRACTION) if gaps else cell
    sq = square_image(image)
    perms = permutation_set(n, cfg["perms"])
    index = int(rng.integers(len(perms)))
    perm = perms[index]
    tiles, boxes = [], []
    for j in range(n):
        r, c = divmod(j, g)
        ox, oy = (int(rng.integers(0, cell - tile + 1)), int(rng.integers(0, cell - tile + 1))) if gaps else (0, 0)
        shifts = rng.integers(-CHANNEL_SHIFT, CHANNEL_SHIFT + 1, (3, 2)) if colour == "jitter" else None
        t = _cut_tile(sq, c * cell + ox, r * cell + oy, tile, shifts)
        if colour == "grey":
            t = _grey3(t)
        tiles.append(t)
        boxes.append([c * cell + ox, r * cell + oy, tile, tile])
    in_order = np.stack(tiles)
    shuffled = in_order[perm]
    pad = 0 if not gaps else 3

    def board(ts: np.ndarray) -> np.ndarray:
        step = tile + 2 * pad
        out = np.full((g * step, g * step, 3), 255, np.uint8)
        for i, t in enumerate(ts):
            r, c = divmod(i, g)
            out[r * step + pad:r * step + pad + tile, c * step + pad:c * step + pad + tile] = t
        return _resize(out, SQUARE, SQUARE)

    target = board(in_order)
    step = target.shape[0] / g
    for i, src in enumerate(perm):  # number each slot with the input tile that belongs there
        r, c = divmod(int(src), g)
        cv2.putText(target, str(i), (int(c * step + 6), int(r * step + 20)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (255, 255, 0), 2, cv2.LINE_AA)
    answer = f"permutation #{index} of {len(perms)}"
    target = caption(target, answer)
    return ProxyTask(
        "jigsaw", "Jigsaw puzzle", d, seed, board(shuffled), target,
        given=f"{n} shuffled tiles ({g}x{g})",
        predict=f"which of {len(perms)} fixed permutations shuffled them (its index)",
        why=("Putting tiles back needs to know how parts of objects fit together: a wheel goes below a "
             "car door, an eye beside an eye. This is spatial coherence (Noroozi & Favaro 2016). More "
             "tiles and a larger permutation set make more arrangements possible and the task harder; "
             "the permutations are chosen far apart so each one is distinguishable."),
        shortcut=("Low-level cues solve the puzzle without understanding it: lines and textures that "
                  "continue across tile borders (removed by gaps and random jitter of each tile in its "
                  "cell), and chromatic aberration of the lens, which shifts colour channels more near the "
                  "image border and so tells a tile's absolute position (removed by per-tile colour channel "
                  "jitter or grey tiles). Turn the toggles off to give the shortcuts back."),
        source="coherence (spatial)",
        answer=answer,
        meta={"permutation_index": index, "permutation": perm.tolist(), "grid": g, "set_size": len(perms),
              "gaps": gaps, "colour": colour, "tile_px": tile, "tile_boxes": boxes},
        arrays={"tiles": shuffled, "tiles_in_order": in_order, "square": sq},
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
    coarse = _block_reduce(ab, cfg["factor"])
    # Bins centred on multiples of the step, so neutral grey (a = b = 0) is a bin centre.
    idx = np.rint(coarse / step)
    q = idx * step
    bins = (2 * int(128 // step) + 1) ** 2
    used = len(np.unique(idx.reshape(-1, 2), axis=0))
    h, w = rgb.shape[:2]
    shown = _resize(q, w, h, nearest=True)
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
    rng = _rng("inpainting", seed)
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


# -- relative patch location ---------------------------------------------------

#: (dx, dy) of the 8 neighbours of the centre cell, in label order (reading order).
NEIGHBOURS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))
RELATIVE = {  # patch side (cell is SQUARE / 3 = 80 px), max jitter, drop colour channels
    "easy": dict(patch=72, jitter=0, drop=False),
    "normal": dict(patch=62, jitter=4, drop=False),
    "difficult": dict(patch=52, jitter=7, drop=False),
    "hell": dict(patch=44, jitter=10, drop=True),
}


def relative_patch(image: np.ndarray, difficulty: str = "normal", seed: int = 0) -> ProxyTask:
    """Centre patch + one of its 8 neighbours; predict where the neighbour sits (label 0-7).

    ``meta["positions"]``: top-left (x, y) of the 9 patches, index 0-7 the neighbours in
    :data:`NEIGHBOURS` order, index 8 the centre; ``arrays["patches"]`` the 9 patches.
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    cfg, rng = RELATIVE[d], _rng("relative_patch", seed)
    sq = square_image(image)
    cell, p, j = SQUARE // 3, cfg["patch"], cfg["jitter"]
    base = (cell - p) // 2
    lim = min(j, base)

    def place(cx: int, cy: int) -> tuple[int, int]:
        jx, jy = (int(rng.integers(-lim, lim + 1)), int(rng.integers(-lim, lim + 1))) if lim else (0, 0)
        return cx * cell + base + jx, cy * cell + base + jy

    positions = [place(1 + dx, 1 + dy) for dx, dy in NEIGHBOURS] + [place(1, 1)]
    patches = []
    for x, y in positions:
        t = sq[y:y + p, x:x + p].copy()
        if cfg["drop"]:  # Doersch et al.'s "colour dropping": keep one channel, faint noise in the others
            keep = int(rng.integers(3))
            k = t[..., keep].astype(np.float32)
            noise = rng.normal(k.mean(), max(k.std() / 100.0, 0.5), t.shape[:2]).clip(0, 255).astype(np.uint8)
            t = np.stack([t[..., c] if c == keep else noise for c in range(3)], axis=-1)
        patches.append(t)
    label = int(rng.integers(8))
    big = SQUARE // 2 - 6
    given = _hstack([_border(_resize(patches[8], big, big), (40, 40, 40)),
                     _border(_resize(patches[label], big, big), (220, 40, 40))])
    given = caption(given, "left: centre patch   right: where does it go?")
    board = np.full((SQUARE, SQUARE, 3), 255, np.uint8)
    for k, (x, y) in enumerate(positions):
        board[y:y + p, x:x + p] = patches[k]
    lx, ly = positions[label]
    cv2.rectangle(board, (lx - 2, ly - 2), (lx + p + 1, ly + p + 1), (220, 40, 40), 2)
    dx, dy = NEIGHBOURS[label]
    where = {-1: "left", 0: "", 1: "right"}[dx]
    where = ({-1: "top", 0: "", 1: "bottom"}[dy] + ("-" if dx and dy else "") + where) or "centre"
    answer = f"label {label}: {where}"
    target = caption(board, answer)
    return ProxyTask(
        "relative_patch", "Relative patch location", d, seed, given, target,
        given="a centre patch and one of its 8 neighbours",
        predict="which of the 8 neighbour positions the second patch came from (label 0-7)",
        why=("Knowing that an ear sits above-left of a nose, or a tyre below a door, requires "
             "recognising the parts: spatial coherence within objects is the label (Doersch et al. "
             "2015). Harder settings use smaller patches, wider gaps, more jitter and colour dropping."),
        shortcut=("Patches that touch let the network match lines across the border; a gap and random "
                  "jitter remove that. Chromatic aberration (one colour channel shifted towards the lens "
                  "centre) reveals where a patch sits in the frame; dropping colour channels removes it."),
        source="coherence (spatial)",
        answer=answer,
        meta={"label": label, "direction": list(NEIGHBOURS[label]), "positions": [list(p_) for p_ in positions],
              "patch_px": p, "jitter_px": lim, "colour_dropping": cfg["drop"]},
        arrays={"patches": np.stack(patches), "square": sq},
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
    crop = _resize(img[y0:y0 + ch, x0:x0 + cw], VIEW_SIDE, VIEW_SIDE)
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
        view = _grey3(view)
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
    cfg, rng = INSTANCE[d], _rng("instance_discrimination", seed)
    a, b = fit_image(image), fit_image(other)
    views, params = [], []
    for src in (a, a, b):
        v, p = _augment(src, rng, cfg)
        views.append(v)
        params.append(p)
    given = caption(_hstack([_border(v, col) for v, col in zip(views, VIEW_COLOURS)]),
                    "three views: which two come from the same image?")
    thumbs = []
    for src, ks in ((a, (0, 1)), (b, (2,))):
        t = src.copy()
        for k in ks:
            x, y, w_, h_ = params[k]["crop_box"]
            cv2.rectangle(t, (x, y), (x + w_ - 1, y + h_ - 1), VIEW_COLOURS[k], 3)
        thumbs.append(_resize(t, round(t.shape[1] * 150 / t.shape[0]), 150))
    answer = "views 1+2: same image (pull together); 3: another (push apart)"
    target = caption(_hstack(thumbs), answer)
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


# -- motion tasks on a real frame pair -----------------------------------------

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


def _read_png(name: str) -> np.ndarray:
    bgr = cv2.imread(str(FRAMES_DIR / name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"missing shipped frame {FRAMES_DIR / name}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=1)
def _shipped_pair() -> tuple[np.ndarray, np.ndarray]:
    return _read_png(FRAME_PAIR[0]), _read_png(FRAME_PAIR[1])


def load_frame_pair() -> tuple[np.ndarray, np.ndarray]:
    """The shipped frame pair (frame 328 and 334 of OpenCV's box.mp4), two (240, 320, 3) uint8 RGB."""
    f0, f1 = _shipped_pair()
    return f0.copy(), f1.copy()


def load_other_image() -> np.ndarray:
    """The shipped 'other image' (a cup, from OpenCV's cup.mp4), (240, 320, 3) uint8 RGB."""
    return _read_png(OTHER_IMAGE)


def example_paths() -> list[str]:
    """Files usable as Gallery examples (first frame of the pair, the cup)."""
    return [str(FRAMES_DIR / FRAME_PAIR[0]), str(FRAMES_DIR / OTHER_IMAGE)]


_flow_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_flow_lock = threading.Lock()


def dense_flow(frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    """Optical flow frame0 -> frame1 by OpenCV DIS (medium preset): (H, W, 2) float32 px, (dx, dy).

    The role of the "off-the-shelf flow method" that makes CMP's training targets.
    Results for the last few pairs are kept (flow is deterministic, the pair rarely changes).
    """
    frame0, frame1 = check_image(frame0), check_image(frame1)
    if frame0.shape != frame1.shape:
        raise ValueError(f"frames differ in size: {frame0.shape[:2]} vs {frame1.shape[:2]}")
    key = hashlib.blake2b(frame0.tobytes() + frame1.tobytes() + repr(frame0.shape).encode(), digest_size=16).hexdigest()
    with _flow_lock:
        if key in _flow_cache:
            _flow_cache.move_to_end(key)
            return _flow_cache[key].copy()
    g0, g1 = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (frame0, frame1))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(g0, g1, None).astype(np.float32)
    with _flow_lock:
        _flow_cache[key] = flow
        while len(_flow_cache) > 4:
            _flow_cache.popitem(last=False)
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
    coarse = _block_reduce(flow, k)
    h, w = f0.shape[:2]
    answer = f"flow at 1/{k} res, max {float(np.hypot(flow[..., 0], flow[..., 1]).max()):.1f} px"
    target = caption(flow_image(_resize(coarse, w, h, nearest=True), _display_max(flow)), answer)
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
    coarse = _block_reduce(mask.astype(np.float32), k) > 0.5
    h, w = f0.shape[:2]
    shown = _resize(coarse.astype(np.uint8), w, h, nearest=True).astype(bool)
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


def endpoint_error(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean end-point error: mean over pixels of |pred - target| (px)."""
    return float(np.mean(np.hypot(pred[..., 0] - target[..., 0], pred[..., 1] - target[..., 1])))


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
    rng = _rng("motion_propagation", seed)
    cfg = GUIDANCE[d]
    pts = sample_guidance(flow, rng, max_points=cfg["max_points"], n_random=cfg["n_random"])
    given, scale = _draw_guidance(f0, pts)
    given = caption(given, f"{len(pts)} guidance points (arrows drawn x{scale:.1f})")
    m = _display_max(flow)
    panels = [caption(flow_image(flow, m), "target flow (DIS)")]
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
        panels.append(caption(flow_image(pred, m), f"model: EPE {epe:.2f} px (zero: {zero:.2f})"))
    answer = f"dense flow from {len(pts)} points" + (f"; model EPE {meta['epe']:.2f} px" if engine is not None else "")
    return ProxyTask(
        "motion_propagation", "Conditional motion propagation", d, seed, given, _hstack(panels),
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


# -- registry --------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    motion: bool  # runs on the shipped frame pair instead of the user's image
    needs_engine: bool
    fn: Callable[..., ProxyTask]


TASKS: dict[str, TaskSpec] = {s.name: s for s in (
    TaskSpec("rotation", "Rotation prediction", False, False, rotation),
    TaskSpec("jigsaw", "Jigsaw puzzle", False, False, jigsaw),
    TaskSpec("colorization", "Colorization", False, False, colorization),
    TaskSpec("inpainting", "Inpainting", False, False, inpainting),
    TaskSpec("relative_patch", "Relative patch location", False, False, relative_patch),
    TaskSpec("instance_discrimination", "Instance discrimination", False, False, instance_discrimination),
    TaskSpec("motion_prediction", "Motion prediction", True, False, motion_prediction),
    TaskSpec("moving_segmentation", "Moving-foreground segmentation", True, False, moving_segmentation),
    TaskSpec("motion_propagation", "Conditional motion propagation", True, True, motion_propagation),
)}


def generate(name: str, image: np.ndarray | None, difficulty: str = "normal", seed: int = 0, *,
             engine=None, **options) -> ProxyTask:
    """Run task ``name``. Image tasks need ``image``; motion tasks ignore it and use the frame pair.

    ``options`` go to the task (e.g. ``gaps``/``colour`` for the jigsaw, ``other`` for
    instance discrimination); ``engine`` is used by motion propagation only.
    """
    spec = TASKS.get(str(name))
    if spec is None:
        raise ValueError(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
    if spec.motion:
        if spec.needs_engine:
            return spec.fn(options.get("frames"), difficulty, seed, engine=engine)
        return spec.fn(options.get("frames"), difficulty, seed)
    if image is None:
        raise ValueError("this task needs an image: upload one or pick an example")
    return spec.fn(image, difficulty, seed, **options)
