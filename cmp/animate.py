"""Flow -> frames -> MP4/GIF: animate a still image along a dense flow.

Frames come from *forward* warping: every source pixel is splatted to where
the flow carries it (bilinear kernel, ``index_add_`` in torch), so content
moves instead of being stretched as a backward warp would. Where several
pixels land on one target the faster-moving one wins (softmax splatting with
an importance that grows with flow magnitude), which keeps dragged objects in
front of the still background. Pixels nothing lands on (disocclusions) are
filled by a push-pull pyramid that prefers slow, i.e. background, neighbours.

Images are (H, W, 3) uint8 RGB; flows are (H, W, 2) float32 with channel 0 =
dx, 1 = dy in pixels of that image (as :meth:`cmp.engine.Engine.propagate`
returns). Frames are (T, H, W, 3) uint8. This module never imports Gradio.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import params
from .flow import resize_flow
from .images import check_rgb
from .params import ParamError

MIN_FRAMES, MAX_FRAMES = 2, 96
MIN_FPS, MAX_FPS = 1, 60
MAX_STRENGTH = 4.0
TIMINGS = ("linear", "ease")
LOOPS = ("once", "pingpong", "loop", "seamless")
DEFAULT_FRAMES, DEFAULT_FPS = 32, 16

#: Importance range of the softmax splat: a pixel moving at the largest speed
#: outweighs a still one by exp(SPLAT_SHARPNESS).
SPLAT_SHARPNESS = 10.0
#: Frame pixels splatted in one batch: bounds peak memory to a few hundred MB
#: (about 150 bytes per frame pixel) while keeping torch ops large.
CHUNK_PIXELS = 1 << 20

Progress = Callable[[int, int], None]


class AnimationError(ParamError):
    """Animation settings that cannot be used; the message is one line for the user."""


def check_settings(frames: int, fps: float | None = None, strength: float = 1.0,
                   timing: str = "linear", loop: str = "once") -> None:
    """Raise :class:`AnimationError` for settings of the wrong type or out of range
    (the one check of the page, the HTTP API and the CLI)."""
    try:
        params.number(frames, "frames", MIN_FRAMES, MAX_FRAMES, whole=True)
        if fps is not None:
            params.number(fps, "fps", MIN_FPS, MAX_FPS)
        params.number(strength, "strength", 0.0, MAX_STRENGTH)
        params.choice(timing, "timing", TIMINGS)
        params.choice(loop, "loop", LOOPS)
    except AnimationError:
        raise
    except ParamError as exc:
        raise AnimationError(str(exc)) from None


def ease(t: np.ndarray) -> np.ndarray:
    """Cosine ease-in-out on [0, 1]: zero speed at both ends."""
    return 0.5 - 0.5 * np.cos(np.pi * np.asarray(t, dtype=np.float64))


def timeline(frames: int, timing: str = "linear", loop: str = "once") -> np.ndarray:
    """Progress of each frame along the flow, shape (frames,), values in [0, 1].

    - ``once``: 0 -> 1, first and last frame included.
    - ``pingpong``: 0 -> 1 -> 0, the last frame stops one step short of 0 so the
      clip repeats without a stutter.
    - ``loop``: phase 0 -> 1 with the end excluded; :func:`render_frames` cross-fades
      the forward motion into the motion arriving at the start, so the clip cycles
      seamlessly (flowing water, smoke, hair).
    - ``seamless``: the same phase; :func:`render_seamless` moves pixels along the
      flow's streamlines instead (timing does not apply: the field is steady).
    """
    check_settings(frames, None, 1.0, timing, loop)
    frames = int(frames)
    i = np.arange(frames, dtype=np.float64)
    if loop == "once":
        t = i / (frames - 1)
    elif loop == "pingpong":
        u = 2.0 * i / frames
        t = np.where(u <= 1.0, u, 2.0 - u)
    else:
        t = i / frames
    return ease(t) if timing == "ease" and loop != "seamless" else t


def _importance(flow: torch.Tensor) -> torch.Tensor:
    """(H, W, 2) flow -> (H*W,) importance in [0, 1]: relative speed."""
    mag = flow.norm(dim=-1).reshape(-1)
    return mag / mag.max().clamp_min(1e-6)


def splat(image: torch.Tensor, flow: torch.Tensor, scales: Sequence[float] | torch.Tensor,
          importance: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax forward splatting of one image by several multiples of one flow.

    image: (3, H, W) float32 RGB; flow: (H, W, 2) float32 (dx, dy) pixels;
    scales: (T,) multipliers of the flow (progress x strength); importance:
    (H*W,) in [0, 1] or None for relative speed.
    Returns un-normalised accumulators (T, 5, H, W): channels 0-2 = sum(w * rgb),
    3 = sum(w), 4 = sum(b), where b is the bilinear tap weight and
    w = b * exp(SPLAT_SHARPNESS * importance) of each source pixel.
    """
    s = torch.as_tensor(scales, dtype=torch.float32).reshape(-1, 1, 1, 1)
    if importance is None:
        importance = _importance(flow)
    return splat_fields(image, s * flow, importance)


def splat_fields(image: torch.Tensor, disp: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Softmax forward splatting of one image by T displacement fields.

    image: (3, H, W) float32 RGB; disp: (T, H, W, 2) float32, where each source pixel
    lands in frame t (dx, dy from its own position); importance: (H*W,) or (T, H*W)
    in [0, 1]. Returns accumulators (T, 5, H, W) as :func:`splat` describes.
    """
    _, H, W = image.shape
    HW = H * W
    T = disp.shape[0]
    imp = importance.reshape(-1, HW)
    # Integer part and fraction of each target position; flat base index t*HW + y0*W + x0.
    tx = torch.arange(W, dtype=torch.float32).repeat(H) + disp[..., 0].reshape(T, -1)  # (T, HW)
    ty = torch.arange(H, dtype=torch.float32).repeat_interleave(W) + disp[..., 1].reshape(T, -1)
    x0, y0 = tx.floor(), ty.floor()
    ax, ay = tx.sub_(x0), ty.sub_(y0)
    x0, y0 = x0.to(torch.int32), y0.to(torch.int32)
    base = y0 * W + x0 + (torch.arange(T, dtype=torch.int32) * HW).reshape(-1, 1)
    xin = ((x0 >= 0) & (x0 < W), (x0 >= -1) & (x0 < W - 1))  # tap dx = 0, 1 lands inside
    yin = ((y0 >= 0) & (y0 < H), (y0 >= -1) & (y0 < H - 1))
    ew = torch.exp(SPLAT_SHARPNESS * imp)  # (1 or T, HW)
    src = [image.reshape(3, HW)[c] * ew for c in range(3)] + [ew, torch.ones(1, HW)]  # per source pixel
    # One flat bin per (frame, pixel) plus a last bin that swallows taps outside the frame.
    dump = T * HW
    acc = torch.zeros(5, dump + 1, dtype=torch.float32)
    bx = (1 - ax, ax)
    by = (1 - ay, ay)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        idx = torch.where(xin[dx] & yin[dy], base + (dy * W + dx), dump).reshape(-1)
        bw = bx[dx] * by[dy]  # (T, HW) bilinear tap weight
        for c in range(5):
            acc[c].index_add_(0, idx, (bw * src[c]).reshape(-1))
    return acc[:, :dump].reshape(5, T, H, W).transpose(0, 1)


def _fill_holes(rgb: torch.Tensor, conf: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Push-pull fill of low-confidence pixels.

    rgb: (T, 3, H, W) colours; conf: (T, 1, H, W) in [0, 1], how fully a pixel
    was covered; weight: (T, 1, H, W) how much a pixel may feed the fill.
    Each coarser level is the ``weight``-average of the finer one, and its
    summed weight is its confidence; on the way back a full-size pixel keeps
    ``conf`` of its own colour and takes the rest from the level above.
    """
    levels = [(rgb, conf)]
    c, w = rgb, weight
    while min(c.shape[-2:]) > 1:
        den = F.avg_pool2d(w, 2, ceil_mode=True)
        c = F.avg_pool2d(c * w, 2, ceil_mode=True) / den.clamp_min(1e-12)
        w = den.mul(4).clamp_(max=1)
        levels.append((c, w))
    filled = c
    for c, m in reversed(levels[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.lerp(up, c, m)
    return filled


def _resolve(acc: torch.Tensor) -> torch.Tensor:
    """(T, 5, H, W) splat accumulators -> (T, 3, H, W) float colours, holes filled."""
    wsum, cov = acc[:, 3:4], acc[:, 4:5]
    rgb = acc[:, :3] / wsum.clamp_min(1e-12)
    conf = cov.clamp(0, 1)
    if bool((conf > 0.999).all()):
        return rgb
    # wsum / cov is the mean exp(k * speed) of what landed on a pixel: holes are
    # uncovered background, so slow pixels feed the fill more than fast ones.
    weight = conf * (wsum / cov.clamp_min(1e-12)).clamp_min(1.0).rsqrt()
    return _fill_holes(rgb, conf, weight)


def fit_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(h, w) of a render whose long side is at most ``max_side`` (None: unchanged)."""
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        return max(2, round(h * s)), max(2, round(w * s))
    return h, w


def fit_image(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` downscaled (area filter) so its long side is at most ``max_side``."""
    h, w = image.shape[:2]
    nh, nw = fit_size(h, w, max_side)
    return image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)


def fit_region(region: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """(H, W) bool region (True = may move) resized (nearest) to ``size`` = (h, w), or None."""
    if region is None:
        return None
    region = np.asarray(region)
    if region.ndim != 2:
        raise AnimationError(f"expected a 2-D region mask, got shape {region.shape}")
    if region.shape != tuple(size):
        region = cv2.resize(region.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return region.astype(bool)


def apply_region(frames: np.ndarray, image: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """In place: every frame equals ``image`` outside ``region`` (frames (T, h, w, 3), region (h, w) bool)."""
    if region is not None:
        frames[:, ~region] = image[~region]
    return frames


def _fit(image: np.ndarray, flow: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    image = check_rgb(image, AnimationError)
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape != image.shape[:2] + (2,):
        raise AnimationError(f"flow shape {flow.shape} does not match image {image.shape[:2]}")
    if not np.all(np.isfinite(flow)):
        raise AnimationError("flow contains NaN or infinite values")
    small = fit_image(image, max_side)
    if small.shape != image.shape:
        flow = resize_flow(flow, small.shape[:2], "linear")
    return small, flow


def render_frames(image: np.ndarray, flow: np.ndarray, frames: int = DEFAULT_FRAMES, *,
                  strength: float = 1.0, timing: str = "linear", loop: str = "once",
                  max_side: int | None = None, progress: Progress | None = None,
                  region: np.ndarray | None = None) -> np.ndarray:
    """Animate ``image`` along ``flow``.

    image: (H, W, 3) uint8 RGB; flow: (H, W, 2) float32 (dx, dy) in image pixels,
    the full motion reached at progress 1; strength multiplies it. With
    ``max_side`` the image and flow are first downscaled so the long side fits.
    ``progress(done, total)`` is called after each chunk of frames. ``region``: (H, W)
    bool, True where motion is allowed; outside it every frame equals the (resized)
    image exactly. ``loop="seamless"`` hands over to :func:`render_seamless`.
    Returns (frames, h, w, 3) uint8; frame 0 equals the image (up to the
    resampling of sub-pixel splats).
    """
    check_settings(frames, None, strength, timing, loop)
    if loop == "seamless":
        return render_seamless(image, flow, frames, strength=strength, max_side=max_side, progress=progress,
                               region=region)
    frames = int(frames)  # 32.0 from a UI slider is fine
    image, flow = _fit(image, flow, max_side)
    region = fit_region(region, image.shape[:2])
    if region is not None:
        flow = flow * region[..., None]
    t = timeline(frames, timing, loop)
    img = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)  # a copy: callers may pass read-only arrays
    fl = torch.from_numpy(np.ascontiguousarray(flow)) * float(strength)
    imp = _importance(fl)
    out = np.empty((frames,) + image.shape, np.uint8)
    chunk = max(1, CHUNK_PIXELS // (image.shape[0] * image.shape[1]))
    with torch.inference_mode():
        for a in range(0, frames, chunk):
            tc = torch.from_numpy(t[a:a + chunk]).float()
            if loop == "loop":
                # Cross-fade the clip's forward motion with the motion that arrives at
                # the first frame, blending the splats before normalising so each
                # fills the other's holes.
                fwd = splat(img, fl, tc, imp)
                back = splat(img, fl, tc - 1.0, imp)
                k = tc.reshape(-1, 1, 1, 1)
                acc = fwd * (1 - k) + back * k
            else:
                acc = splat(img, fl, tc, imp)
            out[a:a + len(tc)] = _to_uint8(_resolve(acc))
            if progress is not None:
                progress(min(a + len(tc), frames), frames)
    return apply_region(out, image, region)


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return rgb.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def render_flows(image: np.ndarray, flows: np.ndarray, *, max_side: int | None = None,
                 progress: Progress | None = None, region: np.ndarray | None = None) -> np.ndarray:
    """One frame per flow: frame t is ``image`` forward-splatted by ``flows[t]``.

    image: (H, W, 3) uint8 RGB; flows: (T, H, W, 2) float32 (dx, dy) in image pixels,
    e.g. what the engine predicts for each frame's guidance (a track's displacement at
    that frame's time). ``max_side``, ``progress`` and ``region`` as in :func:`render_frames`.
    Returns (T, h, w, 3) uint8.
    """
    flows = np.asarray(flows, dtype=np.float32)
    if flows.ndim != 4 or flows.shape[1:] != image.shape[:2] + (2,):
        raise AnimationError(f"flows shape {flows.shape} does not match image {image.shape[:2]}")
    small, _ = _fit(image, flows[0], max_side)
    h, w = small.shape[:2]
    if (h, w) != image.shape[:2]:
        flows = np.stack([resize_flow(f, (h, w), "linear") for f in flows])
    region = fit_region(region, (h, w))
    if region is not None:
        flows = flows * region[None, ..., None]
    T = len(flows)
    img = torch.from_numpy(small.astype(np.float32)).permute(2, 0, 1)
    fl = torch.from_numpy(np.ascontiguousarray(flows))
    mag = fl.norm(dim=-1).reshape(T, -1)
    imp = mag / mag.max().clamp_min(1e-6)  # one scale for the clip, so speeds compare across frames
    out = np.empty((T, h, w, 3), np.uint8)
    chunk = max(1, CHUNK_PIXELS // (h * w))
    with torch.inference_mode():
        for a in range(0, T, chunk):
            b = min(T, a + chunk)
            out[a:b] = _to_uint8(_resolve(splat_fields(img, fl[a:b], imp[a:b])))
            if progress is not None:
                progress(b, T)
    return apply_region(out, small, region)


def integrate_streamlines(velocity: np.ndarray | torch.Tensor, steps: int, substeps: int = 4) -> torch.Tensor:
    """Euler integration of every pixel along a steady velocity field.

    velocity: (H, W, 2) float32, (dx, dy) pixels per step, sampled bilinearly at the
    moving position (border values outside the image). Each step is split into
    ``substeps`` Euler sub-steps. Returns (steps + 1, H, W, 2) float32 displacements
    from each pixel's start: entry k is where that pixel is after k steps (entry 0 = 0).
    """
    v = torch.as_tensor(np.asarray(velocity, dtype=np.float32))
    H, W = v.shape[:2]
    field_ = v.permute(2, 0, 1)[None]  # (1, 2, H, W)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    pos = torch.stack([xx, yy], dim=-1)  # (H, W, 2) absolute (x, y)
    start = pos.clone()
    scale = torch.tensor([2.0 / max(W - 1, 1), 2.0 / max(H - 1, 1)])
    out = [torch.zeros_like(pos)]
    with torch.inference_mode():
        for _ in range(int(steps)):
            for _ in range(int(substeps)):
                grid = (pos * scale - 1.0)[None]
                vel = F.grid_sample(field_, grid, mode="bilinear", padding_mode="border", align_corners=True)
                pos = pos + vel[0].permute(1, 2, 0) / substeps
            out.append(pos - start)
    return torch.stack(out)


def render_seamless(image: np.ndarray, flow: np.ndarray, frames: int = DEFAULT_FRAMES, *, strength: float = 1.0,
                    max_side: int | None = None, progress: Progress | None = None,
                    region: np.ndarray | None = None) -> np.ndarray:
    """A seamless loop by Eulerian motion (Holynski et al., CVPR 2021).

    ``flow`` x ``strength`` is a steady velocity field: how far a pixel travels in one
    cycle. Every pixel moves along the field's streamlines (Euler integration of
    ``flow * strength / frames`` per frame). Frame t (of N) blends the image splatted to
    the forward-integrated positions after t steps, weight 1 - t/N, with the image
    splatted to the positions integrated *backwards* for N - t steps, weight t/N (the
    splats are summed before normalising, so each fills the other's holes). Frame 0 is
    the image and the frame after the last would be the image again: no seam.
    Returns (frames, h, w, 3) uint8; ``region`` as in :func:`render_frames`.
    """
    check_settings(frames, None, strength, "linear", "seamless")
    N = int(frames)
    image, flow = _fit(image, flow, max_side)
    h, w = image.shape[:2]
    region = fit_region(region, (h, w))
    vel = flow * float(strength) / N
    if region is not None:
        vel = vel * region[..., None]
    fwd = integrate_streamlines(vel, N - 1)  # (N, h, w, 2): after 0 .. N-1 steps
    back = integrate_streamlines(-vel, N)  # after 0 .. N steps backwards
    img = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    imp = _importance(torch.from_numpy(np.ascontiguousarray(vel)))
    out = np.empty((N, h, w, 3), np.uint8)
    chunk = max(1, CHUNK_PIXELS // (2 * h * w))
    with torch.inference_mode():
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            t = torch.arange(a, b, dtype=torch.float32)
            k = (t / N).reshape(-1, 1, 1, 1)
            acc = splat_fields(img, fwd[a:b], imp) * (1 - k) + splat_fields(img, back[N - b + 1:N - a + 1].flip(0), imp) * k
            out[a:b] = _to_uint8(_resolve(acc))
            if progress is not None:
                progress(b, N)
    return apply_region(out, image, region)


# -- writers ---------------------------------------------------------------

def _even(frames: np.ndarray) -> np.ndarray:
    """Pad (edge) to even height and width, as yuv420p requires."""
    _, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return frames


def _check_frames(frames: np.ndarray, fps: float) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise AnimationError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if len(frames) < 1:
        raise AnimationError("no frames to write")
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise AnimationError(f"fps must be from {MIN_FPS} to {MAX_FPS}; got {fps}")
    return frames


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float = DEFAULT_FPS) -> Path:
    """H.264 yuv420p MP4 (plays in every browser), via the pyav wheel's libx264.

    Odd sizes are padded by one edge pixel. Returns the path.
    """
    import imageio.v3 as iio

    frames = _even(_check_frames(frames, fps))
    path = Path(path)
    iio.imwrite(path, frames, plugin="pyav", codec="libx264", fps=fps, out_pixel_format="yuv420p")
    return path


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float = DEFAULT_FPS,
              repeat: bool = True) -> Path:
    """Animated GIF with one shared palette (no colour flicker between frames).

    GIF delays are whole centiseconds, so fps above 50 play slower. ``repeat``
    False plays once. Returns the path.
    """
    from PIL import Image

    frames = _check_frames(frames, fps)
    # One palette for all frames, from a strip of up to 8 sampled frames.
    pick = frames[np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int)]
    strip = Image.fromarray(np.concatenate(list(pick), axis=0))
    pal = strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    ims = [Image.fromarray(f).quantize(palette=pal, dither=Image.Dither.NONE) for f in frames]
    extra = {"loop": 0} if repeat else {}
    duration = max(20, int(round(1000.0 / fps / 10.0)) * 10)
    path = Path(path)
    ims[0].save(path, format="GIF", save_all=True, append_images=ims[1:], duration=duration,
                disposal=1, optimize=False, **extra)
    return path


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = DEFAULT_FPS,
                loop: str = "pingpong") -> Path:
    """Write by extension: ``.mp4`` or ``.gif`` (a ``once`` clip GIF plays once)."""
    ext = Path(path).suffix.lower()
    if ext == ".mp4":
        return write_mp4(path, frames, fps)
    if ext == ".gif":
        return write_gif(path, frames, fps, repeat=loop != "once")
    raise AnimationError(f"output must end in .mp4 or .gif; got {Path(path).name!r}")


# -- benchmark ---------------------------------------------------------------

def benchmark(side: int = 512, frames: int = 32, repeats: int = 3, loop: str = "pingpong", tracks: int = 0,
              checkpoint: str | None = "default") -> dict:
    """Time rendering on a synthetic side x side image.

    ``tracks`` = 0: :func:`render_frames` with a swirl flow (splatting alone). ``tracks`` > 0:
    the whole kinematic path with ``checkpoint``'s model (loaded once, untimed): that many
    three-keyframe tracks, one propagate per frame on the cached encoding, each frame
    splatted by its own flow (:func:`cmp.recipe.render`; the image is encoded in the first,
    untimed warm-up run, as on the page after an upload).
    Returns {"side", "frames", "loop", "tracks", "seconds" (median), "fps" (frames per second)}.
    """
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    if tracks:
        from .engine import Engine
        from .recipe import Recipe
        from .tracks import Guidance

        image = cv2.GaussianBlur(image, (0, 0), 3)
        engine = Engine.from_checkpoint(checkpoint)
        paths = [[[side * (0.2 + 0.2 * k), side * 0.3], [side * (0.3 + 0.2 * k), side * 0.4],
                  [side * (0.25 + 0.2 * k), side * 0.6]] for k in range(tracks)]
        recipe = Recipe((side, side), Guidance([], paths), None,
                        {"frames": frames, "loop": loop, "max_side": side})
        from .recipe import render as run
        run(engine, image, recipe)  # warm-up: encodes the image, as the page does on upload
        call = lambda: run(engine, image, recipe)  # noqa: E731
    else:
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) - side / 2
        flow = np.stack([-yy, xx], axis=-1) * (0.1 * np.exp(-(xx ** 2 + yy ** 2) / (side / 3) ** 2))[..., None]
        call = lambda: render_frames(image, flow.astype(np.float32), frames, loop=loop)  # noqa: E731
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    sec = float(np.median(times))
    return {"side": side, "frames": frames, "loop": loop, "tracks": tracks, "seconds": sec, "fps": frames / sec}
