"""fp32 references and error measures, shared by the tests and `bench --refcheck`.

Tolerances follow FlashAttention's rule: a kernel's error against the fp32 reference may be at most
a small multiple of the error of the same computation done by torch in the same low precision, plus
a small absolute slack. That adapts to dtype and shape instead of a magic number per test.
"""

from __future__ import annotations

import math

import torch

from .formats import QuantizedWeight, dequantize


def matmul_ref(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """fp32 x @ w (TF32 off) on x's device."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return x.float() @ w.float().to(x.device)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


def w4a16_ref(x: torch.Tensor, qw: QuantizedWeight) -> torch.Tensor:
    """fp32 y = x @ W with W dequantized exactly in fp32."""
    return matmul_ref(x, dequantize(qw, torch.float32))


def w4a16_lowp(x: torch.Tensor, qw: QuantizedWeight) -> torch.Tensor:
    """The same product as torch computes it in x's dtype: the precision baseline for tolerances."""
    return x @ dequantize(qw, x.dtype)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref||_F / ||ref||_F; infinity when out has a NaN or an Inf (NaN never passes)."""
    o = out.float()
    if not bool(torch.isfinite(o).all()):
        return math.inf
    den = ref.float().norm().item()
    return (o - ref.float()).norm().item() / (den if den > 0 else 1.0)


def max_rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max |out - ref| / max |ref| (the bench's max_rel_err column); infinity on NaN/Inf. One readback
    (the finiteness, the numerator and the denominator together): each is a wait on the device."""
    o, r = out.float(), ref.float()
    finite, num, den = torch.stack([torch.isfinite(o).all().float(), (o - r).abs().max(), r.abs().max()]).tolist()
    if not finite:
        return math.inf
    return num / (den if den > 0 else 1.0)


def tolerance(lowp_err: float, factor: float = 2.0, atol: float = 1e-4) -> float:
    """Allowed relative error for a kernel, given torch's own error in the same precision."""
    return factor * lowp_err + atol
