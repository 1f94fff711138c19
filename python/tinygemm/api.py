"""The public INT4 API: w4a16_matmul and its kernel choice.

Kernels (one name each, from the .cu / .py file to the op and the backend):
  gemv       csrc/kernels/w4a16_gemv.cu      CUDA/HIP, either layout (HIP/pre-sm80: LAYOUT), fast at M <= 16
  gemm_sm90  csrc/kernels/w4a16_gemm_sm90.cu Hopper tensor cores, layout LAYOUT_SM90, any M
  triton     triton/w4a16_gemm.py            any GPU, layout LAYOUT, any M
A weight is stored in one layout, so the layout narrows the choice; `preferred_layout(device)` is the
layout whose kernels are fastest on a device (quantize and the checkpoint converters take it).
"""

from __future__ import annotations

import functools

import torch

from . import _C, crossover, ops
from ._ext import GPU_BACKEND
from .formats import LAYOUT, LAYOUT_SM90, QuantizedWeight

BACKENDS = ("auto", "gemv", "gemm_sm90", "triton")
ALIASES = {"cuda": "gemv"}  # the GEMV's name before the Hopper GEMM joined
READS = {"gemv": (LAYOUT, LAYOUT_SM90), "triton": (LAYOUT,), "gemm_sm90": (LAYOUT_SM90,)}
# The CUDA GEMV's mma path covers up to 16 rows per block; beyond that it re-reads the weights per
# 16 rows, where the GEMMs' tiles reuse them.
GEMV_MAX_M = 16
# From the sm90 layout (Hopper), the GEMV up to this M and the Hopper GEMM above, for a GPU or shape
# the measured per-shape table (crossover.py) does not cover: where the summed Llama-3-8B / 70B
# layer times cross (bench/results/h200/).
GEMV_MAX_M_SM90 = 8


def _is_hopper(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) == (9, 0)


def has_gemm_sm90() -> bool:
    """Whether this build carries the Hopper GEMM's sm_90a code."""
    return GPU_BACKEND == "cuda" and bool(_C.has_sm90)


def preferred_layout(device: torch.device | str) -> str:
    """LAYOUT_SM90 on a Hopper GPU with a build that has the Hopper GEMM, else LAYOUT."""
    device = torch.device(device)
    return LAYOUT_SM90 if has_gemm_sm90() and _is_hopper(device) else LAYOUT


def resolve_backend(backend: str) -> str:
    backend = ALIASES.get(backend, backend)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} (or an alias {tuple(ALIASES)}); got {backend!r}")
    return backend


@functools.lru_cache(maxsize=None)
def _device_name(index: int) -> str:
    return torch.cuda.get_device_name(index)


def choose_backend(M: int, device: torch.device, layout: str = LAYOUT, K: int | None = None,
                   N: int | None = None) -> str:
    """The kernel w4a16_matmul(backend='auto') runs for M rows of x on `device` from `layout`, for a
    K x N weight (from the sm90 layout the GEMV/GEMM switch is measured per GPU and shape:
    crossover.py; without K and N, or off the table, GEMV_MAX_M_SM90)."""
    if layout == LAYOUT_SM90:
        limit = GEMV_MAX_M_SM90
        if K is not None and N is not None and device.type == "cuda":
            limit = crossover.gemv_max_m(_device_name(device.index if device.index is not None else
                                                      torch.cuda.current_device()), layout, K, N, limit)
        return "gemv" if M <= limit else "gemm_sm90"
    if device.type == "cuda" and GPU_BACKEND == "cuda" and M <= GEMV_MAX_M:
        return "gemv"
    return "triton"


_OPS = {"gemm_sm90": ops.w4a16_gemm_sm90, "triton": ops.w4a16_gemm}


def describe(backend: str, M: int, N: int, K: int, group_size: int, device: torch.device,
             layout: str = LAYOUT) -> str:
    """The kernel and launch configuration `backend` runs for an M x K x N product on `device` (what
    each bench row records in its note): the launch heuristics' own answers, not a copy of them."""
    backend = resolve_backend(backend)
    if backend == "auto":
        backend = choose_backend(M, device, layout, K, N)
    props = torch.cuda.get_device_properties(device)
    if backend == "gemv":
        c = _C.w4a16_gemv_config(M, N, K, props.multi_processor_count, props.major, layout)
        return f"w4a16_gemv n_tiles={c['n_tiles']} warps={c['warps']} impl={c['impl'].name}"
    if backend == "gemm_sm90":
        with torch.cuda.device(device):  # the split reads the device's own co-resident cluster counts
            c = _C.w4a16_gemm_sm90_config(M, N, K, props.multi_processor_count)
        return f"w4a16_gemm_sm90 block_m={c['block_m']} split={c['split']} warpgroups={c['warpgroups']}"
    from .triton.w4a16_gemm import pick_config

    return f"w4a16_gemm (triton) {pick_config(M, N, K, group_size, props.multi_processor_count)}"


def w4a16_matmul(x: torch.Tensor, qw: QuantizedWeight, backend: str = "auto") -> torch.Tensor:
    """y = x @ W for a 4-bit weight; x is [..., K] in the scales' dtype, y is [..., N]."""
    backend = resolve_backend(backend)
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
        backend = choose_backend(x2.shape[0], x2.device, qw.layout, K, N)
    if qw.layout not in READS[backend]:
        raise ValueError(f"backend {backend!r} reads weights in layout {READS[backend]}; this weight is in "
                         f"{qw.layout!r} (convert with tinygemm.formats.to_layout)")
    if backend == "gemv":
        y = ops.call(ops.w4a16_gemv, x2, qw.qweight, qw.scales, qw.zeros, qw.group_size, layout=qw.layout)
    else:
        y = ops.call(_OPS[backend], x2, qw.qweight, qw.scales, qw.zeros, qw.group_size)
    return y.reshape(*lead, N)
