"""python -m tinygemm.bench merge DIR... --out DIR: shard results into one results.csv + results.json.

The inputs must be shards of one plan (the same shapes, batch sizes and measuring options: the plan
digest in each results.json), run on one GPU model with the same software versions and backends;
otherwise the merge says which differ and writes nothing (results from different GPUs are compared
with `python -m tinygemm.analyze compare`, not merged). A point measured in two inputs is refused
(keep one of the two directories); points no input holds are reported per shard, and the merge is
written with "complete": false. An existing output is never overwritten without --force.

Exit codes: 0 merged and complete; 1 merged with points missing; 2 nothing written (bad input).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

from .. import results
from . import shard as SH
from .phases import summed

# results.json fields that must agree between the shards of one merge
SAME = (("GPU model", lambda m: m["device"]["name"]),
        ("software versions", lambda m: m["versions"]),
        ("backends", lambda m: m["backends"]))
# how many missing or duplicate points a message names before it counts the rest
SHOW = 5


@dataclass
class Shard:
    path: str
    meta: dict
    rows: list[dict]

    @property
    def index(self) -> int:
        return self.meta["shard"]["index"]

    @property
    def count(self) -> int:
        return self.meta["shard"]["count"]


@dataclass
class Merged:
    rows: list[dict]
    meta: dict
    missing: dict[int, list[tuple]] = field(default_factory=dict)   # shard index -> missing point keys
    given: set[int] = field(default_factory=set)                       # the shard indices among the inputs

    @property
    def missing_count(self) -> int:
        return sum(len(v) for v in self.missing.values())


def point_key(backend: str, s, M: int) -> tuple:
    """One point of one backend, as rows and plans both spell it."""
    return (backend, s.model, s.layer, str(s.tp), str(s.K), str(s.N), str(M))


def row_point(r: dict) -> tuple:
    return (r["backend"], r.get("model", ""), r.get("layer", ""), str(r.get("tp", "")), str(r["K"]), str(r["N"]),
            str(r["M"]))


def load(path: str) -> Shard:
    csv_path, json_path = os.path.join(path, "results.csv"), os.path.join(path, "results.json")
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a directory")
    if not os.path.exists(json_path):
        why = "the sweep did not finish there" if os.path.exists(csv_path) else "it is not a results directory"
        raise ValueError(f"{path} has no results.json ({why}); rerun its shard with --resume, then merge")
    meta = SH.read_results_json(json_path)
    if "plan" not in meta:
        raise ValueError(f"{json_path} records no plan (written by a tinygemm without shards): it cannot be "
                         "checked against the other inputs")
    meta.setdefault("shard", {"index": 0, "count": 1})
    if not os.path.exists(csv_path):
        raise ValueError(f"{path} has results.json but no results.csv")
    return Shard(path, meta, results.read_rows(csv_path, required=results.KEY))


def _differences(shards: list[Shard]) -> list[str]:
    """Why these shards are not of one sweep, in words (empty when they are)."""
    out = []
    digests = {}
    for s in shards:
        digests.setdefault(s.meta["plan"]["digest"], []).append(s)
    if len(digests) > 1:
        (first, *_), *others = digests.values()
        for group in others:
            diff = SH.plan_differences(first.meta["plan"], group[0].meta["plan"])
            out.append(f"plan of {first.path} vs {', '.join(g.path for g in group)}: {'; '.join(diff)}")
        return out
    for what, get in SAME:
        values: dict[str, list[str]] = {}
        for s in shards:
            values.setdefault(json.dumps(get(s.meta), sort_keys=True), []).append(s.path)
        if len(values) > 1:
            if isinstance(get(shards[0].meta), dict):
                keys = sorted({k for v in values for k in json.loads(v)})
                parts = [k for k in keys if len({json.dumps(json.loads(v).get(k)) for v in values}) > 1]
                detail = "; ".join(f"{k}: " + " vs ".join(f"{json.loads(v).get(k)} ({', '.join(p)})"
                                                          for v, p in values.items()) for k in parts)
            else:
                detail = " vs ".join(f"{json.loads(v)} ({', '.join(p)})" for v, p in values.items())
            hint = " (compare different GPUs with python -m tinygemm.analyze compare)" if what == "GPU model" else ""
            out.append(f"{what} differ: {detail}{hint}")
    counts = {s.count for s in shards}
    if len(counts) > 1:
        out.append("shards of different splits: " + ", ".join(f"{s.path} is {s.index}/{s.count}" for s in shards))
    seen: dict[int, str] = {}
    for s in shards:
        if s.index in seen:
            out.append(f"shard {s.index}/{s.count} given twice: {seen[s.index]} and {s.path}")
        seen[s.index] = s.path
    return out


def describe(keys: list[tuple]) -> str:
    names = [f"{b} {model} {layer} tp={tp} K={K} N={N} M={M}" for b, model, layer, tp, K, N, M in keys[:SHOW]]
    return "; ".join(names) + (f"; and {len(keys) - SHOW} more" if len(keys) > SHOW else "")


def merge(paths: list[str]) -> Merged:
    """The merged rows and metadata of shard directories (raises ValueError when they do not belong
    together, hold a point twice, or hold points outside their plan)."""
    if not paths:
        raise ValueError("merge needs at least one results directory")
    shards = sorted((load(p) for p in paths), key=lambda s: s.index)
    diff = _differences(shards)
    if diff:
        raise ValueError("the inputs are not shards of one sweep: " + " | ".join(diff))
    first = shards[0]
    plan = SH.plan_from_record(first.meta["plan"])
    backends = first.meta["backends"]
    n = first.count
    owner = dict(zip(SH.points(plan), SH.owners(plan, n)))
    shape_of = {(s.model, s.layer, str(s.tp), str(s.K), str(s.N)): i for i, s in enumerate(plan)}

    rows: dict[tuple, dict] = {}
    where: dict[tuple, str] = {}
    prepare: dict[tuple, dict] = {}
    dup, stray = [], []
    for s in shards:
        for r in s.rows:
            k = row_point(r)
            si = shape_of.get(k[1:6])
            if r.get("op") == "prepare":
                # a shape cut between two shards is prepared by both: keep the lower shard's measurement
                if si is not None:
                    prepare.setdefault(k, r)
                continue
            if si is None or (si, int(r["M"])) not in owner or r["backend"] not in backends:
                stray.append((k, s.path))
            elif k in rows:
                dup.append((k, where[k], s.path))
            else:
                rows[k], where[k] = r, s.path
    if dup:
        raise ValueError(f"{len(dup)} points are in two inputs (keep one of the directories): "
                         + describe([d[0] for d in dup]) + f" (first in {dup[0][1]} and {dup[0][2]})")
    if stray:
        raise ValueError(f"{len(stray)} rows of {stray[0][1]} are not points of the recorded plan and backends: "
                         + describe([k for k, _ in stray]))

    missing: dict[int, list[tuple]] = {}
    for (si, M), o in owner.items():
        for b in backends:
            k = point_key(b, plan[si], M)
            if k not in rows:
                missing.setdefault(o, []).append(k)

    # the unsharded order: shape by shape, backend by backend, the prepare row first, M ascending
    border = {b: i for i, b in enumerate(backends)}

    def order(r):
        k = row_point(r)
        return (shape_of[k[1:6]], border.get(r["backend"], len(border)), r.get("op") != "prepare", int(r["M"]))

    merged_rows = sorted([*rows.values(), *prepare.values()], key=order)
    meta = {k: v for k, v in first.meta.items() if k != "shard"}
    extra: dict = {}
    for s in shards:
        for b, v in (s.meta.get("backend_extra") or {}).items():
            extra.setdefault(b, v)
    meta.update(
        created=min(s.meta.get("created", "") for s in shards),
        points=sum(s.meta.get("points", 0) for s in shards),
        timed_kernel_s=round(sum(s.meta.get("timed_kernel_s", 0.0) for s in shards), 3),
        wall_s=max(s.meta.get("wall_s", 0.0) for s in shards),     # the shards ran side by side
        # where the time went, summed over the shards (so over their walls' sum, not over wall_s)
        phase_s=summed([s.meta.get("phase_s") or {} for s in shards]),
        outside_sweep_s=summed([s.meta.get("outside_sweep_s") or {} for s in shards]),
        interrupted=any(s.meta.get("interrupted") for s in shards),
        backend_extra=extra,
        complete=not missing,
        missing_points=sum(len(v) for v in missing.values()),
        merged_from=[{"dir": os.path.abspath(s.path), "shard": s.meta["shard"], "created": s.meta.get("created"),
                      "command": s.meta.get("command"), "points": s.meta.get("points"),
                      "wall_s": s.meta.get("wall_s"), "interrupted": s.meta.get("interrupted"),
                      "measured_ceilings": s.meta.get("measured_ceilings")} for s in shards],
    )
    return Merged(merged_rows, meta, missing, {s.index for s in shards})


def write(m: Merged, out: str, force: bool = False, inputs: list[str] = ()) -> None:
    if any(os.path.realpath(out) == os.path.realpath(p) for p in inputs):
        raise ValueError(f"--out {out} is one of the inputs: merge into another directory")
    targets = [os.path.join(out, "results.csv"), os.path.join(out, "results.json")]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists: pass --force to overwrite it")
    os.makedirs(out, exist_ok=True)
    w = results.CsvWriter(targets[0], append=False)
    for r in m.rows:
        w.write(r)
    w.close()
    results.write_json(targets[1], m.meta)


def missing_lines(m: Merged, count: int) -> list[str]:
    """Per shard, its missing points in words."""
    return [f"shard {i}/{count}{'' if i in m.given else ' (not among the inputs)'}: {len(keys)} points missing: "
            f"{describe(keys)}" for i, keys in sorted(m.missing.items())]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygemm.bench merge", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", help="shard results directories (each with results.csv and results.json)")
    p.add_argument("--out", required=True, help="the merged results directory")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT/results.csv")
    a = p.parse_args(argv)
    try:
        m = merge(a.dirs)
        write(m, a.out, a.force, a.dirs)
    except (ValueError, OSError) as e:
        print(f"merge: {e}", file=sys.stderr)
        return 2
    count = m.meta["merged_from"][0]["shard"]["count"]
    print(f"merged {len(a.dirs)} of {count} shards: {len(m.rows)} rows into {a.out}")
    if m.missing:
        for line in missing_lines(m, count):
            print(line, file=sys.stderr)
        print(f"{m.missing_count} points missing: rerun those shards with --resume, then merge again with --force",
              file=sys.stderr)
        return 1
    return 0
