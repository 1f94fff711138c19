"""Sweep the CUDA GEMV's launch configurations (tiles per block x warps) over Llama-3-8B's layers.

Cold L2 (each launch reads its own copy of the weights), graph-timed. Prints the time per config,
the heuristic's pick and the byte floor, so the heuristic in csrc/kernels/w4a16_host.cpp can be
checked against measurements.   python bench/tune_w4a16_gemv.py --out tune.csv
"""

import argparse

import torch

import tinygemm
from tinygemm import _C, ceilings, shapes, timing
from tinygemm._ext import stream_handle
from tinygemm.results import write_dicts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="Llama-3-8B")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--m", default="1,4,16")
    p.add_argument("--out", default="tune_w4a16_gemv.csv")
    a = p.parse_args()
    dev = _C.device_info()
    bw = ceilings.copy_bandwidth_gbps()
    rows = []
    for s in shapes.layer_shapes(a.model, a.tp):
        K, N = s.kn
        qw = tinygemm.quantize(torch.randn(K, N, device="cuda").half(), 128)
        copies = timing.rotation_copies(qw.nbytes())
        qws = [qw] + [tinygemm.QuantizedWeight(qw.qweight.clone(), qw.scales.clone(), None, qw.shape, 128)
                      for _ in range(copies - 1)]
        for M in [int(v) for v in a.m.split(",")]:
            x = torch.randn(M, K, device="cuda").half()
            y = torch.empty(M, N, device="cuda").half()
            h = _C.w4a16_gemv_config(M, N, K, dev.sm_count, 9)
            floor = (qw.nbytes() + 2 * M * (K + N)) / (bw * 1e3)
            # every compiled configuration of the mma implementation (csrc/kernels/w4a16.h)
            for c in _C.w4a16_gemv_configs():
                nt, warps = c["n_tiles"], c["warps"]

                def fn(q, nt=nt, warps=warps):
                    return lambda: _C.w4a16_gemv(x.data_ptr(), q.qweight.data_ptr(), q.scales.data_ptr(), 0,
                                                 y.data_ptr(), M, N, K, 128, "float16", stream_handle(),
                                                 nt, warps, "mma")
                t = timing.measure(fns=[fn(q) for q in qws], bytes_per_call=qw.nbytes(), mode="graph")
                pick = nt == h["n_tiles"] and warps == h["warps"]
                rows.append(dict(layer=s.layer, K=K, N=N, M=M, n_tiles=nt, warps=warps, us=round(t.median_us, 3),
                                 floor_us=round(floor, 3), pct_floor=round(100 * floor / t.median_us, 1),
                                 heuristic=int(pick), l2=t.l2))
                print(f"{s.layer:14s} M={M:3d} nt={nt} w={warps} {t.median_us:8.2f} us  floor {floor:6.2f}"
                      f"  {100 * floor / t.median_us:5.1f}%{'  <- heuristic' if pick else ''}")
    write_dicts(a.out, rows)
    print(f"copy bandwidth {bw:.0f} GB/s; wrote {a.out}")


if __name__ == "__main__":
    main()
