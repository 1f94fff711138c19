"""What `python -m tinygemm.bench` checks before it touches a GPU, and what --resume keeps.

Everything here runs before the GPU check (so a CPU machine, and --dry-run, see the same errors a
GPU run would) and raises ValueErrors naming the flag or path; __main__ turns them into one line
and exit 2 (tinygemm.cli_errors).
"""

from __future__ import annotations

import os

from ..cli_errors import check_output_dir, read_csv, read_json

# A sweep's plan: at most this many (shape, batch) points per backend. (A typo such as
# --batches 1:10000000000 is refused earlier, from the range's length: shapes.parse_batches; the
# shapes of a plan share one batch list, so counting the plan builds nothing large.)
MAX_POINTS = 200_000

# Flags that only apply to model shapes: with --shapes (M, K, N given) or --kn alone they would be
# silently ignored.
MODEL_ONLY = ("tp", "module")


def check_flags(a) -> None:
    """Contradictory or ignored flags. Called on the parsed namespace, whose defaults for --tp,
    --module and --batches are None so that "given" can be told from "defaulted"."""
    if a.resume and a.force:
        raise ValueError("--resume and --force contradict each other: --resume continues OUT/results.csv, "
                         "--force overwrites it; give one")
    if a.shapes is not None:
        if not a.shapes.strip():
            raise ValueError("--shapes is empty; write the GEMMs as 'M,K,N;M,K,N'")
        if a.batches is not None:
            raise ValueError("--batches does not apply to --shapes (each shape gives its own M); drop one")
    if (a.shapes is not None or a.kn) and not a.model:
        given = [f"--{f}" for f in MODEL_ONLY if getattr(a, f) is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} to --model shapes, "
                             f"not to {'--shapes' if a.shapes is not None else '--kn'}; drop "
                             f"{'them' if len(given) > 1 else 'it'}")
    if a.tp is not None and any(t < 1 for t in a.tp):
        raise ValueError(f"--tp values must be >= 1; got {' '.join(map(str, a.tp))}")


def check_timing(a) -> None:
    from .. import timing

    timing.check_options(target=a.target, min_samples=a.min_samples, max_samples=a.max_samples,
                         budget_ms=a.budget_ms, flags=True)


def check_plan_size(n_points: int) -> None:
    if n_points > MAX_POINTS:
        raise ValueError(f"the plan has {n_points:,} (shape, batch) points per backend; at most {MAX_POINTS:,} "
                         "(check --batches, or split the sweep)")


def check_out(a) -> None:
    """OUT and OUT/results.csv before the sweep: a directory, no overwrite without --force, and for
    --resume a results.csv this tinygemm wrote (appending to another would misalign its columns)."""
    if a.out is None:
        return  # a fresh, timestamped directory
    from ..results import COLUMNS

    check_output_dir(a.out)
    csv_path = os.path.join(a.out, "results.csv")
    if os.path.isdir(csv_path):
        raise ValueError(f"{csv_path}: is a directory")
    if os.path.exists(csv_path) and not (a.resume or a.force):
        raise ValueError(f"{csv_path} exists: pass --resume to continue it or --force to overwrite it")
    if a.resume and os.path.exists(csv_path):
        if os.path.getsize(csv_path) == 0:
            raise ValueError(f"{csv_path} is empty: nothing to resume (remove it, or pass --force instead of --resume)")
        header, _ = read_csv(csv_path)
        if header != COLUMNS:
            missing = [c for c in COLUMNS if c not in header]
            why = f"missing columns {', '.join(missing)}" if missing else "its columns are in another order"
            raise ValueError(f"{csv_path} is not a results.csv of this tinygemm ({why}): --resume would append "
                             "misaligned rows; use another --out, or --force to start over")
    json_path = os.path.join(a.out, "results.json")
    if a.resume and os.path.exists(json_path):
        read_resumed(json_path)


def read_resumed(json_path: str) -> dict:
    """The first run's results.json, checked for the fields --resume keeps."""
    meta = read_json(json_path, ("device", "versions", "measured_ceilings"))
    if not isinstance(meta.get("command", ""), str) or not isinstance(meta.get("created", ""), str):
        raise ValueError(f"{json_path}: 'command' and 'created' must be strings")
    pts = meta.get("points", 0)
    if not isinstance(pts, int) or isinstance(pts, bool) or pts < 0:
        raise ValueError(f"{json_path}: 'points' must be a count >= 0; got {pts!r}")
    if not isinstance(meta.get("resumed", []), list):
        raise ValueError(f"{json_path}: 'resumed' must be a list")
    return meta


def merge_resumed(first: dict, now: dict) -> dict:
    """results.json after a --resume: the first run's created, command and points stay (points
    counts every point in results.csv), and each resumed run is appended to "resumed"."""
    out = dict(now)
    out["created"] = first.get("created", now["created"])
    out["command"] = first.get("command", now["command"])
    out["points"] = first.get("points", 0) + now["points"]
    out["resumed"] = [*first.get("resumed", []),
                      {"created": now["created"], "command": now["command"], "points": now["points"]}]
    return out
