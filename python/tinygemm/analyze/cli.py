"""python -m tinygemm.analyze: the four tools' command line; every output checked before any work."""

from __future__ import annotations

import argparse
import csv

from ..cli_errors import atomic_write, check_output, exit_2_on_bad_input
from . import __doc__ as DOC
from .aiter import AITER_KEY, dedup_aiter, read_aiter, tuned_compare
from .cliffs import CLIFF_COLUMNS, SPLIT_COLUMNS, check_split, find_cliffs
from .compare import compare, gpu_of
from .points import Point, load
from .sums import layer_sums, sums_markdown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygemm.analyze", description=DOC.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cliffs", help="batch sizes whose utilization drops below threshold x the best smaller one")
    c.add_argument("csv")
    c.add_argument("--threshold", type=float, default=0.85)
    c.add_argument("--check-split", action="store_true")
    c.add_argument("--split-threshold", type=float, default=0.9)
    c.add_argument("-o", "--out", default=None, help="output prefix: PREFIX_cliffs.csv [, PREFIX_split.csv]")
    c.add_argument("--force", action="store_true")
    m = sub.add_parser("compare", help="speedups between two CSVs, or two backends of one CSV")
    m.add_argument("a")
    m.add_argument("b", nargs="?")
    m.add_argument("--a-backend", default=None, help="a backend name (old names too: tinygemm_cuda is tinygemm_gemv)")
    m.add_argument("--b-backend", default=None)
    m.add_argument("-o", "--out", default=None)
    m.add_argument("--force", action="store_true")
    su = sub.add_parser("sums", help="per model and TP: each backend's time summed over the layers, per M (Markdown)")
    su.add_argument("csv")
    su.add_argument("-o", "--out", default=None, help="write the Markdown here too")
    su.add_argument("--force", action="store_true")
    d = sub.add_parser("dedup", help="keep the fastest row per shape of an aiter tuned CSV")
    d.add_argument("csv")
    d.add_argument("-o", "--out", required=True)
    d.add_argument("--force", action="store_true")
    t = sub.add_parser("tuned-compare", help="per-shape and per-model speedups between two aiter tuned CSVs")
    t.add_argument("a")
    t.add_argument("b")
    t.add_argument("--model", nargs="*", default=None)
    t.add_argument("--tp", nargs="*", type=int, default=None)
    t.add_argument("-o", "--out", default=None)
    t.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    with exit_2_on_bad_input(p.prog):
        _run(a)
    return 0


def _outputs(a) -> list[str]:
    """Every file a command will write: all are checked before any work starts."""
    if a.cmd == "cliffs":
        return [a.out + "_cliffs.csv", *([a.out + "_split.csv"] if a.check_split else [])] if a.out else []
    return [a.out] if a.out else []


def check_outputs(paths: list[str], force: bool) -> None:
    """The one overwrite check of every tool: each output writable, none overwritten without --force,
    no two the same; run before any work starts."""
    for o in paths:
        check_output(o, force)
    if len(set(paths)) != len(paths):
        raise ValueError(f"the outputs {', '.join(paths)} are not distinct")


def run_cliffs(a) -> None:
    if not 0 < a.threshold <= 1:  # before the table is printed
        raise ValueError(f"--threshold must be in (0, 1]; got {a.threshold}")
    if a.check_split and not 0 < a.split_threshold <= 1:
        raise ValueError(f"--split-threshold must be in (0, 1]; got {a.split_threshold}")
    pts = load(a.csv)
    cl = find_cliffs(pts, a.threshold)
    sp = check_split(pts, cl, a.split_threshold) if a.check_split else None
    _table(f"{len(cl)} cliffs (threshold {a.threshold})", cl,
           ["backend", "K", "N", "M", "util", "best_smaller_util", "best_smaller_M", "kernel_switch"])
    if sp is not None:
        opp = [r for r in sp if r["opportunity"]]
        _table(f"{len(opp)} split-GEMM opportunities (t(b1)+t(b2) < {a.split_threshold} t(M))", opp,
               ["backend", "K", "N", "M", "time_us", "b1", "b2", "split_us", "saving_pct"])
    if a.out:
        _write(a.out + "_cliffs.csv", cl, CLIFF_COLUMNS)
        if sp is not None:
            _write(a.out + "_split.csv", sp, SPLIT_COLUMNS)


def run_compare(a) -> None:
    if not a.b and not (a.a_backend and a.b_backend):
        raise ValueError("with one CSV, name the two backends: --a-backend X --b-backend Y")
    A = load(a.a)
    B = load(a.b) if a.b else A
    A = _only(A, a.a_backend, a.a)
    B = _only(B, a.b_backend, a.b or a.a)
    r = compare(A, B)
    for x in r["paired"]:
        print(f"paired: A {x['a']} with B {x['b']}: {x['n']} points")
    for side in ("a", "b"):
        if r[f"unpaired_{side}"]:
            print(f"not paired (only in {side.upper()}): {', '.join(r[f'unpaired_{side}'])}")
    ga, gb = gpu_of(a.a), gpu_of(a.b or a.a)
    if ga and gb and ga != gb:  # two GPU models: say which is which
        print(f"A: {a.a} on {ga}\nB: {a.b} on {gb}")
        print(f"geomean speedup of B ({gb}) over A ({ga}): {r['overall']:.3f} over {len(r['pairs'])} points")
    else:
        print(f"geomean speedup of B over A: {r['overall']:.3f} over {len(r['pairs'])} points")
    for title in ("by_model", "by_layer", "by_m_range"):
        _table(title, [{"group": k, **v} for k, v in r[title].items()], ["group", "geomean", "n"])
    s = r["slowdowns"]
    print(f"slowdowns: {s['count']}" + (f" (mean {s['mean']:.3f}, worst {s['worst']:.3f})" if s["count"] else ""))
    _write(a.out, r["pairs"])


def run_sums(a) -> None:
    from ..results import read_rows

    text = sums_markdown(*layer_sums(read_rows(a.csv), a.csv))
    print(text)
    if a.out:
        with atomic_write(a.out) as f:
            f.write(text + "\n")


def run_dedup(a) -> None:
    header, rows = read_aiter(a.csv)
    best = dedup_aiter(header, rows)
    with atomic_write(a.out, newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(best)
    print(f"{len(rows)} rows -> {len(best)} (fastest per {', '.join(c for c in AITER_KEY if c in header)})")


def run_tuned_compare(a) -> None:
    _, ra = read_aiter(a.a)
    _, rb = read_aiter(a.b)
    r = tuned_compare(ra, rb, a.model, a.tp)
    print(f"geomean speedup of B over A: {r['overall']:.3f} over {len(r['pairs'])} shapes")
    if r["by_model"]:
        _table("per model", [{"model": k, **v} for k, v in r["by_model"].items()], ["model", "geomean", "n"])
    _write(a.out, r["pairs"])


TOOLS = {"cliffs": run_cliffs, "compare": run_compare, "sums": run_sums, "dedup": run_dedup,
         "tuned-compare": run_tuned_compare}


def _run(a) -> None:
    check_outputs(_outputs(a), a.force)
    TOOLS[a.cmd](a)


def _write(path: str | None, rows: list[dict], columns: tuple[str, ...] | None = None) -> None:
    """Rows as CSV, through a temporary file (the path was checked before the work started). With no
    rows the file is the header alone: an output always reflects this run, never an earlier one left
    in place. (compare and tuned-compare refuse an empty result before this, so they give no columns.)"""
    if not path:
        return
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns or rows[0]))
        w.writeheader()
        w.writerows(rows)


def _table(title: str, rows: list[dict], cols: list[str]) -> None:
    from rich.table import Table

    from ..display import console, number

    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*[number(r[c], 3) if isinstance(r[c], float) else str(r[c]) for c in cols])
    console().print(t)


def _only(points: list[Point], backend: str | None, path: str) -> list[Point]:
    if not backend:
        return points
    from ..results import canonical_backend

    backend = canonical_backend(backend)  # the rows were read in today's names too
    mine = [x for x in points if x.backend == backend]
    if not mine:
        have = sorted({x.backend for x in points})
        raise ValueError(f"{path}: no ok row has backend {backend!r}; its backends: {', '.join(have) or 'none'}")
    return mine
