"""Cross-check: the harness's median against Nsight Compute's gpu__time_duration for
tinygemm-bench-gemm at sizes from ~10 us to ~3 ms (both cold L2, clocks as they are: ncu runs with
--clock-control none).

One cuBLAS call can be several kernels (a split-K GEMM and its reduction). The harness times the
call as an application sees it: one L2 flush, then the kernels back to back, the reduction reading
partials the GEMM kernel just left in L2. ncu's kernel replay flushes the caches before *each*
kernel and times each one alone, from its own launch, so its sum over a multi-kernel call counts the
launch latency once per kernel and reads the partials from DRAM. The like-for-like comparison is
therefore made on calls that are one kernel; multi-kernel calls are reported beside it, with each
kernel's time and the sum with caches left warm (--cache-control none), which shows where the gap
comes from. (ncu's range replay is no help here: its range time includes the host-side API time in
the window, ~0.2 ms on this machine.)

    python bench/harness_vs_ncu.py --out harness_vs_ncu.csv
"""

import argparse
import json
import shutil
import statistics
import subprocess

from tinygemm.profile import run_ncu
from tinygemm.results import write_dicts

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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="harness_vs_ncu.csv")
    p.add_argument("--ncu-launches", type=int, default=3, help="profiled launches per size and method (median)")
    a = p.parse_args()
    exe = shutil.which("tinygemm-bench-gemm")
    if exe is None:
        raise SystemExit("tinygemm-bench-gemm is not on PATH (pip install . with CUDA)")
    rows = []
    for m, k, n in SIZES:
        args = [exe, "--m", str(m), "--n", str(n), "--k", str(k)]
        h = harness(args)
        # the other timing mode too: events carry ~1-2 us of launch overhead that matters at ~10 us
        other = harness(args, "--mode", "graph" if h["mode"] == "event" else "event")
        cold = ncu(args, a.ncu_launches)
        row = dict(m=m, n=n, k=k, harness_mode=h["mode"], harness_median_us=round(h["median_us"], 3),
                   harness_samples=h["samples"], ncu_us=round(cold["us"], 3) if "us" in cold else "",
                   diff_pct=pct(h["median_us"], cold["us"]) if "us" in cold else "",
                   kernels=cold.get("kernels", ""), kernel_names=" + ".join(cold.get("names", [])),
                   ncu_each_us=" + ".join(f"{t:.3f}" for t in cold.get("each", [])),
                   ncu_warm_sum_us="", other_mode=other["mode"], other_median_us=round(other["median_us"], 3),
                   ncu_sm_clock_mhz=cold.get("clock", ""), harness_sm_clock_mhz=h.get("sm_clock_mhz_min", ""),
                   ncu_error=cold.get("error", ""))
        if cold.get("kernels", 1) > 1:  # where the multi-kernel gap comes from: the same kernels, caches warm
            warm = ncu(args, a.ncu_launches, cache="none")
            row["ncu_warm_sum_us"] = round(warm["us"], 3) if "us" in warm else warm["error"]
        rows.append(row)
        print(f"M={m:5d} N={n:6d} K={k:6d}  harness ({h['mode']}) {h['median_us']:9.2f} us | ncu {row['ncu_us']} us"
              f" ({signed(row['diff_pct'])}) over {row['kernels']} kernel(s) [{row['ncu_each_us']}]"
              + (f", warm-cache sum {row['ncu_warm_sum_us']} us" if row["ncu_warm_sum_us"] != "" else "")
              + f" | {other['mode']} {other['median_us']:.2f} us | SM clock ncu {row['ncu_sm_clock_mhz']} MHz"
              + (f" | ncu error: {row['ncu_error']}" if row["ncu_error"] else ""))
    write_dicts(a.out, rows)
    single = [r for r in rows if r["kernels"] == 1 and r["diff_pct"] != ""]
    if single:
        worst = max(abs(r["diff_pct"]) for r in single)
        span = f"{min(r['harness_median_us'] for r in single):.1f}-{max(r['harness_median_us'] for r in single):.0f} us"
        print(f"one-kernel calls: worst difference {worst:.2f}% over {len(single)} sizes ({span}), "
              f"{'within' if worst <= 3 else 'OUTSIDE'} 3%")
    for r in rows:
        if r["kernels"] not in (1, ""):
            print(f"multi-kernel call M={r['m']} N={r['n']} K={r['k']}: {signed(r['diff_pct'])} (ncu times each "
                  f"kernel alone, each after its own cache flush; see the module docstring)")


if __name__ == "__main__":
    main()
