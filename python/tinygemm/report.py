"""python -m tinygemm.report RESULTS_DIR: one self-contained HTML page (plots embedded) of a bench run."""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
import tempfile
from collections import defaultdict

from . import analyze, plot
from .cli_errors import atomic_write, check_output, exit_2_on_bad_input, read_json
from .results import read_rows


def _img(path: str) -> str:
    data = base64.b64encode(open(path, "rb").read()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    from .display import number

    return number(v)


def render(results_dir: str) -> str:
    csv_path = os.path.join(results_dir, "results.csv")
    rows = read_rows(csv_path)
    meta_path = os.path.join(results_dir, "results.json")
    meta = read_json(meta_path, ("device", "measured_ceilings", "versions")) if os.path.exists(meta_path) else {}
    plot.read_ceilings(meta_path)  # numbers, or an error naming the file
    points = analyze.load(csv_path)
    # best backend per (shape, M), and per-backend summed time at each M
    best = {}
    for p in points:
        k = (p.shape, p.M)
        if k not in best or p.time_us < best[k].time_us:
            best[k] = p
    wins = defaultdict(int)
    for p in best.values():
        wins[p.backend] += 1
    summary = [{"backend": b, "fastest at (shape, M) points": n} for b, n in sorted(wins.items(), key=lambda kv: -kv[1])]
    cliffs = analyze.find_cliffs(points)
    bad = [r for r in rows if r.get("status") not in ("ok",)]
    prep = [r for r in rows if r.get("op") == "prepare"]
    rows = [r for r in rows if r.get("op") != "prepare"]
    with tempfile.TemporaryDirectory() as d:
        imgs = [_img(f) for f in plot.all_plots(csv_path, d, meta.get("measured_ceilings")) if f.endswith(".png")]
    dev = meta.get("device", {})
    parts = [
        "<!doctype html><meta charset='utf-8'><title>tinygemm report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>",
        f"<h1>tinygemm report: {html.escape(str(dev.get('name', '')))}</h1>",
        f"<p>{html.escape(str(meta.get('command', '')))}<br>created {html.escape(str(meta.get('created', '')))}; "
        f"versions {html.escape(json.dumps(meta.get('versions', {})))}<br>measured ceilings "
        f"{html.escape(json.dumps(meta.get('measured_ceilings', {})))}</p>",
        "<h2>Who is fastest</h2>", _table(summary, ["backend", "fastest at (shape, M) points"]),
        "<h2>Plots</h2>", *imgs,
        f"<h2>Efficiency cliffs ({len(cliffs)})</h2>",
        _table(cliffs[:200], ["backend", "K", "N", "M", "util", "best_smaller_util", "best_smaller_M", "kernel_switch"]),
        *([f"<h2>Weight preparation at load ({len(prep)})</h2>",
           _table(prep, ["backend", "layer", "K", "N", "weight_format", "time_us", "peak_mem_mb", "status", "note"])]
          if prep else []),
        f"<h2>Rows not ok ({len(bad)})</h2>", _table(bad[:200], ["backend", "K", "N", "M", "status", "note"]),
        "<h2>All results</h2>",
        _table(rows, ["backend", "model", "layer", "tp", "M", "K", "N", "time_us", "tflops", "gbps",
                      "pct_measured_bw", "max_rel_err", "timing_mode", "l2", "status"]),
    ]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygemm.report")
    p.add_argument("results_dir")
    p.add_argument("-o", "--out", default=None, help="default RESULTS_DIR/report.html")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    out = a.out or os.path.join(a.results_dir, "report.html")
    with exit_2_on_bad_input(p.prog):
        if not os.path.isdir(a.results_dir):
            raise ValueError(f"{a.results_dir}: " + ("is not a directory (give a bench output directory)"
                                                      if os.path.exists(a.results_dir) else "no such directory"))
        check_output(out, a.force)  # before any work
        text = render(a.results_dir)
        with atomic_write(out) as f:
            f.write(text)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
