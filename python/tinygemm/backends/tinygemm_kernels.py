"""tinygemm's own INT4 kernels: the CUDA GEMV (w4a16_gemv) and the Triton GEMM (w4a16_gemm)."""

from __future__ import annotations

import torch

from .. import formats, ops
from .._ext import GPU_BACKEND
from . import Backend, Prepared, Problem


def _clone(s: formats.QuantizedWeight) -> formats.QuantizedWeight:
    return formats.QuantizedWeight(s.qweight.clone(), s.scales.clone(),
                                   None if s.zeros is None else s.zeros.clone(), s.shape, s.group_size)


class _Tinygemm(Backend):
    op = "w4a16"
    kernel = None

    def unsupported(self, p: Problem):
        if p.dtype not in (torch.float16, torch.bfloat16):
            return f"activations must be fp16 or bf16; got {p.dtype}"
        try:
            formats.check_shape(p.K, p.N, p.group_size)
        except ValueError as e:
            return str(e)
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        qw = formats.quantize(w.to(p.dtype), p.group_size, p.symmetric)
        kernel = self.kernel
        return Prepared(
            call=lambda s, x: kernel(x, s.qweight, s.scales, s.zeros, s.group_size),
            states=[qw], clone=_clone, ref_w=formats.dequantize(qw, torch.float32), weight_bytes=qw.nbytes(),
            weight_format=f"tinygemm_{qw.format}_g{p.group_size}", x_dtype=p.dtype,
        )


class TinygemmCuda(_Tinygemm):
    """tinygemm w4a16_gemv: tensor-core GEMV for decode (fast at M <= 16; any M correct)."""

    name = "tinygemm_cuda"
    kernel = staticmethod(ops.w4a16_gemv)

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        return None if GPU_BACKEND != "cpu" else "tinygemm was built without GPU support"


class TinygemmTriton(_Tinygemm):
    """tinygemm w4a16_gemm: Triton INT4 GEMM for any M (autotuned per M bucket and shape)."""

    name = "tinygemm_triton"
    kernel = staticmethod(ops.w4a16_gemm)

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed"
        return None
