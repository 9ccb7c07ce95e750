"""Device and precision, resolved once per process (never `.cuda()` elsewhere); glibc malloc
and oneDNN cache tuning."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def cpu_has_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 autocast pays off."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str | None = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    return dev


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """'auto': bf16 on CUDA with bf16 support or an AMX/AVX512-BF16 CPU, else fp16 on CUDA, else fp32."""
    if precision in (None, "", "auto"):
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu" and cpu_has_bf16():
            return "bf16"
        return "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or auto; got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is for CUDA; on CPU use bf16 or fp32")
    return precision


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str

    @classmethod
    def create(cls, device: str | None = "auto", precision: str | None = "auto") -> "Runtime":
        dev = resolve_device(device)
        return cls(dev, resolve_precision(precision, dev))

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of this precision (float32 for fp32)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)

    def autocast(self):
        """Autocast context for this runtime (a no-op for fp32): weights stay fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


# -- process memory (glibc) ----------------------------------------------------------

#: glibc malloc arenas (default 8 per core): each handler thread would keep its own arena's
#: freed pages, so three requests in parallel held ~300 MB more than one at a time.
MALLOC_ARENAS = 2
#: glibc hands every block above M_MMAP_THRESHOLD (128 KB by default) out as fresh mmapped
#: pages, so each numpy temporary of a click (a 512 px float32 plane is 1 MB, four probe
#: flows 4.7 MB) was page-faulted in anew on every use: the colour wheel of a 512 px flow
#: took 8.4 ms instead of 2.8, and a cached segment call 12-15 ms instead of 11 (README).
#: Blocks up to 32 MB (glibc's maximum) come from the heap instead, and free heap above
#: M_TRIM_THRESHOLD goes back to the system; the image decoder still trims after each decode.
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 64 * 2**20


#: oneDNN's cache of compiled primitives (convolutions for one input size each). Its default,
#: 1024, holds the frozen encoder for about a dozen image sizes; photos of other aspect ratios
#: then evict each other, and every encoding at a size not in the cache costs 1.3-2x (81 model
#: sizes twice over, 384 side: 2.7 s then 2.7 s at 1024, 2.3-2.7 s then 1.8 s at 8192). The
#: larger cache added ~15 MB for all 81 sizes.
ONEDNN_CACHE_CAPACITY = 8192


def tune_onednn(capacity: int = ONEDNN_CACHE_CAPACITY) -> bool:
    """Set oneDNN's primitive cache capacity (ONEDNN_PRIMITIVE_CACHE_CAPACITY) unless the
    environment sets it; read when oneDNN first builds a primitive, so call it before any
    model runs (the app, the command line and the benchmarks do, beside :func:`tune_malloc`).
    Returns whether this call set it."""
    if "ONEDNN_PRIMITIVE_CACHE_CAPACITY" in os.environ:
        return False
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(int(capacity))
    return True


def tune_malloc(arenas: int = MALLOC_ARENAS, mmap_threshold: int = MMAP_THRESHOLD_BYTES,
                trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """``mallopt`` M_ARENA_MAX, M_MMAP_THRESHOLD and M_TRIM_THRESHOLD on glibc (as the
    MALLOC_*_ env variables would); False elsewhere. Call first in a process (the app, the
    command line, the benchmarks), before threads allocate."""
    try:
        import ctypes
        mallopt = ctypes.CDLL("libc.so.6").mallopt
        # M_ARENA_MAX = -8, M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1
        return all([mallopt(-8, arenas), mallopt(-3, mmap_threshold), mallopt(-1, trim_threshold)])
    except (OSError, AttributeError):
        return False
