"""Scenes that both training and evaluation draw from: photos, random shapes, synthetic
scenes with exact flow, video files.

``cmp.train`` and ``cmp.eval`` import from here and never from each other. Which seeds
and which photos are for training and which are held out is decided by the callers
(``cmp.scenes.synthetic.HELDOUT_SEED_BASE``, ``cmp.eval.composites.EVAL_SEED_START``,
``cmp.eval.real.EVAL_*_PHOTOS``). Pure NumPy/OpenCV; never imports Gradio or torch.
"""


class SourceUnavailable(RuntimeError):
    """An offline source (font, wheel, Debian package) is not installed here; the message says how to get it."""
