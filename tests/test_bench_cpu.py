"""The bench CLI's plan, backend selection, CSV schema, exports and resume (no GPU needed)."""

import csv
import os
import subprocess
import sys

import pytest

from tinygemm import results
from tinygemm.backends import registry
from tinygemm.bench.__main__ import build_plan, parse_args, select_backends


def plan(*argv):
    _, a = parse_args(list(argv))
    return build_plan(a)


def test_default_plan_is_llama3_8b_tp1_vllm_batches():
    p = plan()
    assert [(s.layer, s.K, s.N) for s in p] == [("qkv_proj", 4096, 6144), ("o_proj", 4096, 4096),
                                                 ("gate_up_proj", 4096, 28672), ("down_proj", 14336, 4096)]
    assert len(p[0].batches) == 51 and p[0].batches[-1] == 512


def test_custom_shapes_and_kn():
    p = plan("--shapes", "1,4096,4096;8,4096,4096;4,1024,2048")
    assert {(s.K, s.N): s.batches for s in p} == {(4096, 4096): [1, 8], (1024, 2048): [4]}
    p = plan("--kn", "4096,14336", "--batches", "4:32:4")
    assert len(p) == 1 and p[0].batches == list(range(4, 33, 4))
    p = plan("--model", "Llama-3-8B", "--tp", "2", "--module", "gate_up_proj")
    assert [(s.K, s.N) for s in p] == [(4096, 14336)]


def test_select_backends():
    reg = registry()
    with pytest.raises(ValueError, match="unknown backend"):
        select_backends("torch_matmul,cublas9000", reg)
    usable, off = select_backends("default", reg)
    assert {n for n, _ in off} | {b.name for b in usable} == {n for n, b in reg.items() if b.default}
    assert all(why for _, why in off)  # every unavailable backend says why


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tinygemm.bench", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, msg", [
    (["--batches", "0:3"], "batch list"),
    (["--model", "GPT-9"], "unknown model"),
    (["--module", "mlp"], "unknown module"),
    (["--shapes", "1,2"], "M,K,N"),
    (["--shapes", "1,64,64", "--model", "Llama-3-8B"], "--shapes replaces"),
])
def test_cli_errors_exit_2(args, msg):
    r = cli(*args, "--dry-run")
    assert r.returncode == 2 and msg in r.stderr


def test_dry_run_prints_the_plan():
    r = cli("--model", "Mixtral-8x7B", "--tp", "2", "--dry-run")
    assert r.returncode == 0 and "experts.w13" in r.stdout and "K=4096" in r.stdout


def test_no_gpu_is_a_clear_error():
    import tinygemm

    if tinygemm.gpu_available():
        pytest.skip("a GPU is present")
    r = cli("--batches", "1")
    assert r.returncode == 2 and "needs a GPU" in r.stderr


def _row(backend, M, t, **kw):
    base = {"op": "matmul", "backend": backend, "model": "custom", "layer": "custom", "tp": 1, "M": M, "N": 4096,
            "K": 4096, "act_dtype": "float16", "group_size": 128, "time_us": t, "tflops": 2 * M * 4096 * 4096 / t / 1e6,
            "pct_peak_flops": 10.0, "kernel_names": "sm90_xmma", "status": "ok"}
    return {**base, **kw}


def test_csv_roundtrip_resume_keys_and_seed_export(tmp_path):
    path = tmp_path / "results.csv"
    w = results.CsvWriter(str(path), append=False)
    for M in (4, 8):
        w.write(_row("torch_matmul", M, 10.0 + M))
    w.close()
    w = results.CsvWriter(str(path), append=True)  # resume appends without a second header
    w.write(_row("marlin_uint8b128", 4, 20.0, op="marlin"))
    w.close()
    rows = results.read_rows(str(path))
    assert [r["backend"] for r in rows] == ["torch_matmul", "torch_matmul", "marlin_uint8b128"]
    assert list(rows[0]) == results.COLUMNS
    assert results.row_key(_row("torch_matmul", 8, 1.0)) in results.done_keys(str(path))
    files = results.export_seed(rows, str(tmp_path), "NVIDIA H100 80GB HBM3", "2.11.0", "0.26.0")
    names = sorted(os.path.basename(f) for f in files)
    assert names == ["Marlin_NVIDIA_H100_80GB_HBM3_vllm_0.26.0_K4096_N4096_gptq_int8.csv",
                     "torchgemm_NVIDIA_H100_80GB_HBM3_torch_2.11.0_K4096_N4096_dtypefloat16.csv"]
    t = list(csv.DictReader(open(tmp_path / names[1])))
    assert list(t[0]) == ["batch", "kernel_time", "flops", "utils", "kernel_name"]
    assert float(t[0]["kernel_time"]) == pytest.approx(0.014) and float(t[0]["utils"]) == pytest.approx(0.1)


def test_foreign_csv_names_missing_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns backend, M, N, K, time_us"):
        results.read_rows(str(p))


def test_gpu_peaks_table():
    from tinygemm import gpus

    h = gpus.peaks("NVIDIA H100 80GB HBM3")
    assert h["row"] == "H100-SXM5-80GB" and h["fp16"] == pytest.approx(989.4) and h["mem_bw_gbs"] == 3350
    assert gpus.peaks("NVIDIA H100 PCIe")["row"] == "H100-PCIe-80GB"
    assert gpus.peaks("NVIDIA H200")["fp8"] == pytest.approx(1978.9)
    assert gpus.peaks("Some Future GPU") is None


def test_backends_count_their_own_bytes_and_flops():
    """Each backend answers what one call moves (x in the dtype its call takes: one byte for fp8) and
    which peak its math runs at; the counts are backends.gemm_flops / gemm_bytes, which the shard
    estimate (bench.cost) uses too."""
    import torch

    from tinygemm.backends import Prepared, gemm_bytes, gemm_flops
    from tinygemm.bench.cost import point_cost_s

    reg = registry()
    M, N, K = 16, 6144, 4096
    w = torch.zeros(K, N)

    def prep(x_dtype, weight_bytes):
        return Prepared(call=lambda s, x: x, states=[w], clone=torch.clone, ref_w=w,
                        weight_bytes=weight_bytes, weight_format="test", x_dtype=x_dtype)

    fp16 = reg["torch_matmul"]
    fp8 = reg["torch_fp8_rowwise"]
    assert fp16.flops(M, N, K) == fp8.flops(M, N, K) == gemm_flops(M, N, K) == 2 * M * N * K
    moved = fp16.bytes_moved(prep(torch.float16, K * N * 2), M, N, K, torch.float16)
    assert moved == K * N * 2 + M * K * 2 + M * N * 2
    f8 = getattr(torch, "float8_e4m3fn", torch.int8)
    assert fp8.bytes_moved(prep(f8, K * N), M, N, K, torch.bfloat16) == gemm_bytes(K * N, M * K, M * N * 2)
    peaks = {"fp16": 989.0, "bf16": 989.5, "fp8": 1979.0}
    assert fp16.peak_tflops(peaks, torch.float16) == 989.0
    assert fp16.peak_tflops(peaks, torch.bfloat16) == 989.5
    assert fp8.peak_tflops(peaks, torch.float16) == 1979.0
    assert reg["aiter_ck"].peak_tflops(peaks, None) == 1979.0
    assert fp16.peak_tflops(None, torch.float16) is None
    assert point_cost_s(K, N, M) > point_cost_s(K, N, 1) > 0


def test_phases_add_up_to_the_wall_clock():
    """Real work timed by the sweep's phase clock: each phase holds its spans' sum, "other" the wall
    clock's rest, and the record adds up to the wall clock (phases never overlap)."""
    import time

    from tinygemm.bench.phases import Phases, line, ordered

    def work(seconds):
        t = time.perf_counter()
        while time.perf_counter() < t + seconds:
            pass
        return time.perf_counter() - t

    ph = Phases()
    t0 = time.perf_counter()
    for _ in range(3):
        with ph.time("refcheck"):
            work(0.004)
        # what timing.measure(spent=...) fills: its own spans
        ph.add_timing({"samples": work(0.002), "estimate": work(0.001)})
        work(0.003)  # in no phase: "other"
        with ph.time("csv"):
            work(0.001)
    wall = time.perf_counter() - t0
    rec = ph.record(wall)
    assert list(rec) == ordered(rec) == ["refcheck", "timing.estimate", "timing.samples", "csv", "other"]
    assert 0.012 <= rec["refcheck"] < 0.012 + 0.05 and rec["timing.samples"] >= 0.006
    assert abs(sum(rec.values()) - wall) < 0.003 and sum(rec.values()) <= wall + 0.0025
    assert rec["other"] >= 0.009 - 0.0025
    text = line(rec, wall, {"startup": 2.5})
    assert text.startswith(f"sweep {wall:.3f} s: ") and "outside the sweep: startup 2.5 s" in text
    assert text.index("refcheck") < text.index("timing.samples")  # largest first
    with pytest.raises(ValueError, match="unknown phase 'refchek'"):
        ph.add("refchek", 1.0)


def test_refcheck_rows_are_both_ends_and_a_seeded_sample():
    from tinygemm.bench.runner import REF_ROWS, sample_rows

    assert sample_rows(1) is None and sample_rows(REF_ROWS) is None  # every row
    for M in (REF_ROWS + 1, 100, 4096, 32768):
        rows = sample_rows(M)
        assert len(rows) == REF_ROWS == len(set(rows)) and rows == sorted(rows)
        assert rows[0] == 0 and rows[-1] == M - 1 and all(0 <= r < M for r in rows)
        assert sample_rows(M) == rows  # the same rows whenever M is checked
    assert sample_rows(4096) != sample_rows(4100)  # not one fixed pattern
    # spread over the rows, not bunched at one end or on one residue of a tile size
    rows = sample_rows(32768)
    assert min(rows[1:-1]) < 32768 // 4 and max(rows[1:-1]) > 3 * 32768 // 4
    assert len({r % 64 for r in rows}) > 16


def test_max_rel_error_one_readback_same_answers():
    import math

    import torch

    from tinygemm.reference import max_rel_error

    ref = torch.tensor([[1.0, -4.0], [2.0, 0.5]])
    assert max_rel_error(ref, ref) == 0.0
    assert max_rel_error(ref + torch.tensor([[0.0, 0.2], [0.0, 0.0]]), ref) == pytest.approx(0.2 / 4.0)
    assert max_rel_error(ref.half(), ref) == 0.0  # compared in fp32
    bad = ref.clone()
    bad[1, 0] = float("nan")
    assert max_rel_error(bad, ref) == math.inf
    bad[1, 0] = float("inf")
    assert max_rel_error(bad, ref) == math.inf
    zero = torch.zeros(2, 2)
    assert max_rel_error(zero + 0.5, zero) == 0.5  # a zero reference: the absolute error


def test_kernel_names_split_at_the_marker_kernels_in_gpu_time_order():
    from tinygemm.bench.runner import MARKER_KERNEL, join_names, split_at_markers

    mk = f"void tg::(anonymous namespace)::{MARKER_KERNEL}(unsigned long)"
    # records out of order (as a profiler may list them): sorted by GPU start time before splitting
    events = [(5.0, "gemm_a"), (1.0, "quantize_x"), (2.0, mk), (3.0, "gemm_a"), (4.0, "reduce"), (6.0, mk),
              (9.0, mk), (7.0, mk), (8.0, "gemm_b")]
    groups = split_at_markers(events, 4)
    assert groups == [["quantize_x"], ["gemm_a", "reduce", "gemm_a"], [], ["gemm_b"]]
    assert [join_names(g) for g in groups[1::2]] == ["gemm_a;reduce", "gemm_b"]
    # not exactly n markers, or activities after the last one: no split rather than a wrong one
    assert split_at_markers(events, 3) is None and split_at_markers(events, 5) is None
    assert split_at_markers(events + [(10.0, "late")], 4) is None
    assert join_names(["x" * 130, "x" * 130, "y"]) == "x" * 120 + ";y"
