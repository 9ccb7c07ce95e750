"""Self-supervised pretext ("proxy") tasks for the Gallery: what a network is given, what it must predict.

Each generator is a pure function ``(image, difficulty, seed) -> ProxyTask``: the same
arguments give the same result, nothing is cached between users, no Gradio. The
image is (H, W, 3) uint8 RGB; everything a task returns for display is (h, w, 3) uint8
RGB; coordinates are (x, y) = (column, row) in pixels of the task's working image.

Difficulty follows the talk this page grows from ("easy / normal / difficult / hell"):
harder settings remove information or shortcuts (more tiles, larger holes, fewer
guidance points, stronger augmentation, finer targets). Motion tasks work on a real
frame pair shipped in ``cmp/data/frames`` (see SOURCE.md there); the motion
propagation task runs the model through an :class:`cmp.engine.Engine` passed in.

Modules: ``base`` (the task record, checks, working images), ``frames`` (the shipped
frames), ``image_tasks``, ``patch_tasks``, ``motion_tasks`` (the generators) and
``registry`` (:data:`TASKS`, :func:`generate`).
"""
from .base import (DIFFICULTIES, MAX_SEED, MIN_IMAGE_SIDE, SQUARE, WORK_SIDE, ProxyTask, caption,
                   check_difficulty, check_image, check_seed, fit_image, square_image)
from .frames import FRAME_PAIR, FRAMES_DIR, OTHER_IMAGE, example_paths, load_frame_pair, load_other_image
from .image_tasks import (COLORIZATION, INPAINTING, INSTANCE, ROTATION, VIEW_SIDE, colorization, inpainting,
                          instance_discrimination, lab_to_rgb, rgb_to_lab, rotation)
from .motion_tasks import (GUIDANCE, MOTION_FACTOR, dense_flow, motion_mask, motion_prediction,
                           motion_propagation, moving_segmentation)
from .patch_tasks import (COUNTING, DOWNSAMPLING, JIGSAW, JIGSAW_COLOUR, NEIGHBOURS, RELATIVE, colour_counts, counting,
                          jigsaw, permutation_set, relative_patch)
from .registry import TASKS, TaskSpec, generate

__all__ = [
    "COLORIZATION", "COUNTING", "DIFFICULTIES", "DOWNSAMPLING", "FRAMES_DIR", "FRAME_PAIR", "GUIDANCE", "INPAINTING", "INSTANCE", "JIGSAW",
    "JIGSAW_COLOUR", "MAX_SEED", "MIN_IMAGE_SIDE", "MOTION_FACTOR", "NEIGHBOURS", "OTHER_IMAGE", "RELATIVE",
    "ROTATION", "SQUARE", "TASKS", "VIEW_SIDE", "WORK_SIDE", "ProxyTask", "TaskSpec", "caption",
    "check_difficulty", "check_image", "check_seed", "colorization", "colour_counts", "counting", "dense_flow",
    "example_paths", "fit_image", "generate", "inpainting", "instance_discrimination", "jigsaw", "lab_to_rgb",
    "load_frame_pair", "load_other_image", "motion_mask", "motion_prediction", "motion_propagation",
    "moving_segmentation", "permutation_set", "relative_patch", "rgb_to_lab", "rotation", "square_image",
]
