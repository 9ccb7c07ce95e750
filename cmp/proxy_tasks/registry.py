"""The task registry the Gallery lists, and :func:`generate`, which runs a task by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .base import ProxyTask
from .image_tasks import colorization, inpainting, instance_discrimination, rotation
from .motion_tasks import motion_prediction, motion_propagation, moving_segmentation
from .patch_tasks import counting, jigsaw, relative_patch


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    motion: bool  # runs on the shipped frame pair instead of the user's image
    needs_engine: bool
    fn: Callable[..., ProxyTask]


TASKS: dict[str, TaskSpec] = {s.name: s for s in (
    TaskSpec("rotation", "Rotation prediction", False, False, rotation),
    TaskSpec("jigsaw", "Jigsaw puzzle", False, False, jigsaw),
    TaskSpec("colorization", "Colorization", False, False, colorization),
    TaskSpec("inpainting", "Inpainting", False, False, inpainting),
    TaskSpec("relative_patch", "Relative patch location", False, False, relative_patch),
    TaskSpec("instance_discrimination", "Instance discrimination", False, False, instance_discrimination),
    TaskSpec("counting", "Counting", False, False, counting),
    TaskSpec("motion_prediction", "Motion prediction", True, False, motion_prediction),
    TaskSpec("moving_segmentation", "Moving-foreground segmentation", True, False, moving_segmentation),
    TaskSpec("motion_propagation", "Conditional motion propagation", True, True, motion_propagation),
)}


def generate(name: str, image: np.ndarray | None, difficulty: str = "normal", seed: int = 0, *,
             engine=None, **options) -> ProxyTask:
    """Run task ``name``. Image tasks need ``image``; motion tasks ignore it and use the frame pair.

    ``options`` go to the task (e.g. ``gaps``/``colour`` for the jigsaw, ``other`` for
    instance discrimination); ``engine`` is used by motion propagation only.
    """
    spec = TASKS.get(str(name))
    if spec is None:
        raise ValueError(f"unknown task '{name}'; choose one of {', '.join(TASKS)}")
    if spec.motion:
        if spec.needs_engine:
            return spec.fn(options.get("frames"), difficulty, seed, engine=engine)
        return spec.fn(options.get("frames"), difficulty, seed)
    if image is None:
        raise ValueError("this task needs an image: upload one or pick an example")
    return spec.fn(image, difficulty, seed, **options)
