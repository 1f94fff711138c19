"""tinygemm under bad input (issue 14): no silent wrong answer, no traceback, nothing overwritten (CPU).

One test (or a few) per class of bad input; tests/test_bad_input_property.py throws random input at
the same entry points.
"""

import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import tinygemm
from tinygemm import analyze, formats, results


def tidy(path, points, **extra):
    """points: [(backend, M, time_us)] on one shape K=N=4096; extra columns for every row."""
    w = results.CsvWriter(str(path), append=False)
    for b, M, t in points:
        w.write({"op": "matmul", "backend": b, "model": "m", "layer": "l", "tp": 1, "M": M, "N": 4096, "K": 4096,
                 "act_dtype": "float16", "group_size": 128, "time_us": t, "weight_format": "fp16", "status": "ok",
                 **extra})
    w.close()
    return str(path)


def cli(module, *args, cwd=None):
    """A CLI as a user runs it: a subprocess (kept to a few tests: each one imports torch)."""
    return subprocess.run([sys.executable, "-m", f"tinygemm.{module}", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture
def run(capsys):
    """A CLI's main() in this process: (exit code, stdout, stderr); an uncaught exception fails the test."""
    import importlib

    def go(module, *args):
        mod = importlib.import_module(f"tinygemm.{module}" if module != "bench" else "tinygemm.bench.__main__")
        main = getattr(mod, "main", None) or mod._main
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return go


def one_line_error(r, *needles):
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


# --- wrong answers ---------------------------------------------------------------------------------


def three_backends(tmp_path, name="x.csv", scale=1.0):
    pts = [(b, M, scale * f * (10 + M)) for b, f in [("torch_matmul", 1.0), ("tinygemm_cuda", 0.5), ("marlin", 0.7)]
           for M in (1, 2, 4, 16, 64)]
    return tidy(tmp_path / name, pts)


def test_compare_a_file_with_itself_is_1(tmp_path):
    """Every bench run holds several backends: each pairs with itself, never with another one."""
    x = three_backends(tmp_path)
    r = analyze.compare(analyze.load(x), analyze.load(x))
    assert r["overall"] == pytest.approx(1.0) and len(r["pairs"]) == 15
    assert all(p["a_backend"] == p["b_backend"] for p in r["pairs"])
    assert sorted((d["a"], d["n"]) for d in r["paired"]) == [
        ("marlin (op matmul, format fp16)", 5), ("tinygemm_cuda (op matmul, format fp16)", 5),
        ("torch_matmul (op matmul, format fp16)", 5)]
    y = three_backends(tmp_path, "y.csv", scale=0.5)
    assert analyze.compare(analyze.load(x), analyze.load(y))["overall"] == pytest.approx(2.0)
    out = cli("analyze", "compare", x, x)
    assert out.returncode == 0 and "geomean speedup of B over A: 1.000 over 15 points" in out.stdout
    assert "paired: A tinygemm_cuda (op matmul, format fp16) with B tinygemm_cuda" in out.stdout


def test_compare_other_dtype_or_group_is_not_paired(tmp_path):
    a = tidy(tmp_path / "a.csv", [("x", 1, 10.0)])
    b = tidy(tmp_path / "b.csv", [("x", 1, 5.0)], act_dtype="bfloat16")
    with pytest.raises(ValueError, match="no \\(shape, M\\) in common"):
        analyze.compare(analyze.load(a), analyze.load(b))


def test_compare_ambiguous_backends_demand_names(tmp_path, run):
    a = tidy(tmp_path / "a.csv", [("x", 1, 10.0), ("y", 1, 10.0)])
    b = tidy(tmp_path / "b.csv", [("z", 1, 5.0), ("w", 1, 5.0)])
    with pytest.raises(ValueError, match="none in common.*--a-backend X --b-backend Y"):
        analyze.compare(analyze.load(a), analyze.load(b))
    r = run("analyze", "compare", a, b, "--a-backend", "x", "--b-backend", "w")
    assert r.returncode == 0 and "paired: A x (op matmul, format fp16) with B w" in r.stdout
    one_line_error(run("analyze", "compare", a, "--a-backend", "nope", "--b-backend", "x"),
                   "no ok row has backend 'nope'", "a.csv")


def test_compare_duplicate_rows_are_ambiguous(tmp_path):
    a = tidy(tmp_path / "a.csv", [("x", 1, 10.0), ("x", 1, 12.0)])
    with pytest.raises(ValueError, match="two rows for x"):
        analyze.compare(analyze.load(a), analyze.load(a))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_quantize_refuses_non_finite_weights(bad):
    w = torch.randn(128, 32)
    w[70, 9] = bad
    with pytest.raises(ValueError, match=r"non-finite.*\[k=70, n=9\]"):
        tinygemm.quantize(w)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("factor, what", [(1e6, "overflow float16"), (1e-9, "underflow float16")])
def test_quantize_detects_scales_the_scale_dtype_cannot_hold(symmetric, factor, what):
    w = torch.randn(128, 32)
    with pytest.raises(ValueError, match=what):
        tinygemm.quantize(w * factor, symmetric=symmetric)
    # bf16 holds them: the same weights quantize, and dequantize back to within 4-bit rounding
    qw = tinygemm.quantize((w * factor).bfloat16(), symmetric=symmetric)
    back = tinygemm.dequantize(qw, torch.float32)
    assert torch.isfinite(back).all() and ((back - w * factor).norm() / (w * factor).norm()) < 0.2


def test_quantize_keeps_small_but_representable_scales():
    w = torch.randn(128, 32) * 1e-3  # fp16 scales ~5e-4: normal numbers, must still work
    qw = tinygemm.quantize(w)
    assert ((tinygemm.dequantize(qw, torch.float32) - w).norm() / w.norm()) < 0.2


def _gptq(symmetric=False):
    qw = tinygemm.quantize(torch.randn(256, 32).half(), 64, symmetric=symmetric)
    return qw, formats.to_gptq(qw)


@pytest.mark.parametrize("which, value, msg", [
    ("qweight", lambda g: g["qweight"].float(), "qweight must be int32; got float32"),
    ("qweight", lambda g: g["qweight"].to(torch.uint8), "qweight must be int32; got uint8"),
    ("qzeros", lambda g: g["qzeros"].float(), "qzeros must be int32; got float32"),
    ("scales", lambda g: g["scales"].to(torch.int32), "scales must be float16 or bfloat16; got int32"),
    ("scales", lambda g: g["scales"].float(), "scales must be float16 or bfloat16; got float32"),
    ("scales", lambda g: g["scales"][:2], r"scales must be \[K/group_size, N\]"),
    ("qzeros", lambda g: g["qzeros"][:, :2], r"qzeros must be \[K/group_size, N/8\]"),
])
def test_from_gptq_checks_dtypes_and_shapes(which, value, msg):
    _, g = _gptq()
    args = {**g, which: value(g)}
    with pytest.raises(ValueError, match=msg):
        formats.from_gptq(args["qweight"], args["qzeros"], args["scales"], 64)


def test_from_gptq_g_idx_of_the_wrong_length_has_its_own_message():
    _, g = _gptq()
    with pytest.raises(ValueError, match="g_idx must have one entry per row of the weight, K = 256; got 128"):
        formats.from_gptq(g["qweight"], g["qzeros"], g["scales"], 64, g_idx=torch.arange(128) // 64)
    with pytest.raises(ValueError, match="g_idx must be a 1-D integer tensor"):
        formats.from_gptq(g["qweight"], g["qzeros"], g["scales"], 64, g_idx=torch.zeros(256))
    # the right one is accepted
    formats.from_gptq(g["qweight"], g["qzeros"], g["scales"], 64, g_idx=torch.arange(256) // 64)


def test_dequantize_and_to_gptq_check_the_quantized_weight():
    from dataclasses import replace

    qw, _ = _gptq()
    for bad, msg in [(replace(qw, scales=qw.scales[:2]), r"scales must have shape \(4, 32\)"),
                     (replace(qw, scales=qw.scales.float()), "scales must be float16 or bfloat16"),
                     (replace(qw, qweight=qw.qweight.float()), "qweight must be int32"),
                     (replace(qw, zeros=qw.zeros.bfloat16()), "zeros must be float16"),
                     (replace(qw, group_size=32), r"scales must have shape \(8, 32\)")]:
        with pytest.raises(ValueError, match=msg):
            tinygemm.dequantize(bad)
        with pytest.raises(ValueError, match=msg):
            formats.to_gptq(bad)
    with pytest.raises(ValueError, match="zero_offset must be"):
        formats.to_gptq(qw, zero_offset=2)


def test_pack_refuses_values_beyond_a_nibble_and_floats():
    with pytest.raises(ValueError, match="0..15"):
        formats.pack(torch.full((64, 16), 16, dtype=torch.int32))
    with pytest.raises(ValueError, match="integer tensor"):
        formats.pack(torch.zeros(64, 16))


def test_to_int4pack_on_cpu_says_it_needs_a_gpu():
    qw, _ = _gptq()
    with pytest.raises(ValueError, match="to_int4pack needs the weight on a GPU"):
        formats.to_int4pack(qw)


@pytest.mark.parametrize("bad", ["0", "-3.5", "nan", "inf", ""])
def test_bad_times_are_named_rows_never_divided(tmp_path, bad, run):
    path = tidy(tmp_path / "r.csv", [("x", 1, 10.0), ("x", 2, 11.0), ("x", 4, 12.0)])
    text = open(path).read().splitlines()
    cols = text[0].split(",")
    row = text[2].split(",")
    row[cols.index("time_us")] = bad
    text[2] = ",".join(row)
    open(path, "w").write("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=rf"r.csv: 1 bad row \(row 2: time_us = '{bad}' is not a positive finite"):
        analyze.load(path)
    for args in (["analyze", "compare", path, path], ["analyze", "cliffs", path, "--check-split"],
                 ["analyze", "sums", path], ["plot", path, "--out", str(tmp_path / "p")]):
        one_line_error(run(*args), "r.csv", "row 2", "time_us")
    assert not os.path.exists(tmp_path / "p")  # nothing written


def test_bad_seed_times_are_named_rows(tmp_path):
    p = tmp_path / "torchgemm_X_torch_2_K64_N64_dtypefloat16.csv"
    p.write_text("batch,kernel_time,flops,utils,kernel_name\n1,0.01,1,0.1,k\n2,0,1,0.1,k\n")
    with pytest.raises(ValueError, match="row 2: kernel_time = '0'"):
        analyze.load(str(p))
