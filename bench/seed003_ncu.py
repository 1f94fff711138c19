"""Seed 003's "% of peak compute" figure, from Nsight Compute: SM and DRAM throughput (% of peak
sustained) of fp16 matmul, dequant + matmul and tinygemm's fused INT4 kernels at decode sizes.

    python bench/seed003_ncu.py --out DIR      # runs itself under ncu (--clock-control none)

The worker runs twice: without ncu it counts the kernels each op launches (torch.profiler, which
cannot run under ncu: both need CUPTI), then under ncu it runs every op once inside
tinygemm.profile.region(); the parent assigns ncu's kernels to ops in launch order and weights each
op's percentages by kernel duration. Writes DIR/seed003_ncu.csv and a bar chart.
"""

import argparse
import json
import os
import subprocess
import sys

OPS = ["torch_matmul", "dequant_matmul", "tinygemm_gemv", "tinygemm_triton"]
K = 4096
NS = [1024, 4096, 14336, 28672]   # Llama-3-8B: KV projection (1024), hidden, FFN, fused gate+up
MS = [1, 2, 4, 8]
METRICS = ["gpu__time_duration.sum", "sm__throughput.avg.pct_of_peak_sustained_elapsed",
           "dram__throughput.avg.pct_of_peak_sustained_elapsed",
           "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"]


def worker(plan_path: str, count: bool) -> None:
    import torch

    import tinygemm
    from tinygemm import ops, profile

    calls = []
    for N in NS:
        w = torch.randn(K, N, device="cuda") / K**0.5
        qw = tinygemm.quantize(w.half(), 128)
        wh = w.half()
        for M in MS:
            x = torch.randn(M, K, device="cuda").half()
            fns = {
                "torch_matmul": lambda x=x, wh=wh: x @ wh,
                "dequant_matmul": lambda x=x, qw=qw: x @ ops.w4_dequant(qw.qweight, qw.scales, qw.zeros, 128),
                "tinygemm_gemv": lambda x=x, qw=qw: ops.w4a16_gemv(x, qw.qweight, qw.scales, qw.zeros, 128),
                "tinygemm_triton": lambda x=x, qw=qw: ops.w4a16_gemm(x, qw.qweight, qw.scales, qw.zeros, 128),
            }
            for op in OPS:
                calls.append((op, M, N, fns[op]))
    for _, _, _, fn in calls:
        fn()  # compile / warm up outside the profiled region
    torch.cuda.synchronize()
    if count:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as tprofile

        plan = []
        for op, M, N, fn in calls:
            with tprofile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
            n = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
            plan.append({"op": op, "M": M, "N": N, "K": K, "kernels": n})
        json.dump(plan, open(plan_path, "w"))
        return
    with profile.region("seed003"):
        for _, _, _, fn in calls:
            fn()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="seed003")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.worker, a.count)
    from tinygemm import profile
    from tinygemm.results import write_dicts

    os.makedirs(a.out, exist_ok=True)
    plan_path = os.path.join(a.out, "seed003_plan.json")
    me = [sys.executable, os.path.abspath(__file__), "--worker", plan_path]
    subprocess.run(me + ["--count"], check=True)
    kernels = profile.run_ncu(me, METRICS)
    plan = json.load(open(plan_path))
    if sum(c["kernels"] for c in plan) != len(kernels):
        raise SystemExit(f"ncu saw {len(kernels)} kernels; the plan expected {sum(c['kernels'] for c in plan)}")
    rows, i = [], 0

    def metric(k, name):
        return next(float(v) for key, v in k.items() if key.startswith(name))  # parse_ncu_csv: time in us

    for c in plan:
        ks = kernels[i:i + c["kernels"]]
        i += c["kernels"]
        dur = [k["gpu__time_duration.sum_us"] for k in ks]
        total = sum(dur)
        row = dict(c, time_us_ncu=round(total, 3), kernel_names=";".join(k["kernel"][:60] for k in ks))
        for m, col in [("sm__throughput", "pct_peak_sm"), ("dram__throughput", "pct_peak_dram"),
                       ("sm__pipe_tensor_op_hmma", "pct_tensor_active")]:
            row[col] = round(sum(metric(k, m) * d for k, d in zip(ks, dur)) / total, 2)
        rows.append(row)
    write_dicts(os.path.join(a.out, "seed003_ncu.csv"), rows)
    for r in rows:
        print(f"{r['op']:16s} M={r['M']} N={r['N']:6d}  SM {r['pct_peak_sm']:6.2f}%  DRAM {r['pct_peak_dram']:6.2f}%"
              f"  tensor {r['pct_tensor_active']:6.2f}%  ({r['kernels']} kernels)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, col, title in [(axes[0], "pct_peak_sm", "SM throughput (% of peak): the compute proxy"),
                           (axes[1], "pct_peak_dram", "DRAM throughput (% of peak)")]:
        width = 0.8 / len(OPS)
        for j, op in enumerate(OPS):
            sel = [r for r in rows if r["op"] == op and r["M"] == 1]
            ax.bar([x + j * width for x in range(len(sel))], [r[col] for r in sel], width, label=op)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(NS))], [f"N={n}" for n in NS])
        ax.set_title(title + ", M=1", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(a.out, f"seed003_pct_peak.{ext}"))
    print(f"wrote {a.out}/seed003_ncu.csv and seed003_pct_peak.png")


if __name__ == "__main__":
    main()
