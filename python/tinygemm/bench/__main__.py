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
import sys
import time

from .. import shapes as S
from . import shard as SH
# the pieces main() runs, importable from here as before
from .listing import binaries, list_backends  # noqa: F401
from .plan import backend_names, build_plan, select_backends  # noqa: F401
from .summary import print_summary


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
                   help="'default', 'all' (variants too) or a comma-separated list of names (old names are "
                        "accepted: tinygemm_cuda runs tinygemm_gemv)")
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


def check_without_gpu(parser, a) -> tuple[list, dict]:
    """Every check that needs no GPU, before the GPU check (and in --dry-run): (plan, registry)."""
    from ..backends import registry
    from ..cli_errors import exit_2_on_bad_input
    from . import checks

    with exit_2_on_bad_input(parser.prog):
        checks.check_flags(a)
        checks.check_timing(a)
        plan = build_plan(a)
        checks.check_plan_size(sum(len(s.batches) for s in plan))
        reg = registry()
        backend_names(a.backends, reg)
        if not a.list_backends and not a.gpus:  # --dry-run too: it sees the errors the run would (creates nothing)
            checks.check_out(a)
        if a.gpus and a.shard:
            raise ValueError("--gpus runs every shard of the plan on this host: give --gpus or --shard, not both")
    return plan, reg


def print_plan(a, plan: list, plan_rec: dict, shard_rec: dict) -> None:
    """--dry-run: the plan, one line per weight shape."""
    if a.shard:
        print(f"shard {a.shard[0]}/{a.shard[1]}: {shard_rec['points']} of {plan_rec['points']} points, "
              f"estimated {shard_rec['estimated_s_per_backend']:.0f} s per backend")
    n = sum(len(s.batches) for s in plan)
    print(f"{len(plan)} weight shapes, {n} (shape, batch) points per backend, backends: {a.backends}")
    for s in plan:
        print(f"  {s.model:24s} {s.layer:28s} tp={s.tp:<2d} K={s.K:<6d} N={s.N:<6d} "
              f"M={s.batches[0]}..{s.batches[-1]} ({len(s.batches)})")


def main(argv: list[str] | None = None) -> int:
    t_main = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        from .merge import main as merge_main

        return merge_main(argv[1:])
    parser, a = parse_args(argv)
    plan, reg = check_without_gpu(parser, a)
    plan_rec = SH.plan_record(plan, SH.plan_options(a))
    if a.gpus:
        from .launch import main as launch_main

        return launch_main(a, argv, plan, plan_rec)
    shard_rec = SH.shard_record(plan, *(a.shard or (0, 1)))
    plan = SH.select(plan, *(a.shard or (0, 1)))
    if a.dry_run:
        print_plan(a, plan, plan_rec, shard_rec)
        return 0
    if a.list_backends:
        return list_backends(reg)

    from .. import _C
    from ..cli_errors import exit_2_on_bad_input
    from ..display import console as make_console
    from . import session
    from .phases import line
    from .runner import Stats

    if why := session.gpu_problem():
        print(why, file=sys.stderr)
        return 2
    backends, off = select_backends(a.backends, reg)
    dev = _C.device_info()
    with exit_2_on_bad_input(parser.prog):
        o = session.open_output(a, dev.name, plan_rec, shard_rec)
    console = make_console(stderr=True, quiet=a.quiet)
    for n, why in off:
        console.print(f"[yellow]skipping {n}[/]: {why}")
    if not backends:
        console.print("[red]no requested backend can run here[/]")
        return 2
    stats = Stats()
    with stats.phases.time("ceilings"):
        peaks, ceil, device = session.measure_ceilings(dev, console)
    session.configure(backends, a)
    stats.phases.add("startup", time.perf_counter() - t_main - stats.phases.s["ceilings"])
    s = session.sweep(plan, backends, session.run_options(a, peaks, ceil), o.csv_path, a.resume, o.done, stats,
                      console, a.quiet)
    session.record(argv, o, device, ceil, backends, off, stats, s, plan_rec, shard_rec, a.export_seed, console)
    print_summary(s.rows, console)
    console.print(f"{stats.points} points in {s.wall_s:.1f} s (timed kernels {stats.timed_s:.1f} s); "
                  f"results in {o.csv_path}")
    console.print(line(stats.phases.record(s.wall_s), s.wall_s, stats.phases.outside()))
    if s.interrupted:
        console.print("[yellow]interrupted: every finished row is in the CSV; --resume continues[/]")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
