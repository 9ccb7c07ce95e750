"""Device and precision, resolved once per process (never `.cuda()` elsewhere)."""
from __future__ import annotations

import contextlib
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
