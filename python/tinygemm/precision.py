"""Precision classes: which backends do the same job, so that they are compared with each other.

An FP8 W8A8 kernel reading 1-byte weights and activations does not do the job of a W4A16 kernel,
and neither does that of an fp16 matmul: a "fastest" that mixes them only says that fewer bytes are
faster. The terminal summary of a sweep and the report both group rows with `precision_class`, and
the report's roofline draws one compute ceiling per class with `compute_dtype`. Standard library
only: the analysis tools use it without torch.
"""

from __future__ import annotations

# in the order tables and legends show them
CLASSES = ("fp16/bf16", "W4A16", "W8A16", "FP8 W8A8", "FP4", "other")
BASELINE = "fp16/bf16"  # what speedups are relative to


def precision_class(backend: str, op: str = "", weight_format: str = "") -> str:
    """The class of a result row, from its backend, op and weight_format columns.

    The weight format decides where it names one (a Marlin backend runs INT4, INT8, FP8 or FP4
    weights); op and backend name decide for rows that have none (seed CSVs)."""
    wf, b, o = (weight_format or "").lower(), (backend or "").lower(), (op or "").lower()
    if "fp4" in wf or "fp4" in b:
        return "FP4"
    # activations quantized too: torch._scaled_mm and aiter's a8w8 kernels
    if o == "scaled_mm" or wf.startswith("fp8_") or b.startswith(("torch_fp8", "aiter_")):
        return "FP8 W8A8"
    if any(s in wf or s in b for s in ("float8", "uint8", "int8")):
        return "W8A16"  # 8-bit weights (integer or FP8) with fp16/bf16 activations: Marlin
    if wf in ("float16", "bfloat16", "fp16", "bf16") or b == "torch_matmul":
        return "fp16/bf16"
    if o in ("w4a16", "marlin", "machete", "gemlite") or any(s in wf or s in b for s in (
            "int4", "uint4", "tinygemm", "gemlite", "machete", "dequant_matmul")):
        return "W4A16"
    # last, as the backend name is more specific than the op family
    return "fp16/bf16" if o == "matmul" else "other"


def compute_dtype(cls: str) -> str:
    """The tensor-core precision a class computes in: its compute ceiling. Weight-only kernels
    dequantize to the activation dtype, so only FP8 W8A8 has another peak (2x on Hopper)."""
    return "fp8" if cls == "FP8 W8A8" else "fp16"


def class_order(cls: str) -> int:
    return CLASSES.index(cls) if cls in CLASSES else len(CLASSES)
