"""Profile a tinygemm-bench-* binary (or any program) with Nsight Compute or rocprofv3, as CSV.

    python -m tinygemm.profile ncu -- tinygemm-bench-gemm --m 16 --n 4096 --k 4096 --profile
    python -m tinygemm.profile rocprof -- tinygemm-bench-gemm --m 16 --profile

ncu runs with --clock-control none (the card's clocks as they are, like every other tinygemm
number) and --profile-from-start off, so only what the program brackets with cudaProfilerStart/Stop
is profiled: the binaries' --profile mode does that for one launch, and tinygemm.profile.region()
does it for Python code. Output: one CSV row per kernel with the metrics as columns, or with
--replay range one row for the whole window (its time includes the host's API time inside it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile

from .cli_errors import atomic_write, check_output, exit_2_on_bad_input, fail, read_text

DEFAULT_METRICS = [
    "gpu__time_duration.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__warps_active.avg.pct_of_peak_sustained_active",  # achieved occupancy
    "dram__bytes_read.sum",
]


NCU_REPLAY_MODES = ("kernel", "range")


def ncu_command(cmd: list[str], metrics: list[str], log_file: str, ncu: str = "ncu", replay: str = "kernel",
                cache: str = "all") -> list[str]:
    """replay="kernel": one result per kernel, each replayed alone (caches flushed before each with
    cache="all"). replay="range": the whole cudaProfilerStart/Stop window as one result, for metrics
    over several kernels; its gpu__time_duration includes the host-side API time inside the window
    (~0.2 ms for a 12 us GEMM on an H100), so it is not a kernel time. cache="all" flushes the
    caches before each replay (cold, tinygemm's default); "none" leaves them."""
    if replay not in NCU_REPLAY_MODES:
        raise ValueError(f"ncu replay mode must be one of {NCU_REPLAY_MODES}, got {replay!r}")
    if cache not in ("all", "none"):
        raise ValueError(f"ncu cache control must be 'all' or 'none', got {cache!r}")
    # range replay takes its ranges from cudaProfilerStart/Stop itself and refuses --profile-from-start
    window = ["--profile-from-start", "off"] if replay == "kernel" else []
    return [ncu, "--clock-control", "none", *window, "--replay-mode", replay,
            "--cache-control", cache, "--metrics", ",".join(metrics), "--csv", "--log-file", log_file, *cmd]


def parse_ncu_csv(text: str) -> list[dict]:
    """ncu's long CSV (one line per kernel x metric) -> one dict per kernel launch."""
    lines = [ln for ln in text.splitlines() if ln.startswith('"')]
    if not lines:
        return []
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    missing = [c for c in ("ID", "Kernel Name", "Metric Name", "Metric Value") if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"ncu's CSV lacks the columns {', '.join(missing)} (is it ncu --csv output?)")
    kernels: dict[str, dict] = {}
    for r in reader:
        if not (r["ID"] or "").strip().isdigit():
            raise ValueError(f"ncu's CSV has a non-integer kernel ID {r['ID']!r}")
        k = kernels.setdefault(r["ID"], {"id": int(r["ID"]), "kernel": r["Kernel Name"], "grid": r.get("Grid Size", ""),
                                         "block": r.get("Block Size", "")})
        unit = r.get("Metric Unit") or ""
        value = (r["Metric Value"] or "").replace(",", "")
        try:
            v = float(value)
        except ValueError:
            v = value
        if r["Metric Name"] == "gpu__time_duration.sum":
            if not isinstance(v, float):
                raise ValueError(f"ncu's CSV: kernel ID {r['ID']}'s gpu__time_duration.sum is not a number ({value!r})")
            scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
                     "s": 1e6, "second": 1e6}
            if unit not in scale:
                raise ValueError(f"unknown ncu time unit {unit!r} (known: {', '.join(scale)})")
            v = v * scale[unit]
            k["gpu__time_duration.sum_us"] = v
        else:
            k[r["Metric Name"] + (f" ({unit})" if unit and unit != "%" else "")] = v
    return sorted(kernels.values(), key=lambda d: d["id"])


def find_ncu() -> str:
    """The ncu executable: on PATH, else CUDA's default install."""
    ncu = shutil.which("ncu") or next((p for p in ("/usr/local/cuda/bin/ncu",) if os.path.exists(p)), None)
    if ncu is None:  # the machine's setup, not the profiled program: exit 2 like other bad input
        raise ValueError("Nsight Compute (ncu) is not on PATH")
    return ncu


def run_ncu(cmd: list[str], metrics: list[str] | None = None, ncu: str | None = None,
            replay: str = "kernel", cache: str = "all") -> list[dict]:
    ncu = ncu or find_ncu()
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "ncu.csv")
        r = subprocess.run(ncu_command(cmd, metrics or DEFAULT_METRICS, log, ncu, replay, cache), capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ncu failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
        if not os.path.exists(log):  # (its temporary path would mean nothing to the user)
            raise RuntimeError(f"ncu exited 0 but wrote no results; its output: {(r.stderr or r.stdout).strip()[-500:]!r}")
        return parse_ncu_csv(read_text(log))


def parse_rocprof_csv(text: str) -> list[dict]:
    """rocprofv3 --kernel-trace CSV -> [{kernel, gpu__time_duration.sum_us}]."""
    out = []
    reader = csv.DictReader(io.StringIO(text))
    need = ("Kernel_Name", "Start_Timestamp", "End_Timestamp")
    missing = [c for c in need if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"rocprofv3's kernel trace lacks the columns {', '.join(missing)}")
    for i, r in enumerate(reader):
        try:
            t = (int(r["End_Timestamp"]) - int(r["Start_Timestamp"])) / 1e3
        except (TypeError, ValueError):
            raise ValueError(f"rocprofv3's kernel trace row {i + 1}: timestamps must be integers; got "
                             f"{r['Start_Timestamp']!r}, {r['End_Timestamp']!r}") from None
        out.append({"id": i, "kernel": r["Kernel_Name"], "gpu__time_duration.sum_us": t})
    return out


def run_rocprof(cmd: list[str]) -> list[dict]:
    exe = shutil.which("rocprofv3")
    if exe is None:
        raise ValueError("rocprofv3 is not on PATH")
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([exe, "--kernel-trace", "--output-format", "csv", "-d", d, "--", *cmd],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"rocprofv3 failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith("kernel_trace.csv"):
                    return parse_rocprof_csv(read_text(os.path.join(root, f)))
    raise RuntimeError("rocprofv3 wrote no kernel_trace.csv")


@contextlib.contextmanager
def region(name: str = "tinygemm"):
    """Profile the Python code inside (cudaProfilerStart/Stop + an NVTX range), for ncu --profile-from-start off."""
    import torch

    from ._ext import require_gpu

    require_gpu("tinygemm.profile.region()")  # a clear error, not torch's assertion, on a CPU machine
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    torch.cuda.nvtx.range_push(name)
    try:
        yield
        torch.cuda.synchronize()
    finally:
        torch.cuda.nvtx.range_pop()
        torch.cuda.profiler.stop()


def write_csv(rows: list[dict], path: str | None) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if not path:
        w = csv.DictWriter(sys.stdout, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        return
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


USAGE = "python -m tinygemm.profile {ncu,rocprof} [options] -- PROGRAM [ARGS]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m tinygemm.profile", usage=USAGE, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tool", choices=["ncu", "rocprof"])
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated ncu metrics")
    p.add_argument("-o", "--output", default=None, help="write the CSV here (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    p.add_argument("--replay", choices=NCU_REPLAY_MODES, default="kernel",
                   help="ncu only: a result per kernel, or the whole profiled window as one (range)")
    p.add_argument("--cache", choices=["all", "none"], default="all",
                   help="ncu only: flush the caches before each replay (all, cold) or leave them (none)")
    i = argv.index("--") if "--" in argv else len(argv)
    if "--" not in argv and not {"-h", "--help"} & set(argv):
        if argv and argv[0] not in ("ncu", "rocprof"):
            fail(p.prog, f"unknown profiler {argv[0]!r} (ncu or rocprof); usage: {USAGE}")
        fail(p.prog, f"no program to profile: give it after -- (usage: {USAGE})")
    a = p.parse_args(argv[:i])  # --help (before any --) prints the full help and exits 0
    cmd = argv[i + 1:]
    if not cmd:
        p.error("no program after --")
    with exit_2_on_bad_input(p.prog):
        if a.output:
            check_output(a.output, a.force)  # before the profiler runs
        metrics = [m.strip() for m in a.metrics.split(",") if m.strip()]
        if not metrics:
            raise ValueError("--metrics names no metric")
    try:
        with exit_2_on_bad_input(p.prog):  # an unreadable or unexpected profiler CSV
            rows = run_ncu(cmd, metrics, replay=a.replay, cache=a.cache) if a.tool == "ncu" else run_rocprof(cmd)
    except RuntimeError as e:  # the profiler or the program failed: exit 1, in the CLI's one-line form
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 1
    if not rows:
        print(f"{p.prog}: error: the profiler captured no kernel (does the program bracket its work with "
              "cudaProfilerStart/Stop, e.g. the binaries' --profile?)", file=sys.stderr)
        return 1
    with exit_2_on_bad_input(p.prog):
        write_csv(rows, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
