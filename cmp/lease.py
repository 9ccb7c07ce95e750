"""The one GPU-lease wrapper: every model call of every page and endpoint goes through :func:`run_model`.

On a Hugging Face ZeroGPU Space a GPU is lent only inside functions wrapped by
``spaces.GPU``; everywhere else :data:`gpu` is a no-op decorator, so the same code runs
on a CPU, a local GPU or a Space. :func:`run_model` also owns what happens when another
session's images pushed ours out of the engine's encoding cache between ``set_image``
and ``propagate``: the call runs once more, and the image is encoded again
(transparently, in this one place; ``fn`` must call ``set_image`` itself, as
:meth:`cmp.engine.Engine.flow_for`, :func:`cmp.segment.segment` and
:func:`cmp.recipe.render` do).

Python users: ``run_model(cmp.segment.segment, engine, rgb, [[x, y]])``.

Not verified on a real ZeroGPU Space (none here): there the wrapped call runs in a
worker and its arguments must pickle, and :func:`run_model` hands ``fn`` and the engine
(or a bound method of it) across. If a Space refuses that, the one place to change is
here: pass the engine's pool reference instead and resolve it inside :func:`_leased`.
"""
from __future__ import annotations

import os
from typing import Callable, TypeVar

from .engine import ImageNotCached

T = TypeVar("T")

try:  # ZeroGPU on Hugging Face Spaces; a no-op decorator everywhere else
    import spaces  # type: ignore

    gpu = spaces.GPU
except Exception:  # noqa: BLE001 - absent package or unsupported platform
    def gpu(fn=None, **_kw):
        return fn if fn is not None else (lambda f: f)


#: On ZeroGPU (the Space sets SPACES_ZERO_GPU) a model call needs a lease that only a queued
#: Gradio event can take, so the pages' direct clicks (demos.direct) step aside there.
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))


@gpu
def _leased(fn: Callable[..., T], *args, **kwargs) -> T:
    try:
        return fn(*args, **kwargs)
    except ImageNotCached:  # evicted by another session between set_image and propagate
        return fn(*args, **kwargs)


def run_model(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` under a GPU lease (ZeroGPU), run once more if the image's
    encoding was evicted meanwhile. Callers reach it as ``lease.run_model`` so a test
    (or a deployment) can swap it for one that counts or schedules model calls."""
    return _leased(fn, *args, **kwargs)
