"""torch.ops.tinygemm.*: the kernels as torch custom ops, with fake implementations for torch.compile.

    torch.ops.tinygemm.w4a16_gemv(x, qweight, scales, zeros, group_size, layout=LAYOUT)
                                         CUDA GEMV (any M; fast M <= 16; either layout)
    torch.ops.tinygemm.w4a16_gemm(x, qweight, scales, zeros, group_size)   Triton GEMM (any M)
    torch.ops.tinygemm.w4a16_gemm_sm90(x, qweight, scales, zeros, group_size)
                                         Hopper tensor-core GEMM (any M; qweight in LAYOUT_SM90)
    torch.ops.tinygemm.w4_dequant(qweight, scales, zeros, group_size)      CUDA INT4 -> fp16/bf16
    torch.ops.tinygemm.w4_dequant_triton(qweight, scales, zeros, group_size)   the same in Triton

Every op validates its arguments and raises ValueError naming the constraint and the values.

call(op, ...) is how tinygemm's own Python calls them (w4a16_matmul, Int4Linear, the bench): the same
function, minus torch.library's dispatch when the call is eager on plain tensors.
"""

from __future__ import annotations

import torch

from . import _C
from ._ext import dtype_name, require_gpu, stream_handle
from .formats import LAYOUT, check_shape


_BODIES: dict = {}  # each registered op -> its undecorated Python function


def _op(name: str):
    """torch.library.custom_op(name), keeping the undecorated function for call()."""
    def register(fn):
        op = torch.library.custom_op(name, mutates_args=())(fn)
        _BODIES[op] = fn
        return op
    return register


def call(op, *args, **kwargs):
    """op(*args, **kwargs). Eager calls on plain tensors run the op's own function directly: the
    custom-op dispatch around it costs more than a decode kernel runs (a no-op custom op measured
    ~145 us a call on a 2-core CI machine against 29 us for its body; ~0.3 ms per call under cProfile
    on an H200 host), once per layer and token when nothing captures the calls in a CUDA graph.
    Under torch.compile, with tensor subclasses (fake or functional tensors) or with autograd
    recording, the registered op is called, so the call stays one opaque node as before."""
    if torch.compiler.is_compiling():
        return op(*args, **kwargs)
    grad = torch.is_grad_enabled()
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor) and (type(a) not in (torch.Tensor, torch.nn.Parameter)
                                            or (grad and a.requires_grad)):
            return op(*args, **kwargs)
    return _BODIES[op](*args, **kwargs)


def _packed_kn(qweight: torch.Tensor) -> tuple[int, int]:
    if qweight.dtype != torch.int32 or qweight.dim() != 4 or tuple(qweight.shape[2:]) != (32, 4):
        raise ValueError("qweight must be int32 [N/16, K/64, 32, 4] (tinygemm.quantize builds it); got "
                         f"{qweight.dtype} {tuple(qweight.shape)}")
    return qweight.shape[1] * 64, qweight.shape[0] * 16


def validate(x: torch.Tensor | None, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
             group_size: int, gpu: bool = True) -> tuple[int, int]:
    """Checks shared by every INT4 op; returns (K, N)."""
    K, N = _packed_kn(qweight)
    check_shape(K, N, group_size)
    if scales.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"scales must be float16 or bfloat16; got {scales.dtype}")
    G = 1 if group_size == -1 else K // group_size
    if tuple(scales.shape) != (G, N):
        raise ValueError(f"scales must be [K/group_size, N] = {(G, N)} for K={K}, N={N}, "
                         f"group_size={group_size}; got {tuple(scales.shape)}")
    tensors = {"qweight": qweight, "scales": scales}
    if zeros is not None:
        if zeros.dtype != scales.dtype or tuple(zeros.shape) != (G, N):
            raise ValueError(f"zeros must match scales ({scales.dtype} {(G, N)}); got {zeros.dtype} {tuple(zeros.shape)}")
        tensors["zeros"] = zeros
    if x is not None:
        if x.dtype != scales.dtype:
            raise ValueError(f"x and scales must have the same dtype; got {x.dtype} and {scales.dtype}")
        if x.dim() != 2 or x.shape[1] != K:
            raise ValueError(f"x must be [M, K] with K = {K}; got {tuple(x.shape)}")
        if x.shape[0] < 1:
            raise ValueError("x must have at least one row")
        tensors["x"] = x
    for name, t in tensors.items():
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (call .contiguous())")
        if gpu and t.device.type != "cuda":
            raise ValueError(f"{name} must be on a GPU; got device {t.device}")
        if t.device != qweight.device:
            raise ValueError(f"all tensors must be on one device; {name} is on {t.device}, qweight on {qweight.device}")
    if gpu and qweight.data_ptr() % 16:
        raise ValueError("qweight must be 16-byte aligned (each lane reads 16 bytes)")
    if gpu and x is not None and x.data_ptr() % 16:
        raise ValueError("x must be 16-byte aligned (each lane reads 8 consecutive values)")
    return K, N


@_op("tinygemm::w4a16_gemv")
def w4a16_gemv(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               group_size: int, layout: str = LAYOUT) -> torch.Tensor:
    K, N = validate(x, qweight, scales, zeros, group_size)
    require_gpu("w4a16_gemv")
    y = torch.empty((x.shape[0], N), dtype=x.dtype, device=x.device)
    with torch.cuda.device(x.device):
        _C.w4a16_gemv(x.data_ptr(), qweight.data_ptr(), scales.data_ptr(),
                      zeros.data_ptr() if zeros is not None else 0, y.data_ptr(), x.shape[0], N, K,
                      group_size, dtype_name(x.dtype), stream_handle(), layout=layout)
    return y


@w4a16_gemv.register_fake
def _(x, qweight, scales, zeros, group_size, layout=LAYOUT):
    return x.new_empty((x.shape[0], qweight.shape[0] * 16))


@_op("tinygemm::w4a16_gemm_sm90")
def w4a16_gemm_sm90(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                    group_size: int) -> torch.Tensor:
    K, N = validate(x, qweight, scales, zeros, group_size)
    require_gpu("w4a16_gemm_sm90")
    y = torch.empty((x.shape[0], N), dtype=x.dtype, device=x.device)
    with torch.cuda.device(x.device):
        _C.w4a16_gemm_sm90(x.data_ptr(), qweight.data_ptr(), scales.data_ptr(),
                           zeros.data_ptr() if zeros is not None else 0, y.data_ptr(), x.shape[0], N, K,
                           group_size, dtype_name(x.dtype), stream_handle())
    return y


@w4a16_gemm_sm90.register_fake
def _(x, qweight, scales, zeros, group_size):
    return x.new_empty((x.shape[0], qweight.shape[0] * 16))


@_op("tinygemm::w4a16_gemm")
def w4a16_gemm(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               group_size: int) -> torch.Tensor:
    from .triton.w4a16_gemm import w4a16_gemm as _gemm, _interpreting

    validate(x, qweight, scales, zeros, group_size, gpu=not _interpreting())
    return _gemm(x, qweight, scales, zeros, group_size)


@w4a16_gemm.register_fake
def _(x, qweight, scales, zeros, group_size):
    return x.new_empty((x.shape[0], qweight.shape[0] * 16))


@_op("tinygemm::w4_dequant")
def w4_dequant(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               group_size: int) -> torch.Tensor:
    K, N = validate(None, qweight, scales, zeros, group_size)
    require_gpu("w4_dequant")
    w = torch.empty((K, N), dtype=scales.dtype, device=scales.device)
    with torch.cuda.device(scales.device):
        _C.w4_dequant(qweight.data_ptr(), scales.data_ptr(), zeros.data_ptr() if zeros is not None else 0,
                      w.data_ptr(), N, K, group_size, dtype_name(scales.dtype), stream_handle())
    return w


@w4_dequant.register_fake
def _(qweight, scales, zeros, group_size):
    return scales.new_empty((qweight.shape[1] * 64, qweight.shape[0] * 16))


@_op("tinygemm::w4_dequant_triton")
def w4_dequant_triton(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                      group_size: int) -> torch.Tensor:
    from .triton.w4a16_gemm import _interpreting, w4_dequant_triton as _dq

    validate(None, qweight, scales, zeros, group_size, gpu=not _interpreting())
    return _dq(qweight, scales, zeros, group_size)


@w4_dequant_triton.register_fake
def _(qweight, scales, zeros, group_size):
    return scales.new_empty((qweight.shape[1] * 64, qweight.shape[0] * 16))
