"""The GEMV/GEMM switch of backend='auto': the per-shape table is what the committed measurements
say (regenerated here from them), and lookups for measured, unmeasured and unknown cases."""

import os
import subprocess
import sys

import pytest

from tinygemm import crossover, crossover_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "crossover_table.py")


def test_table_is_regenerated_from_its_sources():
    """crossover_data.py is exactly what bench/crossover_table.py writes from the files it names."""
    gpu = next(iter(crossover_data.TABLE))
    gemm, gemv = crossover_data.SOURCES
    r = subprocess.run([sys.executable, SCRIPT, "--gemm", os.path.join(ROOT, gemm), "--gemv", os.path.join(ROOT, gemv),
                        "--gpu", gpu], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, "python", "tinygemm", "crossover_data.py")) as f:
        committed = f.read()
    # the sources are recorded as given: compare with the relative paths the module holds
    assert r.stdout.replace(os.path.join(ROOT, ""), "") == committed


def test_entries_stop_at_the_first_m_the_gemm_wins():
    gemv = {(64, 16, 1): 1.0, (64, 16, 4): 2.0, (64, 16, 8): 5.0, (64, 16, 16): 1.0}
    gemm = {(64, 16, 1): 3.0, (64, 16, 4): 3.0, (64, 16, 8): 3.0, (64, 16, 16): 3.0}
    assert crossover.entries(gemv, gemm) == {(64, 16): 4}  # 16 is past the first loss, not a way back
    assert crossover.entries({(64, 16, 1): 9.0}, {(64, 16, 1): 3.0}) == {(64, 16): 0}
    assert crossover.entries({(64, 16, 1): 1.0}, {(128, 16, 1): 3.0}) == {}  # no shape measured by both


def test_lookup_exact_nearest_and_unknown():
    gpu = "NVIDIA H200"
    layout = "tinygemm-w4-sm90"
    shapes = crossover_data.TABLE[gpu][layout]
    for (K, N), m in shapes.items():
        assert crossover.gemv_max_m(gpu, layout, K, N, default=99) == m
    # an unmeasured shape takes the nearest measured one in (log K, log N): 8192 x 14000 is Llama-3-70B
    # TP4's gate_up (8192 x 14336) nearly, not 8B's gate_up of the same size (4096 x 28672)
    assert crossover.gemv_max_m(gpu, layout, 8192, 14000, default=99) == shapes[(8192, 14336)]
    assert crossover.gemv_max_m(gpu, layout, 4096, 28000, default=99) == shapes[(4096, 28672)]
    assert crossover.gemv_max_m("NVIDIA A100-SXM4-80GB", layout, 4096, 4096, default=99) == 99
    assert crossover.gemv_max_m(gpu, "tinygemm-w4-v1", 4096, 4096, default=16) == 16


def test_the_script_refuses_bad_input(tmp_path):
    out = tmp_path / "t.py"
    out.write_text("keep")
    gemm, gemv = (os.path.join(ROOT, s) for s in crossover_data.SOURCES)
    r = subprocess.run([sys.executable, SCRIPT, "--gemm", gemm, "--gemv", gemv, "--gpu", "X", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "exists" in r.stderr and out.read_text() == "keep"
    r = subprocess.run([sys.executable, SCRIPT, "--gemm", str(tmp_path / "none.csv"), "--gemv", gemv, "--gpu", "X"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr


@pytest.mark.parametrize("K,N", [(4096, 28672), (8192, 14336)])
def test_choose_backend_off_gpu_uses_the_default(K, N):
    """Without a CUDA device the table is not consulted (no device name): the fixed default applies."""
    import torch

    from tinygemm import api

    cpu = torch.device("cpu")
    assert api.choose_backend(api.GEMV_MAX_M_SM90, cpu, api.LAYOUT_SM90, K, N) == "gemv"
    assert api.choose_backend(api.GEMV_MAX_M_SM90 + 1, cpu, api.LAYOUT_SM90, K, N) == "gemm_sm90"
