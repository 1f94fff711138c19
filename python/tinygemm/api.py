"""The public INT4 API: w4a16_matmul and its backend choice."""

from __future__ import annotations

import torch

from . import ops
from ._ext import GPU_BACKEND
from .formats import QuantizedWeight

BACKENDS = ("auto", "cuda", "triton")
# The CUDA GEMV's mma path covers up to 16 rows per block; beyond that it re-reads the weights per
# 16 rows, where the Triton GEMM's tiles reuse them.
GEMV_MAX_M = 16


def choose_backend(M: int, device: torch.device) -> str:
    if device.type == "cuda" and GPU_BACKEND == "cuda" and M <= GEMV_MAX_M:
        return "cuda"
    return "triton"


def w4a16_matmul(x: torch.Tensor, qw: QuantizedWeight, backend: str = "auto") -> torch.Tensor:
    """y = x @ W for a 4-bit weight; x is [..., K] in the scales' dtype, y is [..., N]."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if not isinstance(qw, QuantizedWeight):
        raise ValueError(f"qw must be a tinygemm.QuantizedWeight (from tinygemm.quantize); got {type(qw).__name__}")
    K, N = qw.shape
    if x.shape[-1] != K:
        raise ValueError(f"x's last dimension must be K = {K}; got shape {tuple(x.shape)}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, K)
    if x2.shape[0] == 0:
        return x.new_empty((*lead, N))
    if qw.perm is not None:  # act-order: the stored rows are input features perm[i] (one gather per call)
        x2 = x2.index_select(-1, qw.perm)
    x2 = x2.contiguous()
    if backend == "auto":
        backend = choose_backend(x2.shape[0], x2.device)
    op = ops.w4a16_gemv if backend == "cuda" else ops.w4a16_gemm
    y = op(x2, qw.qweight, qw.scales, qw.zeros, qw.group_size)
    return y.reshape(*lead, N)
