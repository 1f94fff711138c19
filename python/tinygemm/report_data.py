"""What the report says, as data: per model and TP the summed time of each backend by precision
class, the fastest per class, speedups over fp16, the share of the byte and compute floors, and the
cliffs summarized. No HTML here (report.py) and no plotting (report_plots.py); standard library only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from . import analyze
from .precision import BASELINE, class_order, compute_dtype, precision_class


@dataclass
class Row:
    """One ok GEMM row of results.csv, parsed."""
    backend: str
    cls: str
    model: str
    layer: str
    tp: str
    act_dtype: str
    group_size: str
    M: int
    K: int
    N: int
    time_us: float
    tflops: float          # nan when the CSV has none
    gbps: float
    kernels: str

    @property
    def group(self) -> tuple[str, str, str, str]:
        # a sweep may hold several activation dtypes and group sizes: each is its own table (as analyze.layer_sums)
        return (self.model, self.tp, self.act_dtype, self.group_size)

    @property
    def flop(self) -> float:
        return self.tflops * self.time_us * 1e6

    @property
    def bytes(self) -> float:
        return self.gbps * self.time_us * 1e3


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def ok_rows(rows: list[dict]) -> list[Row]:
    out = []
    for r in rows:
        if r.get("status") != "ok" or r.get("op") == "prepare":
            continue
        out.append(Row(r["backend"], precision_class(r["backend"], r.get("op", ""), r.get("weight_format", "")),
                       r.get("model", ""), r.get("layer", ""), str(r.get("tp", "")), r.get("act_dtype", ""),
                       str(r.get("group_size", "")), int(r["M"]), int(r["K"]), int(r["N"]), float(r["time_us"]),
                       _f(r.get("tflops")), _f(r.get("gbps")), r.get("kernel_names", "") or ""))
    return out


def group_title(g: tuple[str, str, str, str]) -> str:
    model, tp, dt, gs = g
    return f"{model or 'custom shapes'} TP{tp or 1}, {dt or '?'} activations, group size {gs or '-'}"


# --- ceilings -------------------------------------------------------------------------------------


def compute_ceilings(meta: dict) -> dict[str, tuple[float, str]]:
    """{compute dtype: (TFLOP/s, where it comes from)}. fp16 is the measured bf16 matmul (the same
    tensor-core rate); fp8 the datasheet's FP8 peak scaled by measured / datasheet bf16, so that both
    ceilings are as reachable; without a datasheet row there is no FP8 ceiling."""
    c = meta.get("measured_ceilings") or {}
    sheet = (meta.get("device") or {}).get("datasheet")
    sheet = sheet if isinstance(sheet, dict) else {}
    out = {}
    mm = c.get("matmul_tflops")
    if isinstance(mm, (int, float)) and mm > 0:
        out["fp16"] = (float(mm), "measured bf16 matmul")
        if sheet.get("fp8") and sheet.get("bf16"):
            out["fp8"] = (float(mm) * sheet["fp8"] / sheet["bf16"],
                          f"datasheet FP8 {sheet['fp8']:g} x measured/datasheet bf16")
    elif sheet.get("fp16"):
        out["fp16"] = (float(sheet["fp16"]), "datasheet")
        if sheet.get("fp8"):
            out["fp8"] = (float(sheet["fp8"]), "datasheet")
    return out


def bandwidth(meta: dict) -> float | None:
    v = (meta.get("measured_ceilings") or {}).get("copy_gbps")
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


# --- per model and TP -----------------------------------------------------------------------------


@dataclass
class Cell:
    sum_us: float
    flop: float
    bytes: float
    speedup: float = math.nan          # the fastest fp16/bf16 sum at this M / this sum
    pct_byte_floor: float = math.nan   # 100 x (bytes / measured bandwidth) / time
    pct_compute_floor: float = math.nan
    winner: bool = False               # fastest of its precision class at this M


@dataclass
class ModelTable:
    group: tuple[str, str, str, str]
    layers: list[tuple[str, int, int]]                 # (layer, K, N)
    Ms: list[int]
    backends: list[tuple[str, str]]                    # (class, backend), in class order
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)   # (backend, M)

    def winners(self, cls: str, M: int) -> list[str]:
        return [b for c, b in self.backends if c == cls and (b, M) in self.cells and self.cells[(b, M)].winner]


def model_tables(rows: list[Row], meta: dict) -> list[ModelTable]:
    """One table per (model, tp, dtype, group size). A backend missing a layer at some M gets no sum
    there (as analyze.layer_sums): a partial sum would look fast."""
    bw, ceil = bandwidth(meta), compute_ceilings(meta)
    by_group: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        by_group[r.group].append(r)
    out = []
    for g in sorted(by_group, key=str):
        rs = by_group[g]
        layers = sorted({(r.layer, r.K, r.N) for r in rs}, key=lambda x: (x[1] * x[2], x))
        per: dict[tuple[str, int], dict] = defaultdict(dict)
        cls_of = {}
        for r in rs:
            per[(r.backend, r.M)][(r.layer, r.K, r.N)] = r
            cls_of[r.backend] = r.cls
        t = ModelTable(g, layers, sorted({r.M for r in rs}),
                       sorted({(c, b) for b, c in cls_of.items()}, key=lambda x: (class_order(x[0]), x[1])))
        for (b, M), lr in per.items():
            if len(lr) == len(layers):
                t.cells[(b, M)] = Cell(sum(r.time_us for r in lr.values()), sum(r.flop for r in lr.values()),
                                       sum(r.bytes for r in lr.values()))
        for M in t.Ms:
            base = [t.cells[(b, M)].sum_us for c, b in t.backends if c == BASELINE and (b, M) in t.cells]
            best: dict[str, float] = {}
            for c, b in t.backends:
                if (b, M) in t.cells:
                    best[c] = min(best.get(c, math.inf), t.cells[(b, M)].sum_us)
            for c, b in t.backends:
                cell = t.cells.get((b, M))
                if cell is None:
                    continue
                cell.winner = cell.sum_us == best[c]
                if base:
                    cell.speedup = min(base) / cell.sum_us
                if bw and math.isfinite(cell.bytes):
                    cell.pct_byte_floor = 100 * cell.bytes / (bw * 1e3) / cell.sum_us
                peak = ceil.get(compute_dtype(c))
                if peak and math.isfinite(cell.flop):
                    cell.pct_compute_floor = 100 * cell.flop / (peak[0] * 1e6) / cell.sum_us
        out.append(t)
    return out


# --- cliffs ---------------------------------------------------------------------------------------


def cliffs(points: list) -> tuple[list[dict], list[dict], list[dict]]:
    """(per backend and layer: count and worst ratio; the worst ten; all), from analyze.find_cliffs."""
    all_ = analyze.find_cliffs(points)
    per: dict[tuple, dict] = {}
    for c in all_:
        k = (c["backend"], c["model"], c["layer"], c["tp"], c["K"], c["N"])
        s = per.setdefault(k, {"backend": c["backend"], "model": c["model"], "layer": c["layer"], "tp": c["tp"],
                               "K": c["K"], "N": c["N"], "cliffs": 0, "kernel_switches": 0, "worst_ratio": 1.0,
                               "worst_M": None})
        s["cliffs"] += 1
        s["kernel_switches"] += bool(c["kernel_switch"])
        if c["ratio"] < s["worst_ratio"]:
            s["worst_ratio"], s["worst_M"] = c["ratio"], c["M"]
    summary = sorted(per.values(), key=lambda s: (-s["cliffs"], s["worst_ratio"]))
    worst = sorted(all_, key=lambda c: c["ratio"])[:10]
    return summary, worst, all_
