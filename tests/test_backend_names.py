"""Old bench backend names (results.BACKEND_ALIASES): `--backends tinygemm_cuda` runs tinygemm_gemv,
and results written under the old name read as the new one in analyze, report, merge and --resume,
without the files being rewritten. No GPU: the committed H100 results are such old files."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tinygemm import analyze, results
from tinygemm.backends import registry
from tinygemm.bench import shard
from tinygemm.bench.__main__ import build_plan, main, parse_args
from tinygemm.bench.plan import backend_names, select_backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_RUN = os.path.join(ROOT, "bench", "results", "h100", "seed003")  # measured as tinygemm_cuda


def test_old_name_is_an_alias_of_one_backend():
    assert results.BACKEND_ALIASES == {"tinygemm_cuda": "tinygemm_gemv"}
    reg = registry()
    assert "tinygemm_gemv" in reg and "tinygemm_cuda" not in reg
    assert reg["tinygemm_gemv"].kernel == "gemv"  # the w4a16_matmul backend (api.BACKENDS) it times
    assert results.canonical_backend("tinygemm_cuda") == "tinygemm_gemv"
    assert results.canonical_backend("marlin_uint4b8") == "marlin_uint4b8"
    assert results.canonical_backends("torch_matmul, tinygemm_cuda") == "torch_matmul,tinygemm_gemv"
    assert results.canonical_backends("default") == "default"


def test_cli_accepts_the_old_name():
    reg = registry()
    assert backend_names("tinygemm_cuda", reg) == ["tinygemm_gemv"]
    assert backend_names("torch_matmul,tinygemm_cuda,tinygemm_gemv", reg) == ["torch_matmul", "tinygemm_gemv"]
    usable, off = select_backends("tinygemm_cuda", reg)
    assert [b.name for b in usable] + [n for n, _ in off] == ["tinygemm_gemv"]
    with pytest.raises(ValueError, match="unknown backend.*tinygemm_cdua"):
        backend_names("tinygemm_cdua", reg)
    r = subprocess.run([sys.executable, "-m", "tinygemm.bench", "--kn", "4096,4096", "--batches", "1",
                        "--backends", "tinygemm_cuda", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    h = subprocess.run([sys.executable, "-m", "tinygemm.bench", "--help"], capture_output=True, text=True, timeout=120)
    assert "tinygemm_cuda runs tinygemm_gemv" in " ".join(h.stdout.split())


def test_old_and_new_names_are_one_plan():
    def rec(spec):
        _, a = parse_args(["--kn", "4096,4096", "--batches", "1,2", "--backends", spec])
        return shard.plan_record(build_plan(a), shard.plan_options(a))

    assert rec("torch_matmul,tinygemm_cuda") == rec("torch_matmul,tinygemm_gemv")
    assert rec("torch_matmul,tinygemm_gemv")["options"]["backends"] == "torch_matmul,tinygemm_gemv"


def test_committed_old_results_read_as_the_new_name(capsys):
    csv_path = os.path.join(OLD_RUN, "results.csv")
    with open(csv_path) as f:
        assert f.read().count(",tinygemm_cuda,") == 16  # the file stays as it was written
    rows = results.read_rows(csv_path)
    assert {r["backend"] for r in rows} == {"torch_matmul", "dequant_matmul", "tinygemm_gemv", "tinygemm_triton"}
    assert {p.backend for p in analyze.load(csv_path)} == {r["backend"] for r in rows if r["status"] == "ok"}
    assert results.read_meta(os.path.join(OLD_RUN, "results.json"))["backends"] == [
        "torch_matmul", "dequant_matmul", "tinygemm_gemv", "tinygemm_triton"]
    # a backend named the old way on the command line finds the rows
    from tinygemm.analyze.cli import main as analyze_main

    assert analyze_main(["compare", csv_path, "--a-backend", "torch_matmul", "--b-backend", "tinygemm_cuda"]) == 0
    assert "paired: A torch_matmul (op matmul, format float16) with B tinygemm_gemv" in capsys.readouterr().out


def test_report_of_an_old_run_names_the_new_backend():
    pytest.importorskip("plotly")
    from tinygemm import report

    page = report.render(OLD_RUN)
    command = json.load(open(os.path.join(OLD_RUN, "results.json")))["command"]
    assert "tinygemm_gemv" in page
    # the old name is left only in the recorded command line, which is history
    assert page.count("tinygemm_cuda") == command.count("tinygemm_cuda") == 1


# --- merge and --resume of runs made before the rename -----------------------------------------------


def old_plan():
    """A plan as a tinygemm before the rename recorded it: --backends spelled the old way, unchanged."""
    _, a = parse_args(["--model", "Llama-3-8B", "--batches", "1,2,4,8", "--backends", "torch_matmul,tinygemm_cuda"])
    p = build_plan(a)
    return p, shard.plan_record(p, {**shard.plan_options(a), "backends": "torch_matmul,tinygemm_cuda"})


def write_run(d, p, rec, i, n, backends):
    """A shard directory as the bench writes it, its rows and results.json naming `backends`."""
    os.makedirs(d, exist_ok=True)
    w = results.CsvWriter(os.path.join(d, "results.csv"), append=False)
    rows = [{"op": "gemm", "backend": b, "model": s.model, "layer": s.layer, "tp": s.tp, "M": M, "N": s.N, "K": s.K,
             "act_dtype": "float16", "group_size": 128, "time_us": 1.0 + M / 100, "status": "ok"}
            for s in shard.select(p, i, n) for b in backends for M in s.batches]
    for r in rows:
        w.write(r)
    w.close()
    results.write_json(os.path.join(d, "results.json"), {
        "device": {"name": "NVIDIA H100 80GB HBM3"}, "versions": {"tinygemm": "0.1.0"}, "backends": list(backends),
        "unavailable": {}, "points": len(rows), "timed_kernel_s": 1.0, "wall_s": 1.0, "interrupted": False,
        "measured_ceilings": {"copy_gbps": 3000.0}, "backend_extra": {backends[-1]: {"config": "x"}},
        "plan": rec, "shard": shard.shard_record(p, i, n)})
    return str(d)


def test_merge_reads_old_shards_and_joins_them_with_new_ones(tmp_path):
    p, rec_old = old_plan()
    _, a = parse_args(["--model", "Llama-3-8B", "--batches", "1,2,4,8", "--backends", "torch_matmul,tinygemm_gemv"])
    rec_new = shard.plan_record(p, shard.plan_options(a))
    assert rec_new["digest"] != rec_old["digest"]  # as written; read, they are one plan
    old = [write_run(tmp_path / f"old{i}", p, rec_old, i, 2, ("torch_matmul", "tinygemm_cuda")) for i in (0, 1)]
    new1 = write_run(tmp_path / "new1", p, rec_new, 1, 2, ("torch_matmul", "tinygemm_gemv"))
    before = open(os.path.join(old[0], "results.csv")).read()
    for inputs, out in ((old, "m_old"), ([old[0], new1], "m_mixed")):
        assert main(["merge", *inputs, "--out", str(tmp_path / out)]) == 0
        merged = results.read_rows(str(tmp_path / out / "results.csv"))
        assert {r["backend"] for r in merged} == {"torch_matmul", "tinygemm_gemv"}
        assert len(merged) == 2 * rec_old["points"]
        with open(tmp_path / out / "results.csv") as f:
            assert "tinygemm_cuda" not in f.read()
        meta = json.load(open(tmp_path / out / "results.json"))
        assert meta["complete"] and meta["backends"] == ["torch_matmul", "tinygemm_gemv"]
        assert list(meta["backend_extra"]) == ["tinygemm_gemv"]
        assert meta["plan"]["digest"] == rec_new["digest"] == shard.plan_digest(meta["plan"])
    assert open(os.path.join(old[0], "results.csv")).read() == before  # inputs are never rewritten


def test_resume_continues_an_old_run(tmp_path):
    p, rec_old = old_plan()
    d = write_run(tmp_path / "run", p, rec_old, 0, 1, ("torch_matmul", "tinygemm_cuda"))
    done = results.done_keys(os.path.join(d, "results.csv"))
    assert {k[0] for k in done} == {"torch_matmul", "tinygemm_gemv"}  # the rows --resume skips, named today
    for spec in ("torch_matmul,tinygemm_cuda", "torch_matmul,tinygemm_gemv"):  # the old command, or today's
        _, a = parse_args(["--model", "Llama-3-8B", "--batches", "1,2,4,8", "--backends", spec])
        now = shard.plan_record(build_plan(a), shard.plan_options(a))
        assert shard.resume_conflict(d, now, shard.shard_record(p, 0, 1)) is None
        keys = {results.row_key({"backend": b, "model": s.model, "layer": s.layer, "tp": s.tp, "M": M, "N": s.N,
                                 "K": s.K, "act_dtype": "float16", "group_size": 128})
                for s in p for b in backend_names(spec, registry()) for M in s.batches}
        assert keys == done  # every point of the resumed sweep is found finished
    _, a = parse_args(["--model", "Llama-3-8B", "--batches", "1,2", "--backends", "torch_matmul,tinygemm_cuda"])
    other = shard.plan_record(build_plan(a), shard.plan_options(a))
    assert "another plan" in shard.resume_conflict(d, other, shard.shard_record(p, 0, 1))
    shutil.rmtree(d)
