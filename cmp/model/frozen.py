"""The image encoding as one frozen graph, for bf16 inference on a CPU.

Under bf16 autocast the eager encoder casts every weight to bf16 on every call, runs each
BatchNorm and ReLU as a pass of its own over the activations, and lets oneDNN reorder
the weights into its blocked layout call after call. :class:`FrozenEncoder` does that once:
a copy of the model with the BatchNorms of the parts that only the encoding uses
(the model's ``encode_only``) folded into the convolution before them
(:func:`fold_batchnorm`), cast to bf16 once, traced and frozen by TorchScript
(:func:`torch.jit.freeze`: the weights become constants, pre-packed for oneDNN once; the
ReLUs and residual sums still run as passes of their own, as torch.profiler shows). On the
embedded model and a 384 px input that is about 18 ms instead of 22-25 ms on this project's
2-core CPU (README).

The graph is traced on the first image and holds for every input size (sizes are read
from the tensors inside the graph, never baked in; ``tests/test_frozen.py`` checks other
aspect ratios). The eager model stays the reference: fp32 runs never use this, nor does a
GPU (autocast there is already fused by cuDNN), and :class:`cmp.engine.Engine` falls back
to the eager encoder if tracing fails. TorchScript is deprecated as of torch 2.13 (the pinned
version, where it works); its successor ``torch.compile`` needs a C++ compiler at run time,
which the Docker image and many Spaces do not have. Should a later torch drop it, the
fallback keeps the app working, only slower.
"""
from __future__ import annotations

import copy
import threading
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["FrozenEncoder", "fold_batchnorm"]


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that directly follows a convolution into it, in place.

    The pairs are the two patterns of :mod:`cmp.model` (a block's ``convN`` + ``bnN``, and
    a ``Sequential`` whose convolution is followed by its BatchNorm); the BatchNorm becomes
    an ``Identity``. Any other BatchNorm (e.g. one that follows a sum) is left as it is.
    Returns ``module``.
    """
    for child in module.children():
        fold_batchnorm(child)
    for name, bn in list(module.named_children()):
        if not (isinstance(bn, nn.BatchNorm2d) and name.startswith("bn")):
            continue
        conv = getattr(module, "conv" + name[2:], None)
        if isinstance(conv, nn.Conv2d):
            setattr(module, "conv" + name[2:], fuse_conv_bn_eval(conv, bn))
            setattr(module, name, nn.Identity())
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                module[i + 1] = nn.Identity()
    return module


class _Tensors(nn.Module):
    """``model.encode_image`` with the features flattened to a tuple of tensors (traceable)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.encode_image(image).tensors())


class FrozenEncoder:
    """``model.encode_image`` for bf16 (or fp16) inference: folded, cast once, frozen.

    ``encoder(image)`` takes the normalised fp32 (1, 3, H, W) input the eager encoder takes and
    returns the same kind of features (the model's ``features_from_tensors``), equal to the eager
    encoder under autocast up to bf16 round-off. The model itself is not changed. Traced on
    the first call (about 0.2 s for the embedded model).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16):
        if not hasattr(model, "features_from_tensors"):
            raise TypeError(f"{type(model).__name__} has no features_from_tensors")
        self.model = model
        self.dtype = dtype
        #: Bytes the frozen copy's weights take (the encoding-only parts, in ``dtype``), counted
        #: before it exists so an engine pool bounding models by bytes sees it from the start.
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.nbytes = sum(t.numel() * itemsize
                          for name in getattr(model, "encode_only", ())
                          for t in (*model.get_submodule(name).parameters(), *model.get_submodule(name).buffers())
                          if t.is_floating_point())
        self._graph: Any = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._graph is not None

    def prepare(self, example: torch.Tensor) -> None:
        """Trace and freeze on ``example`` (a model input) unless done; raises what tracing raises."""
        with self._lock:
            if self._graph is None:
                net = copy.deepcopy(self.model).eval()
                for name in getattr(net, "encode_only", ()):
                    fold_batchnorm(net.get_submodule(name))
                net = net.to(self.dtype)
                with torch.inference_mode(), warnings.catch_warnings():
                    # torch 2.13 marks TorchScript deprecated in favour of torch.compile, which needs
                    # a C++ compiler at run time (not in the Docker image, nor on every Space)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    traced = torch.jit.trace(_Tensors(net).eval(), example.to(self.dtype), check_trace=False)
                    self._graph = torch.jit.freeze(traced)

    def __call__(self, image: torch.Tensor):
        self.prepare(image)
        with torch.inference_mode(), torch.autocast(device_type=image.device.type, enabled=False):
            tensors = self._graph(image.to(self.dtype))
        return self.model.features_from_tensors(tensors, tuple(image.shape[-2:]))
