"""Datasheet peaks for the GPU at hand (data/gpu_specs.csv, from shared/reference: sources inside).

Read SM count and L2 off the device; use this table only for peak rates. A GPU missing from the
table gets no datasheet percentages, and the result says so.
"""

from __future__ import annotations

import csv
import functools
import re
from importlib import resources

# (substrings that must all appear in the device name, table row), most specific first
_ALIASES = [
    (("H100", "PCIe"), "H100-PCIe-80GB"), (("H100",), "H100-SXM5-80GB"), (("H200",), "H200-SXM-141GB"),
    (("H800",), "H800-SXM5-80GB"), (("H20",), "H20"), (("A100", "PCIe", "80"), "A100-PCIe-80GB"),
    (("A100", "80"), "A100-SXM4-80GB"), (("A100",), "A100-SXM4-40GB"), (("A800",), "A800-80GB-PCIe"),
    (("L40S",), "L40S"), (("L4",), "L4"), (("A10G",), "A10G (AWS)"), (("A10",), "A10"),
    (("4090",), "RTX 4090"), (("3090",), "RTX 3090"), (("GB200",), "GB200 (per GPU)"), (("B200",), "B200 (HGX)"),
    (("MI355",), "MI355X"), (("MI325",), "MI325X"), (("MI300X",), "MI300X"), (("MI250",), "MI250X (OAM; 2 GCDs)"),
]


def _number(text: str) -> float | None:
    m = re.search(r"\d+(\.\d+)?", text or "")
    return float(m.group()) if m else None


@functools.lru_cache(maxsize=None)
def _table() -> dict[str, dict]:
    with resources.files("tinygemm").joinpath("data/gpu_specs.csv").open() as f:
        return {r["gpu"]: r for r in csv.DictReader(f)}


def peaks(device_name: str) -> dict | None:
    """{'row', 'fp16', 'bf16', 'fp8', 'int8' (dense TFLOP/s, fp32 accumulate), 'mem_bw_gbs', 'status'}."""
    for needles, row in _ALIASES:
        if all(n.lower() in device_name.lower() for n in needles):
            r = _table()[row]
            return {
                "row": row, "fp16": _number(r["fp16_tensor_tflops_dense_fp32acc"]),
                "bf16": _number(r["bf16_tensor_tflops_dense"]), "fp8": _number(r["fp8_tensor_tflops_dense_fp32acc"]),
                "int8": _number(r["int8_tensor_tops_dense"]), "mem_bw_gbs": _number(r["mem_bw_gbs"]),
                "status": r["status"],
            }
    return None
