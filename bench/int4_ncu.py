"""Where the INT4 kernels' time goes, per layer, from Nsight Compute: duration, DRAM throughput, the
fraction of the kernel's time the SMs were busy (ramp and tail show here), occupancy, registers and
the main stall reasons. Run before and after a kernel change (METHOD.md: measure, then change).

    python bench/int4_ncu.py --m 1,16 --kernels gemv,gemm_sm90 [--model Llama-3-8B --tp 1] --out DIR

Runs itself under ncu (--clock-control none, caches flushed before each kernel: cold L2); writes
DIR/int4_ncu.csv and prints one line per kernel.
"""

import argparse
import json
import os
import sys

METRICS = [
    "gpu__time_duration.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "dram__bytes_read.sum",
    "sm__cycles_active.avg",
    "gpc__cycles_elapsed.max",
    "sm__warps_active.avg.pct_of_peak_sustained_active",
    "launch__registers_per_thread",
    "launch__grid_size",
    "launch__block_size",
    "smsp__warp_issue_stalled_long_scoreboard_per_warp_active.pct",
    "smsp__warp_issue_stalled_barrier_per_warp_active.pct",
    "smsp__warp_issue_stalled_wait_per_warp_active.pct",
    "smsp__warp_issue_stalled_math_pipe_throttle_per_warp_active.pct",
    "smsp__warp_issue_stalled_short_scoreboard_per_warp_active.pct",
    "smsp__issue_active.avg.pct_of_peak_sustained_active",
]
# Hopper's wgmma pipe (the tensor-core rate the Hopper GEMM reaches) and the warps waiting on the
# wgmma results / the math pipe: asked for first, dropped if this ncu does not know them
TENSOR_METRICS = [
    "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
    # L2: how busy it is and the bytes it serves (the Hopper GEMM's x tiles are re-read from L2 by
    # every column block)
    "lts__throughput.avg.pct_of_peak_sustained_elapsed",
    "lts__t_bytes.sum",
]


def calls(model: str, tp: int, ms: list[int], kernels: list[str]):
    import torch

    import tinygemm
    from tinygemm import formats, shapes

    out = []
    for s in shapes.layer_shapes(model, tp):
        K, N = s.kn
        q1 = tinygemm.quantize(torch.randn(K, N, device="cuda").half(), 128)
        for kern in kernels:
            layouts = formats.LAYOUTS if kern == "gemv" else [formats.LAYOUT_SM90]
            for layout in layouts:
                q = formats.to_layout(q1, layout)
                for M in ms:
                    x = torch.randn(M, K, device="cuda").half()
                    out.append(({"layer": s.layer, "K": K, "N": N, "M": M, "kernel": kern, "layout": layout},
                                lambda x=x, q=q, kern=kern: tinygemm.w4a16_matmul(x, q, backend=kern)))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="Llama-3-8B")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--m", default="1,16")
    p.add_argument("--kernels", default="gemv,gemm_sm90")
    p.add_argument("--out", default="int4_ncu")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    ms = [int(v) for v in a.m.split(",")]
    kernels = a.kernels.split(",")
    if a.worker:
        import torch

        from tinygemm import profile

        cs = calls(a.model, a.tp, ms, kernels)
        for _, fn in cs:
            fn()  # build-time work (none expected) outside the profiled region
        torch.cuda.synchronize()
        with profile.region("int4_ncu"):
            for _, fn in cs:
                fn()
        json.dump([c for c, _ in cs], open(os.path.join(a.out, "plan.json"), "w"))
        return

    from tinygemm import profile
    from tinygemm.results import write_dicts

    os.makedirs(a.out, exist_ok=True)
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--model", a.model, "--tp", str(a.tp), "--m", a.m,
          "--kernels", a.kernels, "--out", a.out]
    ks = None
    for what, ms_ in (("all metrics", METRICS + TENSOR_METRICS), ("no tensor-pipe metrics", METRICS),
                      ("no stall metrics", [m for m in METRICS if "stalled" not in m])):
        try:
            ks = profile.run_ncu(me, ms_)
            break
        except RuntimeError as e:  # an ncu without one of the metrics: the rest still says a lot
            print(f"ncu failed ({what}): {e}")
    if ks is None:
        raise SystemExit("ncu failed with every metric set (above)")
    plan = json.load(open(os.path.join(a.out, "plan.json")))
    if len(ks) != len(plan):
        raise SystemExit(f"ncu saw {len(ks)} kernels, expected {len(plan)} (one per call)")
    rows = []
    for c, k in zip(plan, ks):
        r = dict(c)
        for key, v in k.items():
            if key != "id":
                r[key] = v
        num = next((v for key, v in k.items() if key.startswith("sm__cycles_active.avg")), None)
        den = next((v for key, v in k.items() if key.startswith("gpc__cycles_elapsed.max")), None)
        if isinstance(num, float) and isinstance(den, float) and den > 0:
            r["sm_busy_pct"] = round(100 * num / den, 1)
        rows.append(r)
    write_dicts(os.path.join(a.out, "int4_ncu.csv"), rows)

    def g(r, name):
        v = next((v for key, v in r.items() if key.startswith(name)), "")
        try:
            return f"{float(v):.1f}"
        except ValueError:
            return str(v)

    for r in rows:
        print(f"{r['layer']:13s} M={r['M']:<4d} {r['kernel']:13s} {r['layout'][-4:]:4s} "
              f"t={g(r, 'gpu__time_duration'):>6s}us dram={g(r, 'dram__throughput'):>5s}% "
              f"busy={r.get('sm_busy_pct', '')}% occ={g(r, 'sm__warps_active'):>5s}% "
              f"regs={g(r, 'launch__registers')} grid={g(r, 'launch__grid_size')}x{g(r, 'launch__block_size')} "
              f"stall lsb={g(r, 'smsp__warp_issue_stalled_long')} bar={g(r, 'smsp__warp_issue_stalled_barrier')} "
              f"wait={g(r, 'smsp__warp_issue_stalled_wait')} issue={g(r, 'smsp__issue_active')} "
              f"gmma={g(r, 'sm__pipe_tensor_op_gmma')}% hmma={g(r, 'sm__pipe_tensor_op_hmma')}% "
              f"l2={g(r, 'lts__throughput')}% l2bytes={g(r, 'lts__t_bytes')}", flush=True)


if __name__ == "__main__":
    main()
