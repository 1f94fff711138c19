"""The tidy result row, its CSV, the run's JSON sidecar, and the seed-compatible exports."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import sys
from datetime import datetime, timezone

COLUMNS = [
    "op", "backend", "model", "layer", "tp", "M", "N", "K", "act_dtype", "weight_format", "group_size",
    "timing_mode", "l2", "time_us", "time_us_min", "time_us_p10", "time_us_p90", "samples", "tflops", "gbps",
    "pct_peak_flops", "pct_peak_bw", "pct_measured_bw", "pct_measured_flops", "weight_mb", "peak_mem_mb",
    "max_rel_err", "kernel_names", "sm_clock_mhz", "clock_sagged", "status", "note",
]
KEY = ("backend", "model", "layer", "tp", "M", "N", "K", "act_dtype", "group_size")
STATUSES = ("ok", "wrong", "unsupported", "oom", "error")


def row_key(row: dict) -> tuple:
    return tuple(str(row.get(k, "")) for k in KEY)


class CsvWriter:
    """Appends rows and flushes each one: an interrupted sweep keeps every finished row."""

    def __init__(self, path: str, append: bool):
        new = not (append and os.path.exists(path) and os.path.getsize(path) > 0)
        self._f = open(path, "a" if not new else "w", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            self._w.writeheader()
            self._f.flush()

    def write(self, row: dict) -> None:
        self._w.writerow({k: _fmt(row.get(k, "")) for k in COLUMNS})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


# Bench backends renamed since results were first written: old name -> today's. Results are history
# and are never rewritten; instead every reader goes through here (read_table / read_rows for
# results.csv, read_meta for results.json) and --backends accepts the old names too
# (bench/plan.backend_names), so a run from before a rename reads, merges and resumes as today's name.
BACKEND_ALIASES = {
    "tinygemm_cuda": "tinygemm_gemv",   # the CUDA GEMV: w4a16_gemv in C++, torch.ops and w4a16_matmul too
}


def canonical_backend(name: str) -> str:
    """Today's name of a backend (an old name from BACKEND_ALIASES, or the name itself)."""
    return BACKEND_ALIASES.get(name, name)


def canonical_backends(spec: str) -> str:
    """A --backends value ('default', 'all' or a comma-separated list) with today's names."""
    if spec in ("default", "all"):
        return spec
    return ",".join(canonical_backend(n.strip()) for n in spec.split(","))


def read_table(path: str) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV, its `backend` column in today's names (cli_errors.read_csv: an
    unreadable file is an error naming the path)."""
    from .cli_errors import read_csv

    header, rows = read_csv(path)
    if "backend" in header:
        for r in rows:
            r["backend"] = canonical_backend(r["backend"])
    return header, rows


def read_rows(path: str, required: tuple[str, ...] = ("backend", "M", "N", "K", "time_us")) -> list[dict]:
    """Rows of a tidy results CSV (read_table); a foreign CSV gets an error naming the missing columns."""
    header, rows = read_table(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path} is not a tinygemm results CSV: missing columns {', '.join(missing)}")
    return rows


# The results.json fields tinygemm's readers use, and the JSON type each must have when present and
# not null: checked once here, so a hand-edited or foreign file is one line naming the field, not a
# traceback in whichever reader touches it first (the report, plot, shard merge).
META_OBJECTS = ("device", "measured_ceilings", "versions", "unavailable", "backend_extra", "plan", "shard")
META_NUMBERS = {None: ("points", "wall_s", "timed_kernel_s"), "device": ("l2_bytes", "memory_bytes", "sm_count")}


def _check_meta_types(path: str, meta: dict) -> None:
    for k in META_OBJECTS:
        if meta.get(k) is not None and not isinstance(meta[k], dict):
            raise ValueError(f"{path}: {k!r} must be a JSON object; got {type(meta[k]).__name__}")
    if meta.get("backends") is not None and not isinstance(meta["backends"], list):
        raise ValueError(f"{path}: 'backends' must be a JSON list; got {type(meta['backends']).__name__}")
    for parent, keys in META_NUMBERS.items():
        obj = meta if parent is None else (meta.get(parent) or {})
        for k in keys:
            v = obj.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                where = k if parent is None else f"{parent}.{k}"
                raise ValueError(f"{path}: {where!r} must be a finite number; got {v!r}")


def read_meta(path: str) -> dict:
    """A results.json (cli_errors.read_json) with its fields' types checked (META_OBJECTS,
    META_NUMBERS) and today's backend names in the fields that hold them: `backends`, the keys of
    `unavailable` and `backend_extra`, and the plan's --backends option."""
    from .cli_errors import read_json

    meta = read_json(path)
    _check_meta_types(path, meta)
    if isinstance(meta.get("backends"), list):
        meta["backends"] = [canonical_backend(b) for b in meta["backends"]]
    for k in ("unavailable", "backend_extra"):
        if isinstance(meta.get(k), dict):
            meta[k] = {canonical_backend(b): v for b, v in meta[k].items()}
    options = (meta.get("plan") or {}).get("options") if isinstance(meta.get("plan"), dict) else None
    if isinstance(options, dict) and isinstance(options.get("backends"), str):
        options["backends"] = canonical_backends(options["backends"])
    return meta


def done_keys(path: str) -> set[tuple]:
    """Keys of rows already measured (for --resume): every finished row, whatever its status."""
    if not os.path.exists(path):
        return set()
    return {row_key(r) for r in read_rows(path, required=KEY)}


def metadata(argv: list[str], device: dict, ceilings: dict, extra: dict) -> dict:
    import torch

    from . import __version__
    from .backends import _vllm

    versions = {"tinygemm": __version__, "torch": torch.__version__, "python": platform.python_version(),
                "cuda": torch.version.cuda, "rocm": torch.version.hip}
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        versions["triton"] = None
    v = _vllm.load()
    versions["vllm"] = None if isinstance(v, str) else v.version
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.executable), "-m", "tinygemm.bench", *argv]),
            "device": device, "versions": versions, "measured_ceilings": ceilings, **extra}


def write_dicts(path: str, rows: list[dict]) -> None:
    """A plain CSV of dicts (header from the first row): analysis outputs and bench scripts."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_json(path: str, data: dict) -> None:
    from .cli_errors import atomic_write

    with atomic_write(path) as f:  # a crash mid-write leaves the previous file, not half of one
        json.dump(data, f, indent=2, default=str)


def gpu_tag(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def export_seed(rows: list[dict], out_dir: str, gpu: str, torch_version: str, vllm_version: str | None) -> list[str]:
    """The seed experiments' per-shape CSVs (shared/seeds/000): views of the tidy rows.

    torchgemm_<GPU>_torch_<ver>_K<K>_N<N>_dtype<dtype>.csv: batch,kernel_time,flops,utils,kernel_name
    Marlin_<GPU>_vllm_<ver>_K<K>_N<N>_gptq_int8.csv:          batch,time,flops,utils
    kernel_time / time in milliseconds, flops in TFLOP/s, utils = fraction of the datasheet peak.
    """
    written = []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        if r["backend"] == "torch_matmul":
            groups.setdefault(("torch", r["K"], r["N"], r["act_dtype"]), []).append(r)
        elif r["backend"] == "marlin_uint8b128" and vllm_version:
            groups.setdefault(("marlin", r["K"], r["N"], ""), []).append(r)
    for (kind, K, N, dt), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: int(r["M"]))
        util = lambda r: float(r["pct_peak_flops"]) / 100 if r.get("pct_peak_flops") not in ("", None) else ""  # noqa: E731
        if kind == "torch":
            path = os.path.join(out_dir, f"torchgemm_{gpu_tag(gpu)}_torch_{torch_version}_K{K}_N{N}_dtype{dt}.csv")
            header = ["batch", "kernel_time", "flops", "utils", "kernel_name"]
            body = [[r["M"], float(r["time_us"]) / 1e3, r["tflops"], util(r), r.get("kernel_names", "")] for r in rs]
        else:
            path = os.path.join(out_dir, f"Marlin_{gpu_tag(gpu)}_vllm_{vllm_version}_K{K}_N{N}_gptq_int8.csv")
            header = ["batch", "time", "flops", "utils"]
            body = [[r["M"], float(r["time_us"]) / 1e3, r["tflops"], util(r)] for r in rs]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)
        written.append(path)
    return written
