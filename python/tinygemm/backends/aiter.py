"""AMD aiter FP8 GEMMs on ROCm: gemm_a8w8_CK and gemm_a8w8_bpreshuffle, per-token x per-channel scales.

The GEMM is timed; activations are quantized (aiter.pertoken_quant) outside the timed region.
"""

from __future__ import annotations

import functools

import torch

from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes


@functools.lru_cache(maxsize=None)
def _aiter():
    try:
        import aiter
        from aiter.ops.shuffle import shuffle_weight
    except Exception as e:
        return f"aiter (PyPI: amd-aiter) is not importable ({type(e).__name__})"
    return aiter, shuffle_weight


class AiterA8W8(Backend):
    """AMD aiter a8w8 FP8 GEMM (CK or bpreshuffle), bf16 output."""

    op = "scaled_mm"
    tolerance = 8e-2

    def __init__(self, kind: str):
        self.kind = kind
        self.name = f"aiter_{kind}"

    def peak_tflops(self, peaks, dtype):
        """fp8 tensor-core math, whatever the activations' dtype."""
        return peaks.get("fp8") if peaks else None

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        if torch.version.hip is None:
            return "aiter runs on ROCm (AMD Instinct) only"
        a = _aiter()
        return a if isinstance(a, str) else None

    def unsupported(self, p: Problem):
        if self.kind == "bpreshuffle" and (p.N % 16 or p.K % 32):
            return f"bpreshuffle's shuffle_weight needs N % 16 == 0 and K % 32 == 0; got K={p.K}, N={p.N}"
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        aiter, shuffle_weight = _aiter()
        fp8 = aiter.dtypes.fp8
        wq, w_scale = aiter.pertoken_quant(w.t().contiguous().to(torch.bfloat16), quant_dtype=fp8)  # [N, K], [N, 1]
        ref_w = (wq.float() * w_scale.float()).t()
        if self.kind == "bpreshuffle":
            wq = shuffle_weight(wq, layout=(16, 16))
            gemm = aiter.gemm_a8w8_bpreshuffle
        else:
            gemm = aiter.gemm_a8w8_CK

        def make_input(x):
            xq, x_scale = aiter.pertoken_quant(x.to(torch.bfloat16), quant_dtype=fp8)
            return (xq, x_scale), xq.float() * x_scale.float()

        def call(s, xin):
            return gemm(xin[0], s[0], xin[1], s[1], dtype=torch.bfloat16)

        state = (wq, w_scale)
        return Prepared(call=call, states=[state], clone=clone_tensors, ref_w=ref_w, weight_bytes=tensor_bytes(state),
                        weight_format=f"fp8_rowwise_{self.kind}", x_dtype=fp8, make_input=make_input,
                        note="activation quantization not timed")
