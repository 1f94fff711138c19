"""What act-order costs tinygemm: w4a16_matmul with and without the permutation of x's columns
(QuantizedWeight.perm, one index_select per call), and the gather alone, over Llama-3-8B TP1's four
layers, group 128, fp16, cold L2 (weight copies rotated), graph-timed with tinygemm.timing.

    python bench/act_order_gather.py --out DIR [--batches 1,4,16,64]

Writes DIR/act_order_gather.csv (one row per layer and batch) and DIR/act_order_gather.md (the
per-batch sums over the four layers and the share the gather adds: the number that says whether the
gather is worth fusing into a kernel's x load).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import replace

import torch

LAYERS = {"qkv_proj": (4096, 6144), "o_proj": (4096, 4096), "gate_up_proj": (4096, 28672), "down_proj": (14336, 4096)}
FIELDS = ["layer", "K", "N", "M", "plain_us", "act_order_us", "gather_us", "overhead_pct", "l2"]


class Fail(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Fail(message)


def parse_args(argv=None):
    p = _Parser(prog="act_order_gather.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--batches", default="1,4,16,64")
    a = p.parse_args(argv)
    try:
        a.batches = [int(b) for b in a.batches.split(",")]
    except ValueError:
        raise Fail(f"--batches must be comma-separated integers; got {a.batches!r}") from None
    if any(b < 1 for b in a.batches):
        raise Fail(f"--batches must be >= 1; got {a.batches}")
    path = os.path.join(a.out, "act_order_gather.csv")
    if os.path.exists(path):
        raise Fail(f"{path} exists: not overwriting it (pick another --out)")
    return a


def run(a):
    import tinygemm
    from tinygemm import timing

    rows = []
    for layer, (K, N) in LAYERS.items():
        qw = tinygemm.quantize(torch.randn(K, N, device="cuda").half() * 0.02, 128)
        copies = timing.rotation_copies(qw.nbytes())  # the harness's rule for a cold-L2 rotation
        plain = [qw.clone() for _ in range(copies)]
        permuted = [replace(q, perm=torch.randperm(K, device="cuda").to(torch.int32)) for q in plain]
        for M in a.batches:
            x = torch.randn(M, K, device="cuda").half()
            t_plain = timing.measure(fns=[lambda q=q: tinygemm.w4a16_matmul(x, q) for q in plain],
                                     bytes_per_call=qw.nbytes())
            t_perm = timing.measure(fns=[lambda q=q: tinygemm.w4a16_matmul(x, q) for q in permuted],
                                    bytes_per_call=qw.nbytes())
            t_gather = timing.measure(lambda: x.index_select(-1, permuted[0].perm))
            rows.append(dict(layer=layer, K=K, N=N, M=M, plain_us=round(t_plain.median_us, 3),
                             act_order_us=round(t_perm.median_us, 3), gather_us=round(t_gather.median_us, 3),
                             overhead_pct=round(100 * (t_perm.median_us / t_plain.median_us - 1), 1), l2=t_plain.l2))
            print(f"{layer:13s} M={M:3d}: {t_plain.median_us:8.2f} us plain, {t_perm.median_us:8.2f} us act-order "
                  f"(gather alone {t_gather.median_us:.2f} us)", flush=True)
    return rows


def summary(rows, a) -> str:
    lines = [f"# act-order gather: Llama-3-8B TP1, group 128, fp16 ({torch.cuda.get_device_name()})", "",
             "| M | plain sum (us) | act-order sum (us) | gathers alone (us) | act-order overhead |", "|---|---|---|---|---|"]
    for M in a.batches:
        rs = [r for r in rows if r["M"] == M]
        p, q, g = (sum(r[k] for r in rs) for k in ("plain_us", "act_order_us", "gather_us"))
        lines.append(f"| {M} | {p:.2f} | {q:.2f} | {g:.2f} | {100 * (q / p - 1):+.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    try:
        a = parse_args(argv)
        import tinygemm

        if not tinygemm.gpu_available():
            raise Fail("needs a GPU and a GPU build of tinygemm")
    except Fail as e:
        print(f"act_order_gather.py: error: {e}", file=sys.stderr)
        return 2
    rows = run(a)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "act_order_gather.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    text = summary(rows, a)
    with open(os.path.join(a.out, "act_order_gather.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
