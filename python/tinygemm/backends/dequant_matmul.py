"""Dequantize INT4 to fp16/bf16 (tinygemm's w4_dequant kernel), then torch.matmul: both timed."""

from __future__ import annotations

import torch

from .. import formats, ops
from .._ext import GPU_BACKEND
from . import Backend, Prepared, Problem, clone_tensors


class DequantMatmul(Backend):
    """tinygemm w4_dequant + torch.matmul, both kernels timed."""

    name = "dequant_matmul"
    op = "w4a16"

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        return None if GPU_BACKEND != "cpu" else "tinygemm was built without GPU support"

    def unsupported(self, p: Problem):
        try:
            formats.check_shape(p.K, p.N, p.group_size)
        except ValueError as e:
            return str(e)
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        qw = formats.quantize(w.to(p.dtype), p.group_size, p.symmetric)

        def call(s, x):
            return torch.matmul(x, ops.w4_dequant(s.qweight, s.scales, s.zeros, s.group_size))

        return Prepared(call=call, states=[qw], clone=lambda s: formats.QuantizedWeight(
            s.qweight.clone(), s.scales.clone(), None if s.zeros is None else s.zeros.clone(), s.shape, s.group_size),
            ref_w=formats.dequantize(qw, torch.float32), weight_bytes=qw.nbytes(),
            weight_format=f"tinygemm_{qw.format}_g{p.group_size}", x_dtype=p.dtype,
            workspace_bytes=p.K * p.N * torch.finfo(p.dtype).bits // 8, note="dequantized weight re-made each call")
