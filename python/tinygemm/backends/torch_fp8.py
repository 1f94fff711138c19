"""torch._scaled_mm FP8 (e4m3): per-tensor scales, or per-token x per-channel ("rowwise") scales.

Only the GEMM is timed: activations are quantized to fp8 outside the timed region (a real model
fuses that into the previous op), so the row compares GEMM against GEMM.
"""

from __future__ import annotations

import torch

from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes

FP8_MAX = 448.0  # e4m3fn


def _fp8_dtype():
    # ROCm MI300 uses the "fnuz" variant
    return torch.float8_e4m3fnuz if torch.version.hip else torch.float8_e4m3fn


class TorchScaledMM(Backend):
    """torch._scaled_mm FP8 e4m3, bf16 output."""

    op = "scaled_mm"
    tolerance = 8e-2  # fp8 operands: ~2^-4 relative rounding per element

    def __init__(self, scaling: str):
        self.scaling = scaling
        self.name = f"torch_fp8_{scaling}"

    def peak_tflops(self, peaks, dtype):
        """fp8 tensor-core math, whatever the activations' dtype."""
        return peaks.get("fp8") if peaks else None

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        if not hasattr(torch, "_scaled_mm"):
            return "this torch has no _scaled_mm"
        if torch.version.hip is None and torch.cuda.get_device_capability() < (8, 9):
            return "FP8 needs compute capability 8.9+ (Ada, Hopper)"
        return None

    def unsupported(self, p: Problem):
        if p.K % 16 or p.N % 16:
            return f"_scaled_mm needs K % 16 == 0 and N % 16 == 0; got K={p.K}, N={p.N}"
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        f8 = _fp8_dtype()
        wf = w.float()
        if self.scaling == "tensorwise":
            sw = (wf.abs().max() / FP8_MAX).clamp(min=1e-12).reshape(1, 1)
        else:
            sw = (wf.abs().amax(dim=0, keepdim=True) / FP8_MAX).clamp(min=1e-12)  # [1, N]
        wq_nk = (wf / sw).clamp(-FP8_MAX, FP8_MAX).to(f8).t().contiguous()  # [N, K]: column-major W
        ref_w = wq_nk.float().t() * sw
        scaling = self.scaling

        def make_input(x):
            xf = x.float()
            if scaling == "tensorwise":
                sx = (xf.abs().max() / FP8_MAX).clamp(min=1e-12).reshape(1, 1)
            else:
                sx = (xf.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)  # [M, 1]
            xq = (xf / sx).clamp(-FP8_MAX, FP8_MAX).to(f8)
            return (xq, sx.contiguous()), xq.float() * sx

        def call(s, xin):
            wq, sw_ = s
            xq, sx = xin
            return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw_, out_dtype=torch.bfloat16)

        state = (wq_nk, sw.contiguous())
        return Prepared(call=call, states=[state], clone=clone_tensors, ref_w=ref_w,
                        weight_bytes=tensor_bytes(state), weight_format=f"fp8_e4m3_{self.scaling}",
                        x_dtype=f8, make_input=make_input,
                        note="activation quantization not timed")
