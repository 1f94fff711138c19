"""vLLM Marlin (marlin_gemm, or gptq_marlin_gemm in older vLLM): uint4b8, uint4 with zero points,
uint8b128 (INT8), group sizes -1/32/64/128, act_order and is_k_full where the installed vLLM has them;
FP8 weights (float8_e4m3fn, per channel or group 128) and FP4 weights (NVFP4: e2m1 with fp8 scales
per 16, MXFP4: e8m0 scales per 32 — each format's fixed block, whatever --group-size says).

Weights are prepared with vLLM's own Marlin utilities (what vLLM's benchmark_marlin.py and its
tests do); the reference multiplies by the dequantized weights those utilities return. The FP4
utilities draw random FP4 codes (vLLM's tests do the same): the timing does not depend on values.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import torch

from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes
from . import _vllm


class Marlin(Backend):
    """vLLM Marlin mixed-precision GEMM."""

    op = "marlin"

    # formats whose block is fixed, and the scalar type vLLM calls their codes
    FIXED_GROUP = {"nvfp4": 16, "mxfp4": 32}
    SCALAR_TYPE = {"nvfp4": "float4_e2m1f", "mxfp4": "float4_e2m1f"}

    def __init__(self, qtype: str, act_order: bool = False, k_full: bool = True, default: bool = True):
        self.qtype, self.act_order, self.k_full, self.default = qtype, act_order, k_full, default
        self.name = "marlin_" + qtype + ("_actorder" if act_order else "") + ("" if k_full else "_kpartial")
        self.tolerance = 2e-2

    def group_size(self, p: Problem) -> int:
        return self.FIXED_GROUP.get(self.qtype, p.group_size)

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
        if not hasattr(v.scalar_types, self.SCALAR_TYPE.get(self.qtype, self.qtype)):
            return f"vLLM {v.version} has no scalar type {self.SCALAR_TYPE.get(self.qtype, self.qtype)}"
        if self.qtype in ("float8_e4m3fn", "nvfp4", "mxfp4"):
            mod = "marlin_utils_fp8" if self.qtype.startswith("float8") else "marlin_utils_fp4"
            try:
                importlib.import_module(f"vllm.model_executor.layers.quantization.utils.{mod}")
            except Exception as e:
                return f"vLLM {v.version} has no {mod} ({type(e).__name__})"
        return None

    def unsupported(self, p: Problem):
        if p.dtype not in (torch.float16, torch.bfloat16):
            return f"Marlin takes fp16/bf16 activations; got {p.dtype}"
        if p.N % 64 or p.K % 128:
            return f"Marlin needs N % 64 == 0 and K % 128 == 0; got K={p.K}, N={p.N}"
        if self.qtype == "mxfp4" and p.dtype != torch.bfloat16:
            return f"MXFP4 Marlin runs with bf16 activations only (its e8m0 scales); got {p.dtype}"
        gs = self.group_size(p)
        if self.qtype == "float8_e4m3fn" and gs not in (-1, 128):
            return f"FP8 Marlin takes per-channel scales (-1) or group 128; got {gs}"
        if gs not in (-1, 16, 32, 64, 128):
            return f"Marlin group sizes are -1/32/64/128; got {gs}"
        if gs != -1 and p.K % gs:
            return f"K % group_size != 0 (K={p.K}, group {gs})"
        if self.act_order and p.group_size in (-1, p.K):
            return "act_order needs a group size smaller than K"
        if self.qtype == "uint4" and self.act_order:
            return "zero-point Marlin has no act_order"
        return None

    def _quantize(self, v, wd: torch.Tensor, p: Problem):
        """(w_ref [K, N], marlin weight, scales, zero points, g_idx, perm, global scale, scalar type)."""
        gs = self.group_size(p)
        utils = "vllm.model_executor.layers.quantization.utils."
        if self.qtype == "float8_e4m3fn":
            fp8 = importlib.import_module(utils + "marlin_utils_fp8")
            w_ref, q_w, s = fp8.marlin_quant_fp8_torch(wd.t().contiguous(), gs)
            return w_ref, q_w, s, None, None, None, None, v.scalar_types.float8_e4m3fn
        if self.qtype in ("nvfp4", "mxfp4"):
            fp4 = importlib.import_module(utils + "marlin_utils_fp4")
            make = getattr(fp4, f"rand_marlin_weight_{self.qtype}_like")
            res = make(wd.t().contiguous(), gs)
            global_scale = res[3] if self.qtype == "nvfp4" else None
            return res[0], res[1], res[2], None, None, None, global_scale, v.scalar_types.float4_e2m1f
        qt = getattr(v.scalar_types, self.qtype)
        if self.qtype == "uint4":
            w_ref, q_w, s, zp = v.marlin_utils_test.awq_marlin_quantize(wd, qt, gs)
            return w_ref, q_w, s, zp, None, None, None, qt
        sig = inspect.signature(v.marlin_utils_test.marlin_quantize).parameters
        args = (wd, qt, gs, self.act_order) if "act_order" in sig else (wd, qt, gs)
        res = v.marlin_utils_test.marlin_quantize(*args)
        g_idx, perm = (res[3], res[4]) if len(res) > 3 else (None, None)
        return res[0], res[1], res[2], None, g_idx, perm, None, qt

    def _repack(self, v, p: Problem):
        """The load-time repack into Marlin's layout, from a (random) checkpoint tensor of the layer's shape:
        GPTQ int32 [K * bits / 32, N] (gptq_marlin_repack; act_order adds a row permutation), AWQ int32
        [K, N / 8] (awq_marlin_repack), FP8 / FP4 codes packed into int32 along K. The source is made on
        the first (untimed) call, so a sweep without --prepare-cost never allocates it."""
        K, N = p.K, p.N
        bits = 8 if self.qtype in ("uint8b128", "float8_e4m3fn") else 4
        dev = torch.device("cuda")

        def words(rows, cols):
            return functools.cache(lambda: torch.randint(-2**31, 2**31 - 1, (rows, cols), dtype=torch.int32, device=dev))

        if self.qtype == "uint4":
            src = words(K, N // 8)
            return (lambda: v.ops.awq_marlin_repack(src(), K, N, 4)), "AWQ int32 [K, N/8]"
        src = words(K * bits // 32, N)
        perm = functools.cache(lambda: torch.randperm(K, device=dev).to(torch.int32) if self.act_order
                               else torch.empty(0, dtype=torch.int32, device=dev))
        what = {"float8_e4m3fn": "FP8 codes", "nvfp4": "FP4 codes", "mxfp4": "FP4 codes"}.get(self.qtype, "GPTQ int32")
        return (lambda: v.ops.gptq_marlin_repack(src(), perm(), K, N, bits)), \
            f"{what} [K*{bits}/32, N]" + (" + act_order permutation" if self.act_order else "")

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        v = _vllm.load()
        wd = w.to(p.dtype)
        w_ref, q_w, s, zp, g_idx, perm, global_scale, qt = self._quantize(v, wd, p)
        mu = v.marlin_utils
        workspace = (mu.marlin_make_workspace_new(wd.device) if hasattr(mu, "marlin_make_workspace_new")
                     else v.marlin_utils_test.MarlinWorkspace(p.N, 64, 16).scratch)
        fn = self._fn(v)
        params = inspect.signature(fn).parameters
        K, N, k_full = p.K, p.N, self.k_full

        def call(st, x):
            kw = dict(a=x, c=None, b_q_weight=st["q"], b_bias=None, b_scales=st["s"], a_scales=None,
                      global_scale=st["gs"], b_zeros=st["zp"], g_idx=st["g_idx"], perm=st["perm"],
                      workspace=workspace, b_q_type=qt, size_m=x.shape[0], size_n=N, size_k=K, is_k_full=k_full,
                      use_atomic_add=False, use_fp32_reduce=True, is_zp_float=False)
            return fn(**{k: val for k, val in kw.items() if k in params})

        state = {"q": q_w, "s": s, "zp": zp, "g_idx": g_idx, "perm": perm, "gs": global_scale}
        repack, repack_from = self._repack(v, p)
        gs = self.group_size(p)
        return Prepared(call=call, states=[state], clone=clone_tensors, ref_w=w_ref.float(),
                        weight_bytes=tensor_bytes({"q": q_w, "s": s, "zp": zp, "gs": global_scale}),
                        weight_format=f"marlin_{self.qtype}_g{gs}", x_dtype=p.dtype,
                        workspace_bytes=tensor_bytes(workspace), repack=repack, repack_from=repack_from,
                        note=f"vllm {v.version}" + (", act_order" if self.act_order else "")
                        + ("" if k_full else ", is_k_full=False")
                        + (f", group {gs} (the format's block)" if self.qtype in self.FIXED_GROUP else ""))


def variants() -> list[Marlin]:
    return [
        Marlin("uint4b8"),
        Marlin("uint4", default=False),
        Marlin("uint8b128", default=False),
        Marlin("uint4b8", act_order=True, default=False),
        Marlin("uint4b8", act_order=True, k_full=False, default=False),
        Marlin("float8_e4m3fn", default=False),
        Marlin("nvfp4", default=False),
        Marlin("mxfp4", default=False),
    ]
