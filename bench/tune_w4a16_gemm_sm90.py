"""Sweep the Hopper GEMM's launch configurations (token tile x cluster split x consumer warpgroups)
over a model's layers,
beside the GEMV and the Triton GEMM, so the table in csrc/kernels/w4a16_host.cpp
(w4a16_gemm_sm90_config) can be read off measurements.

Cold L2 (each launch reads its own copy of the weights), graph-timed, group 128, fp16.
    python bench/tune_w4a16_gemm_sm90.py --out tune_w4a16_gemm_sm90.csv
"""

import argparse

import torch

import tinygemm
from tinygemm import _C, ceilings, formats, shapes, timing
from tinygemm._ext import stream_handle
from tinygemm.results import write_dicts

BLOCK_M = (8, 16, 32, 64, 128)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="Llama-3-8B")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--m", default="1,8,16,32,64,128,256,512")
    p.add_argument("--splits", default="1,2,3,4,6,8")
    p.add_argument("--block-m", default=None,
                   help="token tiles to try (default: the two narrowest that hold M, 128 at most)")
    p.add_argument("--warpgroups", default="2", help="consumer warpgroups to try (3 only with block_m 128)")
    p.add_argument("--no-baselines", action="store_true", help="only the Hopper GEMM (no GEMV / Triton rows)")
    p.add_argument("--out", default="tune_w4a16_gemm_sm90.csv")
    a = p.parse_args()
    dev = _C.device_info()
    # the co-resident cluster counts the split heuristic's wave model reads, printed for the record
    for bm in BLOCK_M:
        caps = [_C.w4a16_gemm_sm90_clusters(bm, s) for s in range(1, 9)]
        print(f"clusters at once, block_m={bm:3d}, split 1..8: {caps}", flush=True)
    bw = ceilings.copy_bandwidth_gbps()
    rows = []
    for s in shapes.layer_shapes(a.model, a.tp):
        K, N = s.kn
        w = torch.randn(K, N, device="cuda").half()
        qv1 = tinygemm.quantize(w, 128)
        q90 = formats.to_layout(qv1, formats.LAYOUT_SM90)
        copies = timing.rotation_copies(qv1.nbytes())
        v1s = [qv1] + [qv1.clone() for _ in range(copies - 1)]
        s90 = [q90] + [q90.clone() for _ in range(copies - 1)]
        for M in [int(v) for v in a.m.split(",")]:
            x = torch.randn(M, K, device="cuda").half()
            y = torch.empty(M, N, device="cuda").half()
            h = _C.w4a16_gemm_sm90_config(M, N, K, dev.sm_count)
            floor = (qv1.nbytes() + 2 * M * (K + N)) / (bw * 1e3)

            def sm90(q, bm, sp, wg):
                return lambda: _C.w4a16_gemm_sm90(x.data_ptr(), q.qweight.data_ptr(), q.scales.data_ptr(), 0,
                                                  y.data_ptr(), M, N, K, 128, "float16", stream_handle(), bm, sp, wg)

            cands = []
            if not a.no_baselines:
                if M <= 16:
                    cands.append(("gemv", None, None, None,
                                  [lambda q=q: tinygemm.ops.w4a16_gemv(x, q.qweight, q.scales, None, 128) for q in v1s]))
                cands.append(("triton", None, None, None,
                              [lambda q=q: tinygemm.ops.w4a16_gemm(x, q.qweight, q.scales, None, 128) for q in v1s]))
                if M <= 16:  # the GEMV from the sm90 layout (natural-k x loads): the Hopper decode path
                    cands.append(("gemv_sm90", None, None, None,
                                  [lambda q=q: tinygemm.ops.w4a16_gemv(x, q.qweight, q.scales, None, 128, layout=q.layout)
                                   for q in s90]))
            bms = ([int(v) for v in a.block_m.split(",")] if a.block_m
                   else [bm for bm in BLOCK_M if bm >= min(M, 128)][:2])
            for bm in bms:
                for sp in [int(v) for v in a.splits.split(",")]:
                    for wg in [int(v) for v in a.warpgroups.split(",")]:
                        if wg == 3 and bm != 128:
                            continue
                        cands.append(("gemm_sm90", bm, sp, wg, [sm90(q, bm, sp, wg) for q in s90]))
            for kernel, bm, sp, wg, fns in cands:
                t = timing.measure(fns=fns, bytes_per_call=qv1.nbytes(), mode="graph")
                pick = kernel == "gemm_sm90" and (bm, sp, wg) == (h["block_m"], h["split"], h["warpgroups"])
                rows.append(dict(layer=s.layer, K=K, N=N, M=M, kernel=kernel, block_m=bm or "", split=sp or "",
                                 warpgroups=wg or "", us=round(t.median_us, 3), floor_us=round(floor, 3),
                                 pct_floor=round(100 * floor / t.median_us, 1), heuristic=int(pick), l2=t.l2))
                print(f"{s.layer:14s} M={M:4d} {kernel:9s} bm={bm or '-':>3} split={sp or '-':>2} wg={wg or '-'} "
                      f"{t.median_us:8.2f} us  floor {floor:6.2f}  {100 * floor / t.median_us:5.1f}%"
                      f"{'  <- heuristic' if pick else ''}", flush=True)
    write_dicts(a.out, rows)
    print(f"copy bandwidth {bw:.0f} GB/s; wrote {a.out}")


if __name__ == "__main__":
    main()
