"""Nsight Compute's source view of one INT4 kernel call: warp-state samples and stall reasons per SASS
instruction (where a kernel's warps wait: its own wgmmas, a barrier, a load's first use), reduced to
a small CSV. The H200 README's GEMM step 11 and GEMV notes read these.

    python bench/ncu_source_view.py --k 4096 --n 28672 --m 512 --backend gemm_sm90 --out gemm512.csv
    python bench/ncu_source_view.py --k 4096 --n 28672 --m 1 --backend gemv --layout tinygemm-w4-v1 --out v1.csv

Runs itself under ncu (--clock-control none; the third call of the kernel, after two warm-ups).
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile

KEEP = ["Source", "Warp Stall Sampling (All Samples)", "Warp Stall Sampling (Not-issued Samples)",
        "Instructions Executed", "stall_wait", "stall_barrier", "stall_long_sb", "stall_short_sb", "stall_math",
        "stall_mio", "stall_dispatch", "stall_branch_resolving", "stall_selected", "stall_not_selected"]
KERNEL = {"gemm_sm90": "w4a16_gemm_sm90", "gemv": "w4a16_gemv", "triton": "w4a16"}


def worker(a):
    import torch

    import tinygemm
    from tinygemm import formats

    q = formats.to_layout(tinygemm.quantize(torch.randn(a.k, a.n, device="cuda").half(), 128), a.layout)
    x = torch.randn(a.m, a.k, device="cuda").half()
    for _ in range(3):
        tinygemm.w4a16_matmul(x, q, backend=a.backend)
    torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--m", type=int, required=True)
    p.add_argument("--backend", choices=sorted(KERNEL), required=True)
    p.add_argument("--layout", default="tinygemm-w4-sm90")
    p.add_argument("--out", required=True)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    if os.path.exists(a.out):
        raise SystemExit(f"ncu_source_view: {a.out} exists; remove it or name another --out")
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--k", str(a.k), "--n", str(a.n), "--m", str(a.m),
          "--backend", a.backend, "--layout", a.layout, "--out", a.out]
    from tinygemm.profile import find_ncu

    ncu = find_ncu()
    with tempfile.TemporaryDirectory() as d:
        rep = os.path.join(d, "view")
        subprocess.run([ncu, "--clock-control", "none", "--kernel-name", f"regex:{KERNEL[a.backend]}",
                        "--launch-skip", "2", "--launch-count", "1", "--section", "SourceCounters",
                        "--section", "WarpStateStats", "-o", rep, *me], check=True)
        text = subprocess.run([ncu, "--import", rep + ".ncu-rep", "--page", "source", "--csv", "--print-source",
                               "sass"], check=True, capture_output=True, text=True).stdout
    rows = list(csv.reader(text.splitlines()))
    kernel, hdr = rows[0][1], rows[1]
    idx = [hdr.index(k) for k in KEEP]
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["# " + kernel])
        w.writerow(KEEP)
        for r in rows[2:]:
            w.writerow([r[i].strip() for i in idx])
    samples = [(float(r[idx[1]] or 0), r[idx[0]].strip()) for r in rows[2:]]
    total = sum(s for s, _ in samples) or 1.0
    print(f"{kernel}: {len(samples)} instructions; most sampled:")
    for s, src in sorted(samples, reverse=True)[:12]:
        print(f"  {100 * s / total:5.1f} %  {src}")


if __name__ == "__main__":
    main()
