"""The stages of one sweep on this GPU, in the order __main__ runs them: the GPU check, the output
directory (and what --resume continues), the measured ceilings, the options, the sweep with its
progress bar, and the record written at the end (results.json, the seed exports)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime

import torch

from .. import _C, ceilings, gpus, results
from .._ext import gpu_available
from . import checks
from . import shard as SH


def gpu_problem() -> str | None:
    """Why this process cannot sweep (no GPU build, no visible GPU), or None."""
    if gpu_available():
        return None
    return "tinygemm.bench needs a GPU: " + ("this tinygemm build has no GPU support (reinstall with a CUDA "
                                             "toolkit or ROCm present)" if _C.gpu_backend == "cpu" else
                                             "no GPU is visible to torch")


@dataclass
class Output:
    out: str
    csv_path: str
    json_path: str
    done: set = field(default_factory=set)    # row keys already measured (--resume)
    first_run: dict | None = None              # the resumed run's results.json


def open_output(a, dev_name: str, plan_rec: dict, shard_rec: dict) -> Output:
    """The output directory, made; an existing results.csv needs --resume or --force, and a resumed
    one must have been made by the same plan and shard (ValueErrors naming the path)."""
    out = a.out or os.path.join("tinygemm-results", f"{results.gpu_tag(dev_name)}-{datetime.now():%Y%m%d-%H%M%S}"
                                + (f"-{SH.shard_dir_name(*a.shard)}" if a.shard else ""))
    csv_path = os.path.join(out, "results.csv")
    os.makedirs(out, exist_ok=True)
    if os.path.exists(csv_path) and not (a.resume or a.force):
        raise ValueError(f"{csv_path} exists: pass --resume to continue it or --force to overwrite it")
    done = results.done_keys(csv_path) if a.resume else set()
    if a.resume and (why := SH.resume_conflict(out, plan_rec, shard_rec)):
        raise ValueError(why)
    json_path = os.path.join(out, "results.json")
    first_run = checks.read_resumed(json_path) if a.resume and os.path.exists(json_path) else None
    return Output(out, csv_path, json_path, done, first_run)


def measure_ceilings(dev, console) -> tuple[dict | None, dict, dict]:
    """(datasheet peaks, measured ceilings, the device record for results.json)."""
    peaks = gpus.peaks(dev.name)
    console.print(f"{dev.name}: measuring ceilings (copy bandwidth, bf16 matmul) ...")
    ceil = {"copy_gbps": ceilings.copy_bandwidth_gbps(), "matmul_tflops": ceilings.matmul_tflops(torch.bfloat16)}
    device = {"name": dev.name, "arch": dev.arch, "sm_count": dev.sm_count, "l2_bytes": dev.l2_bytes,
              "memory_bytes": dev.total_mem_bytes, "driver_version": dev.driver_version,
              "runtime_version": dev.runtime_version, "datasheet": peaks or "not in gpu_specs.csv"}
    return peaks, ceil, device


def configure(backends: list, a) -> None:
    """Per-run settings of backend instances (never a class attribute: a second run in the same
    process starts from the defaults)."""
    from ..backends.machete import Machete

    for b in backends:
        if isinstance(b, Machete):
            b.schedule = a.machete_schedule


def run_options(a, peaks: dict | None, ceil: dict):
    from .runner import Options

    return Options(dtype=torch.float16 if a.dtype == "fp16" else torch.bfloat16, group_size=a.group_size,
                   symmetric=not a.asym, refcheck=not a.no_refcheck, kernel_names=a.kernel_names, peaks=peaks,
                   prepare_cost=a.prepare_cost,
                   ceilings=ceil, timing=dict(l2=a.l2, mode=a.mode, target=a.target, min_samples=a.min_samples,
                                              max_samples=a.max_samples, budget_ms=a.budget_ms,
                                              # each point's first call (outside timing) already absorbs
                                              # lazy initialisation; a short warm-up keeps sweeps fast
                                              warmup_ms=2.0))


@dataclass
class Sweep:
    rows: list[dict]          # every row written, for the summary
    interrupted: bool
    wall_s: float


def sweep(plan: list, backends: list, opts, csv_path: str, append: bool, done: set, stats, console,
          quiet: bool) -> Sweep:
    """Every (shape, backend, M) not done yet, each row written (and flushed) as it finishes, behind a
    progress bar; Ctrl-C stops it with every finished row kept."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .runner import run_shape

    writer = results.CsvWriter(csv_path, append=append)
    total = sum(len(s.batches) for s in plan) * len(backends)
    t0 = time.perf_counter()
    rows: list[dict] = []
    interrupted = False
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=quiet) as prog:
        task = prog.add_task("sweep", total=total - len(done))

        def advance(row):
            rows.append(row)
            prog.update(task, advance=1, description=f"{row['backend']:>22s} K={row['K']} N={row['N']} M={row['M']}")

        try:
            for shape in plan:
                run_shape(shape, backends, opts, writer.write, done, stats, advance)
        except KeyboardInterrupt:
            interrupted = True
    writer.close()
    return Sweep(rows, interrupted, time.perf_counter() - t0)


def record(argv: list[str], o: Output, device: dict, ceil: dict, backends: list, off: list, stats, s: Sweep,
           plan_rec: dict, shard_rec: dict, export_seed: bool, console) -> None:
    """results.json (merged with the resumed run's), and the seed experiments' CSVs when asked."""
    meta = results.metadata(argv, device, ceil, {
        "backends": [b.name for b in backends], "unavailable": dict(off), "points": stats.points,
        "timed_kernel_s": round(stats.timed_s, 3), "wall_s": round(s.wall_s, 3),
        # where wall_s went (bench/phases.py), and the run's time before the sweep
        "phase_s": stats.phases.record(s.wall_s), "outside_sweep_s": stats.phases.outside(),
        "interrupted": s.interrupted,
        "backend_extra": stats.backend_extra, "plan": plan_rec, "shard": shard_rec})
    if o.first_run is not None:
        meta = checks.merge_resumed(o.first_run, meta)
    results.write_json(o.json_path, meta)
    if export_seed:
        rows = results.read_rows(o.csv_path)
        files = results.export_seed(rows, o.out, device["name"], torch.__version__, meta["versions"]["vllm"])
        console.print(f"seed-format exports: {len(files)} files")

