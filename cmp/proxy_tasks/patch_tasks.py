"""Pretext tasks on tiles and patches of a square view: jigsaw puzzle, relative patch location."""
from __future__ import annotations

import functools
import itertools
import math

import cv2
import numpy as np

from .base import (SQUARE, ProxyTask, border, caption, check_difficulty, check_image, check_seed, grey3, hstack,
                   resize, square_image, task_rng)


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
