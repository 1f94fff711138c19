"""Splitting a sweep plan into shards, and the plan's identity that shards and merges check.

A plan is the bench's list of weight shapes, each with its batch sizes; a point is one (shape, M),
measured once per backend. `--shard I/N` runs the I-th of N parts of the plan. The split depends on
the plan alone (shapes in plan order, batch sizes ascending, and the estimated cost of each point
from `cost.point_cost_s`), so the same command on any host gives the same parts: disjoint, their
union the plan. The parts are contiguous runs of points in plan order, cut where the cumulative
estimated cost crosses k/N of the total: each shard prepares few shapes' weights, and no shard is off
its share by more than about one point's cost.

A run records `plan_record` (the shapes, the batch sizes, the options that change what a row
means, and a digest of them) and `shard_record` in its results.json; `merge` and `--resume` compare
them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace

from .. import results
from .cost import point_cost_s

# the options that change what a row measures: two runs with the same shapes and these are one plan
# (output, resume, progress and sharding options are not part of it)
PLAN_OPTIONS = ("backends", "dtype", "group_size", "asym", "machete_schedule", "prepare_cost", "l2", "mode",
                "target", "min_samples", "max_samples", "budget_ms", "no_refcheck", "kernel_names")


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 0 <= I < N -> (I, N)."""
    try:
        i, n = (int(p) for p in text.strip().split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N with integers 0 <= I < N (e.g. 0/4); got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard I/N needs N >= 1 and 0 <= I < N; got I = {i}, N = {n}")
    return i, n


def shard_arg(text: str) -> tuple[int, int]:
    """parse_shard for argparse (its error becomes the CLI's one-line usage error)."""
    import argparse

    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def points(plan: list) -> list[tuple[int, int]]:
    """(shape index, M) for every point of the plan, in the order the sweep runs them."""
    return [(si, M) for si, s in enumerate(plan) for M in s.batches]


def point_costs(plan: list) -> list[float]:
    return [point_cost_s(plan[si].K, plan[si].N, M) for si, M in points(plan)]


def owners(plan: list, n: int) -> list[int]:
    """The shard of each point (same order as `points`): contiguous runs of about 1/n of the cost each.

    A point belongs to the shard whose cost interval holds the middle of the point's own cost, so a
    cut falls between points and a shard's cost is within half a point of its share at each end."""
    if n < 1:
        raise ValueError(f"the number of shards must be >= 1; got {n}")
    costs = point_costs(plan)
    total = sum(costs)
    out, before = [], 0.0
    for c in costs:
        out.append(min(n - 1, int((before + c / 2) * n / total)) if total > 0 else 0)
        before += c
    return out


def select(plan: list, index: int, n: int) -> list:
    """The shard's part of the plan: the same shapes, each with only the shard's batch sizes
    (shapes left with none are dropped)."""
    if not 0 <= index < n:
        raise ValueError(f"shard index must be in [0, {n}); got {index}")
    mine: dict[int, list[int]] = {}
    for (si, M), o in zip(points(plan), owners(plan, n)):
        if o == index:
            mine.setdefault(si, []).append(M)
    return [replace(plan[si], batches=ms) for si, ms in sorted(mine.items())]


def plan_cost_s(plan: list) -> float:
    """Estimated seconds of the plan per backend."""
    return sum(point_costs(plan))


# --- the plan's identity in results.json -------------------------------------------------------------


def plan_options(args) -> dict:
    """The PLAN_OPTIONS of an argparse namespace (or any object with those attributes); --backends in
    today's names, so an old backend name and its new one are one plan."""
    opts = {k: getattr(args, k) for k in PLAN_OPTIONS}
    if isinstance(opts["backends"], str):
        opts["backends"] = results.canonical_backends(opts["backends"])
    return opts


def plan_digest(rec: dict) -> str:
    """The digest of a plan record's shapes, batch lists and options."""
    body = {k: rec[k] for k in ("shapes", "batch_lists", "options")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def read_results_json(path: str) -> dict:
    """A run's results.json as merges and resumes compare it: today's backend names
    (results.read_meta), and so the plan's digest taken again from its body (one written with an old
    backend name is then the digest of the same plan named today)."""
    meta = results.read_meta(path)
    if isinstance(meta.get("plan"), dict) and {"shapes", "batch_lists", "options"} <= set(meta["plan"]):
        meta["plan"]["digest"] = plan_digest(meta["plan"])
    return meta


def plan_record(plan: list, options: dict) -> dict:
    """The whole plan (every shard records all of it, so a merge knows what each shard owed) and its digest."""
    lists: list[list[int]] = []
    shapes = []
    for s in plan:
        if s.batches not in lists:
            lists.append(list(s.batches))
        shapes.append([s.model, s.layer, s.tp, s.K, s.N, lists.index(s.batches)])
    body = {"shapes": shapes, "batch_lists": lists, "options": options}
    return {"digest": plan_digest(body), "points": sum(len(s.batches) for s in plan), **body}


def plan_from_record(rec: dict) -> list:
    from .runner import Shape

    return [Shape(m, layer, tp, K, N, list(rec["batch_lists"][b])) for m, layer, tp, K, N, b in rec["shapes"]]


def shard_record(plan: list, index: int, n: int) -> dict:
    part = select(plan, index, n)
    return {"index": index, "count": n, "points": sum(len(s.batches) for s in part),
            "estimated_s_per_backend": round(plan_cost_s(part), 1)}


def shard_dir_name(index: int, n: int) -> str:
    return f"shard-{index}-of-{n}"


def resume_conflict(out: str, plan_rec: dict, shard_rec: dict) -> str | None:
    """Why --resume must not continue OUT with this plan and shard (None when it may): a results.json
    there from another plan or another shard would mix two sweeps in one CSV."""
    path = os.path.join(out, "results.json")
    if not os.path.exists(path):
        return None
    try:
        old = read_results_json(path)
    except ValueError as e:  # read_json: unreadable or not JSON, the message names the path
        return f"{e}; remove it or choose another --out"
    old_plan = (old.get("plan") or {}).get("digest")
    # a record without a shard (written before sharding, or unsharded) is shard 0 of 1
    old_shard = old.get("shard") or {}
    old_index, old_count = old_shard.get("index", 0), old_shard.get("count", 1)
    unsharded = old_count == 1 and shard_rec["count"] == 1
    grown = unsharded and old_plan is not None and extends(old["plan"], plan_rec)
    if old_plan is not None and old_plan != plan_rec["digest"] and not grown:
        diff = plan_differences(old["plan"], plan_rec)
        return (f"{out} holds another plan ({'; '.join(diff)}): --resume continues the same plan, or an "
                "unsharded one grown with the same options")
    if old_plan is not None and (old_index, old_count) != (shard_rec["index"], shard_rec["count"]):
        return (f"{out} holds shard {old_index}/{old_count}, not "
                f"{shard_rec['index']}/{shard_rec['count']}: --resume continues only the same shard")
    return None


def extends(old: dict, new: dict) -> bool:
    """Whether plan record `new` is `old` grown: the same options, and every point of `old` (weight
    shape x batch size) still in it. An unsharded run may be resumed with more batch sizes or shapes;
    a shard may not (growing the plan moves the split)."""
    if "options" not in old or old.get("options") != new.get("options"):
        return False

    def points(rec):
        return {(s.model, s.layer, s.tp, s.K, s.N, M) for s in plan_from_record(rec) for M in s.batches}

    return points(old) <= points(new)


def plan_differences(a: dict, b: dict) -> list[str]:
    """What differs between two plan records, in words."""
    out = [f"{k}: {a['options'].get(k)!r} vs {b['options'].get(k)!r}"
           for k in sorted(set(a["options"]) | set(b["options"])) if a["options"].get(k) != b["options"].get(k)]
    pa, pb = plan_from_record(a), plan_from_record(b)
    if [(s.model, s.layer, s.tp, s.K, s.N) for s in pa] != [(s.model, s.layer, s.tp, s.K, s.N) for s in pb]:
        out.append(f"shapes: {len(pa)} vs {len(pb)} weight shapes, not the same list")
    elif [s.batches for s in pa] != [s.batches for s in pb]:
        out.append(f"batch sizes: {a['points']} vs {b['points']} points, not the same lists")
    return out or ["the same shapes and options, a different digest"]
