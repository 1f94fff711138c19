"""The INT4 (W4A16) bar of issues 11 and 12: tinygemm beside every INT4 peer and fp16, in one run.

    python bench/w4a16_decode.py --out DIR                     # fp16, group 128, symmetric (the bar)
    python bench/w4a16_decode.py --out DIR --dtype bf16         # issue 12's extra reports
    python bench/w4a16_decode.py --out DIR --group-size 64 --asym     # (and --group-size -1 --asym)
    python bench/w4a16_decode.py --out DIR --summarize-only     # re-summarize DIR's results

Runs `python -m tinygemm.bench` (graph-timed, cold L2) once per model into DIR/<model>-tp<tp>/
(Llama-3-8B TP1 and Llama-3-70B TP4 by default; each run's results.json is also kept as
DIR/results-<model>-tp<tp>.json), joins their rows into DIR/results.csv, then writes DIR/w4a16_decode.md: per model and
M the per-layer times and their sum per backend, % of the byte floor and of the compute floor, and
the bars, each MET or MISSED with its numbers. A backend that cannot run on the machine is skipped by
the bench and named in the summary. Exit codes: 2 for bad arguments or missing results.

gemlite autotunes each (shape, M) once before it is timed (its "fast" config list, timed in CUDA
graphs; tinygemm.backends.gemlite), compiling every candidate: minutes per model on a fresh machine.
Its choices are merged into DIR/gemlite_config.json after each model; `--gemlite-config FILE` replays
them without tuning (gemlite's config caching), so a second run runs exactly the same kernels. To fit
time limits, run the models one at a time: `--models Llama-3-8B:1`, then `--models Llama-3-70B:4 --resume`.

Floors (per layer, summed over the model's layers):
  byte floor    = (packed 4-bit weights + group scales + 4-bit zero points when --asym + x + y, all 16-bit
                  activations and scales) / the measured copy bandwidth (results.json:
                  measured_ceilings.copy_gbps, bytes read + written);
  compute floor = 2 * M * N * K / the measured bf16 matmul rate (measured_ceilings.matmul_tflops).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from dataclasses import dataclass, field

MODELS = [("Llama-3-8B", 1), ("Llama-3-70B", 4)]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
OURS = "tinygemm_auto"
TINYGEMM = ["tinygemm_gemv", "tinygemm_triton", "tinygemm_gemm_sm90", OURS]


def peer_names(asym: bool) -> dict[str, str]:
    """The peers issue 11's bar compares with, by backend name (zero-point variants with --asym)."""
    fmt = "uint4" if asym else "uint4b8"
    return {f"marlin_{fmt}": "Marlin", f"machete_{fmt}": "Machete", "gemlite": "gemlite",
            "torch_int4pack": "torch int4pack", "torch_matmul": "torch fp16"}


def default_backends(asym: bool) -> list[str]:
    p = list(peer_names(asym))
    return ["torch_matmul", "torch_int4pack", p[0], p[1], "gemlite", *TINYGEMM]


# --- floors --------------------------------------------------------------------------------------


def byte_floor_us(K: int, N: int, M: int, copy_gbps: float, group_size: int = 128, asym: bool = False) -> float:
    """The bytes an INT4 GEMM must move, over the copy bandwidth: packed weights, 16-bit group scales,
    4-bit zero points (asym), 16-bit x [M, K] and y [M, N]."""
    groups = 1 if group_size == -1 else K // group_size
    nbytes = K * N / 2 + groups * N * 2 + (groups * N / 2 if asym else 0) + M * K * 2 + M * N * 2
    return nbytes / (copy_gbps * 1e3)


def compute_floor_us(K: int, N: int, M: int, matmul_tflops: float) -> float:
    return 2.0 * M * N * K / (matmul_tflops * 1e6)


# --- results -------------------------------------------------------------------------------------


@dataclass
class Results:
    """One configuration's measurements: times[(model, tp, backend, layer, M)] in us."""

    times: dict
    layers: dict                     # (model, tp) -> [(layer, K, N)] in the bench's order
    batches: list[int]
    backends: list[str]              # in the order they appear
    copy_gbps: float
    matmul_tflops: float
    act_dtype: str
    group_size: int
    asym: bool
    unavailable: dict = field(default_factory=dict)   # backend -> why (the bench skipped it)
    not_ok: list = field(default_factory=list)        # rows with status other than ok
    device: str = ""

    def total(self, model: str, tp: int, backend: str, M: int) -> float | None:
        """Time summed over the model's layers; None unless every layer was measured."""
        vals = [self.times.get((model, tp, backend, lay, M)) for lay, _, _ in self.layers[(model, tp)]]
        return None if any(v is None for v in vals) else sum(vals)

    def byte_floor(self, model: str, tp: int, M: int, layer: str | None = None) -> float:
        return sum(byte_floor_us(K, N, M, self.copy_gbps, self.group_size, self.asym)
                   for lay, K, N in self.layers[(model, tp)] if layer in (None, lay))

    def compute_floor(self, model: str, tp: int, M: int, layer: str | None = None) -> float:
        return sum(compute_floor_us(K, N, M, self.matmul_tflops)
                   for lay, K, N in self.layers[(model, tp)] if layer in (None, lay))


def load(out: str) -> Results:
    """DIR/results.csv + DIR/results.json as Results; ValueError naming what is missing or mixed."""
    csv_path, json_path = os.path.join(out, "results.csv"), os.path.join(out, "results.json")
    for path in (csv_path, json_path):
        if not os.path.exists(path):
            raise ValueError(f"{path} does not exist (run without --summarize-only first)")
    from tinygemm.results import read_meta, read_rows  # today's backend names, in old runs too

    return from_rows([r for r in read_rows(csv_path) if r.get("op") != "prepare"], read_meta(json_path))


def from_rows(rows: list[dict], meta: dict) -> Results:
    ceil = meta.get("measured_ceilings") or {}
    missing = [k for k in ("copy_gbps", "matmul_tflops") if not ceil.get(k)]
    if missing:
        raise ValueError(f"results.json's measured_ceilings lacks {', '.join(missing)} "
                         f"(has: {', '.join(ceil) or 'nothing'})")
    configs = {(r["act_dtype"], r["group_size"]) for r in rows}
    if len(configs) > 1:
        raise ValueError(f"the results mix activation dtypes / group sizes {sorted(configs)}; "
                         "summarize one configuration per directory")
    if not rows:
        raise ValueError("results.csv has no measured rows")
    act_dtype, group_size = configs.pop()
    times, layers, backends, not_ok = {}, {}, [], []
    for r in rows:
        model, tp, layer, K, N, M = r["model"], int(r["tp"]), r["layer"], int(r["K"]), int(r["N"]), int(r["M"])
        lays = layers.setdefault((model, tp), [])
        if (layer, K, N) not in lays:
            lays.append((layer, K, N))
        if r["backend"] not in backends:
            backends.append(r["backend"])
        if r["status"] == "ok":
            times[(model, tp, r["backend"], layer, M)] = float(r["time_us"])
        else:
            not_ok.append(r)
    return Results(times=times, layers=layers, batches=sorted({int(r["M"]) for r in rows}), backends=backends,
                   copy_gbps=float(ceil["copy_gbps"]), matmul_tflops=float(ceil["matmul_tflops"]),
                   act_dtype=act_dtype, group_size=int(group_size),
                   asym="--asym" in meta.get("command", "").split(),
                   unavailable=dict(meta.get("unavailable") or {}), not_ok=not_ok,
                   device=(meta.get("device") or {}).get("name", ""))


# --- the bars ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    issue: int
    model: str
    tp: int
    bar: str
    status: str          # MET, MISSED or NOT MEASURED
    detail: str
    M: int | None = None

    def line(self) -> str:
        at = f", M = {self.M}" if self.M is not None else ""
        return f"- **{self.status}** {self.model} TP{self.tp}{at}: {self.bar}: {self.detail}"


def issue11_limit(M: int) -> tuple[float, str]:
    """At most this multiple of the fastest peer's summed time, and the bar that sets it."""
    if 32 <= M <= 64:
        return 0.85, "M = 32-64: at most 0.85x the fastest peer"
    if 128 <= M <= 256:
        return 0.9, "M = 128-256: at most 0.9x the fastest peer"
    return 1.0, ("M = 512: at most 1.0x the fastest peer" if M == 512 else
                 "never slower than the fastest peer")


def issue12_limit(M: int) -> tuple[float, str] | None:
    if M in (1, 2, 4, 8):
        return 1.5, "M = 1, 2, 4, 8: summed time at most 1.5x the byte floor"
    if M == 16:
        return 1.7, "M = 16: summed time at most 1.7x the byte floor"
    return None


def evaluate_bars(res: Results) -> list[Verdict]:
    out: list[Verdict] = []
    peers = peer_names(res.asym)
    for model, tp in res.layers:
        for M in res.batches:
            ours = res.total(model, tp, OURS, M)
            limit, bar = issue11_limit(M)
            sums = {b: res.total(model, tp, b, M) for b in peers}
            measured = {b: t for b, t in sums.items() if t is not None}
            absent = [peers[b] for b in peers if b not in measured]
            if ours is None or not measured:
                why = f"{OURS} not measured at every layer" if ours is None else "no peer measured"
                out.append(Verdict(11, model, tp, bar, "NOT MEASURED", why, M))
            else:
                best = min(measured, key=measured.get)
                ratio = ours / measured[best]
                out.append(Verdict(11, model, tp, bar, "MET" if ratio <= limit else "MISSED",
                                   f"{OURS} {ours:.1f} us vs fastest peer {peers[best]} {measured[best]:.1f} us = "
                                   f"{ratio:.2f}x (limit {limit:.2f}x)"
                                   + (f"; not measured: {', '.join(absent)}" if absent else ""), M))
            lim12 = issue12_limit(M)
            if lim12 is not None:
                limit, bar = lim12
                floor = res.byte_floor(model, tp, M)
                if ours is None:
                    out.append(Verdict(12, model, tp, bar, "NOT MEASURED",
                                       f"{OURS} not measured at every layer", M))
                else:
                    ratio = ours / floor
                    out.append(Verdict(12, model, tp, bar, "MET" if ratio <= limit else "MISSED",
                                       f"{OURS} {ours:.1f} us, byte floor {floor:.1f} us: {ratio:.2f}x "
                                       f"(limit {limit:.1f}x)", M))
            if M <= 16:
                out.append(_faster_than_marlin(res, model, tp, M))
    return out


def _faster_than_marlin(res: Results, model: str, tp: int, M: int) -> Verdict:
    marlin = next(iter(peer_names(res.asym)))
    bar = "every layer faster than Marlin"
    cells, slower, missing = [], [], []
    for lay, _, _ in res.layers[(model, tp)]:
        ours, theirs = res.times.get((model, tp, OURS, lay, M)), res.times.get((model, tp, marlin, lay, M))
        if ours is None or theirs is None:
            missing.append(lay)
            continue
        cells.append(f"{lay} {ours:.2f} vs {theirs:.2f}")
        if not ours < theirs:
            slower.append(lay)
    if missing:
        return Verdict(12, model, tp, bar, "NOT MEASURED",
                       f"no {OURS} or {marlin} time for {', '.join(missing)}", M)
    detail = "; ".join(cells) + " us" + (f"; not faster: {', '.join(slower)}" if slower else "")
    return Verdict(12, model, tp, bar, "MISSED" if slower else "MET", detail, M)


# --- the report ----------------------------------------------------------------------------------


def markdown(res: Results) -> str:
    fmt = "uint4 with zero points" if res.asym else "uint4b8 (symmetric)"
    g = "per channel" if res.group_size == -1 else f"group {res.group_size}"
    lines = [f"# INT4 (W4A16) bar: {res.act_dtype}, {g}, {fmt}; graph-timed, cold L2", "",
             f"{res.device}; measured copy bandwidth {res.copy_gbps:.0f} GB/s, bf16 matmul "
             f"{res.matmul_tflops:.0f} TFLOP/s. Times in us (median); byte floor = packed weights + scales"
             + (" + 4-bit zero points" if res.asym else "") + " + x + y over the copy bandwidth; compute floor = "
             "2*M*N*K over the matmul rate. torch_int4pack runs bf16 whatever the dtype (its only one).", ""]
    if res.unavailable:
        lines += ["Skipped (unavailable on this machine): "
                  + "; ".join(f"{b}: {why}" for b, why in res.unavailable.items()), ""]
    verdicts = evaluate_bars(res)
    lines += ["## Bars", ""]
    for issue, title in ((11, "issue 11 (tinygemm_auto vs the fastest of Marlin, Machete, gemlite, "
                                "torch int4pack, torch fp16; summed over the layers)"),
                         (12, "issue 12 (decode: tinygemm_auto against the byte floor and Marlin)")):
        mine = [v for v in verdicts if v.issue == issue]
        counts = {s: sum(v.status == s for v in mine) for s in ("MET", "MISSED", "NOT MEASURED")}
        lines += [f"### {title}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n), ""]
        lines += [v.line() for v in mine] + [""]
    for model, tp in res.layers:
        lays = res.layers[(model, tp)]
        lines += [f"## {model} TP{tp}", "", f"Summed over the {len(lays)} layers (us); **bold** = fastest:", "",
                  "| backend | " + " | ".join(f"M={M}" for M in res.batches) + " |",
                  "|---" * (len(res.batches) + 1) + "|"]
        overview = {b: [res.total(model, tp, b, M) for M in res.batches] for b in res.backends}
        fastest = [min((v[i] for v in overview.values() if v[i] is not None), default=None)
                   for i in range(len(res.batches))]
        for b, vals in overview.items():
            cells = ["-" if t is None else f"**{t:.1f}**" if t == fastest[i] else f"{t:.1f}"
                     for i, t in enumerate(vals)]
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines.append("| byte floor | " + " | ".join(f"{res.byte_floor(model, tp, M):.1f}" for M in res.batches)
                     + " |")
        lines += ["| compute floor | " + " | ".join(f"{res.compute_floor(model, tp, M):.1f}" for M in res.batches)
                  + " |", ""]
        for M in res.batches:
            lines += [f"### {model} TP{tp}, M = {M}", "",
                      "| backend | " + " | ".join(f"{lay} {K}x{N}" for lay, K, N in lays)
                      + " | sum | % of byte floor | % of compute floor |", "|---" * (len(lays) + 4) + "|"]
            sums = {b: res.total(model, tp, b, M) for b in res.backends}
            best = min((t for t in sums.values() if t is not None), default=None)
            bfl, cfl = res.byte_floor(model, tp, M), res.compute_floor(model, tp, M)
            for b in res.backends:
                cells = [f"{res.times[(model, tp, b, lay, M)]:.2f}" if (model, tp, b, lay, M) in res.times else "-"
                         for lay, _, _ in lays]
                s = sums[b]
                tail = ["-", "-", "-"] if s is None else [
                    f"**{s:.1f}**" if s == best else f"{s:.1f}", f"{100 * bfl / s:.0f}%", f"{100 * cfl / s:.0f}%"]
                lines.append(f"| {b} | " + " | ".join(cells + tail) + " |")
            lines.append("| byte floor | " + " | ".join(f"{res.byte_floor(model, tp, M, lay):.2f}"
                                                      for lay, _, _ in lays) + f" | {bfl:.1f} | 100% | |")
            lines.append("| compute floor | " + " | ".join(f"{res.compute_floor(model, tp, M, lay):.2f}"
                                                         for lay, _, _ in lays) + f" | {cfl:.1f} | | 100% |")
            lines.append("")
    if res.not_ok:
        lines += ["## Rows not ok", "", "| backend | model | layer | M | status | note |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['backend']} | {r['model']} TP{r['tp']} | {r['layer']} | {r['M']} | {r['status']} | "
                  f"{r.get('note', '')[:160]} |" for r in res.not_ok]
        lines.append("")
    return "\n".join(lines)


def summarize(out: str) -> str:
    text = markdown(load(out))
    with open(os.path.join(out, "w4a16_decode.md"), "w") as f:
        f.write(text + "\n")
    return text


# --- the run -------------------------------------------------------------------------------------


def parse_models(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in spec.split(","):
        name, _, tp = item.strip().partition(":")
        if not name or not tp.isdigit() or int(tp) < 1:
            raise ValueError(f"--models takes MODEL:TP[,MODEL:TP...], e.g. Llama-3-8B:1; got {item.strip()!r}")
        out.append((name, int(tp)))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python bench/w4a16_decode.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="w4a16_decode",
                   help="the results directory (results.csv, results.json, the .md)")
    p.add_argument("--summarize-only", action="store_true", help="only re-summarize OUT's results")
    p.add_argument("--models", default=",".join(f"{m}:{tp}" for m, tp in MODELS), help="MODEL:TP list")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)), help="M values, comma-separated")
    p.add_argument("--backends", default=None,
                   help="comma-separated backends (default: every peer and tinygemm kernel)")
    p.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16")
    p.add_argument("--group-size", type=int, choices=[32, 64, 128, -1], default=128)
    p.add_argument("--asym", action="store_true", help="zero points (uint4; Marlin/Machete's uint4 variants)")
    p.add_argument("--gemlite-autotune", choices=["fast", "max", "default"], default="fast",
                   help="gemlite's autotune mode (see tinygemm.backends.gemlite)")
    p.add_argument("--gemlite-config", default=None,
                   help="a gemlite config JSON to load (skips autotuning its shapes)")
    p.add_argument("--gemlite-save-config", default=None,
                   help="where gemlite's tuned configs go after each model (default: OUT/gemlite_config.json)")
    p.add_argument("--force", action="store_true", help="overwrite OUT/results.csv")
    p.add_argument("--resume", action="store_true", help="continue OUT/results.csv")
    a = p.parse_args(argv)
    try:
        a.model_list = parse_models(a.models)
        a.batch_list = [int(b) for b in a.batches.split(",")]
    except ValueError as e:
        p.error(str(e))
    if any(b < 1 for b in a.batch_list):
        p.error(f"--batches must be positive integers; got {a.batches}")
    return p, a


def run(a) -> int:
    from tinygemm.backends.gemlite import Gemlite
    from tinygemm.bench.__main__ import main as bench_main

    Gemlite.autotune, Gemlite.config_path = a.gemlite_autotune, a.gemlite_config
    backends = a.backends or ",".join(default_backends(a.asym))
    # one bench run per model (each its own plan: --resume continues only the same plan), then their
    # rows joined into OUT/results.csv and the first run's results.json kept as OUT/results.json
    parts = []
    for model, tp in a.model_list:
        part = os.path.join(a.out, f"{model}-tp{tp}")
        keep = ["--resume"] if a.resume and os.path.exists(os.path.join(part, "results.csv")) else ["--force"]
        rc = bench_main(["--model", model, "--tp", str(tp), "--batches", ",".join(map(str, a.batch_list)),
                         "--backends", backends, "--mode", "graph", "--l2", "cold",
                         "--group-size", str(a.group_size), "--dtype", a.dtype, *(["--asym"] if a.asym else []),
                         "--out", part, "--quiet", *keep])
        if rc:
            return rc
        shutil.copyfile(os.path.join(part, "results.json"), os.path.join(a.out, f"results-{model}-tp{tp}.json"))
        save_gemlite_configs(backends, a.gemlite_save_config or os.path.join(a.out, "gemlite_config.json"))
        parts.append(part)
    join_parts(with_earlier_parts(a.out, parts), a.out)
    return 0


def with_earlier_parts(out: str, parts: list[str]) -> list[str]:
    """This invocation's per-model runs after those already in OUT: a --resume run for another model
    joins the models run before it (one model per invocation is how a bar run stays inside a call's
    time limit), which are listed first, so OUT/results.json stays the first run's."""
    earlier = [os.path.join(out, d) for d in sorted(os.listdir(out))
               if os.path.isfile(os.path.join(out, d, "results.csv")) and os.path.join(out, d) not in parts]
    return earlier + parts


def join_parts(parts: list[str], out: str) -> None:
    """The per-model runs' rows in one OUT/results.csv (columns in the first's order, then any new)."""
    rows, fields = [], []
    for part in parts:
        with open(os.path.join(part, "results.csv"), newline="") as f:
            r = csv.DictReader(f)
            fields += [c for c in r.fieldnames or [] if c not in fields]
            rows += list(r)
    tmp = os.path.join(out, "results.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, os.path.join(out, "results.csv"))
    shutil.copyfile(os.path.join(parts[0], "results.json"), os.path.join(out, "results.json"))


def save_gemlite_configs(backends: str, path: str) -> None:
    """gemlite's tuned configs, merged into `path` (gemlite.cache_config): --gemlite-config PATH replays
    them in a later run without tuning. Saved after each model, before the next run's registry resets
    gemlite's autotuners."""
    if "gemlite" not in backends.split(","):
        return
    try:
        import gemlite
    except Exception:  # unavailable: the bench skipped it and results.json says why
        return
    gemlite.cache_config(path)


def main(argv: list[str] | None = None) -> int:
    p, a = parse_args(argv)
    csv_path = os.path.join(a.out, "results.csv")
    if not a.summarize_only:
        if os.path.exists(csv_path) and not (a.force or a.resume):
            print(f"error: {csv_path} exists: pass --resume to continue it, --force to overwrite it, or "
                  f"--summarize-only to re-summarize it", file=sys.stderr)
            return 2
        rc = run(a)
        if rc:
            return rc
    try:
        print(summarize(a.out))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
