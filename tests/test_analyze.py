"""Analysis rules on small hand-made profiles with known answers; plots and the report render (CPU)."""

import csv
import os

import pytest

from tinygemm import analyze, plot, report, results


def tidy(tmp_path, points, name="results.csv"):
    """points: [(backend, M, time_us, util[, kernel])] on one shape K=N=4096."""
    path = tmp_path / name
    w = results.CsvWriter(str(path), append=False)
    for p in points:
        b, M, t, u = p[:4]
        w.write({"op": "matmul", "backend": b, "model": "m", "layer": "l", "tp": 1, "M": M, "N": 4096, "K": 4096,
                 "act_dtype": "float16", "group_size": 128, "time_us": t, "tflops": 2 * M * 4096 * 4096 / t / 1e6,
                 "gbps": 40.0, "pct_peak_flops": 100 * u, "kernel_names": p[4] if len(p) > 4 else "", "status": "ok"})
    w.close()
    return str(path)


def test_cliff_rule_and_kernel_switch(tmp_path):
    # utilization rises, then M=48 drops to 0.5 of the best smaller (M=32: 0.8) with a kernel switch
    path = tidy(tmp_path, [("t", 16, 10, 0.4, "k1"), ("t", 32, 10, 0.8, "k1"), ("t", 48, 24, 0.5, "k2"),
                           ("t", 64, 20, 0.79, "k2")])
    cl = analyze.find_cliffs(analyze.load(path), 0.85)
    assert [c["M"] for c in cl] == [48]
    assert cl[0]["best_smaller_M"] == 32 and cl[0]["kernel_switch"] and cl[0]["kernel_before"] == "k1"
    assert analyze.find_cliffs(analyze.load(path), 0.6) == []
    with pytest.raises(ValueError):
        analyze.find_cliffs(analyze.load(path), 1.5)


def test_split_finds_the_equal_halves_when_best(tmp_path):
    # t(64) = 100 is a cliff; 32 + 32 = 60 beats 16 + 48 = 10 + 70 = 80
    path = tidy(tmp_path, [("t", 16, 10, 0.6), ("t", 32, 30, 0.9), ("t", 48, 70, 0.55), ("t", 64, 100, 0.5)])
    pts = analyze.load(path)
    cl = analyze.find_cliffs(pts, 0.85)
    sp = {r["M"]: r for r in analyze.check_split(pts, cl, 0.9)}
    assert (sp[64]["b1"], sp[64]["b2"], sp[64]["split_us"]) == (32, 32, 60) and sp[64]["opportunity"]
    assert sp[48]["b1"] == 16 and sp[48]["b2"] == 32 and sp[48]["split_us"] == 40 and sp[48]["opportunity"]


def test_split_not_an_opportunity_above_threshold(tmp_path):
    path = tidy(tmp_path, [("t", 16, 10, 0.9), ("t", 32, 19, 0.5)])
    pts = analyze.load(path)
    sp = analyze.check_split(pts, analyze.find_cliffs(pts), 0.9)
    assert sp[0]["split_us"] == 20 and not sp[0]["opportunity"]


def test_seed_format_is_read(tmp_path):
    p = tmp_path / "torchgemm_NVIDIA_GeForce_RTX_4090_torch_2.5.1+cu124_K4096_N14336_dtypefloat16.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch", "kernel_time", "flops", "utils", "kernel_name"])
        for b, t, u in [(4, 0.01, 0.3), (8, 0.011, 0.6), (12, 0.03, 0.3)]:
            w.writerow([b, t, u * 165, u, "ampere_h16816gemm"])
    pts = analyze.load(str(p))
    assert pts[0].shape[3:5] == (4096, 14336) and pts[0].time_us == pytest.approx(10.0)
    assert [c["M"] for c in analyze.find_cliffs(pts)] == [12]


def test_foreign_csv_is_an_error_naming_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        analyze.load(str(p))


def test_compare_two_csvs_and_two_backends(tmp_path):
    a = tidy(tmp_path, [("x", 1, 10, 0.1), ("x", 16, 20, 0.2), ("x", 256, 100, 0.5)], "a.csv")
    b = tidy(tmp_path, [("x", 1, 5, 0.2), ("x", 16, 10, 0.4), ("x", 256, 200, 0.25)], "b.csv")
    r = analyze.compare(analyze.load(a), analyze.load(b))
    assert r["overall"] == pytest.approx((2 * 2 * 0.5) ** (1 / 3))
    assert r["by_m_range"]["M 1-16"]["geomean"] == pytest.approx(2.0)
    assert r["slowdowns"] == {"count": 1, "mean": 0.5, "worst": 0.5}
    both = tidy(tmp_path, [("x", 1, 10, 0.1), ("y", 1, 2.5, 0.4)], "both.csv")
    pts = analyze.load(both)
    r = analyze.compare([p for p in pts if p.backend == "x"], [p for p in pts if p.backend == "y"])
    assert r["overall"] == pytest.approx(4.0)


AITER_VARIANTS = [
    "gfx,cu_num,M,N,K,q_dtype_w,kernelId,splitK,us,kernelName,tflops,bw,errRatio",
    "cu_num,M,N,K,q_dtype_w,kernelId,splitK,us,kernelName,tflops,bw,errRatio",
    "cu_num,M,N,K,kernelId,splitK,us,kernelName,errRatio,tflops,bw",
    "cu_num,M,N,K,kernelId,splitK,us,kernelName",
    "M,N,K,kernelId,splitK,us,kernelName",
    "gfx,cu_num,M,N,K,q_dtype_w,libtype,kernelId,splitK,us,kernelName,tflops,bw,errRatio",
]


@pytest.mark.parametrize("header", AITER_VARIANTS)
def test_aiter_dedup_reads_every_header_variant(tmp_path, header):
    cols = header.split(",")

    def row(M, us, kid):
        vals = {"gfx": "gfx942", "cu_num": 304, "M": M, "N": 1280, "K": 8192, "q_dtype_w": "torch.float8_e4m3fnuz",
                "libtype": "ck", "kernelId": kid, "splitK": 0, "us": us, "kernelName": f"k{kid}", "tflops": 1,
                "bw": 1, "errRatio": 0}
        return ",".join(str(vals[c]) for c in cols)

    p = tmp_path / "tuned.csv"
    p.write_text("\n".join([header, row(1, 20.5, 1), row(1, 18.0, 2), row(1, -1, 3), row(2, 21.0, 4)]) + "\n")
    header_read, rows = analyze.read_aiter(str(p))
    best = analyze.dedup_aiter(header_read, rows)
    assert [(r["M"], r["kernelId"]) for r in best] == [("1", "2"), ("2", "4")]
    out = tmp_path / "dedup.csv"
    assert analyze.main(["dedup", str(p), "-o", str(out)]) == 0
    assert open(out).readline().strip() == header
    with pytest.raises(SystemExit):  # exists: no overwrite without --force
        analyze.main(["dedup", str(p), "-o", str(out)])


def test_tuned_compare_per_model(tmp_path):
    a = [{"M": "1", "N": "6144", "K": "4096", "us": "10"}, {"M": "1", "N": "999", "K": "64", "us": "10"}]
    b = [{"M": "1", "N": "6144", "K": "4096", "us": "5"}, {"M": "1", "N": "999", "K": "64", "us": "20"}]
    r = analyze.tuned_compare(a, b, ["Llama-3-8B"], [1])
    assert r["by_model"]["Llama-3-8B"]["geomean"] == pytest.approx(2.0)
    assert r["overall"] == pytest.approx(1.0)


def test_plots_and_report_render(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    pts = []
    for b, scale in [("torch_matmul", 1.0), ("dequant_matmul", 1.3), ("tinygemm_gemv", 0.4)]:
        pts += [(b, M, scale * (10 + M / 8), 0.1 + 0.1 * (M % 5)) for M in (1, 2, 4, 8, 16, 32)]
    tidy(d, pts)
    results.write_json(str(d / "results.json"), {"device": {"name": "test GPU"}, "command": "x",
                                                  "measured_ceilings": {"copy_gbps": 3000, "matmul_tflops": 790}})
    files = plot.all_plots(str(d / "results.csv"), str(tmp_path / "plots"), {"copy_gbps": 3000, "matmul_tflops": 790})
    names = {os.path.basename(f) for f in files}
    assert {"utilization_vs_batch.png", "latency_vs_m.svg", "int4_speedup_vs_n.png", "dequant_breakdown.png",
            "roofline.png"} <= names
    assert all(os.path.getsize(f) > 1000 for f in files)
    assert report.main([str(d)]) == 0
    page = open(d / "report.html").read()
    # the report's plots are interactive (plotly, drawn in the browser; tinygemm.plot keeps the PNGs)
    assert "plotly-graph-div" in page and "test GPU" in page and "Efficiency cliffs" in page


def test_layer_sums_fastest_and_prepare_rows(tmp_path):
    """Sums need every layer of the model; prepare rows are listed apart and never read as GEMMs."""
    def row(b, layer, M, t, op="gemm"):
        return {"op": op, "backend": b, "model": "m", "tp": "1", "layer": layer, "M": M, "K": 64, "N": 64,
                "act_dtype": "float16", "group_size": "128",
                "time_us": t, "status": "ok", "weight_format": "f", "peak_mem_mb": 1.0, "note": "GPTQ -> f"}
    rows = [row("a", "x", 1, 2.0), row("a", "y", 1, 3.0), row("b", "x", 1, 1.0), row("b", "y", 1, 1.5),
            row("c", "x", 1, 0.1),  # c lacks layer y: no sum
            row("b", "x", 0, 900.0, op="prepare")]
    sums, prep = analyze.layer_sums(rows)
    got = {r["backend"]: (r["sum_us"], r["vs_fastest"]) for r in sums}
    assert got == {"a": (5.0, 2.0), "b": (2.5, 1.0)}
    assert [r["backend"] for r in prep] == ["b"]
    md = analyze.sums_markdown(sums, prep)
    assert "**2.5**" in md and "| 0.900 |" in md
    path = tmp_path / "r.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=results.COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    assert all(p.M != 0 for p in analyze.load(str(path)))  # the prepare row is not a GEMM point
    assert analyze.main(["sums", str(path), "-o", str(tmp_path / "s.md")]) == 0
