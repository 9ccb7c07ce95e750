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

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

#: Longest side kept for a working image; larger photos are downscaled.
MAX_SIDE = 2048
#: Pixels Pillow may decode at all (protects against decompression bombs).
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
#: Bytes one decoded image may take in Pillow's own layout (4 bytes per RGB pixel, 2 per
#: 16-bit grey one), checked on the header after any JPEG draft reduction: a 187 kB PNG
#: can decode to 256 MB, so a pixel limit alone does not bound memory (48 MP RGB fits). Larger images
#: are refused; within it, a request peaks at about this plus a few working copies of
#: the (already reduced) image.
MAX_DECODE_BYTES = 192 * 2**20
#: Longest/shortest side ratio an image may have (the model's 384 px input keeps 8 px).
MAX_ASPECT = 48
#: Shortest side an image may have, in pixels.
MIN_IMAGE_SIDE = 8
#: Pillow's bytes per pixel by mode (multi-band images are stored 4 bytes per pixel).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
#: EXIF orientation -> the transpose that makes the pixels upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


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


def check_shape(height: int, width: int) -> None:
    """Refuse images no page, endpoint or command can use: a side under 8 px or a
    ratio past 48:1 (the same limits everywhere, named in one line)."""
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageError(f"image is {width}x{height} px; each side must be at least {MIN_IMAGE_SIDE} px")
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise ImageError(f"image is {width}x{height} px; its aspect ratio is too extreme (at most {MAX_ASPECT}:1)")


def decoded_bytes(im: Image.Image) -> int:
    """Bytes Pillow needs to hold ``im`` decoded (known from the header alone)."""
    return im.width * im.height * _PIXEL_BYTES.get(im.mode, 4)


def downscale(rgb: np.ndarray, max_side: int = MAX_SIDE,
              original: tuple[int, int] | None = None) -> tuple[np.ndarray, str | None]:
    """Shrink so the long side is at most ``max_side``; returns (image, note or None).

    ``original`` is the (width, height) the note names when ``rgb`` was already reduced while decoding.
    """
    h, w = rgb.shape[:2]
    ow, oh = original or (w, h)
    if max(h, w) <= max_side and (ow, oh) == (w, h):
        return rgb, None
    s = min(1.0, max_side / max(h, w))
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    return resize_rgb(rgb, nw, nh), f"Image downscaled from {ow}x{oh} to {nw}x{nh} px (limit {max_side} px per side)."


def resize_rgb(rgb: np.ndarray, width: int, height: int, *, upscale: int = cv2.INTER_CUBIC) -> np.ndarray:
    """The one resize of photos and video frames: area averaging when the result is smaller
    (no aliasing), ``upscale`` (bicubic unless told) when it is larger; the same array when the
    size is already right. Masks and flows have their own (:func:`cmp.flow.resize_flow`)."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    interp = cv2.INTER_AREA if width * height < w * h else upscale
    return cv2.resize(rgb, (width, height), interpolation=interp)


def _decode_reduced(im: Image.Image, max_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``im`` (upright) with as few bytes as possible for a result of long side ``max_side``.

    JPEGs decode straight at 1/2, 1/4 or 1/8 scale (``draft``); anything else is decoded
    whole, within :data:`MAX_DECODE_BYTES`, and box-reduced by a whole factor at once,
    so only one full-size copy ever exists. Returns (image, upright original (w, h)).
    """
    w, h = im.size
    check_shape(h, w)  # symmetric in w and h, so EXIF orientation does not matter yet
    s = max_side / max(w, h)
    if s < 1 and im.format == "JPEG":
        im.draft(im.mode if im.mode in ("L", "RGB", "CMYK") else "RGB", (max(1, int(w * s) + 1), max(1, int(h * s) + 1)))
    need = decoded_bytes(im)
    if need > MAX_DECODE_BYTES:
        raise ImageError(f"image is too large to decode safely ({w}x{h} {im.mode} needs {need / 2**20:.0f} MB; "
                         f"the limit is {MAX_DECODE_BYTES // 2**20} MB): save it smaller or as JPEG")
    im.load()
    orientation = im.getexif().get(0x0112, 1)  # after load: a PNG's eXIf chunk may follow its pixels
    ow, oh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    k = int(max(im.size) // max_side) if max_side < max(im.size) else 1
    out = im.resize((max(1, im.width // k), max(1, im.height // k)), Image.Resampling.BOX) if k > 1 else im
    if orientation in _UPRIGHT:
        out = out.transpose(_UPRIGHT[orientation])
    return out, (ow, oh)


def encode_png(image: np.ndarray) -> bytes:
    """``image`` ((H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA uint8) as a lossless PNG, made
    for speed: zlib level 1 and the "up" filter on every row (OpenCV). A 512 px colour wheel
    takes 5.6 ms and 146 KB, against 11 ms / 160 KB (PIL, level 1) and 16 ms (level 6)."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 3:
        a = cv2.cvtColor(a, {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[a.shape[2]])
    ok, buf = cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                       cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise ValueError(f"could not encode a {a.shape} image as PNG")
    return buf.tobytes()


def check_rgb(image, error: type[Exception] = ValueError) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 RGB array, else ``error`` with one line saying what it is.

    For arrays from code (the engine, animations, proxy tasks); user files go through
    :func:`load_image`, which converts instead of refusing.
    """
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise error(f"expected an (H, W, 3) uint8 RGB image, got {a.shape} {a.dtype}")
    return a


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
        check_shape(*a.shape[:2])
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
            small, original = _decode_reduced(im, max_side)
            if small is not im and im is not src:
                im.close()  # the full-size pixels go before the RGB copy is made
            rgb = _to_rgb(small)
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
    return downscale(rgb, max_side, original)
