"""Reading user images safely: any common format -> (H, W, 3) uint8 RGB, bounded size.

Handles EXIF orientation, grayscale, RGBA/LA (composited on white), 16-bit,
palette and CMYK; refuses non-images, truncated files and decompression
bombs with a one-line :class:`ImageError`. Very large images are downscaled
to ``max_side`` and a note says so.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Longest side kept for a working image; larger photos are downscaled.
MAX_SIDE = 2048
#: Pixels Pillow may decode at all (protects against decompression bombs).
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """The input is not a usable image; the message is one line for the user."""


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = np.nan_to_num((a - lo) / max(hi - lo, 1e-12)) * 255.0
        return np.repeat(np.clip(a + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im.convert("RGBA"))
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def downscale(rgb: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, str | None]:
    """Shrink so the long side is at most ``max_side``; returns (image, note or None)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, None
    s = max_side / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.LANCZOS))
    return small, f"Image downscaled from {w}x{h} to {nw}x{nh} px (limit {max_side} px per side)."


def load_image(src: str | os.PathLike | bytes | np.ndarray | Image.Image, *,
               max_side: int = MAX_SIDE) -> tuple[np.ndarray, str | None]:
    """Decode ``src`` to (H, W, 3) uint8 RGB, EXIF-upright, long side <= max_side.

    Returns (rgb, note) where note explains a downscale, else None.
    """
    if isinstance(src, np.ndarray):
        a = src
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
            raise ImageError(f"unsupported image array shape {a.shape}")
        if a.dtype != np.uint8:
            a = np.clip(a.astype(np.float64) / (257.0 if a.max() > 255 else 1.0), 0, 255).astype(np.uint8)
        if a.shape[2] == 1:
            a = np.repeat(a, 3, axis=2)
        if a.shape[2] == 4:
            al = a[..., 3:4].astype(np.float32) / 255.0
            a = (a[..., :3] * al + 255.0 * (1 - al) + 0.5).astype(np.uint8)
        return downscale(np.ascontiguousarray(a), max_side)
    try:
        if isinstance(src, Image.Image):
            im = src
        elif isinstance(src, (bytes, bytearray)):
            im = Image.open(io.BytesIO(src))
        else:
            p = Path(src)
            if not p.is_file():
                raise ImageError(f"no image file at {p}")
            if p.stat().st_size == 0:
                raise ImageError(f"{p.name} is empty")
            im = Image.open(p)  # closed below: Pillow owns the file it opened
        try:
            # Checked here, before decoding: Pillow itself refuses only above twice
            # its limit and merely warns below that (warning filters are per process,
            # not per request, so they cannot be relied on in a threaded server).
            if im.width * im.height > MAX_PIXELS:
                raise Image.DecompressionBombError(f"{im.width}x{im.height} px")
            im.load()
            rgb = _to_rgb(ImageOps.exif_transpose(im))
        finally:
            if im is not src:
                im.close()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image is too large to decode safely (limit {MAX_PIXELS // 1_000_000} megapixels)") from None
    except UnidentifiedImageError:
        raise ImageError("not an image file (PNG, JPEG, WebP, BMP, GIF or TIFF expected)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"the image file is damaged or truncated ({str(exc).splitlines()[0][:80]})") from None
    return downscale(rgb, max_side)
