"""Cross-check: the harness's median against Nsight Compute's gpu__time_duration for
tinygemm-bench-gemm at five sizes from ~10 us to ~5 ms (both cold L2, clocks as they are:
ncu runs with --clock-control none).

One cuBLAS call can be several kernels (a split-K GEMM and its reduction). The harness times the
call: one L2 flush, then the kernels back to back. ncu's kernel replay instead flushes the caches
before *each* kernel and times each alone, so the reduction reads its partials from DRAM and every
kernel carries its own ramp-up; its sum is not what the harness (or an application) sees. ncu's
range replay times the whole cudaProfilerStart/Stop window as one result with one flush before it:
that is the like-for-like number, and the comparison is made against it. The kernel-replay sum, the
kernel count and ncu's SM clock are recorded beside it, and for the short sizes both methods are also
run with warm caches (ncu --cache-control none against the harness's --l2 hot).

    python bench/harness_vs_ncu.py --out harness_vs_ncu.csv
"""

import argparse
import json
import shutil
import statistics
import subprocess

from tinygemm.profile import run_ncu
from tinygemm.results import write_dicts

# (M, K, N): from a ~10 us GEMV-like shape to a ~3 ms square-ish GEMM
SIZES = [(16, 4096, 2048), (256, 4096, 6144), (1024, 4096, 14336), (4096, 4096, 14336), (8192, 8192, 16384)]
SHORT_US = 50.0  # sizes under this also get the warm-cache comparison


def _mhz(value, key: str) -> float:
    """sm__cycles_elapsed.avg.per_second in MHz, whatever unit ncu printed it in."""
    scale = {"(hz)": 1e-6, "(cycle/second)": 1e-6, "(khz)": 1e-3, "(mhz)": 1.0, "(ghz)": 1e3,
             "(cycle/nsecond)": 1e3, "(cycle/usecond)": 1.0}
    unit = key[key.find("("):].lower() if "(" in key else "(hz)"
    return float(value) * scale.get(unit, 1e-6)


def harness(args: list[str], *extra: str) -> dict:
    out = subprocess.run(args + list(extra) + ["--json", "-"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def ncu(args: list[str], launches: int, replay: str, cache: str) -> dict:
    """Median over `launches` profiled runs (one launch each) of the summed gpu__time_duration."""
    metrics = ["gpu__time_duration.sum"] + (["sm__cycles_elapsed.avg.per_second"] if replay == "kernel" else [])
    times, clocks, names = [], [], []
    try:
        for _ in range(launches):
            ks = run_ncu(args + ["--profile"], metrics, replay=replay, cache=cache)
            if not ks:
                raise RuntimeError("ncu captured nothing")
            times.append(sum(r["gpu__time_duration.sum_us"] for r in ks))
            names = [r["kernel"] for r in ks]
            clocks += [_mhz(v, key) for key, v in ks[0].items() if key.startswith("sm__cycles_elapsed.avg.per_second")]
    except RuntimeError as e:  # e.g. an ncu without range replay: record it and go on
        return {"error": str(e)[-200:]}
    return {"us": statistics.median(times), "kernels": len(names), "names": names,
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
        rng = ncu(args, a.ncu_launches, "range", "all")
        ker = ncu(args, a.ncu_launches, "kernel", "all")
        row = dict(m=m, n=n, k=k, harness_mode=h["mode"], harness_median_us=round(h["median_us"], 3),
                   harness_samples=h["samples"], ncu_range_us=round(rng["us"], 3) if "us" in rng else "",
                   diff_pct=pct(h["median_us"], rng["us"]) if "us" in rng else "",
                   ncu_kernel_sum_us=round(ker["us"], 3) if "us" in ker else "",
                   diff_kernel_sum_pct=pct(h["median_us"], ker["us"]) if "us" in ker else "",
                   kernels=ker.get("kernels", ""), kernel_names=" + ".join(ker.get("names", [])),
                   other_mode=other["mode"], other_median_us=round(other["median_us"], 3),
                   ncu_sm_clock_mhz=ker.get("clock", ""), harness_sm_clock_mhz=h.get("sm_clock_mhz_min", ""),
                   ncu_error="; ".join(x["error"] for x in (rng, ker) if "error" in x),
                   harness_hot_us="", ncu_range_hot_us="", diff_hot_pct="")
        if h["median_us"] < SHORT_US:  # warm caches on both sides
            hot = harness(args, "--l2", "hot", "--mode", h["mode"])
            rng_hot = ncu(args, a.ncu_launches, "range", "none")
            row.update(harness_hot_us=round(hot["median_us"], 3),
                       ncu_range_hot_us=round(rng_hot["us"], 3) if "us" in rng_hot else "",
                       diff_hot_pct=pct(hot["median_us"], rng_hot["us"]) if "us" in rng_hot else "")
        rows.append(row)
        print(f"M={m:5d} N={n:6d} K={k:6d}  harness ({h['mode']}) {h['median_us']:9.2f} us | ncu range "
              f"{row['ncu_range_us']} us ({signed(row['diff_pct'])}) | ncu kernel sum {row['ncu_kernel_sum_us']} us "
              f"over {row['kernels']} kernel(s) ({signed(row['diff_kernel_sum_pct'])}) | {other['mode']} "
              f"{other['median_us']:.2f} us | SM clock ncu {row['ncu_sm_clock_mhz']} MHz"
              + (f" | hot: harness {row['harness_hot_us']} ncu {row['ncu_range_hot_us']} ({signed(row['diff_hot_pct'])})"
                 if row["harness_hot_us"] != "" else "") + (f" | ncu error: {row['ncu_error']}" if row["ncu_error"] else ""))
    write_dicts(a.out, rows)
    diffs = [abs(r["diff_pct"]) for r in rows if r["diff_pct"] != ""]
    if diffs:
        worst = max(diffs)
        print(f"worst difference against ncu's range replay {worst:.2f}% over {len(diffs)} sizes "
              f"({'within' if worst <= 3 else 'OUTSIDE'} 3%)")


if __name__ == "__main__":
    main()
