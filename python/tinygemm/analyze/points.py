"""Result CSVs as points: tinygemm's tidy results.csv or the seed formats, every ok row checked."""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass


@dataclass
class Point:
    backend: str
    shape: tuple          # (model, layer, tp, K, N, act_dtype, group_size)
    M: int
    time_us: float
    util: float           # achieved / peak (datasheet if known, else relative to the group's best)
    kernels: str = ""
    op: str = ""
    weight_format: str = ""


def _f(v, default=math.nan):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def size_problems(r: dict, cols: tuple[str, ...]) -> list[str]:
    """The size columns of a row that are not positive integers (M, N, K, batch ...)."""
    return [f"{c} = {r.get(c)!r} is not a positive integer" for c in cols if (_int(r.get(c)) or 0) < 1]


def _row_problems(r: dict, ints: tuple[str, ...], time_col: str, util_cols: tuple[str, ...]) -> list[str]:
    """Why a measured row cannot be used: times must be positive and finite (they are divided by and
    averaged in logs), sizes positive integers (an M of 0 has no range to look up, a negative K no
    FLOPs), utilizations (when given) finite and >= 0."""
    out = size_problems(r, ints)
    t = _f(r.get(time_col))
    if not (math.isfinite(t) and t > 0):
        out.append(f"{time_col} = {r.get(time_col)!r} is not a positive finite time")
    for c in util_cols:
        if r.get(c) not in ("", None):
            u = _f(r.get(c))
            if not (math.isfinite(u) and u >= 0):
                out.append(f"{c} = {r.get(c)!r} is not a finite number >= 0")
    return out


def check_rows(path: str, rows: list[tuple[int, list[str]]]) -> None:
    """Raise a ValueError naming the file and each bad row (1 = the first row after the header)."""
    if rows:
        shown = "; ".join(f"row {i}: {', '.join(why)}" for i, why in rows[:5])
        more = f"; and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise ValueError(f"{path}: {len(rows)} bad row{'s' if len(rows) > 1 else ''} ({shown}{more})")


def load(path: str) -> list[Point]:
    """Points from a tidy results CSV or a seed-format CSV (ok rows only).

    An ok row with a zero, negative or non-finite time (or a non-integer size) is an error naming the
    file and row: such a time would be divided by or counted into a geomean."""
    from ..results import read_table

    header, rows = read_table(path)  # backends in today's names (results.BACKEND_ALIASES)
    cols = set(header)
    base = os.path.basename(path)
    if {"backend", "M", "N", "K", "time_us"} <= cols:
        pts, bad = [], []
        for i, r in enumerate(rows, 1):
            if r.get("status", "ok") != "ok" or r.get("op") == "prepare":  # weight preparation is not a GEMM
                continue
            why = _row_problems(r, ("M", "K", "N"), "time_us", ("pct_peak_flops", "tflops"))
            if why:
                bad.append((i, why))
                continue
            util = _f(r.get("pct_peak_flops")) / 100
            if math.isnan(util):
                util = _f(r.get("tflops"))  # relative: only ratios within a group are used
            pts.append(Point(r["backend"], (r.get("model", ""), r.get("layer", ""), r.get("tp", ""), int(r["K"]),
                                            int(r["N"]), r.get("act_dtype", ""), r.get("group_size", "")),
                             int(r["M"]), float(r["time_us"]), util, r.get("kernel_names", ""), r.get("op", ""),
                             r.get("weight_format", "")))
        check_rows(path, bad)
        return pts
    kn = re.search(r"_K(\d+)_N(\d+)", base)
    if {"batch", "kernel_time", "utils"} <= cols or {"batch", "time", "utils"} <= cols:
        if not kn:
            raise ValueError(f"{path}: a seed-format CSV must be named ..._K<K>_N<N>_...")
        backend = "torch_matmul" if base.startswith("torchgemm") else "marlin" if base.startswith("Marlin") else "seed"
        tcol = "kernel_time" if "kernel_time" in cols else "time"
        dt = re.search(r"_dtype(\w+)\.csv$", base)
        shape = ("", "", "", int(kn.group(1)), int(kn.group(2)), dt.group(1) if dt else "", "")
        measured = [(i, r) for i, r in enumerate(rows, 1) if r.get(tcol) not in ("", None)]
        check_rows(path, [(i, why) for i, r in measured if (why := _row_problems(r, ("batch",), tcol, ("utils",)))])
        # seed times are in ms
        return [Point(backend, shape, int(r["batch"]), 1e3 * float(r[tcol]), _f(r["utils"]), r.get("kernel_name", ""))
                for _, r in measured]
    need = {"backend", "M", "N", "K", "time_us"} - cols
    raise ValueError(f"{path}: not a tinygemm results CSV (missing columns {', '.join(sorted(need))}) nor a seed "
                     "CSV (batch,kernel_time,flops,utils[,kernel_name] or batch,time,flops,utils)")


def groups(points: list[Point]) -> dict[tuple, list[Point]]:
    g: dict[tuple, list[Point]] = defaultdict(list)
    for p in points:
        g[(p.backend, p.shape)].append(p)
    return {k: sorted(v, key=lambda p: p.M) for k, v in g.items()}
