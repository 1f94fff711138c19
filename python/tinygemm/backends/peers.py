"""INT4/INT8 peers that tinygemm looked for but has no backend for, and why — printed by
--list-backends so that a missing peer is a stated fact, not a silent gap."""

from __future__ import annotations

import importlib.util

import torch

from . import _vllm


def _cc() -> tuple[int, int] | None:
    return torch.cuda.get_device_capability() if torch.cuda.is_available() and torch.version.hip is None else None


def other_peers() -> list[tuple[str, str]]:
    v = _vllm.load()
    ver = "vLLM" if isinstance(v, str) else f"vLLM {v.version}"
    out = []
    if isinstance(v, str):
        out.append(("vllm_allspark_w8a16", v))
        out.append(("vllm_marlin_24 (2:4 sparse)", v))
    else:
        if not hasattr(v.ops, "allspark_w8a16_gemm"):
            out.append(("vllm_allspark_w8a16", f"{ver} has no allspark_w8a16_gemm"))
        else:
            cc = _cc()
            on = "no NVIDIA GPU visible" if cc is None else f"this GPU is compute capability {cc[0]}.{cc[1]}"
            out.append(("vllm_allspark_w8a16", f"{ver} has it, for compute capability 8.0-8.9 only (its "
                        f"AllSparkLinearKernel's rule); {on}: no backend, as none could be tested here"))
        has24 = hasattr(v.ops, "gptq_marlin_24_gemm")
        out.append(("vllm_marlin_24 (2:4 sparse)", f"{ver} has gptq_marlin_24_gemm, not yet wrapped by tinygemm"
                    if has24 else f"{ver} has no gptq_marlin_24_gemm (removed from vLLM)"))
    for mod in ("exllamav2",):  # gemlite has its own backend (backends/gemlite.py)
        out.append((mod, "installed, not yet wrapped by tinygemm" if importlib.util.find_spec(mod)
                    else "not installed (pip install " + mod + "); no backend"))
    return out
