"""Random input at tinygemm's parsers and converters (hypothesis): either the reference answer, or a
ValueError / exit 2 with a one-line message; never a traceback (CPU)."""

import contextlib
import csv
import io
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
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
    """Exit 2 and the error on one line (argparse's own errors add its usage line before it; a
    subcommand's name its prog)."""
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("usage:", " "))]
    assert lines and re.match(rf"{re.escape(prog)}( [a-z-]+)?: error: ", lines[-1]) and "Traceback" not in err, err


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
    event(f"exit {code}")
    if code != 0:
        assert_clean_error(code, err, "python -m tinygemm.bench")
        return
    # the plan as printed: its totals are its lines' sums, and a batch range given is each shape's M
    m = re.search(r"(\d+) weight shapes, (\d+) \(shape, batch\) points per backend", out)
    lines = re.findall(r" K=(\d+) +N=(\d+) +M=(\d+)\.\.(\d+) \((\d+)\)", out)
    assert m and int(m.group(1)) == len(lines) > 0 and int(m.group(2)) == sum(int(x[4]) for x in lines), out
    batches = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "--batches"]
    if batches and batches[-1] == "1:8":
        assert all(x[2:] == ("1", "8", "8") for x in lines), out


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


# --- analyze on random valid sweeps: the answers against references computed here ---------------------

LAYER_KN = {"qkv_proj": (4096, 6144), "o_proj": (4096, 4096), "down_proj": (14336, 4096)}


@st.composite
def sweeps(draw):
    """A valid results table: (backend, layer, M, time_us) with each (backend, layer, M) once."""
    backends = draw(st.lists(st.sampled_from(["torch_matmul", "marlin", "tinygemm_gemv"]), min_size=1, max_size=3,
                             unique=True))
    layers = draw(st.lists(st.sampled_from(sorted(LAYER_KN)), min_size=1, max_size=3, unique=True))
    Ms = draw(st.lists(st.sampled_from([1, 2, 3, 4, 8, 16, 64]), min_size=1, max_size=5, unique=True))
    keys = [(b, layer, M) for b in backends for layer in layers for M in sorted(Ms)]
    kept = draw(st.lists(st.booleans(), min_size=len(keys), max_size=len(keys)))
    times = draw(st.lists(st.floats(0.5, 1e4), min_size=len(keys), max_size=len(keys)))
    rows = [(*k, t) for k, keep, t in zip(keys, kept, times) if keep]
    return rows or [(*keys[0], times[0])]


def write_sweep(path, rows, scale=None) -> str:
    """rows as a results CSV (tflops from the time: the utilization analyze reads); times x scale[backend]."""
    lines = [HEADER]
    for b, layer, M, t in rows:
        K, N = LAYER_KN[layer]
        t = t * (scale[b] if scale else 1.0)
        lines.append(f"matmul,{b},m,{layer},1,{M},{N},{K},float16,128,{t!r},{2 * M * K * N / t / 1e6!r},ok")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def ref_sums(rows) -> dict:
    """(backend, M) -> the time summed over the table's layers, for a backend that has them all at M."""
    layers = {layer for _, layer, _, _ in rows}
    per: dict = {}
    for b, layer, M, t in rows:
        per.setdefault((b, M), {})[layer] = t
    return {k: sum(v.values()) for k, v in per.items() if set(v) == layers}


def ref_cliffs(rows, threshold=0.85) -> set:
    """(backend, layer, M) whose utilization (FLOP/s) is below threshold x the best at a smaller M."""
    out = set()
    for b, layer in {(b, layer) for b, layer, _, _ in rows}:
        K, N = LAYER_KN[layer]
        best = None
        for M, t in sorted((M, t) for bb, ll, M, t in rows if (bb, ll) == (b, layer)):
            util = 2 * M * K * N / t / 1e6
            if best is not None and util < threshold * best:
                out.add((b, layer, M))
            best = util if best is None else max(best, util)
    return out


@SETTINGS
@given(sweeps(), st.fixed_dictionaries({b: st.sampled_from([0.5, 1.0, 2.0, 4.0])
                                        for b in ("torch_matmul", "marlin", "tinygemm_gemv")}))
def test_analyze_answers_match_the_references(tmp_path_factory, rows, scale):
    from tinygemm import analyze
    from tinygemm.cli_errors import read_csv

    d = tmp_path_factory.mktemp("sweep")
    a = write_sweep(d / "a.csv", rows)
    # sums: each backend's total over the layers, per M, as the Markdown's cells
    code, out, err = run_main(analyze.main, ["sums", a])
    assert code == 0, err
    cells = {}
    for line in out.splitlines():
        if line.startswith("| backend |"):
            Ms = [int(c.strip()[2:]) for c in line.strip("|").split("|")[1:]]
        elif line.startswith("| ") and not line.startswith("|---"):
            b, *vals = [c.strip() for c in line.strip("|").split("|")]
            cells.update({(b, M): v for M, v in zip(Ms, vals) if v != "-"})
    ref = ref_sums(rows)
    assert set(cells) == set(ref)
    fastest = {M: min(round(s, 2) for (_, m), s in ref.items() if m == M) for _, M in ref}
    for k, s in ref.items():
        assert float(cells[k].strip("*")) == pytest.approx(s, abs=0.056), (k, cells[k], s)  # .2f, then .1f
        if round(s, 2) == fastest[k[1]] or s > 1.001 * fastest[k[1]]:  # bold: the fastest (ties within 0.05 %)
            assert cells[k].startswith("**") == (round(s, 2) == fastest[k[1]]), (k, cells[k])
    # compare A with B = A's times x scale[backend]: every speedup is 1 / scale, the geomean theirs
    b = write_sweep(d / "b.csv", rows, scale)
    code, out, err = run_main(analyze.main, ["compare", a, b, "-o", str(d / "pairs.csv")])
    assert code == 0, err
    _, pairs = read_csv(str(d / "pairs.csv"))
    assert sorted((p["a_backend"], p["b_backend"], p["layer"], int(p["M"])) for p in pairs) == \
        sorted((x[0], x[0], x[1], x[2]) for x in rows)
    for p in pairs:
        assert float(p["speedup"]) == pytest.approx(1 / scale[p["a_backend"]], rel=1e-12)
    geo = math.exp(sum(-math.log(scale[x[0]]) for x in rows) / len(rows))
    m = re.search(r"geomean speedup of B over A: ([0-9.]+) over (\d+) points", out)
    assert m and float(m.group(1)) == pytest.approx(geo, abs=5e-4) and int(m.group(2)) == len(rows), out
    # cliffs: the rows of PREFIX_cliffs.csv are the reference's (header alone when there are none)
    code, out, err = run_main(analyze.main, ["cliffs", a, "-o", str(d / "c"), "--force"])
    assert code == 0, err
    _, got = read_csv(str(d / "c_cliffs.csv"))
    event("cliffs" if ref_cliffs(rows) else "no cliff")
    assert {(r["backend"], r["layer"], int(r["M"])) for r in got} == ref_cliffs(rows)


# --- the other CLIs (shapes, plot, report, profile): random argument lists, in-process ------------------

def one_line_or_usage(code, err, prog, usage=None):
    """A clean refusal: exit 2 with `prog: error: ...`, or (profile without `--`) its one usage line."""
    if usage is not None and err.strip() == f"usage: {usage}":
        assert code == 2
        return
    assert_clean_error(code, err, prog)


def fixtures(d) -> dict:
    """The paths a random argument may name, made fresh in d: an ok results CSV in a bench output
    directory (with its results.json), a header-only CSV, a non-UTF-8 one, a file, a directory."""
    from tinygemm import results

    run = d / "run"
    run.mkdir()
    write_sweep(run / "results.csv", [("torch_matmul", "o_proj", M, 10.0 + M) for M in (1, 2, 4)] +
                [("marlin", "o_proj", M, 8.0 + 2 * M) for M in (1, 2, 4)])
    results.write_json(str(run / "results.json"), {"device": {"name": "Test GPU"}, "command": "test", "points": 6})
    (d / "hdr.csv").write_text(HEADER + "\n")
    (d / "bad.csv").write_bytes((HEADER + "\n").encode() + b"\xff\xfe\n")
    (d / "file.txt").write_text("x")
    (d / "dir").mkdir()
    return {"@csv": run / "results.csv", "@run": run, "@hdr": d / "hdr.csv", "@bad": d / "bad.csv",
            "@file": d / "file.txt", "@dir": d / "dir", "@new": d / "new.out", "@newdir": d / "a" / "b",
            "@missing": d / "no" / "x.csv"}


def materialize(tokens, paths) -> list[str]:
    return [str(paths.get(t, t)) for t in tokens]


SHAPES_TOKENS = ["--model", "--tp", "--module", "--kind", "--m-list", "--q-dtype-w", "-o", "--force", "Llama-3-8B",
                 "llama3_8b", "Mixtral-8x7B", "GPT-9", "", "1", "2", "0", "-1", "x", "all", "o_proj", "mlp", "ck",
                 "bpreshuffle", "vllm", "decode", "1:8", "1:10000000000", "4,2,1", "torch.int8", "@new", "@file", "@dir",
                 "@missing"]


@SETTINGS
@given(st.sampled_from(["list", "aiter", "aiter", "nope"]),
       st.sampled_from([[], ["--model", "Llama-3-8B"], ["--model", "llama3_8b", "Mixtral-8x7B"]]),
       st.lists(st.sampled_from(SHAPES_TOKENS), max_size=5))
def test_shapes_cli_random_arguments(tmp_path_factory, cmd, model, tokens):
    d = tmp_path_factory.mktemp("shapes")
    argv = [cmd, *model, *materialize(tokens, fixtures(d))]
    with contextlib.chdir(d):  # aiter's default output goes to the working directory
        code, out, err = run_main(shapes._main, argv)
    event(f"exit {code}")
    if code != 0:
        assert_clean_error(code, err, "python -m tinygemm.shapes")
        assert out == ""  # validated before anything is printed
        return
    if cmd == "list":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert out.startswith("model,layer,tp,K,N") and rows
        assert all(int(r["K"]) > 0 and int(r["N"]) > 0 and int(r["tp"]) >= 1 for r in rows)
        return
    m = re.fullmatch(r"wrote (\d+) shapes to (.+)\n", out)
    assert m, out
    with open(d / m.group(2)) as f:
        rows = list(csv.DictReader(f))
    keys = [(int(r["N"]), int(r["K"]), int(r["M"])) for r in rows]
    assert len(rows) == int(m.group(1)) > 0 and keys == sorted(set(keys))  # deduplicated, sorted


PLOT_TOKENS = ["--out", "--force", "@csv", "@hdr", "@bad", "@file", "@dir", "@new", "@newdir", "@missing", "-x"]
INPUTS = ["@csv", "@csv", "@csv", "@hdr", "@bad", "@file", "@dir", "@missing", "@run"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(INPUTS), st.lists(st.sampled_from(PLOT_TOKENS), max_size=4))
def test_plot_cli_random_arguments(tmp_path_factory, first, tokens):
    from tinygemm import plot

    d = tmp_path_factory.mktemp("plot")
    argv = materialize([first, *tokens], fixtures(d))
    with contextlib.chdir(d):  # the default --out is ./plots
        code, out, err = run_main(plot.main, argv)
    event(f"exit {code}")
    if code != 0:
        assert_clean_error(code, err, "python -m tinygemm.plot")
        return
    files = [os.path.join(d, f) for f in out.split()]
    out_dir = os.path.join(d, next((argv[i + 1] for i in range(len(argv) - 1)[::-1] if argv[i] == "--out"), "plots"))
    assert files and all(os.path.getsize(f) > 0 and os.path.dirname(os.path.abspath(f)) == out_dir for f in files)
    assert not [f for f in os.listdir(out_dir) if f.startswith(".")]  # no temporary left


REPORT_TOKENS = ["-o", "--out", "--force", "@run", "@csv", "@file", "@dir", "@new", "@missing", "@newdir"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["@run", "@run", "@run", "@dir", "@file", "@missing", "@csv"]),
       st.lists(st.sampled_from(REPORT_TOKENS), max_size=4))
def test_report_cli_random_arguments(tmp_path_factory, first, tokens):
    from tinygemm import report

    d = tmp_path_factory.mktemp("report")
    code, out, err = run_main(report.main, materialize([first, *tokens], fixtures(d)))
    event(f"exit {code}")
    if code != 0:
        assert_clean_error(code, err, "python -m tinygemm.report")
        return
    page = open(out.strip(), encoding="utf-8").read()
    assert "<html" in page and "torch_matmul" in page and "marlin" in page  # the run's two backends


@pytest.fixture(scope="module")
def fake_profilers(tmp_path_factory):
    """An `ncu` and a `rocprofv3` on PATH that write one kernel's result (no profiler on a CPU machine):
    ncu 1,000 ns, rocprofv3 1,000 .. 3,000 ns."""
    d = tmp_path_factory.mktemp("bin")
    (d / "ncu").write_text(f"#!{sys.executable}\nimport sys\nlog = sys.argv[sys.argv.index('--log-file') + 1]\n"
                           "open(log, 'w').write('\"ID\",\"Kernel Name\",\"Metric Name\",\"Metric Unit\",\"Metric Value\""
                           "\\n\"0\",\"k\",\"gpu__time_duration.sum\",\"ns\",\"1,000\"\\n')\n")
    (d / "rocprofv3").write_text(f"#!{sys.executable}\nimport os, sys\nd = sys.argv[sys.argv.index('-d') + 1]\n"
                                 "open(os.path.join(d, 'x_kernel_trace.csv'), 'w').write("
                                 "'Kernel_Name,Start_Timestamp,End_Timestamp\\nk,1000,3000\\n')\n")
    for f in ("ncu", "rocprofv3"):
        (d / f).chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
        yield


PROFILE_TOKENS = ["ncu", "rocprof", "nvprof", "--metrics", "-o", "--output", "--force", "--replay", "--cache", "kernel",
                  "range", "application", "all", "none", "gpu__time_duration.sum", ",", "", "@new", "@file", "@dir",
                  "@missing", "--", "true"]


@SETTINGS
@given(st.sampled_from(["ncu", "ncu", "rocprof", "nvprof", "--force"]), st.lists(st.sampled_from(PROFILE_TOKENS),
                                                                                max_size=5), st.booleans())
def test_profile_cli_random_arguments(tmp_path_factory, fake_profilers, tool, tokens, program):
    from tinygemm import profile

    d = tmp_path_factory.mktemp("profile")
    paths = fixtures(d)
    argv = materialize([tool, *tokens] + (["--", "true"] if program else []), paths)
    code, out, err = run_main(profile.main, argv)
    event(f"exit {code}")
    if code != 0:
        one_line_or_usage(code, err, "python -m tinygemm.profile", profile.USAGE)
        return
    a, tool, o, i = argv[:argv.index("--")], None, None, 0
    while i < len(a):  # the positional tool and the last --output, as argparse reads them
        if a[i] in ("--metrics", "-o", "--output", "--replay", "--cache"):
            o = a[i + 1] if a[i] in ("-o", "--output") else o
            i += 2
            continue
        tool = a[i] if not a[i].startswith("-") else tool
        i += 1
    text = open(o, encoding="utf-8").read() if o else out
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["kernel"] == "k"
    assert float(row["gpu__time_duration.sum_us"]) == {"ncu": 1.0, "rocprof": 2.0}[tool]


# --- tinygemm.timing.options: random keyword values ----------------------------------------------------

def _real_in(v, lo, lo_open, hi=math.inf) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v <= hi
            and (v > lo if lo_open else v >= lo))


def _int_in(v, lo, hi) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


NUMBER = st.one_of(st.integers(-3, 300), st.integers(-2**41, 2**42), st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(0, 2), st.booleans(), st.none(), st.just("5"))


@settings(max_examples=80, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "l2": st.sampled_from(["cold", "hot", "warm", "", None]), "mode": st.sampled_from(["auto", "event", "graph",
                                                                                       "cupti", "fast", None]),
    **{k: NUMBER for k in ("target", "min_samples", "max_samples", "budget_ms", "warmup_ms", "graph_threshold_us",
                           "graph_launches", "flush_bytes")}}))
def test_timing_options_accept_in_range_or_name_the_option(kw):
    from tinygemm import timing

    limit = timing.MAX_SAMPLES
    ok = {"l2": lambda v: v in ("cold", "hot"), "mode": lambda v: v in ("auto", "event", "graph", "cupti"),
          "target": lambda v: _real_in(v, 0, True, 1.0), "min_samples": lambda v: _int_in(v, 1, limit),
          "max_samples": lambda v: _int_in(v, 1, limit), "budget_ms": lambda v: _real_in(v, 0, True),
          "warmup_ms": lambda v: _real_in(v, 0, False), "graph_threshold_us": lambda v: _real_in(v, 0, False),
          "graph_launches": lambda v: _int_in(v, 0, 1 << 20), "flush_bytes": lambda v: _int_in(v, 0, 1 << 40)}
    bad = [k for k, v in kw.items() if not ok[k](v)]
    lo, hi = kw.get("min_samples", timing.options().min_samples), kw.get("max_samples", timing.options().max_samples)
    if not {"min_samples", "max_samples"} & set(bad) and lo > hi:
        bad += ["min_samples", "max_samples"]
    event("refused" if bad else "accepted")
    try:
        o = timing.options(**kw)
    except ValueError as e:
        assert bad and any(k in str(e) for k in bad), (kw, str(e))
        return
    assert not bad, (kw, "accepted")
    fields = {"target": "target_rel_spread"}
    for k, v in kw.items():
        if k in ("l2", "mode"):
            assert str(getattr(o, k)).endswith("." + v)
        else:
            assert getattr(o, fields.get(k, k)) == v, (k, v)


# --- AWQ, compressed-tensors and dequantize: random valid weights against references built here, and
# --- each kind of defect refused with a ValueError ----------------------------------------------------

AWQ_ORDER_MAP = [0, 2, 4, 6, 1, 3, 5, 7]  # AutoAWQ WQLinear_GEMM.from_linear's order_map


def _awq_pack(v: torch.Tensor) -> torch.Tensor:
    """AutoAWQ's packing: word [r, c] |= v[r, 8c + order_map[i]] << 4i; the uint32 words as int32."""
    R, C = v.shape
    w = torch.zeros(R, C // 8, dtype=torch.int64)
    for i in range(8):
        w |= v.long().reshape(R, C // 8, 8)[..., AWQ_ORDER_MAP[i]] << (4 * i)
    return ((w + 2**31) % 2**32 - 2**31).to(torch.int32)


def _reference(q, z, s, group_of_row) -> torch.Tensor:
    """w[k, n] = (q[k, n] - z[g(k), n]) * s[g(k), n] in fp32: every format's definition."""
    g = group_of_row.long()
    return (q.float() - z.float()[g]) * s.float()[g]


SHAPES_KNG = st.tuples(st.sampled_from([64, 128, 256]), st.sampled_from([16, 32, 48]),
                       st.sampled_from([32, 64, 128, -1])).filter(lambda t: t[2] == -1 or t[0] % t[2] == 0)
AWQ_DEFECTS = [None, None, None, "qweight int64", "qweight float32", "qweight uint8", "qweight row short",
               "qzeros float32", "qzeros row short", "scales float32", "scales row short", "scales column short",
               "group_size 16", "group_size 0"]


def _random_codes(K, N, gs, symmetric, dtype, seed):
    """(G, codes q [K, N], zero points z [G, N] (8 when symmetric), scales s [G, N]) from a seed."""
    G = 1 if gs == -1 else K // gs
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (K, N), generator=gen)
    z = torch.full((G, N), 8) if symmetric else torch.randint(0, 16, (G, N), generator=gen)
    s = (torch.randn(G, N, generator=gen) * 0.01).to(dtype)
    return G, q, z, s


@SETTINGS
@given(SHAPES_KNG, st.booleans(), st.sampled_from([torch.float16, torch.bfloat16]), st.sampled_from(AWQ_DEFECTS),
       st.integers(0, 2**31 - 1))
def test_from_awq_matches_the_reference_or_refuses(kng, symmetric, dtype, defect, seed):
    K, N, gs = kng
    G, q, z, s = _random_codes(K, N, gs, symmetric, dtype, seed)
    qweight, qzeros = _awq_pack(q), _awq_pack(z)
    group_size = gs
    if defect:
        what, how = defect.split(" ", 1)
        t = {"qweight": qweight, "qzeros": qzeros, "scales": s}.get(what)
        if what == "group_size":
            group_size = int(how)
        elif how == "row short":
            t = t[:-1]
        elif how == "column short":
            t = t[:, :-1]
        else:
            t = t.to(getattr(torch, how))
        qweight, qzeros, s = (t if what == n else v for n, v in (("qweight", qweight), ("qzeros", qzeros), ("scales", s)))
    try:
        back = formats.from_awq(qweight, qzeros, s, group_size)
    except ValueError as e:
        assert defect and str(e), (defect, str(e))
        return
    assert defect is None, f"from_awq accepted {defect}"
    assert back.symmetric == symmetric and back.dtype == dtype and back.shape == (K, N)
    ref = _reference(q, z, s, torch.arange(K) // (K // G))
    assert torch.equal(tinygemm.dequantize(back, torch.float32), ref)


CT_DEFECTS = [None, None, None, "scales float32", "scales nan", "scales inf", "scales row short", "packed int64",
              "packed column short", "weight_shape", "group_size", "zero_point float", "zero_point range",
              "zero_point shape", "g_idx float", "g_idx length"]


@SETTINGS
@given(SHAPES_KNG, st.booleans(), st.sampled_from(["packed", "int8", "int32", "int64"]),
       st.sampled_from([torch.float16, torch.bfloat16]), st.booleans(), st.sampled_from(CT_DEFECTS),
       st.integers(0, 2**31 - 1))
def test_from_compressed_tensors_matches_the_reference_or_refuses(kng, symmetric, zp_form, dtype, act_order, defect,
                                                                  seed):
    """Valid inputs are packed by compressed-tensors' own pack_to_int32; the reference weight is the
    format's definition w[n, k] = (q_signed - zp) * s with k's group."""
    helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")
    K, N, gs = kng
    G = 1 if gs == -1 else K // gs
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(-8, 8, (N, K), generator=gen, dtype=torch.int8)  # [out, in], signed
    zp = torch.zeros(N, G, dtype=torch.int8) if symmetric else torch.randint(-8, 8, (N, G), generator=gen,
                                                                               dtype=torch.int8)
    s = (torch.randn(N, G, generator=gen) * 0.01).to(dtype)
    g_idx = (torch.arange(K) // (K // G))[torch.randperm(K, generator=gen)] if act_order and G > 1 else None
    args = {"weight_packed": helpers.pack_to_int32(q, 4), "weight_scale": s, "weight_shape": torch.tensor([N, K]),
            "weight_zero_point": None if symmetric else (helpers.pack_to_int32(zp, 4, packed_dim=0)
                                                         if zp_form == "packed" else zp.to(getattr(torch, zp_form))),
            "group_size": None if gs == -1 else gs, "weight_g_idx": g_idx}
    if defect == "group_size" and G == 1:
        defect = None  # one group is per channel: no group size to contradict
    if defect == "zero_point float":
        args["weight_zero_point"] = zp.to(dtype)
    elif defect == "zero_point range":  # an unpacked zero point beyond -8..7
        args["weight_zero_point"] = zp.to(torch.int32)
        args["weight_zero_point"][0, 0] = 8
    elif defect == "zero_point shape":
        args["weight_zero_point"] = zp[:-1].to(torch.int32)
    elif defect == "g_idx float":
        args["weight_g_idx"] = (torch.arange(K) // (K // G)).float()
    elif defect == "g_idx length":
        args["weight_g_idx"] = (torch.arange(K) // (K // G))[:-1]
    elif defect == "weight_shape":
        args["weight_shape"] = torch.tensor([N, K + 8])
    elif defect == "group_size":
        args["group_size"] = gs // 2
    elif defect == "packed int64":
        args["weight_packed"] = args["weight_packed"].long()
    elif defect == "packed column short":
        args["weight_packed"] = args["weight_packed"][:, :-1]
    elif defect == "scales float32":
        args["weight_scale"] = s.float()
    elif defect in ("scales nan", "scales inf"):
        args["weight_scale"] = s.clone()
        args["weight_scale"][0, 0] = float(defect[7:])
    elif defect == "scales row short":
        args["weight_scale"] = s[:-1]
    try:
        qw = formats.from_compressed_tensors(**args)
    except ValueError as e:
        assert defect and str(e), (defect, str(e))
        return
    assert defect is None, f"from_compressed_tensors accepted {defect}"
    groups = g_idx if g_idx is not None else torch.arange(K) // (K // G)
    ref = _reference(q.t(), zp.t(), s.t(), groups)
    assert torch.equal(tinygemm.dequantize(qw, torch.float32), ref)


DQ_DEFECTS = [None, None, None, "scales group short", "scales group extra", "scales float32", "zeros dtype",
              "zeros shape", "qweight shape", "qweight int64", "shape K", "dtype int32", "dtype str"]


@SETTINGS
@given(SHAPES_KNG, st.booleans(), st.sampled_from([torch.float16, torch.bfloat16]),
       st.sampled_from(formats.LAYOUTS), st.sampled_from(DQ_DEFECTS), st.integers(0, 2**31 - 1))
def test_dequantize_matches_the_reference_or_refuses(kng, symmetric, dtype, layout, defect, seed):
    from dataclasses import replace

    K, N, gs = kng
    G, q, z, s = _random_codes(K, N, gs, symmetric, dtype, seed)
    qw = formats.QuantizedWeight(formats.pack(q, layout), s, None if symmetric else z.to(dtype), (K, N), gs, layout)
    out_dtype = torch.float32
    if defect == "scales group short":
        qw = replace(qw, scales=s[:-1])
    elif defect == "scales group extra":
        qw = replace(qw, scales=torch.cat([s, s[:1]]))
    elif defect == "scales float32":
        qw = replace(qw, scales=s.float())
    elif defect == "zeros dtype":
        qw = replace(qw, zeros=z.to(torch.int32))
    elif defect == "zeros shape":
        qw = replace(qw, zeros=z[:, :-1].to(dtype))
    elif defect == "qweight shape":
        qw = replace(qw, qweight=qw.qweight[:-1])
    elif defect == "qweight int64":
        qw = replace(qw, qweight=qw.qweight.long())
    elif defect == "shape K":
        qw = replace(qw, shape=(K + 64, N))
    elif defect == "dtype int32":
        out_dtype = torch.int32
    elif defect == "dtype str":
        out_dtype = "float32"
    try:
        w = tinygemm.dequantize(qw, out_dtype)
    except ValueError as e:
        assert defect and str(e), (defect, str(e))
        return
    assert defect is None, f"dequantize accepted {defect}"
    assert torch.equal(w, _reference(q, z, s, torch.arange(K) // (K // G)))
