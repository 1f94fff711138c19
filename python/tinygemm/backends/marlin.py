"""vLLM Marlin (marlin_gemm, or gptq_marlin_gemm in older vLLM): uint4b8, uint4 with zero points,
uint8b128 (INT8), group sizes -1/32/64/128, act_order and is_k_full where the installed vLLM has them.

Weights are prepared with vLLM's own Marlin test utilities (what vLLM's benchmark_marlin.py does);
the reference multiplies by the dequantized weights those utilities return.
"""

from __future__ import annotations

import inspect

import torch

from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes
from . import _vllm


class Marlin(Backend):
    """vLLM Marlin mixed-precision GEMM."""

    op = "marlin"

    def __init__(self, qtype: str, act_order: bool = False, k_full: bool = True, default: bool = True):
        self.qtype, self.act_order, self.k_full, self.default = qtype, act_order, k_full, default
        self.name = "marlin_" + qtype + ("_actorder" if act_order else "") + ("" if k_full else "_kpartial")
        self.tolerance = 2e-2

    def _fn(self, v):
        return getattr(v.ops, "marlin_gemm", None) or getattr(v.ops, "gptq_marlin_gemm", None)

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        v = _vllm.load()
        if isinstance(v, str):
            return v
        if self._fn(v) is None:
            return f"vLLM {v.version} has neither marlin_gemm nor gptq_marlin_gemm"
        params = inspect.signature(self._fn(v)).parameters
        if self.act_order and "g_idx" not in params:
            return f"vLLM {v.version}'s Marlin has no act_order (g_idx was removed)"
        if not self.k_full and "is_k_full" not in params:
            return f"vLLM {v.version}'s Marlin has no is_k_full"
        if not hasattr(v.scalar_types, self.qtype):
            return f"vLLM {v.version} has no scalar type {self.qtype}"
        return None

    def unsupported(self, p: Problem):
        if p.dtype not in (torch.float16, torch.bfloat16):
            return f"Marlin takes fp16/bf16 activations; got {p.dtype}"
        if p.N % 64 or p.K % 128:
            return f"Marlin needs N % 64 == 0 and K % 128 == 0; got K={p.K}, N={p.N}"
        if p.group_size not in (-1, 32, 64, 128):
            return f"Marlin group sizes are -1/32/64/128; got {p.group_size}"
        if p.group_size != -1 and p.K % p.group_size:
            return f"K % group_size != 0 (K={p.K}, group {p.group_size})"
        if self.act_order and p.group_size in (-1, p.K):
            return "act_order needs a group size smaller than K"
        if self.qtype == "uint4" and self.act_order:
            return "zero-point Marlin has no act_order"
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        v = _vllm.load()
        qt = getattr(v.scalar_types, self.qtype)
        wd = w.to(p.dtype)
        if self.qtype == "uint4":
            w_ref, q_w, s, zp = v.marlin_utils_test.awq_marlin_quantize(wd, qt, p.group_size)
            g_idx = perm = None
        else:
            sig = inspect.signature(v.marlin_utils_test.marlin_quantize).parameters
            args = (wd, qt, p.group_size, self.act_order) if "act_order" in sig else (wd, qt, p.group_size)
            res = v.marlin_utils_test.marlin_quantize(*args)
            w_ref, q_w, s = res[0], res[1], res[2]
            g_idx, perm = (res[3], res[4]) if len(res) > 3 else (None, None)
            zp = None
        mu = v.marlin_utils
        workspace = (mu.marlin_make_workspace_new(wd.device) if hasattr(mu, "marlin_make_workspace_new")
                     else v.marlin_utils_test.MarlinWorkspace(p.N, 64, 16).scratch)
        fn = self._fn(v)
        params = inspect.signature(fn).parameters
        K, N, k_full = p.K, p.N, self.k_full

        def call(st, x):
            kw = dict(a=x, c=None, b_q_weight=st["q"], b_bias=None, b_scales=st["s"], a_scales=None,
                      global_scale=None, b_zeros=st["zp"], g_idx=st["g_idx"], perm=st["perm"], workspace=workspace,
                      b_q_type=qt, size_m=x.shape[0], size_n=N, size_k=K, is_k_full=k_full,
                      use_atomic_add=False, use_fp32_reduce=True, is_zp_float=False)
            return fn(**{k: val for k, val in kw.items() if k in params})

        state = {"q": q_w, "s": s, "zp": zp, "g_idx": g_idx, "perm": perm}
        return Prepared(call=call, states=[state], clone=clone_tensors, ref_w=w_ref.float(),
                        weight_bytes=tensor_bytes({"q": q_w, "s": s, "zp": zp}),
                        weight_format=f"marlin_{self.qtype}_g{p.group_size}", x_dtype=p.dtype,
                        workspace_bytes=tensor_bytes(workspace),
                        note=f"vllm {v.version}" + (", act_order" if self.act_order else "")
                        + ("" if k_full else ", is_k_full=False"))


def variants() -> list[Marlin]:
    return [
        Marlin("uint4b8"),
        Marlin("uint4", default=False),
        Marlin("uint8b128", default=False),
        Marlin("uint4b8", act_order=True, default=False),
        Marlin("uint4b8", act_order=True, k_full=False, default=False),
    ]
