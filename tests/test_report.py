"""The HTML report on a small fixed run whose answers are known: the winners per precision class,
the speedups over fp16, the floors, the cliffs; and the page as a real browser renders it."""

import json
import os
import re
import shutil
import subprocess

import pytest

from tinygemm import report, results
from tinygemm.report_data import cliffs, model_tables, ok_rows

# Llama-3-8B TP1, two of its layers, three batch sizes. Times (us) per (backend, layer, M), chosen so
# that FP8 W8A8 is the fastest of all at M=1 (a table that mixed the classes would name it for
# W4A16 too), tinygemm_gemv wins W4A16 at M=1 and 16 and marlin at M=256, where tinygemm_gemv
# falls off a cliff with a kernel switch.
LAYERS = {"qkv_proj": (4096, 6144), "o_proj": (4096, 4096)}
TIMES = {
    ("torch_matmul", "matmul", "float16"): {1: (30.0, 20.0), 16: (31.0, 21.0), 256: (60.0, 40.0)},
    ("tinygemm_gemv", "w4a16", "tinygemm_w4_g128"): {1: (9.0, 6.0), 16: (10.0, 7.0), 256: (250.0, 170.0)},
    ("marlin_uint4b8", "marlin", "marlin_uint4b8_g128"): {1: (12.0, 8.0), 16: (12.5, 8.5), 256: (45.0, 30.0)},
    ("torch_fp8_rowwise", "scaled_mm", "fp8_e4m3_rowwise"): {1: (5.0, 4.0), 16: (5.5, 4.5), 256: (25.0, 18.0)},
}
KERNELS = {("tinygemm_gemv", 256): "w4a16_gemm_kernel"}
META = {"device": {"name": "Test GPU 80GB", "arch": "sm_90", "sm_count": 132, "driver_version": 13000,
                   "runtime_version": 12040, "datasheet": {"row": "TEST", "fp16": 1000.0, "bf16": 1000.0, "fp8": 2000.0,
                                                           "mem_bw_gbs": 4800.0}},
        "versions": {"tinygemm": "0.1.0", "torch": "2.13.0", "triton": "3.6.0", "vllm": None, "cuda": "13.0"},
        "measured_ceilings": {"copy_gbps": 4276.4, "matmul_tflops": 789.2},
        "command": "python -m tinygemm.bench --model llama3_8b", "points": 24, "wall_s": 3.5, "timed_kernel_s": 0.1}


def write_results(d) -> str:
    os.makedirs(d, exist_ok=True)
    w = results.CsvWriter(os.path.join(d, "results.csv"), append=False)
    for (b, op, wf), per_m in TIMES.items():
        bpw = 2.0 if op == "matmul" else 1.0 if op == "scaled_mm" else 0.5
        for M, ts in per_m.items():
            for (layer, (K, N)), t in zip(LAYERS.items(), ts):
                flop, nbytes = 2 * M * K * N, K * N * bpw + 2 * M * (K + N)
                tflops = flop / t / 1e6
                w.write({"op": op, "backend": b, "model": "Llama-3-8B", "layer": layer, "tp": 1, "M": M, "N": N, "K": K,
                         "act_dtype": "float16", "weight_format": wf, "group_size": 128, "time_us": t,
                         "tflops": tflops, "gbps": nbytes / t / 1e3, "pct_peak_flops": 100 * tflops / 1000,
                         "kernel_names": KERNELS.get((b, M), f"{b}_kernel"), "sm_clock_mhz": 1980, "clock_sagged": 0,
                         "status": "ok", "note": ""})
    w.write({"op": "matmul", "backend": "torch_matmul", "model": "Llama-3-8B", "layer": "qkv_proj", "tp": 1, "M": 512,
             "N": 6144, "K": 4096, "act_dtype": "float16", "status": "oom", "note": "out of memory"})
    w.close()
    results.write_json(os.path.join(d, "results.json"), META)
    return str(d)


def test_winners_speedups_and_floors_per_precision_class(tmp_path):
    d = write_results(tmp_path / "run")
    (t,) = model_tables(ok_rows(results.read_rows(os.path.join(d, "results.csv"))), META)
    assert t.winners("W4A16", 1) == ["tinygemm_gemv"] and t.winners("W4A16", 256) == ["marlin_uint4b8"]
    assert t.winners("FP8 W8A8", 1) == ["torch_fp8_rowwise"] and t.winners("fp16/bf16", 16) == ["torch_matmul"]
    c = t.cells[("tinygemm_gemv", 1)]
    assert c.sum_us == pytest.approx(15.0) and c.speedup == pytest.approx(50.0 / 15.0)
    # the floors: bytes at the measured bandwidth, FLOPs at the class's compute ceiling (FP8: 2x fp16 here)
    assert c.pct_byte_floor == pytest.approx(100 * c.bytes / 4276.4e3 / 15.0)
    f8 = t.cells[("torch_fp8_rowwise", 256)]
    assert f8.pct_compute_floor == pytest.approx(100 * f8.flop / (789.2 * 2 * 1e6) / 43.0)
    # the oom row is no term of any sum
    assert ("torch_matmul", 512) not in t.cells


def test_cliffs_summarized_per_backend_and_layer(tmp_path):
    from tinygemm import analyze

    d = write_results(tmp_path / "run")
    summary, worst, all_ = cliffs(analyze.load(os.path.join(d, "results.csv")))
    assert {(s["backend"], s["layer"]) for s in summary} == {("tinygemm_gemv", "qkv_proj"), ("tinygemm_gemv", "o_proj")}
    assert all(s["cliffs"] == 1 and s["kernel_switches"] == 1 and s["worst_M"] == 256 for s in summary)
    assert len(worst) == len(all_) == 2 and worst[0]["kernel_at"] == "w4a16_gemm_kernel"


def test_report_page_is_self_contained(tmp_path):
    d = write_results(tmp_path / "run")
    assert report.main([d]) == 0
    page = open(os.path.join(d, "report.html")).read()
    # no resource from the network: every script inline, plotly's once
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", page)
    assert page.count("plotly.js v") >= 1 and len(re.findall(r"<script type='text/javascript'>", page)) == 1
    assert "4,276 GB/s" in page and "789 TFLOP/s" in page and "python -m tinygemm.bench --model llama3_8b" in page
    assert "13.0, 12.4" in page  # driver and runtime as versions, not 13000
    assert "2.867e" not in page and "6144" in page
    assert "<details><summary>Per-layer detail (2 layers)" in page


# --- in a real browser ----------------------------------------------------------------------------

# Runs first in the page: records uncaught errors and console.error, then, once the page has loaded,
# writes what it found into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => __errors.push('error: ' + e.message));
window.addEventListener('unhandledrejection', e => __errors.push('rejection: ' + e.reason));
const __ce = console.error;
console.error = function() { __errors.push('console.error: ' + Array.from(arguments).join(' ')); __ce.apply(console, arguments); };
window.addEventListener('load', () => setTimeout(() => {
  const plots = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const drawn = plots.filter(p => p.querySelector('svg.main-svg') && p.querySelectorAll('.scatterlayer .trace').length > 0);
  const glance = Array.from(document.querySelectorAll('table.glance tr')).map(
      tr => Array.from(tr.children).map(td => td.textContent.trim()));
  const probe = document.createElement('pre');
  probe.id = '__probe';
  probe.textContent = JSON.stringify({errors: __errors, plots: plots.length, drawn: drawn.length, glance: glance});
  document.body.appendChild(probe);
}, 1000));
</script>"""


def chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(chromium() is None, reason="no Chromium here (.ci/run installs Debian's chromium package)")
def test_report_renders_in_a_headless_browser(tmp_path):
    d = write_results(tmp_path / "run")
    assert report.main([d]) == 0
    page = open(os.path.join(d, "report.html")).read()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
                        "--window-size=1400,1000", "--dump-dom", probed.as_uri()],
                       capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="__probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"the page did not finish loading; chromium said: {r.stderr[-2000:]}"
    import html

    got = json.loads(html.unescape(m.group(1)))
    assert got["errors"] == []
    # 2 latency + 2 utilization + 1 speedup + 1 roofline: every one drew its SVG and its lines
    assert got["plots"] == 6 and got["drawn"] == 6
    head, *body = got["glance"]
    assert head == ["precision class", "M=1", "M=16", "M=256"]
    cells = {row[0]: row[1:] for row in body}
    assert list(cells) == ["fp16/bf16", "W4A16", "FP8 W8A8"]
    assert [c.split()[0] for c in cells["W4A16"]] == ["tinygemm_gemv", "tinygemm_gemv", "marlin_uint4b8"]
    assert [c.split()[0] for c in cells["FP8 W8A8"]] == ["torch_fp8_rowwise"] * 3
    assert cells["W4A16"][0].endswith("3.33x")  # 50 us of fp16 over 15 us
