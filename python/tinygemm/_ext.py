"""Loads the compiled core and answers the questions every GPU entry point asks first."""

from __future__ import annotations

import torch

from . import _C

GPU_BACKEND: str = _C.gpu_backend  # "cuda", "hip" or "cpu" (what the extension was built with)


def gpu_available() -> bool:
    """A GPU build of tinygemm and a visible GPU."""
    return GPU_BACKEND != "cpu" and torch.cuda.is_available() and _C.device_count() > 0


def require_gpu(what: str) -> None:
    """Raise a RuntimeError that says why `what` cannot run here."""
    if GPU_BACKEND == "cpu":
        raise RuntimeError(
            f"{what} needs a GPU build of tinygemm; this one was built CPU-only (no CUDA toolkit or ROCm "
            "was found at install time). Reinstall with nvcc or hipcc available: pip install ."
        )
    if not torch.cuda.is_available() or _C.device_count() == 0:
        raise RuntimeError(f"{what} needs a GPU, and none is visible (torch.cuda.is_available() is False)")


def stream_handle(stream: torch.cuda.Stream | None = None) -> int:
    """The raw cudaStream_t / hipStream_t of `stream` (default: torch's current stream)."""
    return (stream or torch.cuda.current_stream()).cuda_stream


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}[dtype]
