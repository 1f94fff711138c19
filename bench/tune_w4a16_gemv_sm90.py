"""The GEMV's implementations on a Hopper GPU, per layer of a model and per M: the register GEMV
(impl mma) from each packed layout, and the bulk-copy GEMV (impl tma, sm90 layout) in every compiled
shape, plus what the heuristic picks. Graph-timed, cold L2 (each call reads its own weight copy),
group 128, fp16; % of the byte floor at the measured copy bandwidth. The table in
w4a16_gemv_config (w4a16_host.cpp) comes from this.

    python bench/tune_w4a16_gemv_sm90.py --model Llama-3-8B --tp 1 --m 1,2,4,8,16 --out FILE.csv
"""
import argparse

import torch

import tinygemm
from tinygemm import _C, ceilings, formats, shapes, timing
from tinygemm._ext import dtype_name, stream_handle
from tinygemm.results import write_dicts
from w4a16_decode import byte_floor_us  # bench/ is this script's directory: the bar's own floor


def variants():
    """(name, layout, gemv keyword arguments); {} = the heuristic's pick for that layout."""
    out = [("mma v1", formats.LAYOUT, {"impl": "mma"}), ("mma sm90", formats.LAYOUT_SM90, {"impl": "mma"})]
    for nt, w in _C.w4a16_gemv_tma_shapes():
        out.append((f"tma nt={nt} w={w}", formats.LAYOUT_SM90, {"impl": "tma", "n_tiles": nt, "warps": w}))
    out.append(("auto sm90", formats.LAYOUT_SM90, {}))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", nargs="+", default=["Llama-3-8B"])
    p.add_argument("--tp", type=int, nargs="+", default=[1])
    p.add_argument("--m", default="1,8,16")
    p.add_argument("--gs", type=int, default=128)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if len(a.tp) not in (1, len(a.model)):
        raise SystemExit("--tp takes one value, or one per --model")
    bw = ceilings.copy_bandwidth_gbps()
    print(f"copy bandwidth {bw:.0f} GB/s")
    rows, tot = [], {}
    for mi, model in enumerate(a.model):
        tp = a.tp[mi] if len(a.tp) > 1 else a.tp[0]
        for s in shapes.layer_shapes(model, tp):
            K, N = s.kn
            q1 = tinygemm.quantize(torch.randn(K, N, device="cuda").half(), a.gs)
            n = timing.rotation_copies(q1.nbytes())
            by_layout = {}
            for layout in formats.LAYOUTS:
                q = formats.to_layout(q1, layout)
                by_layout[layout] = [q] + [q.clone() for _ in range(n - 1)]
            for M in [int(v) for v in a.m.split(",")]:
                x = torch.randn(M, K, device="cuda").half()
                y = torch.empty((M, N), dtype=x.dtype, device="cuda")
                for name, layout, kw in variants():
                    qs = by_layout[layout]

                    def call(q, kw=kw, x=x, y=y, M=M):
                        _C.w4a16_gemv(x.data_ptr(), q.qweight.data_ptr(), q.scales.data_ptr(), 0, y.data_ptr(), M, N,
                                      K, a.gs, dtype_name(x.dtype), stream_handle(), layout=q.layout, **kw)

                    t = timing.measure(fns=[lambda q=q: call(q) for q in qs], bytes_per_call=q1.nbytes(), mode="graph")
                    floor_us = byte_floor_us(K, N, M, bw, a.gs)
                    r = {"model": model, "tp": tp, "layer": s.layer, "K": K, "N": N, "M": M, "variant": name,
                         "time_us": round(t.median_us, 3), "x_floor": round(t.median_us / floor_us, 3)}
                    rows.append(r)
                    key = (model, tp, M, name)
                    tot[key] = tot.get(key, 0) + t.median_us
                    print(f"{model} tp{tp} {s.layer:14s} M={M:3d} {name:16s} {t.median_us:7.2f} us"
                          f" ({r['x_floor']:.2f}x floor)", flush=True)
    for (model, tp, M, name), v in sorted(tot.items(), key=lambda kv: kv[0]):
        print(f"sum {model} tp{tp} M={M:3d} {name:16s} {v:7.2f} us")
    if a.out:
        write_dicts(a.out, rows)


if __name__ == "__main__":
    main()
