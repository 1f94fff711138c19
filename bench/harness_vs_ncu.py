"""Cross-check: the harness's median against Nsight Compute's gpu__time_duration for
tinygemm-bench-gemm at sizes from ~10 us to ~3 ms (both cold L2, clocks as they are: ncu runs with
--clock-control none), for each of the harness's timing modes:

- event: device events around one launch. They also hold the launch's front-end latency and the
  end event's wait (2.2 us over the kernel's own timestamps, 1 us over ncu, on an H100).
- graph: many launches replayed from one graph, time / launches. Back to back, a kernel's launch
  and ramp-up overlap the previous one's tail, so short kernels read below their isolated time.
- cupti: the span of the GPU's own start/end timestamps of the launch's kernels (CUPTI), what
  nsys reports; ncu's gpu__time_duration reads 1.2 us more (measured by --out-spin).

One cuBLAS call can be several kernels (a split-K GEMM and its reduction). ncu's kernel replay
flushes the caches before *each* kernel and times each alone, so its sum over a multi-kernel call
reads the partials from DRAM and leaves out the gap between the kernels; the harness, like an
application, runs them back to back after one flush. The like-for-like comparison is therefore made
on calls that are one kernel; multi-kernel calls are reported beside it, with each kernel's time and
the sum with caches left warm (--cache-control none), which shows where the gap comes from. (ncu's
range replay is no help: its range time includes the host-side API time in the window.)

    python bench/harness_vs_ncu.py --out harness_vs_ncu.csv
"""

import argparse
import json
import shutil
import statistics
import subprocess

from tinygemm.profile import run_ncu
from tinygemm.results import write_dicts

MODES = ("event", "graph", "cupti")
# (M, K, N): ~10 us shapes (cuBLAS picks split-K + a reduction for the first on an H100) up to a ~3 ms GEMM
SIZES = [(16, 4096, 2048), (64, 4096, 2048), (128, 2048, 4096), (512, 1024, 4096), (256, 4096, 6144),
         (1024, 4096, 14336), (4096, 4096, 14336), (8192, 8192, 16384)]


def _mhz(value, key: str) -> float:
    """sm__cycles_elapsed.avg.per_second in MHz, whatever unit ncu printed it in."""
    scale = {"(hz)": 1e-6, "(cycle/second)": 1e-6, "(khz)": 1e-3, "(mhz)": 1.0, "(ghz)": 1e3,
             "(cycle/nsecond)": 1e3, "(cycle/usecond)": 1.0}
    unit = key[key.find("("):].lower() if "(" in key else "(hz)"
    return float(value) * scale.get(unit, 1e-6)


def harness(args: list[str], *extra: str) -> dict:
    out = subprocess.run(args + list(extra) + ["--json", "-"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def ncu(args: list[str], launches: int, cache: str = "all") -> dict:
    """Medians over `launches` profiled runs (one launch each) of the summed and per-kernel gpu__time_duration."""
    times, per_kernel, clocks, names = [], [], [], []
    try:
        for _ in range(launches):
            ks = run_ncu(args + ["--profile"], ["gpu__time_duration.sum", "sm__cycles_elapsed.avg.per_second"],
                         cache=cache)
            if not ks:
                raise RuntimeError("ncu captured nothing")
            times.append(sum(r["gpu__time_duration.sum_us"] for r in ks))
            per_kernel.append([r["gpu__time_duration.sum_us"] for r in ks])
            names = [r["kernel"] for r in ks]
            clocks += [_mhz(v, key) for key, v in ks[0].items() if key.startswith("sm__cycles_elapsed.avg.per_second")]
    except RuntimeError as e:  # record it and go on to the next size
        return {"error": str(e)[-200:]}
    each = [statistics.median(col) for col in zip(*per_kernel)]
    return {"us": statistics.median(times), "kernels": len(names), "names": names, "each": each,
            "clock": round(statistics.median(clocks)) if clocks else ""}


def pct(a: float, b: float) -> float:
    return round(100 * (a - b) / b, 2)


def signed(v) -> str:
    return f"{v:+.2f}%" if v != "" else "n/a"


# A Python child that launches spin kernels of known lengths inside one profiled region.
SPIN_CHILD = """
import sys, torch
from tinygemm import _C, profile
from tinygemm._ext import stream_handle
_C.spin(1000, stream_handle()); torch.cuda.synchronize()
with profile.region("spin"):
    for ns in sys.argv[1:]:
        _C.spin(int(ns), stream_handle())
"""
SPIN_NS = [2_000, 5_000, 10_000, 20_000, 50_000, 200_000]


def known_lengths(launches: int) -> list[dict]:
    """ncu and the harness on kernels whose length is known by construction: a one-thread spin on the
    GPU's global timer reads no memory, so caches and clocks do not enter, only each method's overhead."""
    import sys

    from tinygemm import _C, timing
    from tinygemm._ext import stream_handle

    runs = [run_ncu([sys.executable, "-c", SPIN_CHILD, *map(str, SPIN_NS)], ["gpu__time_duration.sum"])
            for _ in range(launches)]
    rows = []
    for i, ns in enumerate(SPIN_NS):
        ncu_us = statistics.median(r[i]["gpu__time_duration.sum_us"] for r in runs)
        row = dict(spin_us=ns / 1000, ncu_us=round(ncu_us, 3))
        for mode in MODES:
            t = timing.measure(lambda ns=ns: _C.spin(ns, stream_handle()), l2="hot", mode=mode)
            row[f"{mode}_us"] = round(t.median_us, 3)
        rows.append(row)
        print(f"spin {ns / 1000:7.1f} us: ncu {ncu_us:8.3f}" + "".join(f" | {m} {row[m + '_us']:8.3f}" for m in MODES))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="harness_vs_ncu.csv")
    p.add_argument("--out-spin", default=None, help="also time spin kernels of known length (CSV path)")
    p.add_argument("--ncu-launches", type=int, default=3, help="profiled launches per size and method (median)")
    a = p.parse_args()
    if a.out_spin:
        write_dicts(a.out_spin, known_lengths(a.ncu_launches))
    exe = shutil.which("tinygemm-bench-gemm")
    if exe is None:
        raise SystemExit("tinygemm-bench-gemm is not on PATH (pip install . with CUDA)")
    rows = []
    for m, k, n in SIZES:
        args = [exe, "--m", str(m), "--n", str(n), "--k", str(k)]
        auto = harness(args)["mode"]
        h = {mode: harness(args, "--mode", mode) for mode in MODES}
        cold = ncu(args, a.ncu_launches)
        row = dict(m=m, n=n, k=k, auto_mode=auto, kernels=cold.get("kernels", ""),
                   kernel_names=" + ".join(cold.get("names", [])), ncu_us=round(cold["us"], 3) if "us" in cold else "",
                   ncu_each_us=" + ".join(f"{t:.3f}" for t in cold.get("each", [])), ncu_warm_sum_us="")
        for mode in MODES:
            row[f"{mode}_us"] = round(h[mode]["median_us"], 3)
            row[f"{mode}_diff_pct"] = pct(h[mode]["median_us"], cold["us"]) if "us" in cold else ""
        row.update(ncu_sm_clock_mhz=cold.get("clock", ""), harness_sm_clock_mhz=h["event"].get("sm_clock_mhz_min", ""),
                   harness_clock_slowdown=h["event"].get("clock_slowdown", ""), ncu_error=cold.get("error", ""))
        if cold.get("kernels", 1) > 1:  # where the multi-kernel gap comes from: the same kernels, caches warm
            warm = ncu(args, a.ncu_launches, cache="none")
            row["ncu_warm_sum_us"] = round(warm["us"], 3) if "us" in warm else warm["error"]
        rows.append(row)
        print(f"M={m:5d} N={n:6d} K={k:6d}  ncu {row['ncu_us']} us over {row['kernels']} kernel(s) "
              f"[{row['ncu_each_us']}]" + (f" (warm-cache sum {row['ncu_warm_sum_us']})" if row["ncu_warm_sum_us"] else "")
              + "".join(f" | {mode} {row[mode + '_us']:.2f} ({signed(row[mode + '_diff_pct'])})" for mode in MODES)
              + f" | auto={auto} | SM clock: ncu {row['ncu_sm_clock_mhz']}, harness {row['harness_sm_clock_mhz']} MHz"
              + (f" ({row['harness_clock_slowdown']})" if row["harness_clock_slowdown"] else "")
              + (f" | ncu error: {row['ncu_error']}" if row["ncu_error"] else ""))
    write_dicts(a.out, rows)
    single = [r for r in rows if r["kernels"] == 1 and r["ncu_us"] != ""]
    for mode in MODES:
        if single:
            worst = max(single, key=lambda r: abs(r[f"{mode}_diff_pct"]))
            within = [r for r in single if abs(r[f"{mode}_diff_pct"]) <= 3]
            print(f"{mode:5s}: within 3% of ncu at {len(within)} of {len(single)} one-kernel sizes; worst "
                  f"{signed(worst[f'{mode}_diff_pct'])} at {worst['ncu_us']} us")
    for r in rows:
        if r["kernels"] not in (1, ""):
            print(f"multi-kernel call M={r['m']} N={r['n']} K={r['k']}: ncu sums kernels replayed alone, each after "
                  "its own cache flush (see the module docstring)")


if __name__ == "__main__":
    main()
