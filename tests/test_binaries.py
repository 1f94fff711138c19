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


# --- bad input (issue 14): parsing is checked before the GPU, so these run on a CPU machine -------

@pytest.mark.parametrize("args, msg", [
    (["--bytes", "17179869185G"], "--bytes must be between"),       # overflows 64 bits once shifted
    (["--bytes", "99999999999999999999"], "--bytes must be between"),  # overflows strtoll
    (["--bytes", "1x"], "--bytes must be an integer"),
    (["--bytes", "K"], "--bytes must be an integer"),
    (["--bytes", "1.5G"], "--bytes must be an integer"),
    (["--device", "-1"], "--device must be between"),
    (["--device", "abc"], "--device must be an integer"),
    (["--device", "1k"], "--device must be an integer; got '1k'"),  # a size suffix is not a device
    (["--target", "nan"], "--target must be a number"),
])
def test_bandwidth_bad_values_exit_2_on_any_machine(args, msg):
    r = run(_path("tinygemm-bench-bandwidth"), *args)
    assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_usage_after_a_bad_value_prints_the_default():
    r = run(_path("tinygemm-bench-bandwidth"), "--bytes", "3x")
    assert r.returncode == 2 and "(default 1G)" in r.stderr and "(default 3x)" not in r.stderr


@pytest.mark.parametrize("value", ["1k", "1K", "1m", "1M", "1g", "1G"])
def test_size_suffixes_in_either_case(value):
    r = run(_path("tinygemm-bench-bandwidth"), "--bytes", value, "--smoke")
    assert r.returncode == (0 if tinygemm.gpu_available() else 77), r.stderr


@pytest.mark.gpu
def test_graph_mode_labels_a_short_rotation_cold_first_and_the_gemm_rotates():
    """The other two graph-mode cases of issue 14: a copy too small for the rotation cap to cover L2 is
    labelled "cold-first" (only each replay's first launch misses), exactly as tinygemm.timing labels
    it; and the cuBLAS binary rotates its weight copies (32 MB < the L2 of an H100/H200)."""
    small = json.loads(run(_path("tinygemm-bench-bandwidth"), "--mode", "graph", "--bytes", "1k", "--json", "-").stdout)
    assert small["l2"] == "cold-first"
    from tinygemm import _C

    l2 = _C.device_info().l2_bytes
    assert not _C.rotation_is_cold(small["buffer_copies"], 1024, l2)  # the harness's own rule agrees
    g = json.loads(run(_path("tinygemm-bench-gemm"), "--mode", "graph", "--m", "16", "--n", "4096", "--k", "4096",
                       "--json", "-").stdout)
    assert g["l2"] == "cold" and g["weight_copies"] > 1


@pytest.mark.gpu
def test_bandwidth_graph_mode_rotates_buffers():
    """A 14 MB copy in graph mode: the launches rotate through buffers, so the result is a cold-L2
    one (labelled so) and cannot read faster than the memory (the H200's 4.8 TB/s)."""
    from tinygemm import gpus

    r = run(_path("tinygemm-bench-bandwidth"), "--mode", "graph", "--bytes", "14M", "--json", "-")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["mode"] == "graph" and d["l2"] == "cold" and d["buffer_copies"] > 1
    peak = (gpus.peaks(d["device"]) or {}).get("mem_bw_gbs")
    if peak:
        assert d["gbps"] < 1.05 * peak
    hot = json.loads(run(_path("tinygemm-bench-bandwidth"), "--mode", "graph", "--l2", "hot", "--bytes", "14M",
                         "--json", "-").stdout)
    assert hot["l2"] == "hot" and hot["buffer_copies"] == 1
