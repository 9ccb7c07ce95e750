"""Image intake for every page: the upload box, which files it may name, and decoding.

An image input is only ever a file this server received as an upload (its real path,
symlinks resolved, lies inside Gradio's upload/cache folder) or one of the app's own
example files. A raw REST call may name any path, with or without Gradio's ``meta``
marker (Gradio checks only payloads that carry it), so the check runs here, before
any file is opened, and its message never says whether the named path exists.
Decoding goes through :func:`cmp.images.load_image` only, one at a time.
"""
from __future__ import annotations

import functools
import os
import tempfile
import threading

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image

from cmp.images import MAX_PIXELS, MAX_SIDE, ImageError, load_image

from .outputs import touch

#: The one message for an image path this server did not receive as an upload.
NOT_AN_UPLOAD = "the image must be uploaded to this server first (or be one of its examples)"
#: Decodes running at once, across all pages and handlers (each may take up to
#: cmp.images.MAX_DECODE_BYTES plus working copies, so this bounds decode memory).
DECODE_SLOTS = 1

_examples: set[str] = set()
_examples_lock = threading.Lock()
_decode = threading.BoundedSemaphore(DECODE_SLOTS)


def _trim() -> None:
    """Hand the decoder's freed pages back to the system (glibc keeps them otherwise)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc():
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


def allow_examples(paths) -> None:
    """Let these files (the app's own examples) be named as image inputs."""
    with _examples_lock:
        _examples.update(os.path.realpath(p) for p in paths)


def is_upload(path) -> bool:
    """True when ``path`` is a file this server received (inside Gradio's upload folder
    after resolving symlinks) or one of the allowed example files."""
    try:
        real = os.path.realpath(os.fspath(path))
    except (TypeError, ValueError, OSError):
        return False
    root = os.path.realpath(get_upload_folder())
    return real.startswith(root + os.sep) or real in _examples


def _payload_path(payload):
    if isinstance(payload, dict):
        return payload.get("path")
    if isinstance(payload, (str, os.PathLike)):
        return payload
    return getattr(payload, "path", None)


def only_uploads(comp: gr.components.Component) -> gr.components.Component:
    """Wrap ``comp.preprocess`` so a payload naming a server file that is not an upload is refused."""
    inner = comp.preprocess

    def preprocess(payload):
        path = _payload_path(payload)
        if path is not None and not is_upload(path):
            raise gr.Error(NOT_AN_UPLOAD)
        return inner(payload)

    comp.preprocess = preprocess
    return comp


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
            return str(path)  # an upload: only_uploads below has checked where it lies
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
    return only_uploads(comp)


def image_intake(ctx, prefix: str):
    """The upload box, its examples and the note under it, as every page starts.

    Returns (image input, note Markdown); elem_ids are ``{prefix}-input`` and ``{prefix}-note``.
    """
    src = image_input(type="filepath", label="Image", sources=["upload", "clipboard"], height=220,
                      elem_id=f"{prefix}-input")
    if ctx.examples:
        allow_examples(ctx.examples)
        gr.Examples(examples=[[p] for p in ctx.examples], inputs=[src], label="Examples")
    note = gr.Markdown("", elem_id=f"{prefix}-note")
    return src, note


def read_image(value, max_side: int = MAX_SIDE) -> tuple[np.ndarray, str | None]:
    """Gradio image value (filepath, numpy or None) -> (RGB uint8, note).

    Handlers get values through the inputs above, already checked; this does not
    check paths again, so library callers and tests may name any file.
    """
    if value is None or (isinstance(value, str) and not value):
        raise ImageError("upload an image first (or pick an example)")
    if isinstance(value, dict) and "path" in value:
        value = value["path"]
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        st = os.stat(value)
        if is_upload(value):
            touch(os.fspath(value))  # in use: the disk quota evicts it last
        return _read_file_cached(os.fspath(value), st.st_mtime_ns, st.st_size, max_side)
    with _decode:
        try:
            return load_image(value, max_side=max_side)
        finally:
            _trim()


@functools.lru_cache(maxsize=4)
def _read_file_cached(path: str, _mtime_ns: int, _size: int, max_side: int) -> tuple[np.ndarray, str | None]:
    """Every click re-sends the upload's path: decode (and downscale) it once, not per click.

    Keyed by path, mtime and size, so a changed file is read again; 4 working images at
    most (<= ~50 MB). The array is read-only because callers share it.
    """
    with _decode:
        try:
            rgb, note = load_image(path, max_side=max_side)
        finally:
            _trim()
    rgb.setflags(write=False)
    return rgb, note


#: Example photos bundled with scikit-image (public domain / CC0, see its data README).
EXAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee")


def example_images(names: tuple[str, ...] = EXAMPLE_PHOTOS) -> list[str]:
    """Write scikit-image's bundled photos once as PNGs; returns their paths.

    Missing photos (an old scikit-image without the data files) are skipped.
    """
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
