"""The GEMV from each packed layout (tinygemm-w4-v1 vs tinygemm-w4-sm90) over a model's layers:
what decoding from a Hopper-layout weight costs. Graph-timed, cold L2, group 128, fp16.
    python bench/gemv_layouts.py --m 1,8,16
"""
import argparse

import torch

import tinygemm
from tinygemm import formats, shapes, timing


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="Llama-3-8B")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--m", default="1,8,16")
    a = p.parse_args()
    tot = {}
    for s in shapes.layer_shapes(a.model, a.tp):
        K, N = s.kn
        q1 = tinygemm.quantize(torch.randn(K, N, device="cuda").half(), 128)
        n = timing.rotation_copies(q1.nbytes())
        for layout in formats.LAYOUTS:
            q = formats.to_layout(q1, layout)
            qs = [q] + [q.clone() for _ in range(n - 1)]
            for M in [int(v) for v in a.m.split(",")]:
                x = torch.randn(M, K, device="cuda").half()
                t = timing.measure(fns=[lambda q=q: tinygemm.ops.w4a16_gemv(x, q.qweight, q.scales, None, 128,
                                                                            layout=q.layout) for q in qs],
                                   bytes_per_call=q.nbytes(), mode="graph")
                tot[(layout, M)] = tot.get((layout, M), 0) + t.median_us
                print(f"{s.layer:14s} M={M:3d} {layout:18s} {t.median_us:7.2f} us", flush=True)
    for (layout, M), v in sorted(tot.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"sum M={M:3d} {layout:18s} {v:7.2f} us")


if __name__ == "__main__":
    main()
