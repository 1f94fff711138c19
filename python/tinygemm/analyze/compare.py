"""Speedups between two result CSVs (or two backends of one), like with like."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict

from .points import Point


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


def gpu_of(csv_path: str) -> str | None:
    """The GPU a tinygemm results CSV was measured on: the device its results.json beside it names."""
    meta = os.path.join(os.path.dirname(os.path.abspath(csv_path)), "results.json")
    try:
        with open(meta) as f:
            return json.load(f)["device"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a seed CSV, or results copied without their sidecar
