"""Efficiency cliffs (a batch size whose utilization falls below threshold x the best smaller one) and
the two-GEMM splits that would avoid them."""

from __future__ import annotations

import math

from .points import Point, groups

# The columns of find_cliffs' and check_split's rows, in order: the header of PREFIX_cliffs.csv and
# PREFIX_split.csv, written even when there are no rows (so an output always reflects its run).
CLIFF_COLUMNS = ("backend", "model", "layer", "tp", "K", "N", "M", "util", "best_smaller_util", "best_smaller_M",
                 "ratio", "time_us", "kernel_before", "kernel_at", "kernel_switch")
SPLIT_COLUMNS = ("backend", "model", "layer", "tp", "K", "N", "M", "time_us", "b1", "b2", "split_us", "saving_pct",
                 "opportunity")


def find_cliffs(points: list[Point], threshold: float = 0.85) -> list[dict]:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
    out = []
    for (backend, shape), pts in groups(points).items():
        best, best_m, prev = -math.inf, None, None
        for p in pts:
            if best_m is not None and p.util < threshold * best:
                out.append({"backend": backend, "model": shape[0], "layer": shape[1], "tp": shape[2], "K": shape[3],
                            "N": shape[4], "M": p.M, "util": p.util, "best_smaller_util": best, "best_smaller_M": best_m,
                            "ratio": p.util / best, "time_us": p.time_us, "kernel_before": prev.kernels if prev else "",
                            "kernel_at": p.kernels,
                            "kernel_switch": bool(prev and p.kernels and prev.kernels and p.kernels != prev.kernels)})
            if p.util > best:
                best, best_m = p.util, p.M
            prev = p
    return out


def check_split(points: list[Point], cliffs: list[dict], threshold: float = 0.9) -> list[dict]:
    """For each cliff, the fastest two-GEMM split b1 + b2 = M over measured sizes (equal halves included)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"split threshold must be in (0, 1]; got {threshold}")
    times = {}
    for (backend, shape), pts in groups(points).items():
        times[(backend, shape[3], shape[4], shape[0], shape[1], shape[2])] = {p.M: p.time_us for p in pts}
    out = []
    for c in cliffs:
        t = times[(c["backend"], c["K"], c["N"], c["model"], c["layer"], c["tp"])]
        M, tM = c["M"], c["time_us"]
        best = None
        for b1 in sorted(t):
            b2 = M - b1
            if b1 > b2:
                break
            if b2 in t and b1 >= 1:
                s = t[b1] + t[b2]
                if best is None or s < best[2]:
                    best = (b1, b2, s)
        row = {**{k: c[k] for k in ("backend", "model", "layer", "tp", "K", "N", "M")}, "time_us": tM,
               "b1": "", "b2": "", "split_us": "", "saving_pct": "", "opportunity": False}
        if best:
            row.update(b1=best[0], b2=best[1], split_us=best[2], saving_pct=100 * (1 - best[2] / tM),
                       opportunity=best[2] < threshold * tM)
        out.append(row)
    return out
