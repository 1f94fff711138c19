"""Turn result CSVs into answers: efficiency cliffs, split-GEMM opportunities, comparisons, aiter CSVs.

    python -m tinygemm.analyze cliffs RESULTS.csv [--threshold 0.85] [--check-split [--split-threshold 0.9]]
    python -m tinygemm.analyze compare A.csv B.csv            # or: compare R.csv --a torch_matmul --b tinygemm_cuda
    python -m tinygemm.analyze dedup TUNED.csv -o OUT.csv      # aiter tuned CSVs: fastest row per shape
    python -m tinygemm.analyze tuned-compare CK.csv PRESHUFFLE.csv [--model ... --tp ...]

Inputs: tinygemm.bench's results.csv, or the seed formats (torchgemm_*_K<K>_N<N>_*.csv with
batch,kernel_time,flops,utils,kernel_name; Marlin_*_K<K>_N<N>_*.csv with batch,time,flops,utils).
A batch size M is a cliff when its utilization is below threshold x the best utilization of any
smaller M of the same shape and backend. A cliff is a split opportunity when two GEMMs of measured
sizes b1 + b2 = M take less than split_threshold x t(M).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass

from .cli_errors import atomic_write, check_output, exit_2_on_bad_input

# --- loading ------------------------------------------------------------------------------------


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


def _row_problems(r: dict, ints: tuple[str, ...], time_col: str, util_cols: tuple[str, ...]) -> list[str]:
    """Why a measured row cannot be used: times must be positive and finite (they are divided by and
    averaged in logs), sizes integers, utilizations (when given) finite and >= 0."""
    out = [f"{c} = {r.get(c)!r} is not an integer" for c in ints if _int(r.get(c)) is None]
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
    from .cli_errors import read_csv

    header, rows = read_csv(path)
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


# --- cliffs and split-GEMM ----------------------------------------------------------------------


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


# --- comparisons --------------------------------------------------------------------------------


def geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


M_RANGES = [(1, 16, "M 1-16"), (17, 128, "M 17-128"), (129, 512, "M 129-512"), (513, 10**9, "M > 512")]


def _what(p: Point) -> tuple[str, str, str]:
    """What ran a point: only points run by the same thing are paired across two files."""
    return (p.backend, p.op, p.weight_format)


def _what_str(w: tuple[str, str, str]) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in (("op", w[1]), ("format", w[2])) if v)
    return w[0] + (f" ({extra})" if extra else "")


def compare(a: list[Point], b: list[Point]) -> dict:
    """Speedup of B over A (t_A / t_B) per like-for-like point, with summaries.

    Points pair on (shape, M); the shape holds model, layer, tp, K, N, activation dtype and group
    size. When each side holds one backend, that backend of A is compared with that of B (how two
    backends are compared). Otherwise each backend of A is paired with the same backend, op and
    weight format of B, never with another one; "paired" says what was paired with what.
    """
    if not a or not b:
        raise ValueError(f"nothing to compare: {'A' if not a else 'B'} has no ok rows")
    wa, wb = sorted({_what(p) for p in a}), sorted({_what(p) for p in b})
    cross = len(wa) == 1 and len(wb) == 1
    if not cross and not set(wa) & set(wb):
        raise ValueError(f"A holds {', '.join(map(_what_str, wa))} and B holds {', '.join(map(_what_str, wb))}: "
                         "none in common; name the two to compare with --a-backend X --b-backend Y")

    def index(pts: list[Point], side: str) -> dict:
        out = {}
        for p in pts:
            k = (p.shape, p.M) if cross else (_what(p), p.shape, p.M)
            if k in out:
                raise ValueError(f"{side} has two rows for {_what_str(_what(p))} at K={p.shape[3]} N={p.shape[4]} "
                                 f"M={p.M} ({p.shape[0]} {p.shape[1]} tp {p.shape[2]}, {p.shape[5]}, group "
                                 f"{p.shape[6]}): which one to compare is ambiguous")
            out[k] = p
        return out

    ta, tb = index(a, "A"), index(b, "B")
    pairs, paired = [], defaultdict(int)
    for k, p in tb.items():
        q = ta.get(k)
        if q is not None:
            paired[(_what(q), _what(p))] += 1
            pairs.append({"model": p.shape[0], "layer": p.shape[1], "tp": p.shape[2], "K": p.shape[3], "N": p.shape[4],
                          "act_dtype": p.shape[5], "group_size": p.shape[6], "M": p.M, "a_backend": q.backend,
                          "b_backend": p.backend, "a_us": q.time_us, "b_us": p.time_us,
                          "speedup": q.time_us / p.time_us})
    if not pairs:
        raise ValueError("no (shape, M) in common between the two inputs" +
                         ("" if cross else f" for {', '.join(_what_str(w) for w in sorted(set(wa) & set(wb)))}"))

    def summary(key):
        g = defaultdict(list)
        for r in pairs:
            g[key(r)].append(r["speedup"])
        return {k: {"geomean": geomean(v), "n": len(v)} for k, v in sorted(g.items(), key=lambda kv: str(kv[0]))}

    slow = [r["speedup"] for r in pairs if r["speedup"] < 1]
    return {
        "pairs": pairs,
        "paired": [{"a": _what_str(x), "b": _what_str(y), "n": n} for (x, y), n in sorted(paired.items())],
        "unpaired_a": [_what_str(w) for w in wa if not any(x == w for x, _ in paired)],
        "unpaired_b": [_what_str(w) for w in wb if not any(y == w for _, y in paired)],
        "overall": geomean([r["speedup"] for r in pairs]),
        "by_model": summary(lambda r: r["model"] or f"K{r['K']}xN{r['N']}"),
        "by_layer": summary(lambda r: r["layer"] or f"K{r['K']}xN{r['N']}"),
        "by_m_range": summary(lambda r: next(n for lo, hi, n in M_RANGES if lo <= r["M"] <= hi)),
        "slowdowns": {"count": len(slow), "mean": sum(slow) / len(slow) if slow else math.nan,
                      "worst": min(slow) if slow else math.nan},
    }


# --- aiter tuned CSVs ---------------------------------------------------------------------------

AITER_KEY = ("gfx", "cu_num", "M", "N", "K", "q_dtype_w")


def read_aiter(path: str) -> tuple[list[str], list[dict]]:
    """Any of aiter's tuned-CSV header variants (M,N,K,... with or without gfx, cu_num, q_dtype_w, libtype)."""
    from .cli_errors import read_csv

    raw_header, raw = read_csv(path)
    header = [h.strip() for h in raw_header]
    rows = [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()} for row in raw]
    missing = [c for c in ("M", "N", "K", "us") if c not in header]
    if missing:
        raise ValueError(f"{path} is not an aiter tuned CSV: missing columns {', '.join(missing)}")
    # sizes must be integers; us may be anything: failed tunings are written as -1, inf or nothing
    def why(r):
        return [f"{c} = {r.get(c)!r} is not an integer" for c in ("M", "N", "K") if _int(r.get(c)) is None]

    check_rows(path, [(i, w) for i, r in enumerate(rows, 1) if (w := why(r))])
    return header, rows


def dedup_aiter(header: list[str], rows: list[dict]) -> list[dict]:
    """Keep the fastest row per (gfx, cu_num, M, N, K, q_dtype_w) — the columns this variant has."""
    key_cols = [c for c in AITER_KEY if c in header]
    best: dict[tuple, dict] = {}
    for r in rows:
        us = _f(r["us"], math.inf)
        if us <= 0 or math.isnan(us):
            us = math.inf  # failed tunings are written with us = -1 or inf
        k = tuple(r[c] for c in key_cols)
        if k not in best or us < _f(best[k]["us"], math.inf) or _f(best[k]["us"], math.inf) <= 0:
            best[k] = r
    return sorted(best.values(), key=lambda r: tuple(int(_f(r[c], 0)) if c in "MNK" else r[c] for c in key_cols))


def tuned_compare(a_rows: list[dict], b_rows: list[dict], models: list[str] | None = None,
                  tps: list[int] | None = None) -> dict:
    """Speedup of B over A (us_A / us_B) per (M, N, K), and per model when models/tp are given."""
    from . import shapes as S

    ta = {(int(_f(r["M"])), int(_f(r["N"])), int(_f(r["K"]))): _f(r["us"]) for r in a_rows}
    pairs = []
    for r in b_rows:
        k = (int(_f(r["M"])), int(_f(r["N"])), int(_f(r["K"])))
        ua, ub = ta.get(k), _f(r["us"])
        if ua and ua > 0 and ub > 0:
            pairs.append({"M": k[0], "N": k[1], "K": k[2], "a_us": ua, "b_us": ub, "speedup": ua / ub})
    if not pairs:
        raise ValueError("no (M, N, K) in common between the two tuned CSVs")
    per_model = {}
    for m in models or []:
        kns = {(s.N, s.K) for s in S.select([m], tps or [1])}
        sp = [p["speedup"] for p in pairs if (p["N"], p["K"]) in kns]
        if sp:
            per_model[m] = {"geomean": geomean(sp), "n": len(sp)}
    return {"pairs": pairs, "overall": geomean([p["speedup"] for p in pairs]), "by_model": per_model}


# --- CLI ----------------------------------------------------------------------------------------


def _write(path: str | None, rows: list[dict]) -> None:
    """Rows as CSV, through a temporary file (the path was checked before the work started)."""
    if not path or not rows:
        return
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _table(title: str, rows: list[dict], cols: list[str]) -> None:
    from rich.table import Table

    from .display import console, number

    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*[number(r[c], 3) if isinstance(r[c], float) else str(r[c]) for c in cols])
    console().print(t)


# --- per-model sums ------------------------------------------------------------------------------


def layer_sums(rows: list[dict], where: str = "rows") -> tuple[list[dict], list[dict]]:
    """(per (model, tp, M): each backend's time summed over the model's layers, with the fastest
    named; the op=prepare rows). A backend missing a layer at some M gets no sum there. An ok row
    with a bad time is an error naming `where` and the row."""
    check_rows(where, [(i, why) for i, r in enumerate(rows, 1) if r.get("status") == "ok"
                       and (why := _row_problems(r, ("M", "K", "N"), "time_us", ("peak_mem_mb",)))])
    ok = [r for r in rows if r.get("status") == "ok" and r.get("op") != "prepare"]
    layers: dict[tuple, set] = defaultdict(set)
    t: dict[tuple, dict] = defaultdict(dict)
    for r in ok:
        # a sweep may hold several activation dtypes and group sizes: each is its own table
        g = (r.get("model", ""), r.get("tp", ""), r.get("act_dtype", ""), r.get("group_size", ""))
        layers[g].add(r.get("layer", ""))
        t[(g, r["backend"], int(r["M"]))][r.get("layer", "")] = float(r["time_us"])
    out = []
    for (g, b, M), per in sorted(t.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        if set(per) == layers[g]:
            out.append({"model": g[0], "tp": g[1], "act_dtype": g[2], "group_size": g[3], "M": M, "backend": b,
                        "sum_us": round(sum(per.values()), 2)})
    best: dict[tuple, float] = {}

    def key(r):
        return (r["model"], r["tp"], r["act_dtype"], r["group_size"], r["M"])

    for r in out:
        best[key(r)] = min(best.get(key(r), math.inf), r["sum_us"])
    for r in out:
        r["vs_fastest"] = round(r["sum_us"] / best[key(r)], 3)
    prep = [r for r in rows if r.get("op") == "prepare"]
    return out, prep


def sums_markdown(sums: list[dict], prep: list[dict]) -> str:
    lines = []
    def group(r):
        return (r["model"], r["tp"], r["act_dtype"], r["group_size"])

    for g in sorted({group(r) for r in sums}):
        mine = [r for r in sums if group(r) == g]
        Ms = sorted({r["M"] for r in mine})
        backends = list(dict.fromkeys(r["backend"] for r in mine))
        cell = {(r["backend"], r["M"]): r for r in mine}
        lines += [f"### {g[0]} TP{g[1]}, {g[2]}, group {g[3]}: time summed over the layers (us); **bold** = fastest",
                  "",
                  "| backend | " + " | ".join(f"M={m}" for m in Ms) + " |", "|---" * (len(Ms) + 1) + "|"]
        for b in backends:
            cells = []
            for m in Ms:
                r = cell.get((b, m))
                cells.append("-" if r is None else f"**{r['sum_us']:.1f}**" if r["vs_fastest"] == 1 else f"{r['sum_us']:.1f}")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines.append("")
    if prep:
        lines += ["### Weight preparation at load (per weight matrix; wall-clock, median of 5)", "",
                  "| backend | model | layer | K | N | format | time (ms) | peak extra memory (MB) | from |",
                  "|---|---|---|---|---|---|---|---|---|"]
        prep = sorted(prep, key=lambda r: (r.get("group_size", ""), r["backend"]))
        for r in prep:
            if r.get("status") != "ok":
                lines.append(f"| {r['backend']} | {r.get('model', '')} | {r.get('layer', '')} | {r['K']} | {r['N']} "
                             f"| | {r['status']} | | {r.get('note', '')} |")
                continue
            src = r.get("note", "").split(" -> ")[0]
            lines.append(f"| {r['backend']} | {r.get('model', '')} | {r.get('layer', '')} | {r['K']} | {r['N']} | "
                         f"{r.get('weight_format', '')} | {float(r['time_us']) / 1e3:.3f} | "
                         f"{_f(r.get('peak_mem_mb')):.1f} | {src} |")
        lines.append("")
    return "\n".join(lines)


def gpu_of(csv_path: str) -> str | None:
    """The GPU a tinygemm results CSV was measured on: the device its results.json beside it names."""
    meta = os.path.join(os.path.dirname(os.path.abspath(csv_path)), "results.json")
    try:
        with open(meta) as f:
            return json.load(f)["device"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a seed CSV, or results copied without their sidecar


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygemm.analyze", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cliffs", help="batch sizes whose utilization drops below threshold x the best smaller one")
    c.add_argument("csv")
    c.add_argument("--threshold", type=float, default=0.85)
    c.add_argument("--check-split", action="store_true")
    c.add_argument("--split-threshold", type=float, default=0.9)
    c.add_argument("-o", "--out", default=None, help="output prefix: PREFIX_cliffs.csv [, PREFIX_split.csv]")
    c.add_argument("--force", action="store_true")
    m = sub.add_parser("compare", help="speedups between two CSVs, or two backends of one CSV")
    m.add_argument("a")
    m.add_argument("b", nargs="?")
    m.add_argument("--a-backend", default=None)
    m.add_argument("--b-backend", default=None)
    m.add_argument("-o", "--out", default=None)
    m.add_argument("--force", action="store_true")
    su = sub.add_parser("sums", help="per model and TP: each backend's time summed over the layers, per M (Markdown)")
    su.add_argument("csv")
    su.add_argument("-o", "--out", default=None, help="write the Markdown here too")
    su.add_argument("--force", action="store_true")
    d = sub.add_parser("dedup", help="keep the fastest row per shape of an aiter tuned CSV")
    d.add_argument("csv")
    d.add_argument("-o", "--out", required=True)
    d.add_argument("--force", action="store_true")
    t = sub.add_parser("tuned-compare", help="per-shape and per-model speedups between two aiter tuned CSVs")
    t.add_argument("a")
    t.add_argument("b")
    t.add_argument("--model", nargs="*", default=None)
    t.add_argument("--tp", nargs="*", type=int, default=None)
    t.add_argument("-o", "--out", default=None)
    t.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    with exit_2_on_bad_input(p.prog):
        _run(a)
    return 0


def _outputs(a) -> list[str]:
    """Every file a command will write: all are checked before any work starts."""
    if a.cmd == "cliffs":
        return [a.out + "_cliffs.csv", *([a.out + "_split.csv"] if a.check_split else [])] if a.out else []
    return [a.out] if a.out else []


def _run(a) -> None:
    outs = _outputs(a)
    for o in outs:
        check_output(o, a.force)
    if len(set(outs)) != len(outs):
        raise ValueError(f"the outputs {', '.join(outs)} are not distinct")
    if a.cmd == "cliffs":
        if not 0 < a.threshold <= 1:  # before the table is printed
            raise ValueError(f"--threshold must be in (0, 1]; got {a.threshold}")
        if a.check_split and not 0 < a.split_threshold <= 1:
            raise ValueError(f"--split-threshold must be in (0, 1]; got {a.split_threshold}")
        pts = load(a.csv)
        cl = find_cliffs(pts, a.threshold)
        sp = check_split(pts, cl, a.split_threshold) if a.check_split else None
        _table(f"{len(cl)} cliffs (threshold {a.threshold})", cl,
               ["backend", "K", "N", "M", "util", "best_smaller_util", "best_smaller_M", "kernel_switch"])
        if sp is not None:
            opp = [r for r in sp if r["opportunity"]]
            _table(f"{len(opp)} split-GEMM opportunities (t(b1)+t(b2) < {a.split_threshold} t(M))", opp,
                   ["backend", "K", "N", "M", "time_us", "b1", "b2", "split_us", "saving_pct"])
        if a.out:
            _write(a.out + "_cliffs.csv", cl)
            if sp is not None:
                _write(a.out + "_split.csv", sp)
    elif a.cmd == "compare":
        if not a.b and not (a.a_backend and a.b_backend):
            raise ValueError("with one CSV, name the two backends: --a-backend X --b-backend Y")
        A = load(a.a)
        B = load(a.b) if a.b else A
        A = _only(A, a.a_backend, a.a)
        B = _only(B, a.b_backend, a.b or a.a)
        r = compare(A, B)
        for x in r["paired"]:
            print(f"paired: A {x['a']} with B {x['b']}: {x['n']} points")
        for side in ("a", "b"):
            if r[f"unpaired_{side}"]:
                print(f"not paired (only in {side.upper()}): {', '.join(r[f'unpaired_{side}'])}")
        ga, gb = gpu_of(a.a), gpu_of(a.b or a.a)
        if ga and gb and ga != gb:  # two GPU models: say which is which
            print(f"A: {a.a} on {ga}\nB: {a.b} on {gb}")
            print(f"geomean speedup of B ({gb}) over A ({ga}): {r['overall']:.3f} over {len(r['pairs'])} points")
        else:
            print(f"geomean speedup of B over A: {r['overall']:.3f} over {len(r['pairs'])} points")
        for title in ("by_model", "by_layer", "by_m_range"):
            _table(title, [{"group": k, **v} for k, v in r[title].items()], ["group", "geomean", "n"])
        s = r["slowdowns"]
        print(f"slowdowns: {s['count']} (mean {s['mean']:.3f}, worst {s['worst']:.3f})")
        _write(a.out, r["pairs"])
    elif a.cmd == "sums":
        from .results import read_rows

        text = sums_markdown(*layer_sums(read_rows(a.csv), a.csv))
        print(text)
        if a.out:
            with atomic_write(a.out) as f:
                f.write(text + "\n")
    elif a.cmd == "dedup":
        header, rows = read_aiter(a.csv)
        best = dedup_aiter(header, rows)
        with atomic_write(a.out, newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            w.writeheader()
            w.writerows(best)
        print(f"{len(rows)} rows -> {len(best)} (fastest per {', '.join(c for c in AITER_KEY if c in header)})")
    else:
        _, ra = read_aiter(a.a)
        _, rb = read_aiter(a.b)
        r = tuned_compare(ra, rb, a.model, a.tp)
        print(f"geomean speedup of B over A: {r['overall']:.3f} over {len(r['pairs'])} shapes")
        if r["by_model"]:
            _table("per model", [{"model": k, **v} for k, v in r["by_model"].items()], ["model", "geomean", "n"])
        _write(a.out, r["pairs"])


def _only(points: list[Point], backend: str | None, path: str) -> list[Point]:
    if not backend:
        return points
    mine = [x for x in points if x.backend == backend]
    if not mine:
        have = sorted({x.backend for x in points})
        raise ValueError(f"{path}: no ok row has backend {backend!r}; its backends: {', '.join(have) or 'none'}")
    return mine


if __name__ == "__main__":
    sys.exit(main())
