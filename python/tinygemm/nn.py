"""Int4Linear: a drop-in for torch.nn.Linear with 4-bit weights (W4A16)."""

from __future__ import annotations

import torch

from .api import BACKENDS, w4a16_matmul
from .formats import QuantizedWeight, quantize


class Int4Linear(torch.nn.Module):
    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None = None, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
        self.in_features, self.out_features = qw.shape
        self.group_size = qw.group_size
        self.backend = backend
        self.register_buffer("qweight", qw.qweight)
        self.register_buffer("scales", qw.scales)
        self.register_buffer("zeros", qw.zeros)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, group_size: int = 128, symmetric: bool = True,
                    backend: str = "auto") -> "Int4Linear":
        """Quantize a Linear (weight [out, in]) with round-to-nearest; the bias is kept as is."""
        w = linear.weight.detach().t()  # y = x @ W with W [in, out]
        qw = quantize(w, group_size=group_size, symmetric=symmetric)
        bias = linear.bias.detach().to(qw.dtype) if linear.bias is not None else None
        return cls(qw, bias, backend)

    @property
    def quantized_weight(self) -> QuantizedWeight:
        return QuantizedWeight(self.qweight, self.scales, self.zeros, (self.in_features, self.out_features),
                               self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = w4a16_matmul(x, self.quantized_weight, self.backend)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"group_size={self.group_size}, backend={self.backend}")
