"""tinygemm's own INT4 kernels: the CUDA GEMV (w4a16_gemv), the Hopper GEMM (w4a16_gemm_sm90), the
Triton GEMM (w4a16_gemm), w4a16_matmul's own choice among them (auto), and dequantize (w4_dequant) +
torch.matmul."""

from __future__ import annotations

import functools

import torch

from .. import api, formats, ops
from .._ext import GPU_BACKEND
from . import Backend, Prepared, Problem


class _Tinygemm(Backend):
    """Weights quantized by tinygemm.quantize; `run(qw, x)` multiplies by them."""

    op = "w4a16"

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        return None if GPU_BACKEND != "cpu" else "tinygemm was built without GPU support"

    def unsupported(self, p: Problem):
        if p.dtype not in (torch.float16, torch.bfloat16):
            return f"activations must be fp16 or bf16; got {p.dtype}"
        try:
            formats.check_shape(p.K, p.N, p.group_size)
        except ValueError as e:
            return str(e)
        return None

    @staticmethod
    def run(qw: formats.QuantizedWeight, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    kernel = ""  # the w4a16_matmul backend this runs (api.BACKENDS)

    def layout(self, device: torch.device) -> str:
        return formats.LAYOUT

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        qw = formats.quantize(w.to(p.dtype), p.group_size, p.symmetric, layout=self.layout(w.device))
        # what a checkpoint holds, made on the repack's first (untimed) call; from_gptq is the conversion
        gptq = functools.cache(lambda: formats.to_gptq(qw))
        return Prepared(call=self.run, states=[qw], clone=formats.QuantizedWeight.clone,
                        ref_w=formats.dequantize(qw, torch.float32), weight_bytes=qw.nbytes(),
                        weight_format=f"tinygemm_{qw.format}_g{p.group_size}", x_dtype=p.dtype,
                        repack=lambda: formats.to_layout(formats.from_gptq(**gptq(), group_size=p.group_size),
                                                         qw.layout),
                        repack_from="GPTQ qweight/qzeros/scales (tinygemm.formats.from_gptq)",
                        config=(lambda M: api.describe(self.kernel, M, p.N, p.K, p.group_size, w.device, qw.layout))
                        if self.kernel else None)


class TinygemmGemv(_Tinygemm):
    """tinygemm w4a16_gemv: tensor-core GEMV for decode (fast at M <= 16; any M correct)."""

    name = "tinygemm_gemv"  # was tinygemm_cuda: still accepted, and read from old CSVs (results.BACKEND_ALIASES)
    kernel = "gemv"

    @staticmethod
    def run(qw, x):
        return ops.call(ops.w4a16_gemv, x, qw.qweight, qw.scales, qw.zeros, qw.group_size)


class TinygemmGemmSm90(_Tinygemm):
    """tinygemm w4a16_gemm_sm90: Hopper tensor-core GEMM (wgmma, TMA, cluster split-K), any M."""

    name = "tinygemm_gemm_sm90"
    kernel = "gemm_sm90"

    def unavailable(self):
        why = super().unavailable()
        if why:
            return why
        if not api.has_gemm_sm90():
            return "this build of tinygemm has no sm_90a code (CMAKE_CUDA_ARCHITECTURES without 90a)"
        if torch.cuda.get_device_capability() != (9, 0):
            return f"needs a Hopper GPU (compute capability 9.0); this is {torch.cuda.get_device_capability()}"
        return None

    def layout(self, device):
        return formats.LAYOUT_SM90

    @staticmethod
    def run(qw, x):
        return ops.call(ops.w4a16_gemm_sm90, x, qw.qweight, qw.scales, qw.zeros, qw.group_size)


class TinygemmAuto(_Tinygemm):
    """tinygemm w4a16_matmul(backend='auto'): the kernel its dispatch picks for M, N, K and the GPU."""

    name = "tinygemm_auto"
    kernel = "auto"

    def layout(self, device):
        return api.preferred_layout(device)

    @staticmethod
    def run(qw, x):
        return api.w4a16_matmul(x, qw)


class TinygemmTriton(_Tinygemm):
    """tinygemm w4a16_gemm: Triton INT4 GEMM for any M (launch configuration from pick_config)."""

    name = "tinygemm_triton"
    kernel = "triton"

    def unavailable(self):
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed"
        return None if torch.cuda.is_available() else "no GPU visible to torch"

    @staticmethod
    def run(qw, x):
        return ops.call(ops.w4a16_gemm, x, qw.qweight, qw.scales, qw.zeros, qw.group_size)


class DequantMatmul(_Tinygemm):
    """tinygemm w4_dequant + torch.matmul, both kernels timed."""

    name = "dequant_matmul"

    @staticmethod
    def run(qw, x):
        return torch.matmul(x, ops.call(ops.w4_dequant, qw.qweight, qw.scales, qw.zeros, qw.group_size))

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        prep = super().prepare(w, p)
        prep.workspace_bytes = p.K * p.N * torch.finfo(p.dtype).bits // 8
        prep.note = "dequantized weight re-made each call"
        return prep
