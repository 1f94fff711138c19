"""python -m tinygemm.report RESULTS_DIR: one self-contained HTML page of a bench run.

The page needs no network: plotly's JavaScript is embedded once and every plot is drawn in the
browser from the JSON beside it. What it shows, top to bottom: the run (GPU, clocks, versions,
command, measured ceilings); per model and TP the time summed over the layers of every backend at
every M, grouped by precision class with the fastest of each class marked, its speedup over fp16 and
its share of the byte and compute floors; the plots; the cliffs summarized; the details folded.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import re
import sys

from . import analyze
from .cli_errors import atomic_write, check_output, exit_2_on_bad_input
from .display import number, rate
from .precision import BASELINE, CLASSES
from .report_data import ModelTable, Row, bandwidth, cliffs, compute_ceilings, group_title, model_tables, ok_rows
from .results import read_meta, read_rows

E = html.escape
# the batch sizes the at-a-glance table shows (those the run has)
GLANCE_MS = (1, 4, 16, 64, 256, 512, 1024, 4096)

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td.l,th.l{text-align:left}
td.win{background:#d9f2d9;font-weight:bold}
.scroll{overflow-x:auto}
small{color:#666}
details{margin:.4em 0}summary{cursor:pointer;font-weight:bold}
table.meta td{text-align:left}table.meta td:first-child{font-weight:bold;background:#f8f8f8}
"""


def _table(rows: list[dict], cols: list[str], left: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th class='l'>{E(c)}</th>" if c in left else f"<th>{E(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td{' class=l' if c in left else ''}>{E(_fmt(r.get(c, '')))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _fmt(v) -> str:
    return number(v)


def _folded(title: str, body: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{E(title)}</summary>{body}</details>"


# --- the run --------------------------------------------------------------------------------------


def _version(v) -> str:
    """CUDA's integer versions (13000 -> 13.0; 12040 -> 12.4)."""
    if isinstance(v, int) and v >= 1000:
        return f"{v // 1000}.{(v % 1000) // 10}"
    return str(v) if v not in (None, "") else "-"


def _clocks(rows: list[dict]) -> str:
    clk = [float(r["sm_clock_mhz"]) for r in rows if r.get("status") == "ok" and _num(r.get("sm_clock_mhz"))]
    if not clk:
        return "not recorded"
    sagged = sum(1 for r in rows if str(r.get("clock_sagged", "")) in ("1", "True", "true"))
    reasons = sorted({m.group(1).strip() for r in rows for m in [re.search(r"clock held down: ([^;]+)", r.get("note", ""))]
                      if m})
    text = f"SM clock {min(clk):.0f}-{max(clk):.0f} MHz over the timed samples"
    text += f"; sagged during {sagged} of {len(clk)} points" if sagged else "; steady"
    text += f"; slowdown reasons seen: {', '.join(reasons)}" if reasons else "; no slowdown reason seen"
    return text


def _num(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def header(meta: dict, rows: list[dict]) -> str:
    dev = meta.get("device") or {}
    ver = meta.get("versions") or {}
    sheet = dev.get("datasheet") if isinstance(dev.get("datasheet"), dict) else {}
    bw, ceil = bandwidth(meta), compute_ceilings(meta)
    items = [
        ("GPU", f"{dev.get('name', 'unknown')} ({dev.get('arch', '?')})"),
        ("SMs", number(dev.get("sm_count", "?"))),
        ("L2, memory", f"{number((dev.get('l2_bytes') or 0) / 2**20)} MiB, {number((dev.get('memory_bytes') or 0) / 2**30)} GiB"
         if dev.get("l2_bytes") else "-"),
        ("clocks", _clocks(rows)),
        ("driver, CUDA runtime", f"{_version(dev.get('driver_version'))}, {_version(dev.get('runtime_version'))}"),
        ("versions", ", ".join(f"{k} {v}" for k, v in ver.items() if k in ("tinygemm", "torch", "cuda", "rocm", "triton",
                                                                          "vllm", "python") and v) or "-"),
        ("command", meta.get("command", "-")),
        ("created", meta.get("created", "-")),
        ("measured ceilings", f"copy {rate(bw, 'GB/s')}; bf16 matmul "
                              f"{rate((meta.get('measured_ceilings') or {}).get('matmul_tflops'), 'TFLOP/s')}"),
        ("compute ceilings used", "; ".join(f"{dt}: {rate(v, 'TFLOP/s')} ({src})" for dt, (v, src) in ceil.items())
         or "none (no results.json)"),
        ("datasheet", f"{sheet.get('row')}: {rate(sheet.get('mem_bw_gbs'), 'GB/s')}, bf16 {rate(sheet.get('bf16'), 'TFLOP/s')}, "
                      f"fp8 {rate(sheet.get('fp8'), 'TFLOP/s')}" if sheet.get("row") else "not in gpu_specs.csv"),
        ("sweep", f"{number(meta.get('points', '?'))} points in {number(meta.get('wall_s', '?'))} s (timed kernels "
                  f"{number(meta.get('timed_kernel_s', '?'))} s)" + ("; interrupted" if meta.get("interrupted") else "")),
    ]
    off = meta.get("unavailable") or {}
    if off:
        items.append(("backends not run", "; ".join(f"{k}: {v}" for k, v in off.items())))
    body = "".join(f"<tr><td>{E(k)}</td><td>{E(str(v))}</td></tr>" for k, v in items)
    return f"<table class='meta'>{body}</table>"


# --- per model and TP -----------------------------------------------------------------------------


def glance(t: ModelTable) -> str:
    """Per precision class, the fastest backend at a few M and its speedup over fp16."""
    Ms = [m for m in GLANCE_MS if m in t.Ms] or t.Ms[:8]
    classes = [c for c in CLASSES if any(cc == c for cc, _ in t.backends)]
    head = "<tr><th class='l'>precision class</th>" + "".join(f"<th>M={m}</th>" for m in Ms) + "</tr>"
    body = ""
    for c in classes:
        cells = []
        for m in Ms:
            w = t.winners(c, m)
            if not w:
                cells.append("<td>-</td>")
                continue
            cell = t.cells[(w[0], m)]
            sp = f" <small>{cell.speedup:.2f}x</small>" if math.isfinite(cell.speedup) and c != BASELINE else ""
            cells.append(f"<td class='win'>{E(', '.join(w))}{sp}</td>")
        body += f"<tr><td class='l'>{E(c)}</td>{''.join(cells)}</tr>"
    return f"<div class='scroll'><table class='glance'>{head}{body}</table></div>"


def summary_table(t: ModelTable) -> str:
    """Rows M; per class its backends' summed times (fastest marked, speedup over fp16 beside), then
    the winner's share of the byte and compute floors."""
    classes = [c for c in CLASSES if any(cc == c for cc, _ in t.backends)]
    per_cls = {c: [b for cc, b in t.backends if cc == c] for c in classes}
    h1 = "<tr><th rowspan=2>M</th>" + "".join(f"<th colspan={len(per_cls[c]) + 2}>{E(c)}</th>" for c in classes) + "</tr>"
    h2 = "<tr>" + "".join("".join(f"<th>{E(b)}</th>" for b in per_cls[c]) + "<th>% byte floor</th><th>% compute floor</th>"
                          for c in classes) + "</tr>"
    body = ""
    for m in t.Ms:
        tds = [f"<td>{m}</td>"]
        for c in classes:
            for b in per_cls[c]:
                cell = t.cells.get((b, m))
                if cell is None:
                    tds.append("<td>-</td>")
                    continue
                sp = f" <small>{cell.speedup:.2f}x</small>" if math.isfinite(cell.speedup) and c != BASELINE else ""
                tds.append(f"<td{' class=win' if cell.winner else ''} data-backend='{E(b)}' data-m='{m}'>"
                           f"{cell.sum_us:.1f}{sp}</td>")
            w = t.winners(c, m)
            cell = t.cells.get((w[0], m)) if w else None
            for v in ((cell.pct_byte_floor, cell.pct_compute_floor) if cell else (math.nan, math.nan)):
                tds.append(f"<td>{v:.0f}%</td>" if math.isfinite(v) else "<td>-</td>")
        body += "<tr>" + "".join(tds) + "</tr>"
    return f"<div class='scroll'><table class='summary'>{h1}{h2}{body}</table></div>"


def layer_detail(t: ModelTable, rows: list[Row]) -> str:
    parts = []
    for layer, K, N in t.layers:
        mine = {(r.backend, r.M): r for r in rows if r.group == t.group and (r.layer, r.K, r.N) == (layer, K, N)}
        best = {}
        for (b, m), r in mine.items():
            c = r.cls
            best[(c, m)] = min(best.get((c, m), math.inf), r.time_us)
        head = "<tr><th>M</th>" + "".join(f"<th>{E(b)}<br><small>{E(c)}</small></th>" for c, b in t.backends) + "</tr>"
        body = ""
        for m in t.Ms:
            tds = [f"<td>{m}</td>"]
            for c, b in t.backends:
                r = mine.get((b, m))
                tds.append("<td>-</td>" if r is None else
                           f"<td{' class=win' if r.time_us == best[(c, m)] else ''} title='{E(r.kernels)}'>"
                           f"{r.time_us:.2f}</td>")
            body += "<tr>" + "".join(tds) + "</tr>"
        parts.append(_folded(f"{layer or 'custom'} (K={K}, N={N}): time (us) per backend",
                             f"<div class='scroll'><table>{head}{body}</table></div>"))
    return "".join(parts)


# --- the page -------------------------------------------------------------------------------------


class Plots:
    """Plotly figures as divs; the library's JavaScript goes into the page once."""

    def __init__(self):
        self.n = 0

    def div(self, fig) -> str:
        self.n += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{self.n}",
                           config={"displaylogo": False, "responsive": True})

    @staticmethod
    def script() -> str:
        from plotly.offline import get_plotlyjs

        return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


def render(results_dir: str) -> str:
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ValueError("the report's interactive plots need plotly: pip install plotly (or \"tinygemm[report]\")") from None
    from . import report_plots as P

    csv_path = os.path.join(results_dir, "results.csv")
    raw = read_rows(csv_path)
    meta_path = os.path.join(results_dir, "results.json")
    meta = read_meta(meta_path) if os.path.exists(meta_path) else {}
    from .plot import read_ceilings

    read_ceilings(meta_path)  # numbers, or an error naming the file
    points = analyze.load(csv_path)  # validates every ok row (an error names the file and row)
    rows = ok_rows(raw)
    tables = model_tables(rows, meta)
    cl_summary, cl_worst, cl_all = cliffs(points)
    bad = [r for r in raw if r.get("status") != "ok"]
    prep = [r for r in raw if r.get("op") == "prepare"]
    plots = Plots()
    # analyze's utilization is of the datasheet peak where the rows have one, else achieved TFLOP/s
    datasheet = any(_num(r.get("pct_peak_flops")) for r in raw if r.get("status") == "ok")
    dev = meta.get("device") or {}
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>tinygemm report: {E(str(dev.get('name', results_dir)))}</title>",
             f"<style>{CSS}</style>", Plots.script(), "</head><body>",
             f"<h1>tinygemm report: {E(str(dev.get('name', '')))}</h1>", header(meta, raw)]
    for t in tables:
        parts += [f"<h2>{E(group_title(t.group))}</h2>",
                  "<h3>At a glance: the fastest backend of each precision class <small>(speedup over the fastest "
                  f"{BASELINE}; time summed over the {len(t.layers)} layers)</small></h3>", glance(t),
                  "<h3>Time summed over the layers (us) per backend and M <small>(green: fastest of its class; "
                  "Nx: speedup over the fastest fp16/bf16; % floor: the class winner's time that the bytes at the "
                  "measured bandwidth, and the FLOPs at its precision's compute ceiling, would take)</small></h3>",
                  summary_table(t), *[plots.div(f) for f in P.speedup_over_fp16(t)],
                  _folded(f"Per-layer detail ({len(t.layers)} layers)", layer_detail(t, rows)),
                  "<h3>Latency vs M per layer</h3>", *[plots.div(f) for f in P.latency_per_layer(t, rows)],
                  "<h3>Utilization vs M per layer</h3>",
                  *[plots.div(f) for f in P.utilization(t, rows, points, cl_all, datasheet)]]
    parts += ["<h2>Roofline</h2>", *[plots.div(f) for f in P.roofline(rows, meta)]]
    parts += [f"<h2>Efficiency cliffs ({len(cl_all)})</h2>",
              "<p>A batch size is a cliff when its utilization falls below 0.85 x the best of any smaller M of the "
              "same backend and layer.</p>",
              "<h3>Per backend and layer</h3>",
              _table(cl_summary, ["backend", "model", "layer", "tp", "K", "N", "cliffs", "kernel_switches",
                                  "worst_ratio", "worst_M"], left=("backend", "model", "layer")),
              "<h3>The worst ten</h3>",
              _table(cl_worst, ["backend", "model", "layer", "tp", "K", "N", "M", "ratio", "best_smaller_M",
                                "kernel_switch", "kernel_before", "kernel_at"],
                     left=("backend", "model", "layer", "kernel_before", "kernel_at")),
              _folded(f"All cliffs ({len(cl_all)})",
                      _table(cl_all, ["backend", "model", "layer", "tp", "K", "N", "M", "util", "best_smaller_util",
                                      "best_smaller_M", "ratio", "kernel_switch"], left=("backend", "model", "layer")))]
    if prep:
        parts += [f"<h2>Weight preparation at load ({len(prep)})</h2>",
                  _table(prep, ["backend", "layer", "K", "N", "weight_format", "time_us", "peak_mem_mb", "status",
                                "note"], left=("backend", "layer", "weight_format", "note"))]
    parts += [f"<h2>Rows not ok ({len(bad)})</h2>",
              _folded(f"{len(bad)} rows", _table(bad, ["backend", "model", "layer", "K", "N", "M", "status", "note"],
                                                 left=("backend", "model", "layer", "status", "note")), open_=False),
              "<h2>All results</h2>",
              _folded(f"{len(raw)} rows", _table(raw, ["backend", "model", "layer", "tp", "M", "K", "N", "time_us",
                                                       "tflops", "gbps", "pct_measured_bw", "max_rel_err", "timing_mode",
                                                       "l2", "status"], left=("backend", "model", "layer", "status"))),
              "</body></html>"]
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
