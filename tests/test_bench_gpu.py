"""A short real sweep over every backend available on this machine, checked for sane numbers."""

import math

import pytest

from tinygemm import gpus, results
from tinygemm.backends import registry
from tinygemm.bench.__main__ import main

pytestmark = pytest.mark.gpu


def test_short_run_over_every_available_backend(tmp_path):
    rc = main(["--kn", "4096,4096", "--batches", "1,16,128", "--backends", "all", "--out", str(tmp_path),
               "--quiet", "--max-samples", "40", "--budget-ms", "200"])
    assert rc == 0
    rows = results.read_rows(str(tmp_path / "results.csv"))
    reg = registry()
    available = {n for n, b in reg.items() if b.unavailable() is None}
    assert {r["backend"] for r in rows} == available
    import torch

    peak = gpus.peaks(torch.cuda.get_device_name())
    for r in rows:
        assert r["status"] in ("ok", "unsupported"), (r["backend"], r["M"], r["status"], r["note"])
        if r["status"] == "unsupported":
            assert r["note"]
            continue
        t = float(r["time_us"])
        assert 0.5 < t < 10_000 and int(r["samples"]) >= 3, r
        assert float(r["max_rel_err"]) <= reg[r["backend"]].tolerance, r
        assert not math.isnan(float(r["gbps"]))
        if peak and r["pct_peak_flops"]:
            assert float(r["pct_peak_flops"]) < 105, r  # nothing runs above the datasheet
    # where the run's time went: the phases a point runs, adding up to the sweep's wall clock
    meta = results.read_meta(str(tmp_path / "results.json"))
    ph, wall = meta["phase_s"], meta["wall_s"]
    for k in ("inputs", "prepare", "first_call", "refcheck", "timing.estimate", "timing.warmup", "timing.samples",
              "timing.flush_and_wait", "rows", "csv", "other"):
        assert k in ph, (k, ph)
    assert all(v >= 0 for k, v in ph.items() if k != "other"), ph
    assert sum(ph.values()) <= wall + 0.001 * len(ph) and ph["other"] >= -0.001 * len(ph), (ph, wall)
    # the timed samples hold at least the recorded median x samples (one launch each)
    assert ph["timing.samples"] >= 0.9 * meta["timed_kernel_s"], (ph, meta["timed_kernel_s"])
    assert set(meta["outside_sweep_s"]) == {"startup", "ceilings"}


NEW_PEERS = ["machete_uint4b8", "machete_uint4", "marlin_float8_e4m3fn", "marlin_nvfp4", "marlin_mxfp4"]


@pytest.mark.parametrize("args", [["--dtype", "bf16"], ["--group-size", "64"], ["--group-size", "-1"], ["--asym"]])
def test_machete_and_marlin_fp8_fp4_formats(tmp_path, args):
    """Machete and the FP8/FP4 Marlin variants against the fp32 reference of the weights they hold, at
    shapes from real models (Qwen2.5-7B down_proj's N = 3584, Llama-3-8B's K = 14336) and odd M."""
    reg = registry()
    names = [n for n in NEW_PEERS if reg[n].unavailable() is None]
    if not names:
        pytest.skip("; ".join(f"{n}: {reg[n].unavailable()}" for n in NEW_PEERS))
    rc = main(["--kn", "18944,3584", "--kn", "14336,4096", "--batches", "1,7,33,256", "--backends", ",".join(names),
               "--out", str(tmp_path), "--quiet", "--max-samples", "20", "--budget-ms", "100", *args])
    assert rc == 0
    rows = results.read_rows(str(tmp_path / "results.csv"))
    assert {r["backend"] for r in rows} == set(names)
    for r in rows:
        assert r["status"] in ("ok", "unsupported"), (r["backend"], r["K"], r["M"], r["status"], r["note"])
        if r["status"] == "unsupported":
            assert r["note"]
        else:
            assert float(r["max_rel_err"]) <= reg[r["backend"]].tolerance, r
    # Machete's supported schedules are recorded once in the JSON sidecar
    import json

    extra = json.load(open(tmp_path / "results.json"))["backend_extra"]
    for n in names:
        if n.startswith("machete") and any(r["backend"] == n and r["status"] == "ok" for r in rows):
            assert extra[n]["machete_supported_schedules"] and extra[n]["schedule"] == "heuristic", extra
    # every new peer ran somewhere in this format, unless it says why not for every shape
    for n in names:
        mine = [r for r in rows if r["backend"] == n]
        assert any(r["status"] == "ok" for r in mine) or all(r["note"] for r in mine), n


def test_prepare_cost_rows(tmp_path):
    """--prepare-cost: one op=prepare row per shape and backend that has a load-time conversion."""
    reg = registry()
    names = [n for n in ("tinygemm_gemv", "torch_int4pack", "marlin_uint4b8", "marlin_uint4", "machete_uint4b8")
             if reg[n].unavailable() is None]
    rc = main(["--kn", "4096,6144", "--batches", "1", "--backends", ",".join(names), "--prepare-cost",
               "--out", str(tmp_path), "--quiet", "--max-samples", "20", "--budget-ms", "100"])
    assert rc == 0
    rows = results.read_rows(str(tmp_path / "results.csv"))
    prep = {r["backend"]: r for r in rows if r["op"] == "prepare"}
    assert set(prep) == set(names)
    for r in prep.values():
        assert r["status"] == "ok" and r["M"] == "0", r
        assert 1 < float(r["time_us"]) < 5e6 and float(r["peak_mem_mb"]) >= 0, r


def test_kernel_names_of_many_points_match_a_session_per_point():
    """--kernel-names profiles 64 points per session: each point gets exactly what a session of its own
    names (its steady-state call's kernels, not its input's preparation), and a failed point None."""
    import torch

    from tinygemm.bench.runner import _kernel_names, kernel_names_of

    w = torch.randn(1024, 2048, device="cuda", dtype=torch.half)
    xs = {M: torch.randn(M, 1024, device="cuda", dtype=torch.half) for M in (1, 16, 256, 2048)}

    def maker(M):
        def make():
            xin = xs[M] * 1.0  # the input's preparation launches a kernel of its own: not named
            return lambda: xin @ w
        return make

    makers = [maker(M) for M in xs]
    single = [_kernel_names(lambda M=M: xs[M] @ w) for M in xs]
    assert all(single)
    for make in makers:  # each point's first call, unprofiled (the sweep's reference check makes it)
        make()()
    assert kernel_names_of(makers, [True] * len(makers)) == single
    # a point whose first call failed is not called again: None, the others their own names
    assert kernel_names_of(makers, [True, False, False, True]) == [single[0], None, None, single[3]]


def test_a_kernel_names_run_names_every_point(tmp_path):
    rc = main(["--kn", "1024,2048", "--batches", "1,16,128", "--backends", "torch_matmul", "--kernel-names",
               "--out", str(tmp_path), "--quiet", "--max-samples", "20", "--budget-ms", "100"])
    assert rc == 0
    rows = results.read_rows(str(tmp_path / "results.csv"))
    assert len(rows) == 3 and all(r["status"] == "ok" and r["kernel_names"] for r in rows), rows
    assert all(r["max_rel_err"] != "" and float(r["max_rel_err"]) <= 1e-2 and float(r["peak_mem_mb"]) > 0
               for r in rows), rows  # the first calls made ahead: checked, their memory recorded
    assert "spin_kernel" not in ";".join(r["kernel_names"] for r in rows)
    ph = results.read_meta(str(tmp_path / "results.json"))["phase_s"]
    assert {"first_call", "refcheck", "kernel_names"} <= set(ph), ph
