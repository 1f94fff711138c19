"""aiter's tuned CSVs: the fastest row per shape, and per-shape / per-model speedups between two."""

from __future__ import annotations

import math

from .compare import geomean
from .points import _f, check_rows, size_problems


AITER_KEY = ("gfx", "cu_num", "M", "N", "K", "q_dtype_w")


def read_aiter(path: str) -> tuple[list[str], list[dict]]:
    """Any of aiter's tuned-CSV header variants (M,N,K,... with or without gfx, cu_num, q_dtype_w, libtype)."""
    from ..cli_errors import read_csv

    raw_header, raw = read_csv(path)
    header = [h.strip() for h in raw_header]
    rows = [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()} for row in raw]
    missing = [c for c in ("M", "N", "K", "us") if c not in header]
    if missing:
        raise ValueError(f"{path} is not an aiter tuned CSV: missing columns {', '.join(missing)}")
    # sizes must be positive integers; us may be anything: failed tunings are written as -1, inf or nothing
    check_rows(path, [(i, w) for i, r in enumerate(rows, 1) if (w := size_problems(r, ("M", "N", "K")))])
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
    from .. import shapes as S

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
