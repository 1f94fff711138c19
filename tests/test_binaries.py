"""The tinygemm-bench-* binaries: usage, bad input, no-GPU behaviour (CPU), and real runs (GPU)."""

import json
import os
import shutil
import subprocess

import pytest

import tinygemm

BINARIES = ["tinygemm-bench-bandwidth", "tinygemm-bench-gemm"]


def _path(name):
    p = shutil.which(name)
    if p is None:
        if tinygemm.GPU_BACKEND == "cpu":
            pytest.skip("CPU-only build: no microbenchmark binaries")
        if name == "tinygemm-bench-gemm":
            pytest.skip("built without cuBLAS/hipBLAS: no tinygemm-bench-gemm")
        pytest.fail(f"{name} is not on PATH after pip install")
    return p


def run(*args, timeout=120):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", BINARIES)
def test_help(name):
    r = run(_path(name), "--help")
    assert r.returncode == 0 and "usage:" in r.stdout and "--profile" in r.stdout


@pytest.mark.parametrize("name", BINARIES)
@pytest.mark.parametrize("args, msg", [
    (["--bogus"], "unknown option"),
    (["--l2", "warm"], "--l2 must be one of"),
    (["--min-samples", "0"], "--min-samples must be between"),
    (["positional"], "unexpected argument"),
])
def test_bad_arguments(name, args, msg):
    r = run(_path(name), *args)
    assert r.returncode == 2 and msg in r.stderr and "usage:" in r.stderr


def test_gemm_bad_sizes():
    r = run(_path("tinygemm-bench-gemm"), "--m", "0")
    assert r.returncode == 2 and "--m must be between" in r.stderr


@pytest.mark.parametrize("name", BINARIES)
def test_no_gpu_exits_77_with_a_message(name):
    if tinygemm.gpu_available():
        pytest.skip("a GPU is present")
    r = run(_path(name))
    assert r.returncode == 77 and "no GPU" in r.stderr


@pytest.mark.gpu
def test_gemm_json_on_gpu():
    r = run(_path("tinygemm-bench-gemm"), "--m", "256", "--n", "1024", "--k", "1024", "--json", "-")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["samples"] >= 10 and 0 < d["median_us"] < 1000 and d["tflops"] > 0 and d["mode"] in ("event", "graph")
    assert "clock_slowdown" in d and "sm_clock_mhz_min" in d


@pytest.mark.gpu
def test_gemm_cupti_mode_on_gpu():
    ok, why = tinygemm._C.cupti_available()
    if not ok:
        pytest.skip(f"cupti mode unavailable: {why}")
    r = run(_path("tinygemm-bench-gemm"), "--m", "16", "--n", "2048", "--k", "4096", "--mode", "cupti", "--json", "-")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["mode"] == "cupti" and 0 < d["median_us"] < 1000


@pytest.mark.gpu
def test_bandwidth_csv_on_gpu():
    r = run(_path("tinygemm-bench-bandwidth"), "--bytes", "256M", "--csv", "-")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.strip().splitlines()
    d = dict(zip(header.split(","), row.split(",")))
    assert float(d["gbps"]) > 100


@pytest.mark.gpu
def test_profile_mode_runs():
    r = run(_path("tinygemm-bench-gemm"), "--m", "64", "--profile", "--json", "-")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["profiled"] == 1


@pytest.mark.gpu
@pytest.mark.parametrize("replay", ["kernel", "range"])
def test_ncu_profiles_the_gemm_binary(replay):
    """Nsight Compute on the binary's --profile window: one row per kernel, or the window as one row."""
    from tinygemm import profile

    if shutil.which("ncu") is None and not os.path.exists("/usr/local/cuda/bin/ncu"):
        pytest.skip("Nsight Compute (ncu) is not installed")
    rows = profile.run_ncu([_path("tinygemm-bench-gemm"), "--m", "16", "--n", "2048", "--k", "4096", "--profile"],
                           ["gpu__time_duration.sum"], replay=replay)
    assert rows, "ncu captured nothing"
    if replay == "range":
        assert len(rows) == 1
    assert all(0 < r["gpu__time_duration.sum_us"] < 1000 for r in rows)
