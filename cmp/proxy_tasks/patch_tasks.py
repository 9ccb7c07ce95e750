"""Pretext tasks on tiles and patches of a square view: jigsaw puzzle, relative patch location, counting."""
from __future__ import annotations

import functools
import itertools
import math

import cv2
import numpy as np

from .base import (SQUARE, ProxyTask, border, caption, check_difficulty, check_image, check_seed, grey3, hstack,
                   resize, square_image, task_rng)
from .frames import load_other_image


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
    cfg, rng = JIGSAW[d], task_rng("jigsaw", seed)
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
            t = grey3(t)
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
        return resize(out, SQUARE, SQUARE)

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
    cfg, rng = RELATIVE[d], task_rng("relative_patch", seed)
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
    given = hstack([border(resize(patches[8], big, big), (40, 40, 40)),
                     border(resize(patches[label], big, big), (220, 40, 40))])
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


# -- counting --------------------------------------------------------------------

COUNTING = {  # tiles per side, strength of the per-tile colour jitter
    "easy": dict(grid=2, jitter=0.0),
    "normal": dict(grid=2, jitter=0.15),
    "difficult": dict(grid=3, jitter=0.3),
    "hell": dict(grid=4, jitter=0.45),
}
#: How the whole view is shrunk to tile size; one is drawn per instance (Noroozi et al. 2017
#: pick the method at random so the network cannot tell the whole from a tile by its blur).
DOWNSAMPLING = {"area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
                "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
#: The card's stand-in for learned features: pixels per colour octant (R, G, B each above or
#: below mid-grey), a count that adds up over tiles as the task demands of real features.
COUNT_BINS = 8


def colour_counts(img: np.ndarray) -> np.ndarray:
    """(8,) float64: how many pixels of ``img`` fall in each RGB octant (bin = 4r + 2g + b)."""
    hi = (np.asarray(img).reshape(-1, 3) >= 128).astype(np.int64)
    return np.bincount(hi @ np.array([4, 2, 1]), minlength=COUNT_BINS).astype(np.float64)


def _jitter_colour(tile: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    if strength <= 0:
        return tile.copy()
    gain = rng.uniform(1 - strength, 1 + strength, 3)
    offset = rng.uniform(-strength, strength, 3) * 96
    return np.clip(tile.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def _count_chart(series: list[tuple[str, np.ndarray, tuple[int, int, int]]], side: int = SQUARE) -> np.ndarray:
    """Grouped bars, one group per colour octant (its colour drawn under it), one bar per series."""
    h, pad, key = side, 6, 16
    chart = np.full((h, side, 3), 255, np.uint8)
    top = max(float(max(s.max() for _, s, _ in series)), 1.0)
    group = (side - 2 * pad) / COUNT_BINS
    bar = group * 0.8 / len(series)
    base = h - key - 4
    for b in range(COUNT_BINS):
        x0 = pad + b * group
        octant = tuple(int(255 * ((b >> k) & 1)) for k in (2, 1, 0))
        cv2.rectangle(chart, (round(x0 + 2), h - key), (round(x0 + group - 3), h - 3), octant, -1)
        cv2.rectangle(chart, (round(x0 + 2), h - key), (round(x0 + group - 3), h - 3), (120, 120, 120), 1)
        for k, (_label, values, colour) in enumerate(series):
            x = x0 + group * 0.1 + k * bar
            y = base - (base - 30) * values[b] / top
            cv2.rectangle(chart, (round(x), round(y)), (round(x + bar - 1), base), colour, -1)
    x = pad
    for label, _values, colour in series:  # legend
        cv2.rectangle(chart, (x, 8), (x + 10, 18), colour, -1)
        cv2.putText(chart, label, (x + 13, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (30, 30, 30), 1, cv2.LINE_AA)
        x += 14 + cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.36, 1)[0][0] + 10
    return chart


def counting(image: np.ndarray, difficulty: str = "normal", seed: int = 0, *,
             other: np.ndarray | None = None) -> ProxyTask:
    """The whole view shrunk to tile size, and its grid x grid tiles: the counts must add up.

    A network phi is trained so that phi(whole) = sum_j phi(tile_j), and phi(whole of
    ``other``) differs from that sum (else phi = 0 would do). ``arrays``: ``tiles``
    (n, t, t, 3) in reading order (colour-jittered at harder levels), ``whole`` and
    ``other`` (t, t, 3), ``square``. ``meta`` holds the card's colour-octant counts
    (:func:`colour_counts`, the whole and the other image scaled by grid^2 to tile pixels).
    """
    image, d, seed = check_image(image), check_difficulty(difficulty), check_seed(seed)
    other = check_image(load_other_image() if other is None else other)
    cfg, rng = COUNTING[d], task_rng("counting", seed)
    g = cfg["grid"]
    t = SQUARE // g
    sq = square_image(image)
    method = list(DOWNSAMPLING)[int(rng.integers(len(DOWNSAMPLING)))]
    whole = cv2.resize(sq, (t, t), interpolation=DOWNSAMPLING[method])
    other_whole = cv2.resize(square_image(other), (t, t), interpolation=DOWNSAMPLING[method])
    tiles = np.stack([_jitter_colour(sq[r * t:(r + 1) * t, c * t:(c + 1) * t], cfg["jitter"], rng)
                      for r in range(g) for c in range(g)])
    per_tile = np.stack([colour_counts(tl) for tl in tiles])
    total = per_tile.sum(0)
    scaled = colour_counts(whole) * g * g
    scaled_other = colour_counts(other_whole) * g * g
    residual = float(np.abs(scaled - total).sum() / total.sum())
    residual_other = float(np.abs(scaled_other - total).sum() / total.sum())

    gap = 4
    board = np.full((g * t + (g - 1) * gap, g * t + (g - 1) * gap, 3), 255, np.uint8)
    for j, tl in enumerate(tiles):
        r, c = divmod(j, g)
        board[r * (t + gap):r * (t + gap) + t, c * (t + gap):c * (t + gap) + t] = tl
    small = SQUARE // 2 - 6
    given = hstack([caption(border(resize(whole, small, small, nearest=True), (40, 40, 40)),
                            f"whole, shrunk ({method})"),
                    caption(resize(board, SQUARE, SQUARE), f"{g * g} tiles")])
    chart = _count_chart([("sum of tiles", total, (40, 110, 230)), ("whole", scaled, (40, 170, 60)),
                          ("other image", scaled_other, (170, 170, 170))])
    answer = f"colour counts: whole vs tiles off by {residual:.0%}, other image by {residual_other:.0%}"
    target = caption(chart, answer)
    return ProxyTask(
        "counting", "Counting", d, seed, given, target,
        given=f"the image shrunk to tile size, and its {g * g} tiles ({g}x{g}) at full resolution",
        predict=("a vector of counts of visual primitives for each: the counts of the whole must equal the "
                 "sum over its tiles, and differ from those of another image"),
        why=("Whatever a tile contains, the whole image contains it too: two eyes, four wheels, one nose "
             "per face do not change when the image is cut up or shrunk. Asking features to add up over "
             "tiles (Noroozi, Pirsiavash & Favaro 2017) makes them count parts of objects. The chart "
             "shows a hand-made counter standing in for the network: pixels per colour octant. More "
             "tiles make each tile a smaller, less recognisable part; harder levels also shift the "
             "colours of every tile, so colour alone no longer adds up and the counts must come from "
             "what survives a colour change."),
        shortcut=("Features that are zero for everything add up perfectly; the contrastive term (the "
                  "whole of another image must not match these tiles) rules that out. The shrunk whole "
                  "differs from a tile by its interpolation blur, which lets the network tell them apart "
                  "and count differently; drawing the downsampling method at random (area, nearest, "
                  "bilinear, bicubic, Lanczos) removes that cue. A pure colour count also adds up, which is "
                  "why harder levels jitter each tile's colour."),
        source="structure of data (counts add up)",
        answer=answer,
        meta={"grid": g, "tile_px": t, "downsampling": method, "colour_jitter": cfg["jitter"],
              "counts_tiles": per_tile.tolist(), "counts_sum": total.tolist(), "counts_whole": scaled.tolist(),
              "counts_other": scaled_other.tolist(), "residual": residual, "residual_other": residual_other},
        arrays={"tiles": tiles, "whole": whole, "other": other_whole, "square": sq},
    )
