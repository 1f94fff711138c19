"""The report's interactive plots (plotly, drawn in the browser from JSON embedded in the page).

Every trace is one backend, grouped in the legend by precision class (a click hides a backend, a
double click isolates it); hovering a point shows backend, layer, M, time, TFLOP/s and the kernels.
matplotlib stays for python -m tinygemm.plot (PNG/SVG files).
"""

from __future__ import annotations

import math
from collections import defaultdict

from . import analyze
from .display import rate
from .precision import BASELINE, CLASSES, class_order, compute_dtype
from .report_data import ModelTable, Row, bandwidth, compute_ceilings, group_title

# one colour per class family, so a legend of many backends still reads by class
_PALETTES = {
    "fp16/bf16": ["#222222", "#777777"],
    "W4A16": ["#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#8c564b", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a"],
    "W8A16": ["#e377c2", "#f7b6d2"],
    "FP8 W8A8": ["#d62728", "#ff7f0e", "#ff9896"],
    "FP4": ["#9edae5", "#c5b0d5"],
    "other": ["#c49c94"],
}
HOVER = ("<b>%{customdata[0]}</b><br>layer %{customdata[1]}<br>M = %{x}<br>time %{customdata[2]:.2f} us"
         "<br>%{customdata[3]:.1f} TFLOP/s<br>kernel: %{customdata[4]}<extra></extra>")


def _go():
    import plotly.graph_objects as go

    return go


def colours(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """{backend: colour} for (class, backend) pairs, shades of its class's family."""
    out, used = {}, defaultdict(int)
    for c, b in sorted(pairs, key=lambda x: (class_order(x[0]), x[1])):
        pal = _PALETTES.get(c, _PALETTES["other"])
        out[b] = pal[used[c] % len(pal)]
        used[c] += 1
    return out


def _layout(fig, title: str, x: str, y: str, logy: bool = False) -> None:
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=420, margin=dict(l=60, r=20, t=50, b=50),
                      hovermode="closest", legend=dict(groupclick="toggleitem", font=dict(size=11)),
                      template="plotly_white")
    fig.update_xaxes(title=x, type="log", tickformat="d", dtick=math.log10(2))
    fig.update_yaxes(title=y, type="log" if logy else "linear")


def _kernel(r: Row) -> str:
    k = r.kernels or "(not recorded: --kernel-names)"
    return k if len(k) <= 120 else k[:117] + "..."


def _custom(r: Row) -> list:
    return [r.backend, r.layer or f"K={r.K} N={r.N}", r.time_us, r.tflops if math.isfinite(r.tflops) else 0.0,
            _kernel(r)]


def _trace(go, r0: Row, rs: list[Row], y: list[float], col: str, **kw):
    return go.Scatter(x=[r.M for r in rs], y=y, mode="lines+markers", name=r0.backend, legendgroup=r0.cls,
                      legendgrouptitle_text=r0.cls, line=dict(color=col, width=1.5), marker=dict(size=4),
                      customdata=[_custom(r) for r in rs], hovertemplate=HOVER, **kw)


def latency_per_layer(t: ModelTable, rows: list[Row]) -> list:
    """Time vs M, one figure per layer of the table."""
    go = _go()
    col = colours(t.backends)
    figs = []
    for layer, K, N in t.layers:
        fig = go.Figure()
        mine = [r for r in rows if r.group == t.group and (r.layer, r.K, r.N) == (layer, K, N)]
        for c, b in t.backends:
            rs = sorted((r for r in mine if r.backend == b), key=lambda r: r.M)
            if rs:
                fig.add_trace(_trace(go, rs[0], rs, [r.time_us for r in rs], col[b]))
        _layout(fig, f"{group_title(t.group)}: {layer or 'custom'} (K={K}, N={N}): latency", "batch M", "time (us)",
                logy=True)
        figs.append(fig)
    return figs


def speedup_over_fp16(t: ModelTable) -> list:
    """Summed-over-layers speedup of each backend over the fastest fp16/bf16 backend at each M."""
    go = _go()
    col = colours(t.backends)
    fig = go.Figure()
    for c, b in t.backends:
        Ms = [M for M in t.Ms if (b, M) in t.cells and math.isfinite(t.cells[(b, M)].speedup)]
        if not Ms:
            continue
        fig.add_trace(go.Scatter(
            x=Ms, y=[t.cells[(b, M)].speedup for M in Ms], mode="lines+markers", name=b, legendgroup=c,
            legendgrouptitle_text=c, line=dict(color=col[b], width=1.5), marker=dict(size=4),
            customdata=[[b, c, t.cells[(b, M)].sum_us] for M in Ms],
            hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})<br>M = %{x}<br>sum over the layers "
                          "%{customdata[2]:.1f} us<br>%{y:.2f}x the fastest fp16/bf16<extra></extra>"))
    if not fig.data:
        return []
    fig.add_hline(y=1.0, line=dict(color="gray", width=1, dash="dot"))
    _layout(fig, f"{group_title(t.group)}: speedup over {BASELINE}, time summed over the layers", "batch M",
            "speedup (x)")
    return [fig]


def utilization(t: ModelTable, rows: list[Row], points: list[analyze.Point], cliffs: list[dict],
                datasheet: bool = True) -> list:
    """Utilization vs M per layer; cliffs as red triangles, kernel switches circled. Without a datasheet
    peak for the GPU, analyze's utilization is the achieved TFLOP/s (only its ratios make cliffs)."""
    go = _go()
    col = colours(t.backends)
    by_key = {(r.backend, r.model, r.layer, r.tp, r.K, r.N, r.act_dtype, r.group_size, r.M): r for r in rows}
    figs = []
    for layer, K, N in t.layers:
        fig = go.Figure()
        for c, b in t.backends:
            pts = sorted((p for p in points if p.backend == b and (p.shape[0], p.shape[2], p.shape[5], p.shape[6])
                          == t.group and (p.shape[1], p.shape[3], p.shape[4]) == (layer, K, N)
                          and math.isfinite(p.util)), key=lambda p: p.M)
            rs = [by_key.get((b, *p.shape[:5], p.shape[5], p.shape[6], p.M)) for p in pts]
            keep = [(p, r) for p, r in zip(pts, rs) if r is not None]
            if not keep:
                continue
            fig.add_trace(_trace(go, keep[0][1], [r for _, r in keep], [p.util for p, _ in keep], col[b]))
            cs = [x for x in cliffs if x["backend"] == b and (x["model"], x["tp"]) == t.group[:2]
                  and (x["layer"], x["K"], x["N"]) == (layer, K, N)]
            for switch in (False, True):
                sel = [x for x in cs if bool(x["kernel_switch"]) == switch]
                if not sel:
                    continue
                fig.add_trace(go.Scatter(
                    x=[x["M"] for x in sel], y=[x["util"] for x in sel], mode="markers", legendgroup=c,
                    name=f"{b}: {'kernel switch' if switch else 'cliff'}", showlegend=False,
                    marker=dict(symbol="circle-open" if switch else "triangle-down", size=12 if switch else 9,
                                color="black" if switch else "red", line=dict(width=2 if switch else 0)),
                    customdata=[[b, x["best_smaller_M"], x["ratio"], x["kernel_before"] or "?", x["kernel_at"] or "?"]
                                for x in sel],
                    hovertemplate="<b>%{customdata[0]}</b>: cliff at M = %{x}<br>%{customdata[2]:.2f}x the best "
                                  "smaller M (%{customdata[1]})<br>kernel before: %{customdata[3]}<br>kernel at: "
                                  "%{customdata[4]}<extra></extra>"))
        if not fig.data:
            continue
        _layout(fig, f"{group_title(t.group)}: {layer or 'custom'} (K={K}, N={N}): utilization; red: cliffs, "
                     "circled: kernel switch", "batch M",
                "utilization (of the datasheet peak)" if datasheet else "TFLOP/s (no datasheet peak for this GPU)")
        figs.append(fig)
    return figs


def roofline(rows: list[Row], meta: dict) -> list:
    """TFLOP/s vs FLOP per byte; the measured bandwidth and one compute ceiling per precision."""
    go = _go()
    pts = [r for r in rows if math.isfinite(r.tflops) and math.isfinite(r.gbps) and r.gbps > 0 and r.tflops > 0]
    if not pts:
        return []
    col = colours(sorted({(r.cls, r.backend) for r in pts}))
    fig = go.Figure()
    for c in CLASSES:
        for b in sorted({r.backend for r in pts if r.cls == c}):
            rs = [r for r in pts if r.backend == b]
            fig.add_trace(go.Scatter(
                x=[r.flop / r.bytes for r in rs], y=[r.tflops for r in rs], mode="markers", name=b, legendgroup=c,
                legendgrouptitle_text=c, marker=dict(size=5, color=col[b], opacity=0.8),
                customdata=[_custom(r) + [r.M] for r in rs],
                hovertemplate="<b>%{customdata[0]}</b><br>layer %{customdata[1]}<br>M = %{customdata[5]}<br>time "
                              "%{customdata[2]:.2f} us<br>%{y:.1f} TFLOP/s at %{x:.1f} FLOP/byte<br>kernel: "
                              "%{customdata[4]}<extra></extra>"))
    bw, ceil = bandwidth(meta), compute_ceilings(meta)
    ai = [r.flop / r.bytes for r in pts]
    lo, hi = min(ai) / 2, max(ai) * 2
    xs = [lo * (hi / lo) ** (i / 199) for i in range(200)]
    styles = {"fp16": "dash", "fp8": "dot"}
    used = {compute_dtype(r.cls) for r in pts}
    for dt, (peak, src) in sorted(ceil.items()):
        if dt not in used:
            continue
        ys = [min(x * bw / 1e3, peak) if bw else peak for x in xs]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{dt} ceiling {rate(peak, 'TFLOP/s')}",
                                 legendgroup="ceilings", legendgrouptitle_text="ceilings",
                                 line=dict(color="black", width=1, dash=styles.get(dt, "solid")),
                                 hovertemplate=f"{dt}: {rate(peak, 'TFLOP/s')} ({src})"
                                               + (f", {rate(bw, 'GB/s')} measured" if bw else "")
                                               + "<extra></extra>"))
    fig.update_layout(title=dict(text="roofline: every (layer, M) point; lines: the measured bandwidth and one compute "
                                      "ceiling per precision", font=dict(size=14)), height=520,
                      margin=dict(l=60, r=20, t=50, b=50), hovermode="closest", template="plotly_white",
                      legend=dict(groupclick="toggleitem", font=dict(size=11)))
    fig.update_xaxes(title="arithmetic intensity (FLOP / byte)", type="log")
    fig.update_yaxes(title="TFLOP/s", type="log")
    return [fig]
