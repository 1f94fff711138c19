"""Random input at tinygemm's parsers and converters (hypothesis): either the reference answer, or a
ValueError / exit 2 with a one-line message; never a traceback (CPU)."""

import contextlib
import io
import os
import re
import shutil
import subprocess

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygemm
from tinygemm import formats, shapes

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_main(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def assert_clean_error(code, err, prog):
    """Exit 2 and the error on one line (argparse's own errors add its usage line before it)."""
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("usage:", " "))]
    assert lines and lines[-1].startswith(f"{prog}: error: ") and "Traceback" not in err, err


# --- batch lists: the reference is Python's own range / set --------------------------------------------

@SETTINGS
@given(st.integers(-3, 3000), st.integers(-3, 3000), st.one_of(st.none(), st.integers(-2, 300)))
def test_batch_ranges_match_the_reference(a, b, step):
    spec = f"{a}:{b}" + ("" if step is None else f":{step}")
    s = 1 if step is None else step
    if a >= 1 and b >= a and s >= 1:
        assert shapes.parse_batches(spec) == list(range(a, b + 1, s))
    else:
        with pytest.raises(ValueError, match="batch list"):
            shapes.parse_batches(spec)


@SETTINGS
@given(st.text(alphabet="0123456789,:; -+xe.", max_size=24))
def test_batch_text_is_a_list_or_a_message(spec):
    try:
        got = shapes.parse_batches(spec)
    except ValueError as e:
        assert str(e)
        return
    assert got == sorted(set(got)) and got and 1 <= got[0] and got[-1] <= shapes.MAX_BATCH


# --- the bench CLI: random flag sequences, dry run -----------------------------------------------------

FLAG_VALUES = {
    "--model": ["Llama-3-8B", "Mixtral-8x7B", "GPT-9", ""], "--tp": ["1", "2", "0", "-1", "3", "x"],
    "--module": ["all", "o_proj", "mlp", ""], "--shapes": ["1,64,64", "", "1,2", "0,64,64", "1,64,64;2,64,128"],
    "--kn": ["64,64", "4096,14336", "a,b", "0,5"], "--batches": ["decode", "1:8", "1:10000000000", "0", "4,2,1", ""],
    "--backends": ["default", "all", "torch_matmul", "nope", ","], "--dtype": ["fp16", "fp32"],
    "--group-size": ["128", "5"], "--target": ["0.01", "0", "nan", "inf", "-1", "2"],
    "--min-samples": ["10", "0", "500"], "--max-samples": ["200", "1", "x"], "--budget-ms": ["500", "-5", "nan"],
    "--l2": ["cold", "warm"], "--mode": ["auto", "fast"],
}
SWITCHES = ["--resume", "--force", "--asym", "--quiet"]


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(SWITCHES),
                          st.sampled_from(sorted(FLAG_VALUES)).flatmap(
                              lambda f: st.sampled_from(FLAG_VALUES[f]).map(lambda v: (f, v)))), max_size=5))
def test_bench_flags_plan_or_one_line(args):
    from tinygemm.bench.__main__ import main

    argv = []
    for a in args:
        argv += [a] if isinstance(a, str) else [a[0], a[1]]
    code, out, err = run_main(main, argv + ["--dry-run"])
    if code == 0:
        assert "weight shapes" in out
    else:
        assert_clean_error(code, err, "python -m tinygemm.bench")


# --- analyze on random CSV text ------------------------------------------------------------------------

HEADER = "op,backend,model,layer,tp,M,N,K,act_dtype,group_size,time_us,tflops,status"
CELL = st.sampled_from(["1", "0", "-1", "16", "4096", "nan", "inf", "", "x", "1e3", "0.5", "ok", "error", '"q,q"'])


@SETTINGS
@given(st.lists(st.lists(CELL, min_size=11, max_size=14), max_size=6),
       st.sampled_from(["cliffs", "compare", "sums"]), st.booleans())
def test_analyze_random_csvs(tmp_path_factory, rows, cmd, bad_bytes):
    from tinygemm import analyze

    d = tmp_path_factory.mktemp("csv")
    path = d / "r.csv"
    data = (HEADER + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode()
    path.write_bytes(data + (b"\xff\xfe" if bad_bytes else b""))
    argv = {"cliffs": ["cliffs", str(path), "--check-split"], "compare": ["compare", str(path), str(path)],
            "sums": ["sums", str(path)]}[cmd]
    code, out, err = run_main(analyze.main, argv)
    if code != 0:
        assert_clean_error(code, err, "python -m tinygemm.analyze")
    if bad_bytes:
        assert code == 2 and "not UTF-8" in err


# --- converters: random shapes, dtypes and scales ------------------------------------------------------

@SETTINGS
@given(st.sampled_from([64, 128, 192, 100]), st.sampled_from([16, 32, 48, 24]), st.sampled_from([32, 64, 128, -1, 16]),
       st.booleans(), st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
       st.sampled_from([1.0, 1e-3, 1e6, 1e-9, float("nan")]), st.integers(0, 2**31 - 1))
def test_quantize_roundtrip_or_message(K, N, gs, symmetric, dtype, scale, seed):
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(K, N, generator=g) * scale).to(dtype)
    try:
        qw = tinygemm.quantize(w, gs, symmetric)
    except ValueError as e:
        assert str(e)
        return
    # the reference: dequantize equals (q - z) * s, and 4-bit rounding keeps it near w
    back = tinygemm.dequantize(qw, torch.float32)
    assert torch.isfinite(back).all()
    wf = w.float()
    assert (back - wf).norm() <= 0.25 * wf.norm() + 1e-30
    t = formats.to_gptq(qw)
    again = formats.from_gptq(t["qweight"], t["qzeros"], t["scales"], gs)
    assert torch.equal(again.qweight, qw.qweight) and torch.equal(again.scales, qw.scales)


DTYPES = [torch.int32, torch.int64, torch.uint8, torch.float32, torch.float16, torch.bfloat16]


@SETTINGS
@given(st.sampled_from(DTYPES), st.sampled_from(DTYPES), st.sampled_from(DTYPES), st.integers(-1, 1),
       st.integers(-1, 1), st.sampled_from([None, 256, 128, 0]), st.sampled_from([0, 1, 2]))
def test_from_gptq_matches_or_refuses(qw_dt, qz_dt, s_dt, drow, dgroup, g_len, offset):
    qw = tinygemm.quantize(torch.randn(256, 32).half(), 64, symmetric=False)
    t = formats.to_gptq(qw, zero_offset=1)
    def resized(x, d):  # d = -1: a row short, 0: as is, 1: a row too many
        return x[: x.shape[0] + d] if d <= 0 else torch.cat([x, x[:1]])

    qweight = resized(t["qweight"], drow).to(qw_dt)
    qzeros = t["qzeros"].to(qz_dt)
    scales = resized(t["scales"], dgroup).to(s_dt)
    g_idx = None if g_len is None else torch.arange(g_len) // 64
    try:
        back = formats.from_gptq(qweight, qzeros, scales, 64, zero_offset=offset, g_idx=g_idx)
    except ValueError as e:
        assert str(e)
        return
    # accepted only when everything is what a GPTQ checkpoint holds: then it is the reference weight
    assert (qw_dt, qz_dt, drow, dgroup, g_len in (None, 256)) == (torch.int32, torch.int32, 0, 0, True)
    assert s_dt in (torch.float16, torch.bfloat16) and offset in (0, 1)
    if offset == 1:
        assert torch.equal(back.unpack(), qw.unpack()) and torch.equal(back.zeros, qw.zeros.to(s_dt))


# --- the binaries' size parser against a Python reference ----------------------------------------------

def _ref_bytes(v: str):
    """What --bytes accepts: an integer, optional k/K/m/M/g/G (powers of 1024), 16 .. 2^40."""
    m = re.fullmatch(r"([+-]?[0-9]+)([kKmMgG]?)", v)
    if not m:
        return None
    x = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    return x if 16 <= x <= 1 << 40 else None


@pytest.mark.skipif(tinygemm.gpu_available(), reason="a GPU would run every accepted size")
@settings(max_examples=30, deadline=None)
@given(st.one_of(st.from_regex(r"\A[+-]?[0-9]{1,22}[kKmMgGx]?\Z"),
                 st.text(alphabet="0123456789kKmMgG.-x ", max_size=8)))
def test_binary_bytes_parser_matches_the_reference(v):
    exe = shutil.which("tinygemm-bench-bandwidth")
    if exe is None or tinygemm.GPU_BACKEND == "cpu":
        pytest.skip("no microbenchmark binary")
    r = subprocess.run([exe, "--bytes", v], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if v.strip() != v or not v:
        assert r.returncode == 2
        return
    expect = _ref_bytes(v)
    assert r.returncode == (77 if expect is not None else 2), (v, r.stderr)
    if expect is None:
        assert "--bytes must be" in r.stderr
