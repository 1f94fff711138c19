"""INT4 (W4A16) decode benchmark: tinygemm's CUDA GEMV and Triton GEMM against torch fp16 matmul,
torch's int4 kernel (_weight_int4pack_mm, bf16) and vLLM Marlin (uint4b8), group 128, fp16, cold L2,
graph-timed, over Llama-3-8B TP1's four layers.

    python bench/w4a16_decode.py --out DIR      # runs python -m tinygemm.bench, then summarizes

Prints and writes DIR/w4a16_decode.md: time per layer, the sum over layers, % of the byte floor
(bytes that must move over the measured copy bandwidth), speedups, and the two bars of issue 3.
"""

import argparse
import csv
import json
import os

from tinygemm.bench.__main__ import main as bench_main

BACKENDS = ["torch_matmul", "torch_int4pack", "marlin_uint4b8", "tinygemm_cuda", "tinygemm_triton"]
LAYERS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128]


def floor_us(K, N, M, copy_gbps, gs=128):
    nbytes = K * N / 2 + (K // gs) * N * 2 + M * K * 2 + M * N * 2
    return nbytes / (copy_gbps * 1e3)


def summarize(out):
    rows = [r for r in csv.DictReader(open(os.path.join(out, "results.csv"))) if r["status"] == "ok"]
    meta = json.load(open(os.path.join(out, "results.json")))
    bw = meta["measured_ceilings"]["copy_gbps"]
    t = {(r["backend"], r["layer"], int(r["M"])): float(r["time_us"]) for r in rows}
    kn = {r["layer"]: (int(r["K"]), int(r["N"])) for r in rows}
    lines = ["# INT4 decode: Llama-3-8B TP1, group 128, fp16 (int4pack: bf16), cold L2, graph-timed",
             "", f"{meta['device']['name']}; copy bandwidth {bw:.0f} GB/s; versions {meta['versions']}", ""]

    def total(b, M):
        vals = [t.get((b, lay, M)) for lay in LAYERS]
        return None if None in vals else sum(vals)

    for M in BATCHES:
        lines += [f"## M = {M}", "", "| backend | " + " | ".join(LAYERS) + " | sum (us) | % of byte floor |",
                  "|---" * (len(LAYERS) + 3) + "|"]
        fl = sum(floor_us(*kn[lay], M, bw) for lay in LAYERS if lay in kn)
        for b in BACKENDS:
            s = total(b, M)
            cells = [f"{t[(b, lay, M)]:.2f}" if (b, lay, M) in t else "-" for lay in LAYERS]
            lines.append(f"| {b} | " + " | ".join(cells) + f" | {s:.2f} | {100 * fl / s:.0f}% |" if s else
                         f"| {b} | " + " | ".join(cells) + " | - | - |")
        lines.append("| byte floor | " + " | ".join(f"{floor_us(*kn[lay], M, bw):.2f}" for lay in LAYERS)
                     + f" | {fl:.2f} | 100% |")
        peers = [total(b, M) for b in ("torch_int4pack", "marlin_uint4b8") if total(b, M)]
        ours = total("tinygemm_cuda", M)
        if peers and ours:
            lines.append(f"\ntinygemm_cuda vs the faster of Marlin and torch_int4pack: {min(peers) / ours:.2f}x; "
                         f"vs fp16 matmul: {total('torch_matmul', M) / ours:.2f}x")
        lines.append("")
    lines.append("## Bars (issue 3)")
    ours, peers = total("tinygemm_cuda", 1), [total(b, 1) for b in ("torch_int4pack", "marlin_uint4b8")]
    if ours and all(peers):
        ratio = min(peers) / ours
        lines.append(f"- M=1 CUDA GEMV summed {ours:.1f} us vs faster peer {min(peers):.1f} us: {ratio:.2f}x "
                     f"({'meets' if ratio >= 1.2 else 'MISSES'} the 1.2x bar)")
    for M in (16, 32, 64, 128):
        tr, mar = total("tinygemm_triton", M), total("marlin_uint4b8", M)
        if tr and mar:
            lines.append(f"- M={M} Triton GEMM {tr:.1f} us vs Marlin {mar:.1f} us: {tr / mar:.2f}x of Marlin "
                         f"({'within' if tr <= 1.5 * mar else 'OUTSIDE'} 1.5x)")
    text = "\n".join(lines)
    open(os.path.join(out, "w4a16_decode.md"), "w").write(text + "\n")
    print(text)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="w4a16_decode")
    p.add_argument("--summarize-only", action="store_true")
    a = p.parse_args()
    out = os.path.join(a.out, "w4a16_decode") if not a.summarize_only else a.out
    if not a.summarize_only:
        rc = bench_main(["--model", "Llama-3-8B", "--tp", "1", "--batches", ",".join(map(str, BATCHES)),
                         "--backends", ",".join(BACKENDS), "--mode", "graph", "--group-size", "128", "--dtype", "fp16",
                         "--out", out, "--force", "--quiet"])
        if rc:
            raise SystemExit(rc)
    summarize(out)


if __name__ == "__main__":
    main()
