"""--gpus 0,1,2,3 | all: one bench process per GPU of this host, each running one shard, then the merge.

Each worker is `python -m tinygemm.bench ... --shard I/N --out OUT/shard-I-of-N`, pinned to its GPU
with CUDA_VISIBLE_DEVICES (HIP_VISIBLE_DEVICES on ROCm), its output in the shard directory's log.txt.
The launcher draws one progress bar per GPU and one for the whole sweep from the rows the workers
append to their CSVs. Ctrl-C stops every worker the way Ctrl-C stops a single sweep (each keeps its
finished rows and writes its results.json), then the shards are merged. A worker that fails is
reported with its GPU and the points its shard did not finish; the same command with --resume
continues every shard where it stopped and merges again.

The workers run in sessions of their own, so a terminal's Ctrl-C reaches the launcher only, and the
launcher passes one SIGINT to each worker (two would interrupt a worker while it saves its results).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime

from .. import results
from . import merge as MG
from . import shard as SH
from .phases import line as phase_line

POLL_S = 0.5
# lines of a failed worker's log shown in its report
LOG_TAIL = 8


def parse_gpus(spec: str, count: int | None, env: dict) -> list[str]:
    """'0,1,3' -> ['0', '1', '3']; 'all' -> every GPU this process may use (those CUDA_VISIBLE_DEVICES /
    HIP_VISIBLE_DEVICES already name, else 0..count-1)."""
    spec = spec.strip()
    if count == 0:
        raise ValueError(f"--gpus {spec}: no GPU is visible here")
    visible = next((env[v] for v in ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES") if env.get(v, "").strip()), "")
    if spec == "all":
        if visible:
            return [g.strip() for g in visible.split(",") if g.strip()]
        return [str(i) for i in range(count)]
    ids = [g.strip() for g in spec.split(",")]
    if not spec or any(not g for g in ids):
        raise ValueError(f"--gpus must be 'all' or a comma-separated list of GPU ids (e.g. 0,1,2,3); got {spec!r}")
    dup = sorted({g for g in ids if ids.count(g) > 1})
    if dup:
        raise ValueError(f"--gpus names GPU {', '.join(dup)} more than once; one worker per GPU")
    # a worker's id replaces this process's own visible-devices list, so only an unrestricted count bounds it
    if count is not None and not visible and all(g.isdigit() for g in ids) and max(int(g) for g in ids) >= count:
        raise ValueError(f"--gpus {spec}: this host has {count} GPU(s) visible (ids 0..{count - 1})")
    return ids


def pinned_env(env: dict, var: str, gpu: str) -> dict:
    """The environment of the worker on `gpu`. On ROCm, HIP honours CUDA_VISIBLE_DEVICES as well and
    would apply it on top of HIP_VISIBLE_DEVICES, so it is removed there."""
    out = dict(env)
    out[var] = gpu
    if var == "HIP_VISIBLE_DEVICES":
        out.pop("CUDA_VISIBLE_DEVICES", None)
    out["PYTHONUNBUFFERED"] = "1"
    return out


class RowCounter:
    """Rows of a growing CSV, counted from where the last call stopped (the CSVs can be large)."""

    def __init__(self, path: str):
        self.path, self.pos, self.lines = path, 0, 0

    def rows(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        # count whole lines only: a row being written is counted once its newline is there
        end = chunk.rfind(b"\n") + 1
        self.lines += chunk.count(b"\n", 0, end)
        self.pos += end
        return max(0, self.lines - 1)  # the header


@dataclass
class Worker:
    gpu: str
    index: int
    count: int
    dir: str
    expected_rows: int
    proc: subprocess.Popen | None = None
    rc: int | None = None
    counter: RowCounter | None = None
    interrupted: bool = False

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "log.txt")


def run(workers: list[Worker], command, env_var: str, quiet: bool = False, env: dict | None = None) -> list[Worker]:
    """Start one process per worker (`command(worker)` is its argv), show their progress, wait for all.
    Ctrl-C is passed on to each worker once; a second Ctrl-C terminates them."""
    env = dict(os.environ if env is None else env)
    for w in workers:
        os.makedirs(w.dir, exist_ok=True)
        w.counter = RowCounter(os.path.join(w.dir, "results.csv"))
        with open(w.log, "ab") as log:
            log.write(f"== {datetime.now():%Y-%m-%d %H:%M:%S} {' '.join(command(w))}\n".encode())
            log.flush()
            w.proc = subprocess.Popen(command(w), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      env=pinned_env(env, env_var, w.gpu), start_new_session=True)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True, quiet=quiet)
    stops = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=quiet) as prog:
        tasks = {w.index: prog.add_task(f"GPU {w.gpu} shard {w.index}/{w.count}", total=w.expected_rows)
                 for w in workers}
        total = prog.add_task("all GPUs", total=sum(w.expected_rows for w in workers))
        while True:
            try:
                done = 0
                for w in workers:
                    if w.rc is None:
                        w.rc = w.proc.poll()
                    rows = w.counter.rows()
                    done += rows
                    prog.update(tasks[w.index], completed=rows,
                                description=f"GPU {w.gpu} shard {w.index}/{w.count}"
                                            + ("" if w.rc is None else " done" if w.rc == 0 else f" exit {w.rc}"))
                prog.update(total, completed=done)
                if all(w.rc is not None for w in workers):
                    break
                time.sleep(POLL_S)
            except KeyboardInterrupt:
                stops += 1
                for w in workers:
                    if w.proc.poll() is None:
                        w.interrupted = True
                        # first Ctrl-C: the worker stops its sweep and saves; second: it is ended
                        w.proc.send_signal(signal.SIGINT if stops == 1 else signal.SIGTERM)
                console.print("[yellow]stopping: each worker keeps its finished rows[/]" if stops == 1 else
                              "[red]terminating the workers[/]")
    return workers


def unfinished(w: Worker, plan: list, backends: list[str]) -> list[tuple]:
    """The points of the worker's shard that its CSV does not hold, one per (backend, shape, M)."""
    path = os.path.join(w.dir, "results.csv")
    have = {MG.row_point(r) for r in results.read_rows(path, required=results.KEY)} if os.path.exists(path) else set()
    return [k for s in SH.select(plan, w.index, w.count) for b in backends for M in s.batches
            if (k := MG.point_key(b, s, M)) not in have]


def report(workers: list[Worker], plan: list, backends: list[str], console) -> list[Worker]:
    """Print each failed worker with its GPU, exit code, unfinished points and log's end; return them."""
    failed = [w for w in workers if w.rc not in (0, 130) or not os.path.exists(os.path.join(w.dir, "results.json"))]
    for w in failed:
        left = unfinished(w, plan, backends)
        console.print(f"[red]GPU {w.gpu} (shard {w.index}/{w.count}) failed with exit code {w.rc}[/]: "
                      f"{len(left)} points unfinished: {MG.describe(left)}")
        try:
            with open(w.log, errors="replace") as f:
                tail = f.read().splitlines()[-LOG_TAIL:]
        except OSError:
            tail = []
        for line in tail:
            console.print(f"    {line}", markup=False, highlight=False)
        console.print(f"    (log: {w.log})", markup=False, highlight=False)
    return failed


# --- the CLI path (python -m tinygemm.bench ... --gpus) ------------------------------------------------

# Run in a child process with the launcher's environment: which backends the workers will run and how
# many GPUs there are, judged by the bench's own selection, so that the launcher never initialises a
# GPU itself (a context of its own on GPU 0 would disturb worker 0's measurements).
PROBE = """
import json, sys
import torch
from tinygemm import _C
from tinygemm.backends import registry
from tinygemm.bench.__main__ import select_backends
usable, off = select_backends(sys.argv[1], registry())
print(json.dumps({"count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                  "gpu_backend": _C.gpu_backend, "backends": [b.name for b in usable], "off": off}))
"""


def probe(spec: str) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, spec], capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError("could not list the usable backends: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(r.stdout.strip().splitlines()[-1])


def worker_argv(argv: list[str]) -> list[str]:
    """The bench arguments without --gpus and --out (the launcher gives each worker its own)."""
    import argparse

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--gpus")
    p.add_argument("--out")
    _, rest = p.parse_known_args(argv)
    return rest


def main(a, argv: list[str], plan: list, plan_rec: dict) -> int:
    """The --gpus path of the bench CLI; `a` is its parsed arguments, `argv` its command line."""
    from rich.console import Console

    console = Console(stderr=True, quiet=a.quiet)
    try:
        # a dry run over named GPUs needs no GPU: it only prints the split
        info = probe(a.backends) if not (a.dry_run and a.gpus.strip() != "all") else None
        gpus = parse_gpus(a.gpus, info and info["count"], os.environ)
    except ValueError as e:
        print(f"tinygemm.bench: {e}", file=sys.stderr)
        return 2
    n = len(gpus)
    out = a.out or os.path.join("tinygemm-results", f"{datetime.now():%Y%m%d-%H%M%S}-{n}gpus")
    if a.dry_run:
        for i, g in enumerate(gpus):
            part = SH.select(plan, i, n)
            print(f"GPU {g}: shard {i}/{n}, {sum(len(s.batches) for s in part)} points, estimated "
                  f"{SH.plan_cost_s(part):.0f} s per backend -> {os.path.join(out, SH.shard_dir_name(i, n))}")
        return 0
    if info["gpu_backend"] == "cpu" or not info["count"]:
        print("tinygemm.bench --gpus needs GPUs: " + ("this tinygemm build has no GPU support"
              if info["gpu_backend"] == "cpu" else "no GPU is visible to torch"), file=sys.stderr)
        return 2
    for name, why in info["off"]:
        console.print(f"[yellow]skipping {name}[/]: {why}")
    if not info["backends"]:
        print("tinygemm.bench: no requested backend can run here", file=sys.stderr)
        return 2
    workers = [Worker(g, i, n, os.path.join(out, SH.shard_dir_name(i, n)),
                      sum(len(s.batches) for s in SH.select(plan, i, n)) * len(info["backends"]))
               for i, g in enumerate(gpus)]
    if not (a.resume or a.force):
        there = [p for p in [os.path.join(out, "results.csv")] + [os.path.join(w.dir, "results.csv") for w in workers]
                 if os.path.exists(p)]
        if there:
            print(f"tinygemm.bench: {there[0]} exists: pass --resume to continue it or --force to overwrite it",
                  file=sys.stderr)
            return 2
    for w in workers:
        why = SH.resume_conflict(w.dir, plan_rec, {"index": w.index, "count": n}) if a.resume else None
        if why:
            print(f"tinygemm.bench: {why}", file=sys.stderr)
            return 2
    rest = worker_argv(argv)
    cmd = lambda w: [sys.executable, "-m", "tinygemm.bench", *rest, "--shard", f"{w.index}/{n}", "--out", w.dir]  # noqa: E731
    var = "HIP_VISIBLE_DEVICES" if info["gpu_backend"] == "hip" else "CUDA_VISIBLE_DEVICES"
    console.print(f"{n} workers ({var} = {', '.join(gpus)}), logs in {out}/shard-*/log.txt")
    run(workers, cmd, var, quiet=a.quiet)
    return finish(workers, plan, info["backends"], out, console)


def finish(workers: list[Worker], plan: list, backends: list[str], out: str, console) -> int:
    """Report failed workers, or merge the shards into OUT: 0 complete, 1 failed or incomplete, 130 interrupted."""
    failed = report(workers, plan, backends, console)
    interrupted = any(w.interrupted or w.rc == 130 for w in workers)
    if failed:
        console.print(f"[red]{len(failed)} of {len(workers)} GPUs failed[/]: the same command with --resume "
                      "finishes their points and merges")
        return 130 if interrupted else 1
    try:
        m = MG.merge([w.dir for w in workers])
        MG.write(m, out, force=True)  # OUT/results.csv was checked before the workers started
    except (ValueError, OSError) as e:
        print(f"merge: {e}", file=sys.stderr)
        return 1
    console.print(f"merged {len(workers)} shards: {len(m.rows)} rows in {os.path.join(out, 'results.csv')}")
    if m.meta.get("phase_s"):
        walls = sum(f.get("wall_s") or 0.0 for f in m.meta["merged_from"])
        console.print("summed over the shards: " + phase_line(m.meta["phase_s"], walls, m.meta["outside_sweep_s"]))
    for line in MG.missing_lines(m, len(workers)):
        console.print(line, markup=False, highlight=False)
    if interrupted:
        console.print("[yellow]interrupted: every finished row is kept; --resume continues[/]")
        return 130
    return 1 if m.missing else 0
