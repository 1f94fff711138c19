"""Int4Linear: a drop-in for torch.nn.Linear with 4-bit weights (W4A16), and putting it in a model.

    report = tinygemm.nn.load_quantized(model, "path/to/gptq-or-awq-or-compressed-tensors")
    report = tinygemm.nn.quantize_model(model, group_size=128, skip=("lm_head",))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from . import checkpoints
from .api import preferred_layout, resolve_backend, w4a16_matmul
from .formats import QuantizedWeight, check_shape, dequantize, quantize, to_layout

log = logging.getLogger("tinygemm")


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
        self.register_buffer("perm", qw.perm)
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
                               self.group_size, self.layout, perm=self.perm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and self.backend == "auto":
            # No kernel runs on the CPU: the reference path, x @ W with W dequantized (exact, slow; it
            # lets a quantized model run in CPU tests). backend="triton" still asks for the Triton
            # kernel (its interpreter under TRITON_INTERPRET=1).
            y = x @ dequantize(self.quantized_weight, x.dtype)
        else:
            y = w4a16_matmul(x, self.quantized_weight, self.backend)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"group_size={self.group_size}, backend={self.backend}"
                + (", act_order" if self.perm is not None else ""))


@dataclass
class SwapReport:
    """What a swap did, layer by layer; nothing is dropped without its name here."""

    replaced: list[str] = field(default_factory=list)   # Linear -> Int4Linear
    skipped: list[str] = field(default_factory=list)    # "name: why" (skip list, shape, dtype), left as is
    unmatched: list[str] = field(default_factory=list)  # Linears the checkpoint has no packed weights for
    unused: list[str] = field(default_factory=list)     # checkpoint tensors no module took
    dense_loaded: list[str] = field(default_factory=list)  # plain tensors copied into the model
    missing: list[str] = field(default_factory=list)    # model tensors the checkpoint does not have

    def log(self) -> "SwapReport":
        log.info("tinygemm: %d linear layers now Int4Linear", len(self.replaced))
        for what in ("skipped", "unmatched", "unused", "missing"):
            names = getattr(self, what)
            if names:
                log.warning("tinygemm: %d %s: %s", len(names), what, ", ".join(names))
        return self


def _set_module(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _linears(model: torch.nn.Module):
    """(name, nn.Linear) pairs, looked up one at a time: a replaced layer's dense weight is freed as
    the walk goes on, not held to the end by a list of modules."""
    for name in [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]:
        yield name, model.get_submodule(name)


def quantize_model(model: torch.nn.Module, group_size: int = 128, symmetric: bool = True,
                   skip=("lm_head",), backend: str = "auto") -> SwapReport:
    """Quantize an fp16/bf16 model's nn.Linear layers in place (round-to-nearest, groups along K).

    Layers named in `skip`, in another dtype, or of a shape the kernels cannot take stay as they are
    and are listed in the report's `skipped` with the reason.
    """
    rep = SwapReport()
    for name, lin in _linears(model):
        K, N = lin.in_features, lin.out_features
        if checkpoints.name_matches(name, skip):
            rep.skipped.append(f"{name}: in the skip list")
            continue
        if lin.weight.dtype not in (torch.float16, torch.bfloat16):
            rep.skipped.append(f"{name}: weight dtype {lin.weight.dtype} (fp16/bf16 only)")
            continue
        try:
            check_shape(K, N, group_size)
        except ValueError as e:
            rep.skipped.append(f"{name}: shape K={K} x N={N}: {e}")
            continue
        _set_module(model, name, Int4Linear.from_linear(lin, group_size, symmetric, backend))
        del lin
        rep.replaced.append(name)
    return rep.log()


def load_quantized(model: torch.nn.Module, path: str, backend: str = "auto", load_dense: bool = True,
                   skip=()) -> SwapReport:
    """Swap each nn.Linear whose packed weights a quantized checkpoint holds for an Int4Linear.

    `path`: a directory of *.safetensors files with config.json's quantization_config (quant_method
    gptq, awq or compressed-tensors; AutoGPTQ's quantize_config.json also works). Layers are matched
    by their module name (`model.layers.0.self_attn.q_proj` reads `...q_proj.qweight`). The model must
    be fp16 or bf16: scales take each layer's dtype, Int4Linears go on its device. With `load_dense`
    the checkpoint's other tensors (embeddings, norms, an unquantized lm_head) are copied into the
    model's parameters and buffers of the same name. A layer the kernels cannot take is a ValueError
    naming it; layers in `skip` keep their dense weights. Everything left over is in the report.
    """
    cfg = checkpoints.read_quant_config(path)
    tensors = checkpoints.Tensors(path)
    packed = set(checkpoints.quantized_prefixes(tensors, cfg))
    taken: set[str] = set()
    rep = SwapReport()
    for name, lin in _linears(model):
        if name not in packed:
            rep.unmatched.append(name)
            continue
        if checkpoints.name_matches(name, skip):
            rep.skipped.append(f"{name}: in the skip list")
            continue
        dtype = lin.weight.dtype
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"layer {name}: the model must be fp16 or bf16 (the kernels' activation dtypes); "
                             f"its weight is {dtype}")
        qw = checkpoints.load_layer(tensors, name, cfg, dtype, lin.weight.device)
        qw = to_layout(qw, preferred_layout(lin.weight.device))  # the fastest kernels' layout there
        if qw.shape != (lin.in_features, lin.out_features):
            raise ValueError(f"layer {name}: checkpoint weight is K={qw.shape[0]} x N={qw.shape[1]}, the model's "
                             f"Linear is {lin.in_features} x {lin.out_features}")
        bias = None
        if f"{name}.bias" in tensors:
            bias = tensors.get(f"{name}.bias").to(device=lin.weight.device, dtype=dtype)
        elif lin.bias is not None:
            rep.missing.append(f"{name}.bias")
            bias = lin.bias.detach().to(dtype)
        _set_module(model, name, Int4Linear(qw, bias, backend))
        del lin
        rep.replaced.append(name)
        taken.update(checkpoints.layer_tensor_names(name, cfg))
    rest = [k for k in tensors.keys() if k not in taken]
    if load_dense:
        own = dict(model.named_parameters())
        own.update(model.named_buffers())
        loaded_ids = set()
        with torch.no_grad():
            for k in rest:
                if k in own:
                    src = tensors.get(k)
                    if tuple(src.shape) != tuple(own[k].shape):
                        raise ValueError(f"checkpoint tensor {k} is {tuple(src.shape)}; the model's is "
                                         f"{tuple(own[k].shape)}")
                    own[k].copy_(src)
                    rep.dense_loaded.append(k)
                    loaded_ids.add(id(own[k]))
                else:
                    rep.unused.append(k)
        # tied tensors (lm_head.weight = embed_tokens.weight) appear once in named_parameters()
        rep.missing += [n for n, p in model.named_parameters() if id(p) not in loaded_ids]
    else:
        rep.unused += rest
    return rep.log()

