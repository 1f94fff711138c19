"""Where a sweep's wall time goes: seconds per phase, summed over its points.

results.json records them as `phase_s` beside `wall_s` (the sweep's wall clock): the phases are
disjoint spans of it measured with time.perf_counter around the calls, the timing call split by the
harness itself ("timing.<key>": tinygemm.timing.measure(spent=...), whose SPENT says what each key
holds), and "other" is the wall clock less their sum (the loops, the progress bar's start and end).
Each measurement costs about a microsecond and a point holds a dozen of them, against milliseconds
of work. No torch here: merge and the report read these records on machines without it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

TIMING = "timing."
# The phases in the order a point runs them; what each one holds. "timing" stands for the timing
# call's keys, "timing.<key>" (in name order).
PHASES = {
    "inputs": "random weights and activations per shape; each point's activations in the backend's format",
    "prepare": "the backends' load-time work per shape: quantizing, packing, clones (prepare())",
    "prepare_cost": "--prepare-cost: timing the weight conversion (its rows)",
    "first_call": "the host's side of each point's first call (untimed) and its peak memory: lazy initialisation, "
                  "a library's heuristics or autotuning for a new M",
    "refcheck": "the fp32 reference check of that call's result (waiting for the call's GPU time too)",
    "rotation": "weight copies for graph mode's cold L2",
    "timing": "the timing call, split as tinygemm.timing.SPENT says",
    "kernel_names": "--kernel-names: the profiler runs that name the kernels (one session per 64 points, whose "
                    "first calls and checks are made just before it: each point's call once more, profiled)",
    "rows": "building each row: rates, flags, notes",
    "csv": "writing (and flushing) each row to results.csv",
    "progress": "the progress bar",
    "cleanup": "freeing a backend's weights and the allocator's cache after each shape",
    "other": "the rest of the sweep's wall clock (loops, the progress bar's start and end)",
}
# results.json's `outside_sweep_s`: the run's wall clock before and after the sweep
OUTSIDE = {
    "startup": "imports, checks, the plan, the output directory, backend availability",
    "ceilings": "measuring the copy bandwidth and the bf16 matmul rate",
}


class Phases:
    """Seconds per phase, accumulated."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        if not (name in PHASES or name in OUTSIDE or name.startswith(TIMING)) or name == "timing":
            raise ValueError(f"unknown phase {name!r}; known: {', '.join([*PHASES, *OUTSIDE])} and timing.<key>")
        self.s[name] = self.s.get(name, 0.0) + seconds

    @contextmanager
    def time(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add_timing(self, spent: dict[str, float]) -> None:
        """tinygemm.timing.measure's `spent`, under "timing." names."""
        for k, v in spent.items():
            self.add(TIMING + k, v)

    def record(self, wall_s: float) -> dict[str, float]:
        """The sweep's phases in order, in seconds to the ms, "other" being wall_s less the rest."""
        inside = {k: v for k, v in self.s.items() if k not in OUTSIDE and k != "other"}
        out = {k: round(inside[k], 3) for k in ordered(inside)}
        out["other"] = round(wall_s - sum(inside.values()), 3)
        return out

    def outside(self) -> dict[str, float]:
        return {k: round(self.s[k], 3) for k in OUTSIDE if k in self.s}


def ordered(keys) -> list[str]:
    """Phase names in PHASES order ("timing.<key>" where "timing" stands), then any unknown name."""
    keys = set(keys)
    out = []
    for k in [*PHASES, *OUTSIDE]:
        if k == "timing":
            out += sorted(x for x in keys if x.startswith(TIMING))
        elif k in keys:
            out.append(k)
    return out + sorted(keys - set(out))


def summed(records: list[dict]) -> dict[str, float]:
    """Several runs' (shards') phase dicts added up, key by key."""
    keys = ordered({k for r in records for k in r})
    return {k: round(sum(r.get(k, 0.0) for r in records), 3) for k in keys}


def line(phase_s: dict, wall_s: float, outside_s: dict | None = None) -> str:
    """One line: the sweep's wall clock and its phases, largest first, with their shares."""
    parts = sorted(((v, k) for k, v in phase_s.items() if v >= 0.0005), reverse=True)
    text = f"sweep {_s(wall_s)}: " + ", ".join(
        f"{k} {_s(v)} ({100 * v / wall_s:.0f}%)" if wall_s > 0 else f"{k} {_s(v)}" for v, k in parts)
    if outside_s:
        text += "; outside the sweep: " + ", ".join(f"{k} {_s(v)}" for k, v in outside_s.items())
    return text


def _s(v: float) -> str:
    return f"{v:.1f} s" if abs(v) >= 1 else f"{v:.3f} s"
