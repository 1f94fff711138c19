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
    pts = [(b, M, scale * f * (10 + M)) for b, f in [("torch_matmul", 1.0), ("tinygemm_gemv", 0.5), ("marlin", 0.7)]
           for M in (1, 2, 4, 16, 64)]
    return tidy(tmp_path / name, pts)


def test_compare_a_file_with_itself_is_1(tmp_path):
    """Every bench run holds several backends: each pairs with itself, never with another one."""
    x = three_backends(tmp_path)
    r = analyze.compare(analyze.load(x), analyze.load(x))
    assert r["overall"] == pytest.approx(1.0) and len(r["pairs"]) == 15
    assert all(p["a_backend"] == p["b_backend"] for p in r["pairs"])
    assert sorted((d["a"], d["n"]) for d in r["paired"]) == [
        ("marlin (op matmul, format fp16)", 5), ("tinygemm_gemv (op matmul, format fp16)", 5),
        ("torch_matmul (op matmul, format fp16)", 5)]
    y = three_backends(tmp_path, "y.csv", scale=0.5)
    assert analyze.compare(analyze.load(x), analyze.load(y))["overall"] == pytest.approx(2.0)
    out = cli("analyze", "compare", x, x)
    assert out.returncode == 0 and "geomean speedup of B over A: 1.000 over 15 points" in out.stdout
    assert "paired: A tinygemm_gemv (op matmul, format fp16) with B tinygemm_gemv" in out.stdout


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


def test_bf16_scales_out_of_range_are_not_told_to_use_bf16():
    w = torch.randn(128, 32, dtype=torch.float32) * 1e-39  # below bf16's normal range too
    with pytest.raises(ValueError, match=r"underflow bfloat16 .*\); rescale the weight$"):
        tinygemm.quantize(w.bfloat16().float().bfloat16())


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


@pytest.mark.parametrize("col,bad", [("M", "0"), ("M", "-3"), ("K", "0"), ("N", "-4")])
def test_non_positive_sizes_are_named_rows(tmp_path, col, bad, run):
    """An M of 0 once made compare raise StopIteration (its M-range lookup) and every other tool keep
    the row: sizes are positive integers, or the row is named."""
    path = tidy(tmp_path / "r.csv", [("x", 1, 10.0), ("x", 2, 11.0), ("x", 4, 12.0)])
    text = open(path).read().splitlines()
    cols = text[0].split(",")
    row = text[2].split(",")
    row[cols.index(col)] = bad
    text[2] = ",".join(row)
    open(path, "w").write("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=rf"r.csv: 1 bad row \(row 2: {col} = '{bad}' is not a positive integer"):
        analyze.load(path)
    rep = tmp_path / "run"
    rep.mkdir()
    os.replace(path, rep / "results.csv")
    path = str(rep / "results.csv")
    for args in (["analyze", "compare", path, path], ["analyze", "cliffs", path, "--check-split"],
                 ["analyze", "sums", path], ["plot", path, "--out", str(tmp_path / "p")],
                 ["report", str(rep), "--out", str(tmp_path / "r.html")]):
        one_line_error(run(*args), "results.csv", "row 2", col)
    assert not os.path.exists(tmp_path / "p") and not os.path.exists(tmp_path / "r.html")  # nothing written


def test_bad_seed_times_are_named_rows(tmp_path):
    p = tmp_path / "torchgemm_X_torch_2_K64_N64_dtypefloat16.csv"
    p.write_text("batch,kernel_time,flops,utils,kernel_name\n1,0.01,1,0.1,k\n2,0,1,0.1,k\n")
    with pytest.raises(ValueError, match="row 2: kernel_time = '0'"):
        analyze.load(str(p))


# --- tracebacks instead of messages: one line naming the path, exit 2 ----------------------------


def test_os_errors_name_the_path(tmp_path, run):
    x = three_backends(tmp_path)
    d = tmp_path / "adir"
    d.mkdir()
    f = tmp_path / "afile"
    f.write_text("x")
    one_line_error(run("analyze", "cliffs", d), str(d), "Is a directory")
    one_line_error(run("analyze", "cliffs", tmp_path / "missing.csv"), "missing.csv", "No such file")
    one_line_error(run("analyze", "compare", x, x, "-o", tmp_path / "no" / "such" / "out.csv"),
                   "parent directory", "does not exist")
    one_line_error(run("analyze", "compare", x, x, "-o", d), str(d), "is a directory")
    one_line_error(run("report", f), str(f), "not a directory")
    one_line_error(run("plot", x, "--out", f), str(f), "not a directory")
    one_line_error(run("bench", "--out", f, "--batches", "1"), str(f), "not a directory")
    one_line_error(run("shapes", "aiter", "--model", "Llama-3-8B", "-o", d), str(d), "is a directory")
    one_line_error(run("analyze", "dedup", x, "-o", tmp_path / "nodir" / "o.csv"), "does not exist")


def test_unwritable_output_is_refused(tmp_path, run):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    x = three_backends(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    one_line_error(run("analyze", "compare", x, x, "-o", ro / "o.csv"), "not writable")


def test_csv_parse_errors_name_the_file_and_which_of_two(tmp_path, run):
    x = three_backends(tmp_path)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(open(x, "rb").read().replace(b"marlin", b"m\xe4rlin"))
    one_line_error(run("analyze", "compare", x, bad), "latin1.csv", "not UTF-8", "0xe4")
    huge = tmp_path / "huge.csv"
    huge.write_text(open(x).read() + '"' + "x" * (csv.field_size_limit() + 10) + '"\n')
    one_line_error(run("analyze", "cliffs", huge), "huge.csv", "field larger than field limit")
    wide = tmp_path / "wide.csv"
    wide.write_text(open(x).read() + "a,b,c," * 20 + "\n")
    one_line_error(run("analyze", "cliffs", wide), "wide.csv", "fields; the header has")


def test_results_json_of_the_wrong_shape(tmp_path, run):
    d = tmp_path / "run"
    d.mkdir()
    three_backends(d, "results.csv")
    for text, msg in [("[1, 2]", "expected a JSON object"), ('{"device": "H200"}', "'device' must be a JSON object"),
                      ("{not json", "not valid JSON"),
                      ('{"measured_ceilings": {"copy_gbps": "fast"}}', "copy_gbps must be a positive number"),
                      ('{"unavailable": [1]}', "'unavailable' must be a JSON object"),
                      ('{"unavailable": "abc"}', "'unavailable' must be a JSON object"),
                      ('{"backends": "x"}', "'backends' must be a JSON list"),
                      ('{"device": {"l2_bytes": "x"}}', "'device.l2_bytes' must be a finite number"),
                      ('{"device": {"memory_bytes": "big"}}', "'device.memory_bytes' must be a finite number"),
                      ('{"points": "many"}', "'points' must be a finite number")]:
        (d / "results.json").write_text(text)
        one_line_error(run("report", d, "--force"), "results.json", msg)
        if "ceilings" in text or text[0] != "{" or "not json" in text:  # plot reads only the ceilings
            one_line_error(run("plot", d / "results.csv", "--out", tmp_path / "p"), "results.json", msg)
    assert not (d / "report.html").exists()


def test_resume_onto_a_foreign_or_empty_csv(tmp_path, run):
    d = tmp_path / "run"
    d.mkdir()
    csv_path = d / "results.csv"
    csv_path.write_text("")
    one_line_error(run("bench", "--out", d, "--resume", "--batches", "1"), "results.csv is empty")
    csv_path.write_text("a,b\n1,2\n")
    one_line_error(run("bench", "--out", d, "--resume", "--batches", "1"), "not a results.csv of this tinygemm",
                   "missing columns op, backend")
    cols = results.COLUMNS[::-1]
    csv_path.write_text(",".join(cols) + "\n")
    one_line_error(run("bench", "--out", d, "--resume", "--batches", "1"), "another order")
    three_backends(d, "results.csv")
    (d / "results.json").write_text('{"command": ["not", "a", "string"]}')
    one_line_error(run("bench", "--out", d, "--resume", "--batches", "1"), "'command' and 'created' must be strings")
    one_line_error(run("bench", "--out", d, "--resume", "--force"), "--resume and --force contradict")
    one_line_error(run("bench", "--out", d, "--batches", "1"), "exists: pass --resume")


def test_unknown_backend_fails_in_dry_run(run):
    one_line_error(run("bench", "--backends", "torch_matmul,nope", "--dry-run"), "unknown backend(s) nope")
    one_line_error(run("bench", "--backends", ",", "--dry-run"), "names no backend")


@pytest.mark.skipif(tinygemm.gpu_available(), reason="a GPU is present")
def test_cpu_only_calls_say_they_need_a_gpu():
    from tinygemm import ceilings, profile

    for f in (ceilings.copy_bandwidth_gbps, ceilings.matmul_tflops):
        with pytest.raises(RuntimeError, match="needs a GPU"):
            f()
    with pytest.raises(RuntimeError, match=r"profile.region\(\) needs a GPU"):
        with profile.region():
            pass


def _fake_ncu(tmp_path, body):
    """An `ncu` that writes `body` to its --log-file (Nsight Compute is not on a CPU machine)."""
    exe = tmp_path / "ncu"
    exe.write_text(f"#!{sys.executable}\nimport sys\nlog = sys.argv[sys.argv.index('--log-file') + 1]\n"
                   f"open(log, 'wb').write({body!r})\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.parametrize("body, msg", [
    (b'"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n'
     b'"0","k","gpu__time_duration.sum","fortnight","1"\n', "unknown ncu time unit 'fortnight'"),
    (b'"ID","Name","Metric Name","Metric Value"\n"0","k","gpu__time_duration.sum","1"\n',
     "lacks the columns Kernel Name"),
    (b'"ID","Kernel Name","Metric Name","Metric Value"\n"0","k\xff","m","1"\n', "not UTF-8"),
    (b'"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n"0","k","gpu__time_duration.sum","ns","abc"\n',
     "kernel ID 0's gpu__time_duration.sum is not a number ('abc')"),
])
def test_profile_bad_ncu_output_is_one_line(tmp_path, monkeypatch, run, body, msg):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _fake_ncu(tmp_path, body)
    one_line_error(run("profile", "ncu", "--", "true"), msg)


def test_profile_usage_errors_say_what_is_wrong(tmp_path, monkeypatch, run):
    one_line_error(run("profile", "ncu"), "no program to profile: give it after --")
    one_line_error(run("profile", "bogus"), "unknown profiler 'bogus'")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ncu anywhere
    monkeypatch.setattr("os.path.exists", lambda p, _e=os.path.exists: False if p.endswith("/ncu") else _e(p))
    one_line_error(run("profile", "ncu", "--", "true"), "Nsight Compute (ncu) is not on PATH")


def test_profile_reports_a_silent_profiler_without_its_temporary_path(tmp_path, monkeypatch, run):
    exe = tmp_path / "ncu"
    exe.write_text(f"#!{sys.executable}\nprint('nothing to see')\n")  # exits 0, writes no log
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    r = run("profile", "ncu", "--", "true")
    assert r.returncode == 1 and "wrote no results" in r.stderr and "nothing to see" in r.stderr, r.stderr
    assert "ncu.csv" not in r.stderr and r.stderr.count("\n") == 1


def test_profile_help_is_the_full_help(run):
    for args in (["--help"], ["-h"], ["ncu", "--help"]):
        r = run("profile", *args)
        assert r.returncode == 0 and "--replay" in r.stdout and "--cache" in r.stdout and "-- PROGRAM" in r.stdout


# --- nothing lost or half-written ------------------------------------------------------------------


def test_outputs_are_checked_before_work_and_not_overwritten(tmp_path, monkeypatch, run):
    x = three_backends(tmp_path)
    out = tmp_path / "plots"
    assert run("plot", x, "--out", out).returncode == 0
    before = {f: os.path.getmtime(out / f) for f in os.listdir(out)}
    one_line_error(run("plot", x, "--out", out), "exists", "--force")
    assert {f: os.path.getmtime(out / f) for f in os.listdir(out)} == before
    assert run("plot", x, "--out", out, "--force").returncode == 0
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no temporary left behind
    # cliffs --check-split: the second output exists, so the first is not written either
    (tmp_path / "c_split.csv").write_text("keep")
    one_line_error(run("analyze", "cliffs", x, "--check-split", "-o", tmp_path / "c"), "c_split.csv exists")
    assert not (tmp_path / "c_cliffs.csv").exists() and (tmp_path / "c_split.csv").read_text() == "keep"
    # profile -o
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _fake_ncu(tmp_path, NCU_OK)
    o = tmp_path / "prof.csv"
    o.write_text("keep")
    one_line_error(run("profile", "ncu", "-o", o, "--", "true"), "prof.csv exists")
    assert o.read_text() == "keep"
    assert run("profile", "ncu", "-o", o, "--force", "--", "true").returncode == 0
    assert "gpu__time_duration.sum_us" in o.read_text()


NCU_OK = (b'"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"\n'
          b'"0","k","gpu__time_duration.sum","ns","1,000"\n')


def test_cliffs_output_always_reflects_this_run(tmp_path, run):
    """No cliffs still writes the header-only CSVs: an earlier run's PREFIX_cliffs.csv never stays in
    place as if it were this run's result."""
    from tinygemm.analyze.cliffs import CLIFF_COLUMNS, SPLIT_COLUMNS
    from tinygemm.cli_errors import read_csv

    x = three_backends(tmp_path)  # utilization grows with M everywhere: no cliff
    for name in ("c_cliffs.csv", "c_split.csv"):
        (tmp_path / name).write_text("an earlier run's rows\n")
    r = run("analyze", "cliffs", x, "--check-split", "-o", tmp_path / "c", "--force")
    assert r.returncode == 0, r.stderr
    for name, cols in (("c_cliffs.csv", CLIFF_COLUMNS), ("c_split.csv", SPLIT_COLUMNS)):
        assert read_csv(str(tmp_path / name)) == (list(cols), []), name
    # with a cliff (M = 8 takes 10x the time of M = 4) the rows carry exactly those columns
    w = results.CsvWriter(str(tmp_path / "y.csv"), append=False)
    for M, t in ((1, 10.0), (2, 10.0), (4, 10.0), (8, 100.0)):
        w.write({"op": "matmul", "backend": "torch_matmul", "model": "m", "layer": "l", "tp": 1, "M": M, "N": 4096,
                 "K": 4096, "act_dtype": "float16", "group_size": 128, "time_us": t,
                 "tflops": 2 * M * 4096 * 4096 / t / 1e6, "status": "ok"})
    w.close()
    y = str(tmp_path / "y.csv")
    assert run("analyze", "cliffs", y, "--check-split", "-o", tmp_path / "c", "--force").returncode == 0
    header, rows = read_csv(str(tmp_path / "c_cliffs.csv"))
    assert header == list(CLIFF_COLUMNS) and [row["M"] for row in rows] == ["8"]
    header, rows = read_csv(str(tmp_path / "c_split.csv"))
    assert header == list(SPLIT_COLUMNS) and [(row["b1"], row["b2"], row["opportunity"]) for row in rows] == \
        [("4", "4", "True")]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary left behind


def test_dry_run_checks_the_output_as_the_run_does(tmp_path, run):
    """--dry-run refuses the --out a real run would refuse, with the same line, and creates nothing."""
    args = ["--kn", "64,64", "--batches", "1"]
    f = tmp_path / "afile"
    f.write_text("x")
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.csv").write_text("a,b\n1,2\n")
    for extra, msg in [(["--out", f], "exists and is not a directory"),
                       (["--out", d], "exists: pass --resume"),
                       (["--out", d, "--resume"], "not a results.csv of this tinygemm"),
                       (["--out", f / "sub"], "is not a directory")]:
        dry = run("bench", *args, *extra, "--dry-run")
        one_line_error(dry, msg)
        if not tinygemm.gpu_available():  # the real run stops at the same check, before the GPU check
            assert run("bench", *args, *extra).stderr == dry.stderr
    new = tmp_path / "new" / "deeper"
    r = run("bench", *args, "--out", new, "--dry-run")
    assert r.returncode == 0 and "1 weight shapes" in r.stdout and not (tmp_path / "new").exists()
    assert run("bench", *args, "--out", d, "--force", "--dry-run").returncode == 0
    assert (d / "results.csv").read_text() == "a,b\n1,2\n"


def test_header_only_csv_plots_nothing(tmp_path, run):
    h = tmp_path / "h.csv"
    h.write_text(",".join(results.COLUMNS) + "\n")
    one_line_error(run("plot", h, "--out", tmp_path / "p"), "h.csv", "no ok rows")
    assert not (tmp_path / "p").exists()


def test_a_failed_plot_leaves_no_partial_figure(tmp_path, monkeypatch):
    from tinygemm import plot

    x = three_backends(tmp_path)

    def boom(*a, **k):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(plot, "dequant_breakdown", boom)
    with pytest.raises(RuntimeError):
        plot.all_plots(x, str(tmp_path / "p"))
    assert os.listdir(tmp_path / "p") == []


def test_resume_keeps_the_first_runs_metadata(tmp_path):
    from tinygemm.bench import checks

    first = {"created": "2026-01-01T00:00:00+00:00", "command": "python -m tinygemm.bench --out r", "points": 40,
             "device": {"name": "H200"}}
    p = tmp_path / "results.json"
    results.write_json(str(p), first)
    now = {"created": "2026-01-02T00:00:00+00:00", "command": "python -m tinygemm.bench --out r --resume",
           "points": 2, "device": {"name": "H200"}}
    m = checks.merge_resumed(checks.read_resumed(str(p)), now)
    assert (m["created"], m["command"], m["points"]) == (first["created"], first["command"], 42)
    assert m["resumed"] == [{"created": now["created"], "command": now["command"], "points": 2}]
    results.write_json(str(p), m)
    again = checks.merge_resumed(checks.read_resumed(str(p)), {**now, "points": 0})
    assert again["points"] == 42 and len(again["resumed"]) == 2 and again["command"] == first["command"]


def test_shapes_list_validates_before_printing(run):
    r = run("shapes", "list", "--model", "GPT-9")
    one_line_error(r, "unknown model 'GPT-9'")
    assert r.stdout == ""
    one_line_error(run("shapes", "list", "--tp", "0"), "tp must be >= 1")


# --- validation holes --------------------------------------------------------------------------------


def test_plan_size_is_capped_before_it_is_built(run):
    import time

    t0 = time.perf_counter()
    one_line_error(run("bench", "--batches", "1:10000000000", "--dry-run"), "goes up to M = 10,000,000,000")
    one_line_error(run("bench", "--batches", "1:1000000", "--dry-run"), "has 1,000,000 sizes")
    one_line_error(run("bench", "--batches", "1:100000", "--model", "Llama-3-8B", "Mistral-7B", "--dry-run"),
                   "800,000 (shape, batch) points")
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("args, msg", [
    (["--target", "0"], "--target must be a finite number > 0"),
    (["--target", "nan"], "--target must be a finite number > 0"),
    (["--min-samples", "50", "--max-samples", "20"], "need --min-samples <= --max-samples"),
    (["--budget-ms", "-5"], "--budget-ms must be a finite number > 0"),
    (["--shapes", ""], "--shapes is empty"),
    (["--shapes", "1,64,64", "--batches", "1:4"], "--batches does not apply to --shapes"),
    (["--shapes", "1,64,64", "--tp", "2"], "--tp only applies to --model shapes"),
    (["--kn", "64,64", "--module", "o_proj"], "--module only applies to --model shapes"),
    (["--kn", "64,64", "--tp", "2", "--module", "o_proj"], "--tp and --module only apply"),
])
def test_bench_timing_and_ignored_flags(run, args, msg):
    one_line_error(run("bench", *args, "--dry-run"), msg)


@pytest.mark.parametrize("kw, msg", [
    ({"budget_ms": -1}, "budget_ms must be"), ({"warmup_ms": -5}, "warmup_ms must be"),
    ({"graph_launches": -3}, "graph_launches must be"), ({"target": math.inf}, "target must be"),
    ({"min_samples": 5, "max_samples": 2}, "need min_samples <= max_samples"), ({"flush_bytes": 1.5}, "flush_bytes"),
])
def test_timing_options_reject_bad_values(kw, msg):
    from tinygemm import timing

    with pytest.raises(ValueError, match=msg):
        timing.options(**kw)


@pytest.mark.gpu
def test_resume_on_gpu_keeps_the_first_runs_metadata(tmp_path):
    from tinygemm.bench.__main__ import main

    common = ["--kn", "4096,4096", "--backends", "torch_matmul", "--out", str(tmp_path), "--quiet",
              "--max-samples", "20", "--budget-ms", "100"]
    assert main([*common, "--batches", "1,2"]) == 0
    first = json.load(open(tmp_path / "results.json"))
    assert main([*common, "--batches", "1,2,4", "--resume"]) == 0
    m = json.load(open(tmp_path / "results.json"))
    assert (m["created"], m["command"], m["points"]) == (first["created"], first["command"], 3)
    assert len(m["resumed"]) == 1 and m["resumed"][0]["points"] == 1 and "--resume" in m["resumed"][0]["command"]
    assert [r["M"] for r in results.read_rows(str(tmp_path / "results.csv"))] == ["1", "2", "4"]
