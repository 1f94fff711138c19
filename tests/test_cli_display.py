"""The command lines in an engineer's words: model names as typed, tables whole when piped, integer
dimensions as integers, the sweep summary grouped by precision class, and the analysis tools
without torch."""

import os
import subprocess
import sys

import pytest

from tinygemm import shapes as S
from tinygemm.display import number, rate
from tinygemm.precision import precision_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("typed, model", [
    ("llama3_8b", "Llama-3-8B"), ("llama3-8b", "Llama-3-8B"), ("Llama-3.1-8B", "Llama-3-8B"),
    ("meta-llama/Meta-Llama-3-8B", "Llama-3-8B"), ("meta-llama/Llama-3.1-8B-Instruct", "Llama-3-8B"),
    ("LLAMA-3-70B", "Llama-3-70B"), ("meta-llama/Llama-3.3-70B-Instruct", "Llama-3-70B"),
    ("meta-llama/Llama-2-7b-hf", "Llama-2-7B"), ("mistralai/Mistral-7B-Instruct-v0.3", "Mistral-7B"),
    ("Qwen/Qwen2.5-72B-Instruct", "Qwen2.5-72B"), ("deepseek-ai/DeepSeek-V3-0324", "DeepSeek-V3"),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "Llama-4-Scout"), ("mixtral 8x7b", "Mixtral-8x7B"),
])
def test_model_names_as_people_type_them(typed, model):
    assert S.find_model(typed).name == model


def test_different_models_stay_different():
    # the normalization drops separators and suffixes, never a size or a version that changes shapes
    assert S.find_model("llama3_70b").name != S.find_model("llama3_8b").name
    assert S.find_model("qwen2.5-7b").name == "Qwen2.5-7B" and S.find_model("qwen2.5-72b").name == "Qwen2.5-72B"
    with pytest.raises(ValueError, match="unknown model"):
        S.find_model("llama3-9b")


def test_unknown_model_lists_names_and_aliases():
    with pytest.raises(ValueError) as e:
        S.find_model("gpt-5")
    for m in S.MODELS.values():
        assert m.name in str(e.value)
        for a in m.aliases:
            assert a in str(e.value)


def test_help_lists_every_model(capsys):
    from tinygemm.bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in S.MODELS:
        assert name in text


def test_list_backends_piped_is_whole():
    from tinygemm.backends import registry

    r = subprocess.run([sys.executable, "-m", "tinygemm.bench", "--list-backends"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in registry():
        # a name whole, in a cell of its own: copyable
        assert any(line.split("│")[1:2] == [f" {name} ".ljust(len(line.split("│")[1]))] for line in lines if "│" in line), name
    assert "…" not in r.stdout
    assert "tinygemm-bench-gemm" in r.stdout and "tinygemm-bench-bandwidth" in r.stdout


@pytest.mark.parametrize("v, shown", [(28672, "28672"), ("28672", "28672"), (28672.0, "28672"), (3.0, "3"),
                                      (12345.678, "12346"), (1.23456, "1.235"), ("0.5", "0.5"),
                                      (0.000123, "0.000123"), ("abc", "abc"), (True, "True")])
def test_numbers_are_shown_without_exponents(v, shown):
    assert number(v) == shown


def test_rates_have_thousands_separators():
    assert rate(4276.3, "GB/s") == "4,276 GB/s" and rate(789.4, "TFLOP/s") == "789 TFLOP/s"
    assert rate(None, "GB/s") == "not measured"


def test_every_backend_has_a_precision_class():
    from tinygemm.backends import registry

    want = {"torch_matmul": "fp16/bf16", "torch_fp8_tensorwise": "FP8 W8A8", "aiter_ck": "FP8 W8A8",
            "tinygemm_gemv": "W4A16", "dequant_matmul": "W4A16", "marlin_uint4b8": "W4A16", "machete_uint4": "W4A16",
            "gemlite": "W4A16", "torch_int4pack": "W4A16", "marlin_uint8b128": "W8A16",
            "marlin_float8_e4m3fn": "W8A16", "marlin_nvfp4": "FP4", "marlin_mxfp4": "FP4"}
    for name, b in registry().items():
        cls = precision_class(name, b.op)
        assert cls != "other", name
        if name in want:
            assert cls == want[name], name
    # the weight format decides where it names one; seed CSVs have only a backend
    assert precision_class("marlin", "marlin", "marlin_float8_e4m3fn_g128") == "W8A16"
    assert precision_class("torch_matmul", "", "") == "fp16/bf16"


def test_sweep_summary_is_grouped_by_precision_class():
    from rich.console import Console

    from tinygemm.bench.__main__ import print_summary

    def row(b, op, wf, M, t):
        return {"backend": b, "op": op, "weight_format": wf, "M": M, "time_us": t, "status": "ok"}

    rows = [row("torch_matmul", "matmul", "float16", 1, 30.0), row("torch_fp8_rowwise", "scaled_mm", "fp8_e4m3_rowwise",
            1, 5.0), row("tinygemm_gemv", "w4a16", "tinygemm_w4_g128", 1, 9.0),
            row("marlin_uint4b8", "marlin", "marlin_uint4b8_g128", 1, 12.0)]
    c = Console(record=True, width=300)
    print_summary(rows, c)
    text = c.export_text()
    lines = {line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") >= 3}
    # FP8 is fastest overall but each class has its own winner
    assert "5.0*" in lines["torch_fp8_rowwise"] and "9.0*" in lines["tinygemm_gemv"]
    assert "30.0*" in lines["torch_matmul"] and "12.0*" not in lines["marlin_uint4b8"]
    assert "W4A16" in lines["tinygemm_gemv"] and "FP8 W8A8" in lines["torch_fp8_rowwise"]


# --- the analysis tools run without torch ---------------------------------------------------------

# a meta path finder that refuses torch (and what only torch brings), as on a laptop without it
NO_TORCH = """
import os, runpy, sys
BLOCK = tuple(filter(None, os.environ.get('BLOCK', '').split(',')))
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'triton') + BLOCK:
            raise ImportError(f'{name} is blocked: this command must not import torch')
sys.meta_path.insert(0, _NoTorch())
mod = sys.argv[1]
sys.argv = [mod] + sys.argv[2:]
try:
    runpy.run_module(mod, run_name='__main__')
finally:
    assert 'torch' not in sys.modules
"""


def run_without_torch(*args, block=""):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BLOCK": block})


def small_results(tmp_path):
    from test_report import write_results

    return write_results(tmp_path / "run")


def test_analysis_plot_and_report_run_without_torch(tmp_path):
    d = small_results(tmp_path)
    csv_path = os.path.join(d, "results.csv")
    for args in (("tinygemm.analyze", "cliffs", csv_path, "-o", str(tmp_path / "cl")),
                 ("tinygemm.analyze", "sums", csv_path),
                 ("tinygemm.plot", csv_path, "--out", str(tmp_path / "plots")),
                 ("tinygemm.report", d)):
        r = run_without_torch(*args)
        assert r.returncode == 0, (args, r.stderr[-2000:])
    assert os.path.exists(os.path.join(d, "report.html"))
    # and the block is real: a command that needs torch fails under it
    r = run_without_torch("tinygemm.bench", "--list-backends")
    assert r.returncode != 0 and "blocked" in r.stderr
    # without plotly the report says what to install: one line, exit 2, no page
    os.remove(os.path.join(d, "report.html"))
    r = run_without_torch("tinygemm.report", d, block="plotly")
    assert r.returncode == 2 and "pip install plotly" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(d, "report.html"))


def test_machete_schedule_is_set_per_run_not_per_class():
    import argparse

    from tinygemm.backends import registry
    from tinygemm.backends.machete import Machete
    from tinygemm.bench import session

    backends = [b for b in registry().values() if isinstance(b, Machete)]
    session.configure(backends, argparse.Namespace(machete_schedule="sch_128x16"))
    assert backends and all(b.schedule == "sch_128x16" for b in backends)
    # a later run in the same process (a fresh registry) starts from Machete's heuristic
    assert Machete.schedule is None
    assert all(b.schedule is None for b in registry().values() if isinstance(b, Machete))


def test_import_tinygemm_loads_torch_only_when_asked():
    code = ("import sys, tinygemm; assert 'torch' not in sys.modules; "
            "import tinygemm.analyze, tinygemm.report, tinygemm.plot, tinygemm.shapes; assert 'torch' not in sys.modules; "
            "tinygemm.quantize; assert 'torch' in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # with torch imported first, the ops are registered at import, as before
    code = "import torch, tinygemm; torch.ops.tinygemm.w4a16_gemv; torch.ops.tinygemm.w4_dequant_triton"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_backend_name_decides_over_a_generic_op():
    # a hand-made CSV may call every row op=matmul: the INT4 backends stay INT4
    assert precision_class("tinygemm_gemv", "matmul", "") == "W4A16"
    assert precision_class("dequant_matmul", "matmul", "") == "W4A16"
    assert precision_class("somebody_else", "matmul", "") == "fp16/bf16"
    assert precision_class("somebody_else", "", "") == "other"
