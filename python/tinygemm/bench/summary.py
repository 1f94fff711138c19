"""The terminal summary after a sweep, grouped by precision class as the report is."""

from __future__ import annotations


def print_summary(rows: list[dict], console) -> None:
    """Per precision class and backend, the median time summed over the layers, at a few batch sizes;
    * marks the fastest of its class (an FP8 W8A8 kernel does not do a W4A16 kernel's job)."""
    from rich.table import Table

    from ..precision import class_order, precision_class

    ok = [r for r in rows if r.get("status") == "ok" and r.get("op") != "prepare"]
    if not ok:
        return
    Ms = sorted({int(r["M"]) for r in ok})
    show = [m for m in (1, 4, 16, 64, 256, 512, 1024, 4096) if m in Ms] or Ms[:6]
    t = Table(title="time summed over the layers (us); * = fastest of its precision class")
    t.add_column("class", no_wrap=True)
    t.add_column("backend", no_wrap=True)
    for m in show:
        t.add_column(f"M={m}", justify="right")
    sums: dict[tuple[str, str], dict[int, float]] = {}
    for r in ok:
        if int(r["M"]) in show:
            v = sums.setdefault((precision_class(r["backend"], r.get("op", ""), r.get("weight_format", "")),
                                 r["backend"]), {})
            v[int(r["M"])] = v.get(int(r["M"]), 0.0) + float(r["time_us"])
    best = {(c, m): min(v[m] for (cc, _), v in sums.items() if cc == c and m in v)
            for (c, _), vv in sums.items() for m in vv}
    for (c, b), v in sorted(sums.items(), key=lambda kv: (class_order(kv[0][0]), kv[0][1])):
        t.add_row(c, b, *[("" if m not in v else f"{v[m]:.1f}{'*' if v[m] == best[(c, m)] else ''}") for m in show])
    console.print(t)
    bad = [r for r in rows if r.get("status") not in ("ok", "unsupported")]
    if bad:
        console.print(f"[red]{len(bad)} rows with status wrong/oom/error[/] (see the status and note columns)")
