"""MarlinLinear: an nn.Linear stand-in that runs vLLM's Marlin kernel on a GPTQ or AWQ checkpoint's
tensors, prepared the way vLLM's loaders prepare them (for the end-to-end comparison and the
cross-check of tinygemm's converters).

GPTQ (uint4b8, act-order optional): MarlinLinearKernel.process_weights_after_loading — sort g_idx
(marlin_sort_g_idx), gptq_marlin_repack with the sort indices, marlin_permute_scales, empty zero points.
AWQ (uint4 with zero points): AWQMarlinLinearMethod — awq_marlin_repack, marlin_permute_scales,
awq_to_marlin_zero_points. The GEMM is called as backends/marlin.py calls it (marlin_gemm or the older
gptq_marlin_gemm, keyword arguments filtered by the installed vLLM's signature), not through
vLLM's apply_*_marlin_linear, whose forward-context lookups need a running vLLM engine.
"""

from __future__ import annotations

import inspect

import torch

from . import _vllm


def _accepted(fn, kw: dict) -> dict:
    """The keywords of `kw` that the installed vLLM's fn takes (all of them if it takes **kwargs)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kw
    return {k: v for k, v in kw.items() if k in params}


def _kw(fn, *args, **kw):
    """fn(*args, **kw) without the keywords this vLLM's fn does not take (the positional arguments
    are the ones every version has)."""
    return fn(*args, **_accepted(fn, kw))


def load_vllm():
    """vLLM's namespace (see _vllm.load), or a ValueError saying why it cannot be used."""
    v = _vllm.load()
    if isinstance(v, str):
        raise ValueError(v)
    if getattr(v.ops, "marlin_gemm", None) is None and getattr(v.ops, "gptq_marlin_gemm", None) is None:
        raise ValueError(f"vLLM {v.version} has neither marlin_gemm nor gptq_marlin_gemm")
    return v


class MarlinLinear(torch.nn.Module):
    def __init__(self, v, qtype, q, s, zp, g_idx, sort_idx, K, N, bias=None):
        super().__init__()
        self.in_features, self.out_features = K, N
        self._v, self._qtype = v, qtype
        self._fn = getattr(v.ops, "marlin_gemm", None) or v.ops.gptq_marlin_gemm
        self._keys = None
        self.is_k_full = True  # the whole K on one GPU (marlin_is_k_full without tensor parallelism)
        for name, t in (("qweight", q), ("scales", s), ("zeros", zp), ("g_idx", g_idx), ("sort_idx", sort_idx),
                        ("bias", bias)):
            self.register_buffer(name, t)
        mu = v.marlin_utils
        self.register_buffer("workspace", mu.marlin_make_workspace_new(q.device) if hasattr(mu, "marlin_make_workspace_new")
                             else v.marlin_utils_test.MarlinWorkspace(N, 64, 16).scratch)

    @classmethod
    def from_gptq(cls, qweight, scales, group_size, g_idx=None, bias=None) -> "MarlinLinear":
        """Symmetric GPTQ (vLLM's gptq_marlin takes sym=True only): qweight [K/8, N], scales [G, N]."""
        v = load_vllm()
        mu = v.marlin_utils
        K, N = qweight.shape[0] * 8, qweight.shape[1]
        dev = qweight.device
        trivial = g_idx is None or torch.equal(g_idx.long(), torch.arange(K, device=dev) // (K if group_size == -1 else group_size))
        if trivial:
            g, sort_idx = mu.marlin_make_empty_g_idx(dev), mu.marlin_make_empty_g_idx(dev)
        else:
            g, sort_idx = mu.marlin_sort_g_idx(g_idx.to(torch.int32))
        q = _kw(v.ops.gptq_marlin_repack, qweight.contiguous(), sort_idx, K, N, 4, is_a_8bit=False)
        s = _kw(mu.marlin_permute_scales, scales.contiguous(), K, N, group_size, is_a_8bit=False)
        return cls(v, v.scalar_types.uint4b8, q, s, mu.marlin_make_empty_g_idx(dev), g, sort_idx, K, N, bias)

    @classmethod
    def from_awq(cls, qweight, qzeros, scales, group_size, bias=None) -> "MarlinLinear":
        """AWQ: qweight [K, N/8], qzeros [G, N/8] (AWQ's nibble order), scales [G, N]."""
        v = load_vllm()
        mu = v.marlin_utils
        K, N = qweight.shape[0], qweight.shape[1] * 8
        dev = qweight.device
        q = _kw(v.ops.awq_marlin_repack, qweight.contiguous(), K, N, 4, is_a_8bit=False)
        s = _kw(mu.marlin_permute_scales, scales.contiguous(), K, N, group_size, is_a_8bit=False)
        zp = _kw(mu.awq_to_marlin_zero_points, qzeros.contiguous(), scales.shape[0], N, 4, is_a_8bit=False)
        empty = mu.marlin_make_empty_g_idx(dev)
        return cls(v, v.scalar_types.uint4, q, s, zp, empty, empty, K, N, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        kw = dict(a=x2, c=None, b_q_weight=self.qweight, b_bias=None, b_scales=self.scales, a_scales=None,
                  global_scale=None, b_zeros=self.zeros, g_idx=self.g_idx, perm=self.sort_idx, workspace=self.workspace,
                  b_q_type=self._qtype, size_m=x2.shape[0], size_n=self.out_features, size_k=self.in_features,
                  is_k_full=self.is_k_full, use_atomic_add=False, use_fp32_reduce=True, is_zp_float=False)
        if self._keys is None:  # the signature is read once (Python overhead stays out of eager decode)
            self._keys = set(_accepted(self._fn, kw))
        y = self._fn(**{k: v for k, v in kw.items() if k in self._keys})
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, vllm {self._v.version} {self._qtype}"
