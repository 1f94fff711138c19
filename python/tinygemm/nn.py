"""Int4Linear: a drop-in for torch.nn.Linear with 4-bit weights (W4A16)."""

from __future__ import annotations

import torch

from .api import preferred_layout, resolve_backend, w4a16_matmul
from .formats import QuantizedWeight, quantize


class Int4Linear(torch.nn.Module):
    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None = None, backend: str = "auto"):
        super().__init__()
        resolve_backend(backend)  # a clear error now rather than at the first forward
        self.in_features, self.out_features = qw.shape
        self.group_size = qw.group_size
        self.layout = qw.layout
        self.backend = backend
        self.register_buffer("qweight", qw.qweight)
        self.register_buffer("scales", qw.scales)
        self.register_buffer("zeros", qw.zeros)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, group_size: int = 128, symmetric: bool = True,
                    backend: str = "auto") -> "Int4Linear":
        """Quantize a Linear (weight [out, in]) with round-to-nearest; the bias is kept as is. The
        packed layout is the one whose kernels are fastest on the Linear's device."""
        w = linear.weight.detach().t()  # y = x @ W with W [in, out]
        qw = quantize(w, group_size=group_size, symmetric=symmetric, layout=preferred_layout(w.device))
        bias = linear.bias.detach().to(qw.dtype) if linear.bias is not None else None
        return cls(qw, bias, backend)

    @property
    def quantized_weight(self) -> QuantizedWeight:
        return QuantizedWeight(self.qweight, self.scales, self.zeros, (self.in_features, self.out_features),
                               self.group_size, self.layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = w4a16_matmul(x, self.quantized_weight, self.backend)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"group_size={self.group_size}, backend={self.backend}")
