"""Sweep the Triton INT4 GEMM's launch configurations over a model's layers and batch sizes.

Two passes per (layer, M): a coarse grid over the tile shape (block_m x bt x bc), split-K and
orientation at 4 warps / 3 stages, then warps x stages around the three best. Cold L2 (a rotation
of weight copies), the harness's automatic mode (graphs under 10 us). Prints the best configuration
and the heuristic's pick (tinygemm.triton.w4a16_gemm.pick_config) with its time, so the heuristic
can be checked against the measurements.

    python bench/tune_w4a16_gemm.py --m 1,16,32,64,128,256 --out tune_w4a16_gemm.csv
"""

import argparse
import itertools
import time
from dataclasses import replace

import torch
import triton

import tinygemm
from tinygemm import ceilings, shapes, timing
from tinygemm import reference as R
from tinygemm.results import write_dicts
from tinygemm.triton.w4a16_gemm import GemmConfig, pick_config, w4a16_gemm

TIMING = dict(min_samples=10, max_samples=200, budget_ms=150, warmup_ms=2)


def block_ms(M):
    """Row-block heights worth trying: M's power of two capped at 64 and at 128 (plus 16 for M <= 32)."""
    p2 = max(16, triton.next_power_of_2(M))
    return sorted({min(p2, 64), min(p2, 128)} | ({16} if M <= 32 else set()))


def coarse(M):
    for bm, bt, bc, sk, swap in itertools.product(block_ms(M), (4, 8, 16), (1, 2), (1, 2, 4, 8), (False, True)):
        # a 64 x 256 tile's two fp32 accumulators and step partials need 8 warps' registers
        yield GemmConfig(block_m=bm, bt=bt, bc=bc, split_k=sk, warps=8 if bm * bt >= 1024 else 4, stages=3,
                         swap=swap)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="Llama-3-8B")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--m", default="1,16,32,64,128,256")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--out", default="tune_w4a16_gemm.csv")
    a = p.parse_args()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bw = ceilings.copy_bandwidth_gbps()
    rows, best_rows = [], []
    t0 = time.time()
    layers = []
    for s in shapes.layer_shapes(a.model, a.tp):
        K, N = s.kn
        qw = tinygemm.quantize(torch.randn(K, N, device="cuda").half(), a.group_size)
        layers.append((s, qw, [qw] + [qw.clone() for _ in range(timing.rotation_copies(qw.nbytes()) - 1)]))
    for M in [int(v) for v in a.m.split(",")]:
        for s, qw, qws in layers:
            K, N = s.kn
            x = torch.randn(M, K, device="cuda").half()
            y = torch.empty(M, N, device="cuda").half()
            ref = R.w4a16_ref(x, qw)
            tol = R.tolerance(R.rel_error(R.w4a16_lowp(x, qw), ref))
            floor = (qw.nbytes() + 2 * M * (K + N)) / (bw * 1e3)

            def run(cfg):
                try:
                    y.fill_(float("nan"))
                    err = R.rel_error(w4a16_gemm(x, qw.qweight, qw.scales, qw.zeros, qw.group_size, out=y,
                                                 config=cfg), ref)
                    if not err <= tol:
                        print(f"  {cfg}: WRONG (rel error {err:.2e} > {tol:.2e})")
                        return None
                    fns = [lambda q=q: w4a16_gemm(x, q.qweight, q.scales, q.zeros, q.group_size, out=y, config=cfg)
                           for q in qws]
                    t = timing.measure(fns=fns, bytes_per_call=qw.nbytes(), **TIMING).median_us
                except Exception as e:  # a configuration that does not compile (registers, shared memory)
                    print(f"  {cfg}: {type(e).__name__}: {str(e)[:120]}")
                    return None
                rows.append(dict(layer=s.layer, K=K, N=N, M=M, config=str(cfg), block_m=cfg.block_m, bt=cfg.bt,
                                 bc=cfg.bc, split_k=cfg.split_k, warps=cfg.warps, stages=cfg.stages,
                                 swap=int(cfg.swap), us=round(t, 3), floor_us=round(floor, 3)))
                return t

            times = {c: run(c) for c in coarse(M)}
            top = sorted((c for c in times if times[c]), key=times.get)[:3]
            for c in top:
                for w, st in itertools.product((4, 8), (2, 3, 4, 5)):
                    c2 = replace(c, warps=w, stages=st)
                    if c2 not in times:
                        times[c2] = run(c2)
            best = min((c for c in times if times[c]), key=times.get)
            h = pick_config(M, N, K, a.group_size, sms)
            th = times.get(h) or run(h)
            best_rows.append(dict(layer=s.layer, K=K, N=N, M=M, best=str(best), best_us=round(times[best], 3),
                                  heuristic=str(h), heuristic_us=round(th, 3) if th else "",
                                  floor_us=round(floor, 3)))
            print(f"{s.layer:14s} M={M:4d} best {best} {times[best]:8.2f} us | heuristic {h} "
                  f"{th or float('nan'):8.2f} us | floor {floor:6.2f} us  [{time.time() - t0:.0f} s]", flush=True)
            # written as it goes: a run cut short keeps what it measured
            if rows:
                write_dicts(a.out, rows)
                write_dicts(a.out.replace(".csv", "_best.csv"), best_rows)
    for M in sorted({r["M"] for r in best_rows}):
        b = sum(r["best_us"] for r in best_rows if r["M"] == M)
        h = sum(r["heuristic_us"] or 0 for r in best_rows if r["M"] == M)
        print(f"M={M:4d}: summed best {b:8.2f} us, heuristic {h:8.2f} us")
    print(f"copy bandwidth {bw:.0f} GB/s; wrote {a.out}")


if __name__ == "__main__":
    main()
