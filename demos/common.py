"""What every page shares: the app context, user-error handling, JSON and click helpers.

Image intake lives in :mod:`demos.intake` and output files in :mod:`demos.outputs`;
both are re-exported here, so pages import everything from one place.
Pages stay thin: algorithms live in ``cmp/``. Handlers never load models;
they use ``ctx.engine_for(model)``, the engine of the model the session chose in the
header (``ctx.model``, a ``gr.State`` holding a checkpoint reference; "" = the app's
default), taken from the engine pool (``ctx.segmenter_for(model)`` for segmentation, where
the app's default may name a grouping model of its own). Per-user state stays in ``gr.State`` as small
plain values.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from cmp.checkpoints import CheckpointError
from cmp.engine import Engine
from cmp.geometry import ImageSizeError
from cmp.guidance import GuidanceError
from cmp.images import MAX_SIDE, ImageError
from cmp.pool import EnginePool
from cmp.tracks import MAX_JSON_CHARS, is_numbers, parse_json  # noqa: F401 - the one parser, shared by pages

from .intake import (EXAMPLE_PHOTOS, allow_examples, example_images, image_input, image_intake,  # noqa: F401
                     is_upload, only_uploads, read_image)
from .outputs import TEMP_MAX_AGE_S, fast_preview, output_dir, temp_dir, temp_path  # noqa: F401

#: All model work shares this concurrency group (one device, one queue).
MODEL_GROUP = "model"

# ZeroGPU's spaces.GPU (a no-op elsewhere); every model call goes through cmp.lease.run_model.
from cmp.lease import gpu  # noqa: E402,F401


@dataclass
class Context:
    """Handed to every page's ``build(ctx)``."""

    engine: Engine
    max_side: int = MAX_SIDE
    notice: str | None = None  # e.g. "Hub unreachable, using the embedded model"
    examples: list[str] = field(default_factory=list)
    video_side: int = 768  # long side of rendered videos, in pixels
    #: Components one page offers another (e.g. "motion": {"image", "region"}; "tabs"), filled while building.
    links: dict = field(default_factory=dict)
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

    def segmenter_for(self, *refs: str | None) -> Engine:
        """Like :meth:`engine_for`, for segmentation: the app's default segments with the model
        its registry entry names for that (:meth:`cmp.pool.EnginePool.segmenter`)."""
        return self.pool.segmenter(next((r for r in refs if r), None))


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


def validated(comp: gr.components.Component, check: Callable) -> gr.components.Component:
    """Let ``check(payload)`` (a :mod:`cmp.params` check) replace ``comp``'s own preprocess.

    Gradio's number and text components compare or convert what a raw API call sends
    without looking at its type (``frames="abc"`` and ``threshold=null`` end in a generic
    "upstream app" error; a JSON object becomes Python text). The check names the input
    in one line and returns the value the handler gets, on the page and through the API.
    """
    def preprocess(payload):
        try:
            return check(payload)
        except ValueError as exc:
            raise gr.Error(str(exc).splitlines()[0]) from None

    comp.preprocess = preprocess
    return comp


#: Seconds a tab's gr.State (arrows, clicks, masks) lives after its last change.
#: Gradio also drops a closed tab's state after an hour; this bounds tabs left open.
STATE_TTL_S = 6 * 3600




def click_xy(evt: gr.SelectData, shape) -> tuple[float, float]:
    """(x, y) pixel of a click on an image of ``shape`` (H, W, ...), clamped inside it."""
    h, w = shape[:2]
    return float(min(max(evt.index[0], 0), w - 1)), float(min(max(evt.index[1], 0), h - 1))
