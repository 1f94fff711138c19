"""python -m tinygemm.bench: how fast every GEMM backend runs for an LLM's linear layers, at every batch size.

    python -m tinygemm.bench                                  # Llama-3-8B TP1, vLLM batch sizes, all backends
    python -m tinygemm.bench --model Llama-3-70B --tp 4 8 --batches decode
    python -m tinygemm.bench --kn 4096,14336 --backends torch_matmul --batches 4:32768:4 --kernel-names
    python -m tinygemm.bench --list-backends

Writes results.csv (one tidy row per shape x backend x batch size), results.json (device, clocks,
versions, measured ceilings, the command line) and, with --export-seed, the seed experiments' CSVs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime

from .. import shapes as S
from . import shard as SH


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m tinygemm.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("shapes")
    g.add_argument("--model", nargs="+", default=None, help=f"models (default Llama-3-8B), as named here, by an alias or a Hugging Face id "
                   f"(llama3_8b, Llama-3.1-8B, meta-llama/Meta-Llama-3-8B); known: {', '.join(S.MODELS)}")
    # --tp, --module and --batches default to None so a flag that would be ignored can be told from a
    # default (bench/checks.py); build_plan fills in 1, all and vllm
    g.add_argument("--tp", nargs="+", type=int, default=None, help="tensor-parallel sizes (default 1)")
    g.add_argument("--module", default=None, help=f"one layer or 'all' (default): {', '.join(S.LAYERS)}")
    g.add_argument("--shapes", default=None, help="custom GEMMs 'M,K,N;M,K,N' (instead of models)")
    g.add_argument("--kn", action="append", default=None, help="custom weight 'K,N' (repeatable), with --batches")
    g.add_argument("--batches", default=None,
                   help=f"{', '.join(S.NAMED_BATCHES)}, a range a:b[:step] or a list (default vllm)")
    g = p.add_argument_group("backends")
    g.add_argument("--backends", default="default",
                   help="'default', 'all' (variants too) or a comma-separated list of names")
    g.add_argument("--list-backends", action="store_true", help="list backends and why any is unavailable")
    g.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16", help="activation dtype")
    g.add_argument("--group-size", type=int, default=128, choices=[32, 64, 128, -1])
    g.add_argument("--asym", action="store_true", help="INT4 with zero points (AWQ) instead of symmetric (GPTQ)")
    g.add_argument("--machete-schedule", default=None,
                   help="a Machete schedule name (default: Machete's heuristic; the supported ones are in each row's "
                        "note and the JSON sidecar)")
    g.add_argument("--prepare-cost", action="store_true",
                   help="also time each backend's load-time weight conversion (op=prepare rows, M=0)")
    g = p.add_argument_group("timing")
    g.add_argument("--l2", choices=["cold", "hot"], default="cold")
    g.add_argument("--mode", choices=["auto", "event", "graph", "cupti"], default="auto",
                   help="auto: graphs under ~10 us, events above; cupti: the kernels' own GPU timestamps")
    g.add_argument("--target", type=float, default=0.01, help="relative spread of the median to stop at")
    g.add_argument("--min-samples", type=int, default=10)
    g.add_argument("--max-samples", type=int, default=200)
    g.add_argument("--budget-ms", type=float, default=500.0, help="sampling time budget per point")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output directory (default ./tinygemm-results/<gpu>-<time>)")
    g.add_argument("--resume", action="store_true", help="skip rows already in OUT/results.csv")
    g.add_argument("--force", action="store_true", help="overwrite an existing OUT/results.csv")
    g.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    g.add_argument("--no-refcheck", action="store_true", help="skip the fp32 reference check")
    g.add_argument("--kernel-names", action="store_true", help="record the kernels each backend runs (profiler)")
    g.add_argument("--export-seed", action="store_true", help="also write the seed experiments' CSV formats")
    g.add_argument("--quiet", action="store_true")
    g = p.add_argument_group("several GPUs and hosts (README: Sweeps on several GPUs)")
    g.add_argument("--shard", type=SH.shard_arg, default=None, metavar="I/N",
                   help="run the I-th of N parts of the plan (0 <= I < N), balanced by estimated cost")
    g.add_argument("--gpus", default=None, metavar="0,1,..|all",
                   help="one worker per GPU of this host, each a shard; merged into --out")
    return p, p.parse_args(argv)


def build_plan(a) -> list:
    from .runner import Shape

    if a.shapes is not None:
        if a.model or a.kn:
            raise ValueError("--shapes replaces --model and --kn; give only one of them")
        by_kn: dict[tuple[int, int], list[int]] = {}
        for m, k, n in S.parse_custom_shapes(a.shapes):
            by_kn.setdefault((k, n), []).append(m)
        return [Shape("custom", "custom", 1, k, n, sorted(set(ms))) for (k, n), ms in by_kn.items()]
    batches = S.parse_batches(a.batches or "vllm")
    plan = [Shape("custom", "custom", 1, *S.parse_kn(kn), batches) for kn in (a.kn or [])]
    if a.model or not a.kn:
        seen = set()
        for s in S.select(a.model or ["Llama-3-8B"], a.tp or [1], a.module or "all"):
            if (s.model, s.tp, s.K, s.N) not in seen:  # a layer repeated in one model/tp is measured once
                seen.add((s.model, s.tp, s.K, s.N))
                plan.append(Shape(s.model, s.layer, s.tp, s.K, s.N, batches))
    return plan


def backend_names(spec: str, reg: dict) -> list[str]:
    """The names --backends asks for; an unknown or empty one is a ValueError (before any GPU check)."""
    if spec in ("default", "all"):
        return [n for n, b in reg.items() if spec == "all" or b.default]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise ValueError(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(reg)}")
    if not names:
        raise ValueError(f"--backends {spec!r} names no backend; known: {', '.join(reg)}")
    return names


def select_backends(spec: str, reg: dict) -> tuple[list, list[tuple[str, str]]]:
    """(usable backends, [(name, why not)] for the asked-for ones that cannot run here)."""
    names = backend_names(spec, reg)
    usable, off = [], []
    for n in names:
        why = reg[n].unavailable()
        (off.append((n, why)) if why else usable.append(reg[n]))
    return usable, off


def binaries() -> list[tuple[str, str]]:
    """(binary, status) for the microbenchmark binaries: one missing for lack of cuBLAS says so."""
    import shutil
    import sysconfig

    def found(name: str) -> bool:
        return bool(shutil.which(name)) or os.path.exists(os.path.join(sysconfig.get_path("scripts"), name))

    if not found("tinygemm-bench-bandwidth"):
        why = "not installed (a CPU-only build: no CUDA toolkit or ROCm was found when tinygemm was built)"
        return [(b, why) for b in ("tinygemm-bench-bandwidth", "tinygemm-bench-gemm")]
    return [("tinygemm-bench-bandwidth", "installed"),
            ("tinygemm-bench-gemm", "installed" if found("tinygemm-bench-gemm") else
             "not installed: cuBLAS (hipBLAS on ROCm) was not found when tinygemm was built; install cuBLAS "
             "(the CUDA toolkit's, or the nvidia-cublas wheel of a CUDA torch) and reinstall tinygemm")]


def list_backends(reg: dict) -> int:
    from rich.table import Table

    from ..display import console
    from ..precision import precision_class

    out = console()
    t = Table(title="tinygemm backends")
    for c in ("backend", "op", "precision", "default", "status"):
        t.add_column(c, no_wrap=c == "backend")
    for n, b in reg.items():
        why = b.unavailable()
        t.add_row(n, b.op, precision_class(n, b.op), "yes" if b.default else "",
                  "[green]available[/]" if why is None else f"[red]{why}[/]")
    out.print(t)
    from ..backends.peers import other_peers

    t = Table(title="other INT4/INT8 kernels looked for")
    t.add_column("peer", no_wrap=True)
    t.add_column("status")
    for n, why in other_peers():
        t.add_row(n, why)
    out.print(t)
    t = Table(title="microbenchmark binaries")
    t.add_column("binary", no_wrap=True)
    t.add_column("status")
    for n, why in binaries():
        t.add_row(n, why if why == "installed" else f"[yellow]{why}[/]")
    out.print(t)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        from .merge import main as merge_main

        return merge_main(argv[1:])
    parser, a = parse_args(argv)
    from ..backends import registry
    from ..cli_errors import exit_2_on_bad_input
    from . import checks

    # every check that needs no GPU, before the GPU check (and in --dry-run)
    with exit_2_on_bad_input(parser.prog):
        checks.check_flags(a)
        checks.check_timing(a)
        plan = build_plan(a)
        checks.check_plan_size(sum(len(s.batches) for s in plan))
        reg = registry()
        backend_names(a.backends, reg)
        if not a.dry_run and not a.list_backends and not a.gpus:
            checks.check_out(a)
        if a.gpus and a.shard:
            raise ValueError("--gpus runs every shard of the plan on this host: give --gpus or --shard, not both")
    plan_rec = SH.plan_record(plan, SH.plan_options(a))
    if a.gpus:
        from .launch import main as launch_main

        return launch_main(a, argv, plan, plan_rec)
    shard_rec = SH.shard_record(plan, *(a.shard or (0, 1)))
    plan = SH.select(plan, *(a.shard or (0, 1)))
    if a.dry_run:
        if a.shard:
            print(f"shard {a.shard[0]}/{a.shard[1]}: {shard_rec['points']} of {plan_rec['points']} points, "
                  f"estimated {shard_rec['estimated_s_per_backend']:.0f} s per backend")
        n = sum(len(s.batches) for s in plan)
        print(f"{len(plan)} weight shapes, {n} (shape, batch) points per backend, backends: {a.backends}")
        for s in plan:
            print(f"  {s.model:24s} {s.layer:28s} tp={s.tp:<2d} K={s.K:<6d} N={s.N:<6d} "
                  f"M={s.batches[0]}..{s.batches[-1]} ({len(s.batches)})")
        return 0

    import torch

    from .. import _C, ceilings, gpus, results
    from .._ext import gpu_available

    if a.list_backends:
        return list_backends(reg)
    if not gpu_available():
        print("tinygemm.bench needs a GPU: " + ("this tinygemm build has no GPU support (reinstall with a CUDA "
              "toolkit or ROCm present)" if _C.gpu_backend == "cpu" else "no GPU is visible to torch"),
              file=sys.stderr)
        return 2
    backends, off = select_backends(a.backends, reg)
    dev = _C.device_info()
    out = a.out or os.path.join("tinygemm-results", f"{results.gpu_tag(dev.name)}-{datetime.now():%Y%m%d-%H%M%S}"
                                + (f"-{SH.shard_dir_name(*a.shard)}" if a.shard else ""))
    csv_path = os.path.join(out, "results.csv")
    with exit_2_on_bad_input(parser.prog):
        os.makedirs(out, exist_ok=True)
        if os.path.exists(csv_path) and not (a.resume or a.force):
            raise ValueError(f"{csv_path} exists: pass --resume to continue it or --force to overwrite it")
        done = results.done_keys(csv_path) if a.resume else set()
        if a.resume and (why := SH.resume_conflict(out, plan_rec, shard_rec)):
            raise ValueError(why)
        json_path = os.path.join(out, "results.json")
        first_run = checks.read_resumed(json_path) if a.resume and os.path.exists(json_path) else None

    from ..display import console as make_console

    console = make_console(stderr=True, quiet=a.quiet)
    for n, why in off:
        console.print(f"[yellow]skipping {n}[/]: {why}")
    if not backends:
        console.print("[red]no requested backend can run here[/]")
        return 2
    peaks = gpus.peaks(dev.name)
    console.print(f"{dev.name}: measuring ceilings (copy bandwidth, bf16 matmul) ...")
    ceil = {"copy_gbps": ceilings.copy_bandwidth_gbps(), "matmul_tflops": ceilings.matmul_tflops(torch.bfloat16)}
    device = {"name": dev.name, "arch": dev.arch, "sm_count": dev.sm_count, "l2_bytes": dev.l2_bytes,
              "memory_bytes": dev.total_mem_bytes, "driver_version": dev.driver_version,
              "runtime_version": dev.runtime_version, "datasheet": peaks or "not in gpu_specs.csv"}

    from .runner import Options, Stats, run_shape

    from ..backends.machete import Machete

    Machete.schedule = a.machete_schedule
    opts = Options(dtype=torch.float16 if a.dtype == "fp16" else torch.bfloat16, group_size=a.group_size,
                   symmetric=not a.asym, refcheck=not a.no_refcheck, kernel_names=a.kernel_names, peaks=peaks,
                   prepare_cost=a.prepare_cost,
                   ceilings=ceil, timing=dict(l2=a.l2, mode=a.mode, target=a.target, min_samples=a.min_samples,
                                              max_samples=a.max_samples, budget_ms=a.budget_ms,
                                              # each point's first call (outside timing) already absorbs
                                              # lazy initialisation; a short warm-up keeps sweeps fast
                                              warmup_ms=2.0))
    writer = results.CsvWriter(csv_path, append=a.resume)
    stats = Stats()
    total = sum(len(s.batches) for s in plan) * len(backends)
    t0 = time.perf_counter()
    summary: list[dict] = []
    interrupted = False
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=a.quiet) as prog:
        task = prog.add_task("sweep", total=total - len(done))

        def advance(row):
            summary.append(row)
            prog.update(task, advance=1, description=f"{row['backend']:>22s} K={row['K']} N={row['N']} M={row['M']}")

        try:
            for shape in plan:
                run_shape(shape, backends, opts, writer.write, done, stats, advance)
        except KeyboardInterrupt:
            interrupted = True
    writer.close()
    wall = time.perf_counter() - t0
    meta = results.metadata(argv, device, ceil, {
        "backends": [b.name for b in backends], "unavailable": dict(off), "points": stats.points,
        "timed_kernel_s": round(stats.timed_s, 3), "wall_s": round(wall, 3), "interrupted": interrupted,
        "backend_extra": stats.backend_extra, "plan": plan_rec, "shard": shard_rec})
    if first_run is not None:
        meta = checks.merge_resumed(first_run, meta)
    results.write_json(json_path, meta)
    if a.export_seed:
        rows = results.read_rows(csv_path)
        files = results.export_seed(rows, out, dev.name, torch.__version__, meta["versions"]["vllm"])
        console.print(f"seed-format exports: {len(files)} files")
    print_summary(summary, console)
    console.print(f"{stats.points} points in {wall:.1f} s (timed kernels {stats.timed_s:.1f} s); "
                  f"results in {csv_path}")
    if interrupted:
        console.print("[yellow]interrupted: every finished row is in the CSV; --resume continues[/]")
        return 130
    return 0


def print_summary(rows: list[dict], console) -> None:
    """Per precision class and backend, the median time summed over the layers, at a few batch sizes;
    * marks the fastest of its class (an FP8 W8A8 kernel does not do a W4A16 kernel's job)."""
    from rich.table import Table

    from ..precision import class_order, precision_class

    ok = [r for r in rows if r.get("status") == "ok" and r.get("op") != "prepare"]
    if not ok:
        return
    Ms = sorted({int(r["M"]) for r in ok})
    show = [m for m in (1, 4, 16, 64, 256, 512, 1024, 4096) if m in Ms] or Ms[:6]
    t = Table(title="time summed over the layers (us); * = fastest of its precision class")
    t.add_column("class", no_wrap=True)
    t.add_column("backend", no_wrap=True)
    for m in show:
        t.add_column(f"M={m}", justify="right")
    sums: dict[tuple[str, str], dict[int, float]] = {}
    for r in ok:
        if int(r["M"]) in show:
            v = sums.setdefault((precision_class(r["backend"], r.get("op", ""), r.get("weight_format", "")),
                                 r["backend"]), {})
            v[int(r["M"])] = v.get(int(r["M"]), 0.0) + float(r["time_us"])
    best = {(c, m): min(v[m] for (cc, _), v in sums.items() if cc == c and m in v)
            for (c, _), vv in sums.items() for m in vv}
    for (c, b), v in sorted(sums.items(), key=lambda kv: (class_order(kv[0][0]), kv[0][1])):
        t.add_row(c, b, *[("" if m not in v else f"{v[m]:.1f}{'*' if v[m] == best[(c, m)] else ''}") for m in show])
    console.print(t)
    bad = [r for r in rows if r.get("status") not in ("ok", "unsupported")]
    if bad:
        console.print(f"[red]{len(bad)} rows with status wrong/oom/error[/] (see the status and note columns)")


if __name__ == "__main__":
    sys.exit(main())
