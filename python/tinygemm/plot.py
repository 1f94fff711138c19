"""Plots of result CSVs (matplotlib, PNG and SVG).

    python -m tinygemm.plot RESULTS.csv --out DIR [--copy-gbps G --matmul-tflops T]

utilization vs batch (cliffs and kernel switches marked), latency vs M per backend, INT4 speedup
over fp16 vs N, the dequant breakdown (dequant / matmul / fused INT4), and a roofline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

from . import analyze
from .cli_errors import check_output_dir, exit_2_on_bad_input, read_json
from .precision import precision_class



def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: str, name: str) -> list[str]:
    paths = []
    for ext in ("png", "svg"):
        p = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(p, dpi=110, bbox_inches="tight")
        paths.append(p)
    _plt().close(fig)
    return paths


def _label(shape) -> str:
    model, layer, tp, K, N = shape[:5]
    prefix = f"{model} {layer} tp{tp} " if model and model != "custom" else ""
    return prefix + f"K={K} N={N}"


def utilization_vs_batch(points, out_dir, threshold=0.85) -> list[str]:
    import math

    if not any(math.isfinite(p.util) for p in points):
        return []  # no tflops or pct_peak_flops column: nothing to draw (matplotlib would fail on log axes)
    plt = _plt()
    cliffs = analyze.find_cliffs(points, threshold)
    fig, ax = plt.subplots(figsize=(10, 5))
    for (backend, shape), pts in analyze.groups(points).items():
        ax.plot([p.M for p in pts], [p.util for p in pts], lw=1, label=f"{backend} {_label(shape)}")
        cs = [c for c in cliffs if c["backend"] == backend and (c["K"], c["N"]) == (shape[3], shape[4])]
        ax.scatter([c["M"] for c in cs], [c["util"] for c in cs], marker="v", color="red", s=18, zorder=3)
        sw = [c for c in cs if c["kernel_switch"]]
        ax.scatter([c["M"] for c in sw], [c["util"] for c in sw], marker="o", facecolors="none", edgecolors="k",
                   s=50, zorder=4)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch M")
    ax.set_ylabel("utilization (of datasheet peak)")
    ax.set_title(f"utilization vs batch; red: cliffs (< {threshold} x best smaller M), circled: kernel switch")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # one line per backend and shape: beside
    return _save(fig, out_dir, "utilization_vs_batch")


def latency_vs_m(points, out_dir) -> list[str]:
    plt = _plt()
    by_shape = defaultdict(list)
    for (backend, shape), pts in analyze.groups(points).items():
        by_shape[shape].append((backend, pts))
    n = len(by_shape)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    for ax, (shape, series) in zip(axes[0], sorted(by_shape.items(), key=lambda kv: str(kv[0]))):
        for backend, pts in series:
            ax.plot([p.M for p in pts], [p.time_us for p in pts], marker=".", label=backend)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(_label(shape), fontsize=9)
        ax.set_xlabel("M")
        ax.set_ylabel("time (us)")
    axes[0][0].legend(fontsize=7)
    return _save(fig, out_dir, "latency_vs_m")


def int4_speedup_vs_n(points, out_dir) -> list[str]:
    plt = _plt()
    t = {(p.backend, p.shape[3], p.shape[4], p.M): p.time_us for p in points}
    Ms = sorted({p.M for p in points if p.backend == "torch_matmul" and p.M <= 16})
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    # every W4A16 backend of the CSV (precision.py: the one rule of what is INT4 weight-only)
    int4 = sorted({p.backend for p in points if precision_class(p.backend, p.op, p.weight_format) == "W4A16"})
    for b in int4:
        for M in Ms[:4]:
            xs = sorted({(N, K) for (bb, K, N, m) in t if bb == b and m == M and ("torch_matmul", K, N, M) in t})
            if xs:
                ax.plot([n for n, _ in xs], [t[("torch_matmul", k, n, M)] / t[(b, k, n, M)] for n, k in xs],
                        marker="o", label=f"{b} M={M}")
                drawn = True
    if not drawn:
        _plt().close(fig)
        return []
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N")
    ax.set_ylabel("speedup over fp16 matmul")
    ax.set_title("INT4 speedup over fp16 vs N")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: many backends
    return _save(fig, out_dir, "int4_speedup_vs_n")


def dequant_breakdown(points, out_dir, M: int = 1) -> list[str]:
    plt = _plt()
    t = {(p.backend, p.shape[3], p.shape[4], p.M): p.time_us for p in points}
    shapes = sorted({(K, N) for (b, K, N, m) in t if b == "dequant_matmul" and m == M
                     and ("torch_matmul", K, N, M) in t})
    if not shapes:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(shapes))
    mm = [t[("torch_matmul", K, N, M)] for K, N in shapes]
    dq = [max(t[("dequant_matmul", K, N, M)] - t[("torch_matmul", K, N, M)], 0) for K, N in shapes]
    ax.bar(xs, mm, label="fp16 matmul", color="tab:blue")
    ax.bar(xs, dq, bottom=mm, label="dequant (dequant+matmul minus matmul)", color="tab:orange")
    fused = [t.get(("tinygemm_gemv", K, N, M)) for K, N in shapes]
    ax.scatter([x for x, f in zip(xs, fused) if f], [f for f in fused if f], color="k", zorder=3,
               label="fused INT4 (tinygemm_gemv)")
    ax.set_xticks(list(xs), [f"K={K}\nN={N}" for K, N in shapes], fontsize=7)
    ax.set_ylabel("time (us)")
    ax.set_title(f"dequant breakdown at M={M}")
    ax.legend(fontsize=7)
    return _save(fig, out_dir, "dequant_breakdown")


def roofline(rows: list[dict], out_dir, copy_gbps: float | None, matmul_tflops: float | None) -> list[str]:
    """Achieved TFLOP/s against arithmetic intensity (FLOPs per counted byte), with the measured ceilings."""
    plt = _plt()
    pts = [(float(r["tflops"]) / float(r["gbps"]) * 1e3, float(r["tflops"]), r["backend"]) for r in rows
           if r.get("status") == "ok" and r.get("gbps") not in ("", None) and float(r["gbps"]) > 0]
    if not pts:
        return []
    fig, ax = plt.subplots(figsize=(7, 5))
    for b in sorted({p[2] for p in pts}):
        sel = [p for p in pts if p[2] == b]
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=10, label=b)
    if copy_gbps and matmul_tflops:
        import numpy as np

        ai = np.logspace(np.log10(min(p[0] for p in pts) / 2), np.log10(max(p[0] for p in pts) * 2), 200)
        ax.plot(ai, np.minimum(ai * copy_gbps / 1e3, matmul_tflops), "k--", lw=1,
                label=f"measured ceilings ({copy_gbps:.0f} GB/s, {matmul_tflops:.0f} TFLOP/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("TFLOP/s")
    ax.set_title("roofline")
    ax.legend(fontsize=7)
    return _save(fig, out_dir, "roofline")


# every file all_plots may write (which ones it does depends on the backends in the CSV)
PLOTS = ("utilization_vs_batch", "latency_vs_m", "int4_speedup_vs_n", "dequant_breakdown", "roofline")


def plot_files(out_dir: str) -> list[str]:
    return [os.path.join(out_dir, f"{n}.{ext}") for n in PLOTS for ext in ("png", "svg")]


def all_plots(csv_path: str, out_dir: str, ceilings: dict | None = None) -> list[str]:
    """Every plot, all or nothing: drawn into a temporary directory inside out_dir, moved into place
    only when all succeeded (a failure leaves no partial figure)."""
    import tempfile

    points = analyze.load(csv_path)
    if not points:
        raise ValueError(f"{csv_path}: no ok rows to plot")
    from .results import read_rows

    try:
        rows = [r for r in read_rows(csv_path) if r.get("op") != "prepare"]
    except ValueError:
        rows = []  # seed-format CSVs have no bytes column: no roofline
    c = ceilings or {}
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out_dir, prefix=".plots-")
    try:
        files = utilization_vs_batch(points, tmp) + latency_vs_m(points, tmp)
        files += int4_speedup_vs_n(points, tmp) + dequant_breakdown(points, tmp)
        try:
            files += roofline(rows, tmp, c.get("copy_gbps"), c.get("matmul_tflops"))
        except ValueError:
            pass  # a non-numeric tflops or gbps column: no roofline
        out = []
        for f in files:
            dest = os.path.join(out_dir, os.path.basename(f))
            os.replace(f, dest)
            out.append(dest)
        return out
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def read_ceilings(meta_path: str) -> dict | None:
    """results.json's measured ceilings (positive numbers), or None when there is no results.json."""
    if not os.path.exists(meta_path):
        return None
    c = read_json(meta_path, ("measured_ceilings",)).get("measured_ceilings") or {}
    for k in ("copy_gbps", "matmul_tflops"):
        v = c.get(k)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"{meta_path}: measured_ceilings.{k} must be a positive number; got {v!r}")
    return c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygemm.plot")
    p.add_argument("csv")
    p.add_argument("--out", default="plots")
    p.add_argument("--force", action="store_true", help="overwrite plots already in OUT")
    a = p.parse_args(argv)
    with exit_2_on_bad_input(p.prog):
        # every output is checked before any work starts
        check_output_dir(a.out)
        existing = [f for f in plot_files(a.out) if os.path.exists(f)]
        if existing and not a.force:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise ValueError(f"{existing[0]} exists{more}; pass --force to overwrite")
        ceil = read_ceilings(os.path.join(os.path.dirname(os.path.abspath(a.csv)), "results.json"))
        files = all_plots(a.csv, a.out, ceil)
    print("\n".join(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
