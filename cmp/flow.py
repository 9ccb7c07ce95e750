"""Dense-flow utilities: Middlebury colour wheel, ``.flo`` files, resize, backward warp,
DIS flow between two frames, forward-backward check, end-point error.

A flow is an (H, W, 2) float array; channel 0 = dx (columns, +right),
channel 1 = dy (rows, +down), in pixels of the image it belongs to.
Pure NumPy/OpenCV; no model, no Gradio.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from .images import encode_png

#: First four bytes of every Middlebury ``.flo`` file (float32, little-endian); read as text it is "PIEH".
FLO_MAGIC = 202021.25
#: A .flo side longer than this is treated as a corrupt header, not a real flow.
FLO_MAX_SIDE = 1 << 15

# Middlebury colour wheel: hue segments red->yellow->green->cyan->blue->magenta->red,
# with these many steps each (Baker et al., "A Database and Evaluation Methodology
# for Optical Flow"); 55 colours in all.
_SEGMENTS = (15, 6, 4, 11, 13, 6)


class FlowFileError(ValueError):
    """A flow file that cannot be read or written; the message is one line."""


def _check_flow(flow: np.ndarray, what: str = "flow") -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{what} must have shape (H, W, 2), got {flow.shape}")
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got {flow.dtype}")
    return flow


def _color_wheel() -> np.ndarray:
    """(55, 3) float64 RGB wheel in 0-255, integer steps as in the Middlebury tool."""
    ry, yg, gc, cb, bm, mr = _SEGMENTS
    cols = []

    def ramp(n: int) -> np.ndarray:  # 0 .. 255 * (n-1)/n, floored like the reference tool
        return np.floor(255.0 * np.arange(n) / n)

    full = lambda n: np.full(n, 255.0)  # noqa: E731
    zero = lambda n: np.zeros(n)  # noqa: E731
    cols.append(np.stack([full(ry), ramp(ry), zero(ry)], 1))            # red -> yellow
    cols.append(np.stack([255 - ramp(yg), full(yg), zero(yg)], 1))      # yellow -> green
    cols.append(np.stack([zero(gc), full(gc), ramp(gc)], 1))            # green -> cyan
    cols.append(np.stack([zero(cb), 255 - ramp(cb), full(cb)], 1))      # cyan -> blue
    cols.append(np.stack([ramp(bm), zero(bm), full(bm)], 1))            # blue -> magenta
    cols.append(np.stack([full(mr), zero(mr), 255 - ramp(mr)], 1))      # magenta -> red
    return np.concatenate(cols, 0)


_WHEEL = _color_wheel()


_WHEEL01 = (_WHEEL / 255.0).astype(np.float32)
#: Per hue step k: the colour at k and the step to the next colour (the last step wraps
#: back to colour 0, as the Middlebury tool does), one row per RGB channel.
_WHEEL_BASE = np.ascontiguousarray(_WHEEL01.T)
_WHEEL_STEP = np.ascontiguousarray((np.roll(_WHEEL01, -1, axis=0) - _WHEEL01).T)


def _uv_to_color(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Normalised flow (|(u, v)| = 1 is full saturation) -> (..., 3) uint8 RGB.

    float32, one channel at a time from 1-D tables: the Motion page draws this on every
    arrow (a 512 px flow: 17 ms with (H, W, 3) gathers and ``np.where``, ~3 ms this way;
    within 1 of the reference either way).
    """
    u = np.asarray(u, np.float32)
    v = np.asarray(v, np.float32)
    n = len(_WHEEL01)
    rad = np.sqrt(u * u + v * v)
    # Hue from the direction; the Middlebury tool spreads angles over n-1 steps and
    # wraps the last interval back to colour 0, which we keep so colours match it.
    fk = np.arctan2(-v, -u)
    fk *= np.float32(1.0 / np.pi)
    fk += np.float32(1.0)
    fk *= np.float32((n - 1) / 2.0)
    k0 = fk.astype(np.int32)  # fk >= 0, so truncation is floor
    np.minimum(k0, n - 1, out=k0)
    f = fk - k0
    # Inside the unit disk: fade to white towards zero motion (1 - rad + rad * col);
    # beyond it: darken (0.75 * col). Both are offset + gain * col.
    inside = rad <= 1.0
    gain = np.where(inside, rad, np.float32(0.75)) * np.float32(255.0)
    offset = np.where(inside, np.float32(255.0) - np.float32(255.0) * rad, np.float32(0.0))
    out = np.empty(u.shape + (3,), np.uint8)
    for c in range(3):
        col = _WHEEL_BASE[c].take(k0)
        col += f * _WHEEL_STEP[c].take(k0)
        col *= gain
        col += offset
        out[..., c] = col  # truncation, as the reference's uint8 cast
    return out


def flow_to_color(flow: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """Middlebury colour-wheel picture of a flow.

    flow: (H, W, 2) (dx, dy). Hue = direction, saturation = magnitude / ``max_mag``
    (white = no motion). ``max_mag=None`` normalises by the largest finite magnitude
    in this flow; give a fixed value to compare several flows. Magnitudes beyond
    ``max_mag`` are drawn darker. Non-finite vectors are drawn black.
    Returns (H, W, 3) uint8 RGB.
    """
    flow = _check_flow(flow)
    # Row bands of ~256k pixels: the temporaries of a 2048x2048 flow would take hundreds
    # of MB at once; per band they take a few MB and the picture is the same.
    rows = max(1, (1 << 18) // max(1, flow.shape[1]))
    bands = [slice(r, r + rows) for r in range(0, flow.shape[0], rows)]

    def finite_uv(band):
        f = flow[band].astype(np.float32, copy=False)
        if np.isfinite(f.sum(dtype=np.float64)):  # all finite (a sum is much cheaper than a mask)
            return None, f[..., 0], f[..., 1]
        ok = np.isfinite(f).all(axis=2)
        return ok, np.where(ok, f[..., 0], 0.0), np.where(ok, f[..., 1], 0.0)

    if max_mag is None:
        top = 0.0
        for band in bands:
            _, u, v = finite_uv(band)
            if u.size:
                top = max(top, float(np.sqrt(u * u + v * v).max()))
        # A tiny epsilon avoids 0/0 for a still flow (same convention as flow-vis).
        scale = top + 1e-5
    else:
        scale = float(max_mag)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"max_mag must be a positive number, got {max_mag!r}")
    inv = np.float32(1.0 / scale)
    rgb = np.zeros(flow.shape[:2] + (3,), np.uint8)
    for band in bands:
        finite, u, v = finite_uv(band)
        part = _uv_to_color(u * inv, v * inv)
        if finite is not None:
            part[~finite] = 0
        rgb[band] = part
    return rgb


def color_wheel_legend(size: int = 128, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The key to :func:`flow_to_color`: a (size, size, 3) uint8 RGB disk.

    The pixel at offset (dx, dy) from the centre has the colour of a flow
    (dx, dy) whose magnitude at the rim equals ``max_mag``; outside the disk
    is ``background``.
    """
    if size < 3:
        raise ValueError("legend size must be at least 3 px")
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (x - c) / c, (y - c) / c
    rgb = _uv_to_color(u, v)
    rgb[u * u + v * v > 1.0] = background
    return rgb


# -- .flo files -------------------------------------------------------------

def write_flo(path: str | os.PathLike, flow: np.ndarray) -> Path:
    """Write a Middlebury ``.flo`` file: magic, width, height, then (H, W, 2) float32 row-major."""
    flow = _check_flow(flow)
    h, w = flow.shape[:2]
    if h < 1 or w < 1:
        raise FlowFileError(f"cannot write an empty {w}x{h} flow")
    path = Path(path)
    with open(path, "wb") as f:
        np.array([FLO_MAGIC], "<f4").tofile(f)
        np.array([w, h], "<i4").tofile(f)
        np.ascontiguousarray(flow, dtype="<f4").tofile(f)
    return path


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file -> (H, W, 2) float32 (dx, dy).

    Raises :class:`FlowFileError` for a wrong magic number, a bad header, or a
    size that does not match the header (truncated or trailing data).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlowFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) < 12:
        raise FlowFileError(f"{path.name} is too short to be a .flo file ({len(data)} bytes)")
    magic = float(np.frombuffer(data, "<f4", 1, 0)[0])
    if magic != FLO_MAGIC:
        raise FlowFileError(f"{path.name} is not a .flo file (magic {magic!r}, expected {FLO_MAGIC})")
    w, h = (int(v) for v in np.frombuffer(data, "<i4", 2, 4))
    if not (1 <= w <= FLO_MAX_SIDE and 1 <= h <= FLO_MAX_SIDE):
        raise FlowFileError(f"{path.name} has an invalid size {w}x{h} in its header")
    expected = 12 + 8 * w * h
    if len(data) != expected:
        raise FlowFileError(f"{path.name} holds {len(data)} bytes but its {w}x{h} header needs {expected}")
    return np.frombuffer(data, "<f4", 2 * w * h, 12).reshape(h, w, 2).astype(np.float32)


def save_flow(path: str | os.PathLike, flow: np.ndarray, *, max_mag: float | None = None) -> Path:
    """Save by extension: ``.npy`` (H, W, 2) float32, ``.flo``, or ``.png`` colour wheel."""
    path = Path(path)
    flow = _check_flow(flow)
    ext = path.suffix.lower()
    if ext == ".npy":
        np.save(path, np.ascontiguousarray(flow, dtype=np.float32))
    elif ext == ".flo":
        write_flo(path, flow)
    elif ext == ".png":
        path.write_bytes(encode_png(flow_to_color(flow, max_mag)))  # the API's /motion_flow writes one per request
    else:
        raise FlowFileError(f"unknown flow file type {ext or '(none)'!r}; use .npy, .flo or .png")
    return path


def load_flow(path: str | os.PathLike) -> np.ndarray:
    """Load an (H, W, 2) float32 flow from ``.npy`` or ``.flo``."""
    path = Path(path)
    if path.suffix.lower() == ".flo":
        return read_flo(path)
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FlowFileError(f"cannot read {path.name}: {str(exc).splitlines()[0]}") from None
        try:
            return _check_flow(a, path.name).astype(np.float32)
        except ValueError as exc:
            raise FlowFileError(str(exc)) from None
    raise FlowFileError(f"unknown flow file type {path.suffix or '(none)'!r}; use .npy or .flo")


# -- resampling ---------------------------------------------------------------

_INTERP = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
           "area": cv2.INTER_AREA}


def resize_flow(flow: np.ndarray, size: tuple[int, int], interpolation: str = "linear") -> np.ndarray:
    """Resize an (h, w, 2) flow to ``size`` = (H, W) and rescale its vectors.

    dx is multiplied by W / w and dy by H / h, so the result is in pixels of
    the resized image (a 10 px move in a 100 px wide image is 20 px at 200 px).
    Pixel-centre sampling (OpenCV ``resize``). Returns (H, W, 2) float32.
    """
    flow = _check_flow(flow).astype(np.float32)
    H, W = int(size[0]), int(size[1])
    if H < 1 or W < 1:
        raise ValueError(f"target size must be positive, got {H}x{W} (H x W)")
    if interpolation not in _INTERP:
        raise ValueError(f"interpolation must be one of {', '.join(_INTERP)}")
    h, w = flow.shape[:2]
    out = flow if (h, w) == (H, W) else cv2.resize(flow, (W, H), interpolation=_INTERP[interpolation])
    out = out.reshape(H, W, 2) * np.array([W / w, H / h], np.float32)
    return out.astype(np.float32)


_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "zeros": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT101}


def warp_backward(image: np.ndarray, flow: np.ndarray, *, interpolation: str = "linear",
                  border: str = "replicate") -> np.ndarray:
    """Backward warp: ``out[y, x] = image[y + dy(y, x), x + dx(y, x)]``.

    image: (H, W) or (H, W, C), any numeric dtype; flow: (H, W, 2) (dx, dy) in
    pixels of this image. Samples outside the image follow ``border``
    (``replicate``, ``zeros`` or ``reflect``). Returns an array of the image's shape and dtype.
    A zero flow returns the image unchanged.
    """
    image = np.asarray(image)
    flow = _check_flow(flow)
    if image.ndim not in (2, 3) or image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image {image.shape} and flow {flow.shape} must share height and width")
    if interpolation not in ("nearest", "linear", "cubic"):
        raise ValueError("interpolation must be nearest, linear or cubic")
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {', '.join(_BORDERS)}")
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = gx + flow[..., 0].astype(np.float32)
    map_y = gy + flow[..., 1].astype(np.float32)
    native = image.dtype in (np.uint8, np.uint16, np.int16, np.float32, np.float64)
    src = image if native else image.astype(np.float32)

    def remap(a: np.ndarray) -> np.ndarray:
        return cv2.remap(a, map_x, map_y, _INTERP[interpolation], borderMode=_BORDERS[border], borderValue=0)

    if src.ndim == 3 and src.shape[2] > 4:  # OpenCV remaps at most 4 channels at once
        out = np.stack([remap(np.ascontiguousarray(src[..., c])) for c in range(src.shape[2])], axis=2)
    else:
        out = remap(np.ascontiguousarray(src)).reshape(src.shape)
    if not native:
        out = np.rint(out) if np.issubdtype(image.dtype, np.integer) else out
        out = out.astype(image.dtype)
    return out


# -- flow between two frames ---------------------------------------------------

_dis = threading.local()  # one DIS object per thread: calc() is not safe to share across threads


def dis_flow(frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    """Optical flow frame0 -> frame1 by OpenCV DIS (medium preset): (H, W, 2) float32 px, (dx, dy).

    Frames are (H, W, 3) uint8 RGB of one size. The project's one off-the-shelf flow
    method: CMP's training teacher, the evaluation's pseudo ground truth and the
    Gallery's motion targets. Deterministic; no state is kept between calls.
    """
    dis = getattr(_dis, "obj", None)
    if dis is None:
        dis = _dis.obj = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    g0, g1 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY), cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
    return dis.calc(g0, g1, None).astype(np.float32)


def fb_consistency(fw: np.ndarray, bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """(H, W) bool, True where following ``fw`` then ``bw`` returns near the start (occlusion test).

    fw, bw: (H, W, 2) forward and backward flow in px. True where the forward vector
    lands inside the image and |f + b|^2 < alpha (|f|^2 + |b|^2) + beta.
    """
    h, w = fw.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    bw_at = cv2.remap(bw, gx + fw[..., 0], gy + fw[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=np.nan)
    diff = np.sum((fw + bw_at) ** 2, axis=2)
    mag = np.sum(fw ** 2, axis=2) + np.sum(np.nan_to_num(bw_at) ** 2, axis=2)
    inside = np.isfinite(bw_at).all(axis=2)
    return inside & (diff < alpha * mag + beta)


def endpoint_error(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean end-point error |pred - target| in px over the pixels where ``valid`` (default all).

    pred, target: (H, W, 2) flows; valid: (H, W) bool. Computed in float64.
    """
    if valid is not None:
        pred, target = pred[valid], target[valid]
    d = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    return float(np.sqrt((d * d).sum(-1)).mean())
