"""Cross-check: the harness's median against Nsight Compute's gpu__time_duration for
tinygemm-bench-gemm at five sizes from ~10 us to ~5 ms (both cold L2; ncu flushes caches between
passes by default and runs with --clock-control none, as the harness measures the card as it is).

    python bench/harness_vs_ncu.py --out harness_vs_ncu.csv
"""

import argparse
import json
import shutil
import subprocess

from tinygemm.profile import run_ncu
from tinygemm.results import write_dicts

# (M, K, N): from a ~8 us GEMV-like shape (graph mode) to a ~3 ms square-ish GEMM
SIZES = [(16, 4096, 2048), (256, 4096, 6144), (1024, 4096, 14336), (4096, 4096, 14336), (8192, 8192, 16384)]


def _mhz(value, key: str) -> float:
    """sm__cycles_elapsed.avg.per_second in MHz, whatever unit ncu printed it in."""
    scale = {"(hz)": 1e-6, "(cycle/second)": 1e-6, "(khz)": 1e-3, "(mhz)": 1.0, "(ghz)": 1e3,
             "(cycle/nsecond)": 1e3, "(cycle/usecond)": 1.0}
    unit = key[key.find("("):].lower() if "(" in key else "(hz)"
    return float(value) * scale.get(unit, 1e-6)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="harness_vs_ncu.csv")
    p.add_argument("--ncu-launches", type=int, default=5, help="profiled launches per size (median taken)")
    a = p.parse_args()
    exe = shutil.which("tinygemm-bench-gemm")
    rows = []
    for m, k, n in SIZES:
        args = [exe, "--m", str(m), "--n", str(n), "--k", str(k)]
        h = json.loads(subprocess.run(args + ["--json", "-"], capture_output=True, text=True, check=True).stdout)
        # both modes, whatever auto picked: events carry ~1-2 us of overhead that matters at ~10 us
        other = "graph" if h["mode"] == "event" else "event"
        h2 = json.loads(subprocess.run(args + ["--mode", other, "--json", "-"], capture_output=True, text=True,
                                       check=True).stdout)
        # one profiled launch per run; cuBLAS may run several kernels per GEMM (split-K + reduction): sum them
        # with the SM clock ncu's kernels ran at: idle gaps between ncu's replays can let the clock drop,
        # which a ~10 us kernel cannot ramp back up from (the harness keeps the card busy before it times)
        times, clocks = [], []
        for _ in range(a.ncu_launches):
            ks = run_ncu(args + ["--profile"], ["gpu__time_duration.sum", "sm__cycles_elapsed.avg.per_second"])
            times.append(sum(r["gpu__time_duration.sum_us"] for r in ks))
            clocks.append(next((_mhz(v, key) for key, v in ks[0].items()
                                if key.startswith("sm__cycles_elapsed.avg.per_second")), 0))
        times.sort()
        clocks.sort()
        ncu_us = times[len(times) // 2]
        diff = 100 * (h["median_us"] - ncu_us) / ncu_us
        diff2 = 100 * (h2["median_us"] - ncu_us) / ncu_us
        rows.append(dict(m=m, n=n, k=k, harness_mode=h["mode"], harness_median_us=round(h["median_us"], 3),
                         harness_samples=h["samples"], ncu_median_us=round(ncu_us, 3), ncu_launches=len(times),
                         diff_pct=round(diff, 2), other_mode=h2["mode"], other_median_us=round(h2["median_us"], 3),
                         other_diff_pct=round(diff2, 2), ncu_sm_clock_mhz=round(clocks[len(clocks) // 2]),
                         harness_sm_clock_mhz=h.get("sm_clock_mhz_min", "")))
        print(f"M={m:5d} N={n:6d} K={k:6d}  harness ({h['mode']}) {h['median_us']:10.2f} us  ncu {ncu_us:10.2f} us"
              f"  {diff:+6.2f}%   ({h2['mode']}: {h2['median_us']:.2f} us, {diff2:+.2f}%)  SM clock: ncu "
              f"{rows[-1]['ncu_sm_clock_mhz']} MHz, harness {rows[-1]['harness_sm_clock_mhz']} MHz")
    write_dicts(a.out, rows)
    worst = max(abs(r["diff_pct"]) for r in rows)
    print(f"worst difference {worst:.2f}% ({'within' if worst <= 3 else 'OUTSIDE'} 3%)")


if __name__ == "__main__":
    main()
