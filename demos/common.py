"""What every page shares: the app context, user-error handling, image intake, temp files.

Pages stay thin: algorithms live in ``cmp/``. Handlers never load models;
they use ``ctx.engine_for(model)``, the engine of the model the session chose in the
header (``ctx.model``, a ``gr.State`` holding a checkpoint reference; "" = the app's
default), taken from the engine pool. Per-user state stays in ``gr.State`` as small
plain values.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import gradio as gr
import numpy as np
from PIL import Image

from cmp.checkpoints import CheckpointError
from cmp.engine import Engine, ImageNotCached
from cmp.geometry import ImageSizeError
from cmp.guidance import GuidanceError
from cmp.images import MAX_PIXELS, MAX_SIDE, ImageError, load_image
from cmp.pool import EnginePool

#: All model work shares this concurrency group (one device, one queue).
MODEL_GROUP = "model"

try:  # ZeroGPU on Hugging Face Spaces; a no-op decorator everywhere else
    import spaces  # type: ignore

    gpu = spaces.GPU
except Exception:  # noqa: BLE001 - absent package or unsupported platform
    def gpu(fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)


@dataclass
class Context:
    """Handed to every page's ``build(ctx)``."""

    engine: Engine
    max_side: int = MAX_SIDE
    notice: str | None = None  # e.g. "Hub unreachable, using the embedded model"
    examples: list[str] = field(default_factory=list)
    video_side: int = 768  # long side of rendered videos, in pixels
    pool: EnginePool | None = None  # models sessions chose; default: a pool around ``engine`` alone
    #: Set by the header (demos/header.py): the session's model (gr.State) and the API's
    #: optional ``checkpoint`` input (a hidden textbox, empty in the browser).
    model: Any = None
    checkpoint: Any = None

    def __post_init__(self):
        if self.pool is None:
            self.pool = EnginePool(self.engine)

    def engine_for(self, *refs: str | None) -> Engine:
        """The engine of the first non-empty reference (the API's ``checkpoint``, then the
        session's choice), else the app's default; loads it into the pool if needed."""
        return self.pool.get(next((r for r in refs if r), None))


#: Exceptions whose message is meant for the user (one line, no traceback).
USER_ERRORS = (ImageError, ImageSizeError, GuidanceError, CheckpointError, ValueError, json.JSONDecodeError)


def user_errors(fn):
    """Turn expected errors into a one-line ``gr.Error`` (the browser shows a toast)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            raise gr.Error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    return wrapper


def image_input(**kwargs) -> gr.Image:
    """A ``gr.Image(**kwargs)`` whose uploads reach :func:`cmp.images.load_image` untouched.

    Plain ``gr.Image`` opens every upload with Pillow before the handler runs:
    it converts non-RGB files itself (a 16-bit PNG comes out white, alpha is
    dropped instead of composited), decodes images past our pixel limit that
    Pillow only warns about, and reports a broken file as a bare "Error". With
    ``type="filepath"`` the uploaded file's path is passed on as is, so the
    handler's ``read_image`` does all decoding with one set of limits and
    messages. The method is wrapped on the instance rather than in a subclass
    because Gradio writes a ``.pyi`` stub next to any module that defines a
    component class.
    """
    comp = gr.Image(**kwargs)
    decode = comp.preprocess

    def preprocess(payload):
        path = getattr(payload, "path", None)
        if comp.type == "filepath" and path and not str(getattr(payload, "url", "") or "").startswith("data:"):
            return str(path)  # an upload Gradio already checked into its cache
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            limit = MAX_PIXELS // 1_000_000
            raise gr.Error(f"image is too large to decode safely (limit {limit} megapixels)") from None
        except Exception:  # noqa: BLE001 - Pillow raises several types for bad files
            raise gr.Error("not an image file (PNG, JPEG, WebP, BMP, GIF or TIFF expected)") from None

    comp.preprocess = preprocess
    return comp


#: Longest JSON text the endpoints parse (guidance, points); MAX_POINTS entries need a few kB.
MAX_JSON_CHARS = 100_000


def parse_json(text: str, what: str):
    """``json.loads`` with one-line :class:`GuidanceError` messages for ``what`` (e.g. "guidance")."""
    if len(text) > MAX_JSON_CHARS:
        raise GuidanceError(f"{what} JSON is too long ({len(text):,} characters; the limit is {MAX_JSON_CHARS:,})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuidanceError(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise GuidanceError(f"{what} JSON is nested too deeply") from None


#: Seconds a tab's gr.State (arrows, clicks, masks) lives after its last change.
#: Gradio also drops a closed tab's state after an hour; this bounds tabs left open.
STATE_TTL_S = 6 * 3600


def image_intake(ctx: "Context", prefix: str):
    """The upload box, its examples and the note under it, as every page starts.

    Returns (image input, note Markdown); elem_ids are ``{prefix}-input`` and ``{prefix}-note``.
    """
    src = image_input(type="filepath", label="Image", sources=["upload", "clipboard"], height=220,
                      elem_id=f"{prefix}-input")
    if ctx.examples:
        gr.Examples(examples=[[p] for p in ctx.examples], inputs=[src], label="Examples")
    note = gr.Markdown("", elem_id=f"{prefix}-note")
    return src, note


def read_image(value, max_side: int = MAX_SIDE) -> tuple[np.ndarray, str | None]:
    """Gradio image value (filepath, numpy or None) -> (RGB uint8, note)."""
    if value is None or (isinstance(value, str) and not value):
        raise ImageError("upload an image first (or pick an example)")
    if isinstance(value, dict) and "path" in value:
        value = value["path"]
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        st = os.stat(value)
        return _read_file_cached(os.fspath(value), st.st_mtime_ns, st.st_size, max_side)
    return load_image(value, max_side=max_side)


@functools.lru_cache(maxsize=4)
def _read_file_cached(path: str, _mtime_ns: int, _size: int, max_side: int) -> tuple[np.ndarray, str | None]:
    """Every click re-sends the upload's path: decode (and downscale) it once, not per click.

    Keyed by path, mtime and size, so a changed file is read again; 4 working images at
    most (<= ~50 MB). The array is read-only because callers share it.
    """
    rgb, note = load_image(path, max_side=max_side)
    rgb.setflags(write=False)
    return rgb, note


def is_numbers(item, n: int) -> bool:
    """True for a JSON list of exactly ``n`` numbers (booleans are not numbers here)."""
    return (isinstance(item, list) and len(item) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item))


def click_xy(evt: gr.SelectData, shape) -> tuple[float, float]:
    """(x, y) pixel of a click on an image of ``shape`` (H, W, ...), clamped inside it."""
    h, w = shape[:2]
    return float(min(max(evt.index[0], 0), w - 1)), float(min(max(evt.index[1], 0), h - 1))


T = TypeVar("T")


def retry_if_evicted(fn: Callable[[], T]) -> T:
    """``fn()``, run once more if another tab's image pushed ours out of the engine cache
    between ``set_image`` and ``propagate`` (``fn`` must call ``set_image`` itself)."""
    try:
        return fn()
    except ImageNotCached:
        return fn()


#: Per-request output files live here. Gradio copies returned files into its
#: own cache (cleaned by ``Blocks(delete_cache=...)``), so ours only need to
#: outlive the request; older ones are pruned.
TEMP_DIR = os.path.join(tempfile.gettempdir(), "cmp-studio")
TEMP_MAX_AGE_S = 3600
_prune_lock = threading.Lock()
_last_prune = 0.0


def _prune_temp(now: float) -> None:
    global _last_prune
    with _prune_lock:
        if now - _last_prune < 60:
            return
        _last_prune = now
    try:
        entries = list(os.scandir(TEMP_DIR))
    except OSError:
        return
    for e in entries:
        try:
            if now - e.stat().st_mtime <= TEMP_MAX_AGE_S:
                continue
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
        except OSError:  # another worker got there first
            pass


def temp_path(suffix: str) -> str:
    """A fresh per-request file (random name, never a shared output folder)."""
    os.makedirs(TEMP_DIR, exist_ok=True)
    _prune_temp(time.time())
    fd, path = tempfile.mkstemp(prefix="cmp-", suffix=suffix, dir=TEMP_DIR)
    os.close(fd)
    return path


def temp_dir() -> str:
    """A fresh per-request folder (for several files with fixed names), pruned like :func:`temp_path`."""
    os.makedirs(TEMP_DIR, exist_ok=True)
    _prune_temp(time.time())
    return tempfile.mkdtemp(prefix="cmp-", dir=TEMP_DIR)


#: Example photos bundled with scikit-image (public domain / CC0, see its data README).
EXAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee")


def example_images(names: tuple[str, ...] = EXAMPLE_PHOTOS) -> list[str]:
    """Write scikit-image's bundled photos once as PNGs; returns their paths.

    Missing photos (an old scikit-image without the data files) are skipped.
    """
    from PIL import Image
    from skimage import data

    folder = os.path.join(tempfile.gettempdir(), "cmp-studio-examples")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in names:
        path = os.path.join(folder, f"{name}.png")
        if not os.path.isfile(path):
            try:
                rgb = getattr(data, name)()
            except Exception:  # noqa: BLE001 - data file absent or unreadable
                continue
            tmp = f"{path}.{os.getpid()}.tmp"
            Image.fromarray(np.asarray(rgb)).save(tmp, format="PNG")
            os.replace(tmp, path)  # atomic, so two processes never see half a file
        paths.append(path)
    return paths
