"""What every page shares: the app context, user-error handling, image intake, temp files.

Pages stay thin: algorithms live in ``cmp/``. Handlers never load models;
they use ``ctx.engine`` (one per process). Per-user state stays in
``gr.State`` as small plain values.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from cmp.engine import Engine
from cmp.geometry import ImageSizeError
from cmp.guidance import GuidanceError
from cmp.images import MAX_SIDE, ImageError, load_image

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


#: Exceptions whose message is meant for the user (one line, no traceback).
USER_ERRORS = (ImageError, ImageSizeError, GuidanceError, ValueError, json.JSONDecodeError)


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


def read_image(value, max_side: int = MAX_SIDE) -> tuple[np.ndarray, str | None]:
    """Gradio image value (filepath, numpy or None) -> (RGB uint8, note)."""
    if value is None or (isinstance(value, str) and not value):
        raise ImageError("upload an image first (or pick an example)")
    if isinstance(value, dict) and "path" in value:
        value = value["path"]
    return load_image(value, max_side=max_side)


def temp_path(suffix: str) -> str:
    """A fresh per-request file in the system temp dir (never a shared output folder)."""
    fd, path = tempfile.mkstemp(prefix="cmp-", suffix=suffix)
    os.close(fd)
    return path
