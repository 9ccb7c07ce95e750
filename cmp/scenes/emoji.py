"""Object silhouettes with parts, holes and thin structures: Noto colour emoji glyphs.

Debian's ``fonts-noto-color-emoji`` (SIL OFL) is rendered at run time, never committed.
Only glyphs of things with parts (plants, animals, tools, vehicles, sports gear) that have
some thin structure are kept. A fixed hash of the code point splits them into a
``train`` half (cut-outs of the training scenes, ``cmp.scenes.synthetic``) and an
``eval`` half (``cmp.eval.real``'s emoji composites); ``tests/test_eval_real.py`` keeps the
halves disjoint and checks that training uses its own half only.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from . import SourceUnavailable


EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
#: Code point ranges of things with parts and thin structures (plants, animals, tools,
#: vehicles, sports gear); faces and flags (round or rectangular) are left out.
EMOJI_RANGES = ((0x1F331, 0x1F344), (0x1F400, 0x1F43C), (0x1F577, 0x1F578), (0x1F527, 0x1F52B),
                (0x1F6B2, 0x1F6B2), (0x1F3F8, 0x1F3F9), (0x1F980, 0x1F9A2), (0x1FAB4, 0x1FAB8),
                (0x2702, 0x2702), (0x1F3A3, 0x1F3A3), (0x1F6F4, 0x1F6F9))
#: Share of a silhouette that an opening with a disk of 1/16 of its size removes: the
#: glyphs kept have at least this much thin structure.
EMOJI_MIN_THIN = 0.03
EMOJI_RENDER = 136  # px, the font's native bitmap size
SPLITS = ("train", "eval")


def emoji_split(codepoint: int) -> str:
    """'train' or 'eval': a fixed hash of the code point (same on every machine)."""
    return "eval" if hashlib.sha256(str(codepoint).encode()).digest()[0] % 2 else "train"


def _render(font, ch: str) -> np.ndarray | None:
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (EMOJI_RENDER + 40, EMOJI_RENDER + 40), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((10, 10), ch, font=font, embedded_color=True)
    alpha = np.asarray(im)[..., 3] > 127
    if alpha.sum() < 200:
        return None
    ys, xs = np.nonzero(alpha)
    return alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def thin_share(mask: np.ndarray) -> float:
    """Fraction of the mask removed by an opening with a disk of 1/16 of its long side."""
    r = max(1, max(mask.shape) // 32)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    opened = cv2.morphologyEx(np.pad(mask, r).astype(np.uint8), cv2.MORPH_OPEN, disk)[r:-r, r:-r]
    return float((mask & ~opened.astype(bool)).sum() / max(mask.sum(), 1))


@lru_cache(maxsize=2)
def emoji_silhouettes(split: str = "eval") -> tuple[tuple[int, np.ndarray], ...]:
    """(code point, bool mask cropped to the glyph) of every kept glyph of one split."""
    if split not in SPLITS:
        raise ValueError("split is 'train' or 'eval'")
    if not EMOJI_FONT.is_file():
        raise SourceUnavailable(f"no {EMOJI_FONT} (apt-get install fonts-noto-color-emoji)")
    from PIL import ImageFont

    font = ImageFont.truetype(str(EMOJI_FONT), 109)
    out = []
    for cp in sorted({cp for lo, hi in EMOJI_RANGES for cp in range(lo, hi + 1)}):
        if emoji_split(cp) != split:
            continue
        m = _render(font, chr(cp))
        if m is not None and thin_share(m) >= EMOJI_MIN_THIN:
            m.setflags(write=False)
            out.append((cp, m))
    return tuple(out)


def place_silhouette(sil: np.ndarray, size: tuple[int, int], rng: np.random.Generator, *,
                     extent: float) -> np.ndarray:
    """Silhouette ``sil`` scaled to a long side of ``extent`` px (linear, thin parts kept
    at least 1 px where the scaled glyph covers half a pixel), flipped half the time,
    its centre anywhere in the (H, W) frame (it may be cut by the border). Bool (H, W).
    Draws from ``rng``: the flip, then the centre's row and column."""
    H, W = size
    k = extent / max(sil.shape)
    sh, sw = max(4, round(sil.shape[0] * k)), max(4, round(sil.shape[1] * k))
    m = cv2.resize(sil.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR) > 0.5
    if rng.random() < 0.5:
        m = m[:, ::-1]
    cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))
    y0, x0 = cy - sh // 2, cx - sw // 2
    out = np.zeros((H, W), bool)
    ys, xs = slice(max(0, y0), min(H, y0 + sh)), slice(max(0, x0), min(W, x0 + sw))
    out[ys, xs] = m[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return out
