"""Quantized checkpoints on disk: safetensors files plus config.json's `quantization_config`.

Reads the 4-bit formats that formats.py converts: GPTQ (AutoGPTQ / GPTQModel, incl. act-order and
sym=False, v1 and gptq_v2 zero points), AWQ (AutoAWQ GEMM) and compressed-tensors `pack-quantized`
(llm-compressor W4A16). A layer is quantized where the checkpoint holds its packed tensors
(`<name>.qweight` or `<name>.weight_packed`); the config says how to read them.

Writes GPTQ and AWQ checkpoints of a model by round-to-nearest (save_quantized: for tests and
benchmarks, where the real quantizers' packages are not installed; the values are RTN, the layout is
the formats' own).
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field, replace

import torch

from . import formats
from .formats import QuantizedWeight

METHODS = ("gptq", "awq", "compressed-tensors")
# the tensor that marks a quantized layer, per method
PACKED_SUFFIX = {"gptq": "qweight", "awq": "qweight", "compressed-tensors": "weight_packed"}


@dataclass(frozen=True)
class QuantConfig:
    method: str                 # one of METHODS
    group_size: int | None      # -1 per channel; None: read per layer from the scales (compressed-tensors)
    zero_offset: int = 1        # GPTQ: stored zero = z - 1 in v1 checkpoints, z in gptq_v2
    raw: dict = field(default_factory=dict, compare=False)


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def parse_quant_config(qc: dict) -> QuantConfig:
    """A `quantization_config` dict (or AutoGPTQ's quantize_config.json) to a QuantConfig."""
    method = str(qc.get("quant_method", "gptq" if "desc_act" in qc else "")).lower()
    _need(method in METHODS, f"quant_method must be one of {METHODS}; got {method!r}")
    if method == "compressed-tensors":
        for name, scheme in (qc.get("config_groups") or {}).items():
            w = scheme.get("weights") if isinstance(scheme, dict) else None
            if not w:
                continue
            fmt = scheme.get("format") or qc.get("format")
            _need(fmt == "pack-quantized", f"compressed-tensors group {name}: format must be pack-quantized "
                  f"(4-bit integer weights packed in int32); got {fmt!r}")
            _need(w.get("num_bits") == 4 and w.get("type", "int") == "int",
                  f"compressed-tensors group {name}: tinygemm takes 4-bit int weights; got "
                  f"{w.get('num_bits')}-bit {w.get('type')}")
            _need(w.get("strategy") in ("group", "channel"),
                  f"compressed-tensors group {name}: strategy must be group or channel; got {w.get('strategy')!r}")
            _need(scheme.get("input_activations") is None,
                  f"compressed-tensors group {name}: quantized activations are not W4A16")
        return QuantConfig(method, None, raw=qc)
    bits = qc.get("bits", qc.get("w_bit"))
    _need(bits == 4, f"{method}: tinygemm takes 4-bit weights; got bits = {bits}")
    gs = int(qc.get("group_size", qc.get("q_group_size", -1)))
    if method == "awq":
        version = str(qc.get("version", "gemm")).lower()
        _need(version == "gemm", f"awq: only the GEMM packing (version 'gemm') is read; got {version!r}")
        _need(qc.get("zero_point", True), "awq: zero_point=False checkpoints are not read (AWQ GEMM has zero points)")
        return QuantConfig(method, gs, raw=qc)
    fmt = str(qc.get("checkpoint_format", qc.get("format", "gptq"))).lower()  # GPTQModel writes either key
    _need(fmt in ("gptq", "gptq_v2"), f"gptq: checkpoint_format must be gptq or gptq_v2; got {fmt!r}")
    return QuantConfig(method, gs, zero_offset=0 if fmt == "gptq_v2" else 1, raw=qc)


def read_quant_config(path: str) -> QuantConfig:
    """config.json's quantization_config, else quantize_config.json (older AutoGPTQ checkpoints)."""
    cfg = os.path.join(path, "config.json")
    if os.path.exists(cfg):
        with open(cfg) as f:
            qc = json.load(f).get("quantization_config")
        if qc:
            return parse_quant_config(qc)
    alt = os.path.join(path, "quantize_config.json")
    if os.path.exists(alt):
        with open(alt) as f:
            return parse_quant_config(json.load(f))
    raise ValueError(f"{path}: no quantization_config in config.json and no quantize_config.json")


class Tensors:
    """The tensors of every *.safetensors file in a directory, read on demand by name."""

    def __init__(self, path: str):
        from safetensors import safe_open

        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors")) if os.path.isdir(path) else []
        if not files:
            raise ValueError(f"{path}: no .safetensors files")
        self._handles = {}
        self.where: dict[str, str] = {}
        for f in files:
            h = safe_open(os.path.join(path, f), framework="pt")
            self._handles[f] = h
            for k in h.keys():
                self.where[k] = f

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def keys(self):
        return self.where.keys()

    def get(self, name: str) -> torch.Tensor:
        return self._handles[self.where[name]].get_tensor(name)


def quantized_prefixes(tensors: Tensors, cfg: QuantConfig) -> list[str]:
    """Names of the layers the checkpoint holds packed weights for."""
    suffix = "." + PACKED_SUFFIX[cfg.method]
    return sorted(k[: -len(suffix)] for k in tensors.keys() if k.endswith(suffix))


def layer_tensor_names(prefix: str, cfg: QuantConfig) -> list[str]:
    """Every tensor name a quantized layer may own (the bias is loaded with it)."""
    if cfg.method == "compressed-tensors":
        names = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx", "bias")
    else:
        names = ("qweight", "qzeros", "scales", "g_idx", "bias")
    return [f"{prefix}.{n}" for n in names]


def load_layer(tensors: Tensors, prefix: str, cfg: QuantConfig, dtype: torch.dtype,
               device: torch.device | str | None = None) -> QuantizedWeight:
    """One layer's QuantizedWeight, scales in `dtype` (the model's fp16/bf16), on `device`.

    Errors name the layer: a shape the kernels cannot take is a ValueError with its name and shape.
    """
    def t(name, required=True):
        full = f"{prefix}.{name}"
        if full not in tensors:
            if required:
                raise ValueError(f"{prefix}: the checkpoint has no {full}")
            return None
        return tensors.get(full).to(device) if device is not None else tensors.get(full)

    try:
        if cfg.method == "compressed-tensors":
            return formats.from_compressed_tensors(
                t("weight_packed"), t("weight_scale").to(dtype), t("weight_shape", False),
                t("weight_zero_point", False), None, t("weight_g_idx", False))
        scales = t("scales").to(dtype)
        if cfg.method == "awq":
            return formats.from_awq(t("qweight"), t("qzeros"), scales, cfg.group_size)
        return formats.from_gptq(t("qweight"), t("qzeros"), scales, cfg.group_size, zero_offset=cfg.zero_offset,
                                 g_idx=t("g_idx", False))
    except ValueError as e:
        raise ValueError(f"layer {prefix} ({cfg.method}{_packed_shape(tensors, prefix, cfg)}): {e}") from None


def _packed_shape(tensors: Tensors, prefix: str, cfg: QuantConfig) -> str:
    """", K=.. x N=.." read off the packed tensor's shape, for error messages."""
    name = f"{prefix}.{PACKED_SUFFIX[cfg.method]}"
    if name not in tensors:
        return ""
    r, c = tensors.get(name).shape
    K, N = {"gptq": (r * 8, c), "awq": (r, c * 8), "compressed-tensors": (c * 8, r)}[cfg.method]
    return f", K={K} x N={N} (in x out)"


def name_matches(name: str, patterns) -> bool:
    """A module name matches a pattern equal to it, to its last components ("lm_head",
    "mlp.down_proj"), or as an fnmatch glob ("*.mlp.*")."""
    return any(name == p or name.endswith("." + p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def quantize_linear_weight(weight_nk: torch.Tensor, group_size: int, symmetric: bool,
                           act_order: bool) -> QuantizedWeight:
    """Round-to-nearest of an nn.Linear weight [N, K]. With act_order the rows of W = weight.t() are
    quantized in descending order of their norm (a stand-in for GPTQ's descending Hessian diagonal,
    which needs activations) and the order is kept as the weight's perm."""
    w = weight_nk.detach().t()
    if not act_order:
        return formats.quantize(w, group_size, symmetric)
    perm = torch.argsort(w.float().norm(dim=1), descending=True, stable=True)
    return replace(formats.quantize(w[perm], group_size, symmetric), perm=perm.to(torch.int32))


def save_quantized(model: torch.nn.Module, path: str, method: str = "gptq", group_size: int = 128,
                   symmetric: bool = True, act_order: bool = False, skip=("lm_head",),
                   zero_offset: int = 1) -> dict[str, QuantizedWeight]:
    """Write a GPTQ or AWQ checkpoint of `model` (its nn.Linear layers quantized by round-to-nearest,
    everything else as is) to a new directory: model.safetensors + config.json with the
    quantization_config those formats' loaders read. Returns the layers' QuantizedWeights."""
    from safetensors.torch import save_file

    if method not in ("gptq", "awq"):
        raise ValueError(f"save_quantized writes gptq or awq; got {method!r}")
    if method == "awq" and (act_order or symmetric):
        raise ValueError("AWQ checkpoints have zero points and no act-order: use symmetric=False, act_order=False")
    if os.path.exists(path) and os.listdir(path):
        raise ValueError(f"{path} exists and is not empty: not overwriting it")
    tensors, qws, seen = {}, {}, set()
    quantized = {n for n, m in model.named_modules() if type(m) is torch.nn.Linear and not name_matches(n, skip)}
    for name, t in model.state_dict().items():
        layer, _, leaf = name.rpartition(".")
        if layer in quantized and leaf == "weight":
            qw = qws[layer] = quantize_linear_weight(t, group_size, symmetric, act_order)
            packed = formats.to_gptq(qw, zero_offset) if method == "gptq" else formats.to_awq(qw)
            tensors.update({f"{layer}.{k}": v.cpu() for k, v in packed.items()})
        elif t.data_ptr() not in seen:  # tied weights are saved once
            seen.add(t.data_ptr())
            tensors[name] = t.detach().cpu()
    qc = {"quant_method": method, "bits": 4, "group_size": group_size}
    qc.update({"desc_act": act_order, "sym": symmetric, "checkpoint_format": "gptq" if zero_offset else "gptq_v2"}
              if method == "gptq" else {"zero_point": True, "version": "gemm"})
    config = model.config.to_dict() if hasattr(model, "config") and hasattr(model.config, "to_dict") else {}
    config["quantization_config"] = qc
    os.makedirs(path, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2, default=str)
    return qws
