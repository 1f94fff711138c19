"""Ceilings measured on the device: what "% of measured" in every result is relative to.

copy bandwidth: a device-to-device copy of 1 GiB, counting bytes read + written (the same number
tinygemm-bench-bandwidth reports); matmul rate: a large square matmul on random data.
"""

from __future__ import annotations

import functools

import torch

from . import timing
from ._ext import require_gpu


@functools.lru_cache(maxsize=None)
def copy_bandwidth_gbps(nbytes: int = 1 << 30) -> float:
    require_gpu("tinygemm.ceilings.copy_bandwidth_gbps")  # not torch's "Torch not compiled with CUDA"
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 1:
        raise ValueError(f"nbytes must be a positive integer; got {nbytes!r}")
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    t = timing.measure(lambda: dst.copy_(src), mode="event")
    return 2 * nbytes / (t.median_us * 1e3)


@functools.lru_cache(maxsize=None)
def matmul_tflops(dtype: torch.dtype = torch.bfloat16, n: int = 8192) -> float:
    require_gpu("tinygemm.ceilings.matmul_tflops")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    t = timing.measure(lambda: a @ b, mode="event", l2="hot")
    return 2 * n**3 / (t.median_us * 1e6)
