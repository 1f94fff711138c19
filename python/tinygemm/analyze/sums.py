"""Per model and TP: each backend's time summed over the model's layers, per M (Markdown)."""

from __future__ import annotations

import math
from collections import defaultdict

from .points import _f, _row_problems, check_rows


def layer_sums(rows: list[dict], where: str = "rows") -> tuple[list[dict], list[dict]]:
    """(per (model, tp, M): each backend's time summed over the model's layers, with the fastest
    named; the op=prepare rows). A backend missing a layer at some M gets no sum there. An ok row
    with a bad time is an error naming `where` and the row."""
    # a prepare row (the load-time repack, --prepare-cost) has no batch: M = 0
    check_rows(where, [(i, why) for i, r in enumerate(rows, 1) if r.get("status") == "ok"
                       and (why := _row_problems(r, ("K", "N") if r.get("op") == "prepare" else ("M", "K", "N"),
                                                 "time_us", ("peak_mem_mb",)))])
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
