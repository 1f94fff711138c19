"""The profilers' CSV parsing and the aiter untuned-shape writer (CPU)."""

import csv

import pytest

from tinygemm import profile, shapes

# what `ncu --csv --log-file` writes: one line per kernel x metric (preamble lines are not CSV rows)
NCU_LOG = '''==PROF== Connected to process 123
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","123","tinygemm-bench-gemm","h","nvjet_sm90_hsh_64x8_64x16","1","7","(384, 1, 1)","(32, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","ns","13,632"
"0","123","tinygemm-bench-gemm","h","nvjet_sm90_hsh_64x8_64x16","1","7","(384, 1, 1)","(32, 1, 1)","0","9.0","Command line profiler metrics","dram__throughput.avg.pct_of_peak_sustained_elapsed","%","61.5"
"1","123","tinygemm-bench-gemm","h","splitKreduce_kernel","1","7","(256, 1, 1)","(8, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","us","2.1"
'''


def test_parse_ncu_csv_units_and_pivot():
    rows = profile.parse_ncu_csv(NCU_LOG)
    assert [r["kernel"] for r in rows] == ["nvjet_sm90_hsh_64x8_64x16", "splitKreduce_kernel"]
    assert rows[0]["gpu__time_duration.sum_us"] == pytest.approx(13.632)
    assert rows[1]["gpu__time_duration.sum_us"] == pytest.approx(2.1)
    assert rows[0]["dram__throughput.avg.pct_of_peak_sustained_elapsed"] == pytest.approx(61.5)


def test_parse_ncu_rejects_unknown_time_units():
    with pytest.raises(ValueError, match="unknown ncu time unit"):
        profile.parse_ncu_csv(NCU_LOG.replace('"ns","13,632"', '"fortnight","1"'))


def test_ncu_command_measures_the_card_as_it_is():
    cmd = profile.ncu_command(["prog", "--x"], ["gpu__time_duration.sum"], "log.csv")
    assert cmd[:5] == ["ncu", "--clock-control", "none", "--profile-from-start", "off"]
    assert cmd[-2:] == ["prog", "--x"]
    assert cmd[cmd.index("--replay-mode") + 1] == "kernel"
    rng = profile.ncu_command(["prog"], ["gpu__time_duration.sum"], "log.csv", replay="range")
    assert rng[rng.index("--replay-mode") + 1] == "range"
    with pytest.raises(ValueError, match="replay mode must be one of"):
        profile.ncu_command(["prog"], ["gpu__time_duration.sum"], "log.csv", replay="application")


def test_parse_rocprof_kernel_trace():
    text = "Kernel_Name,Start_Timestamp,End_Timestamp\nk1,1000,4000\nk2,5000,5500\n"
    rows = profile.parse_rocprof_csv(text)
    assert [(r["kernel"], r["gpu__time_duration.sum_us"]) for r in rows] == [("k1", 3.0), ("k2", 0.5)]


def test_profile_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        profile.main(["ncu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage" in err and "no program to profile" in err


def test_aiter_untuned_csv(tmp_path):
    out = tmp_path / "a8w8_untuned_gemm.csv"
    args = ["aiter", "--model", "Llama-4-Scout", "DeepSeek-V3", "--tp", "4", "8", "--m-list", "vllm", "-o", str(out)]
    assert shapes._main(args) == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["M", "N", "K", "q_dtype_w"]  # aiter's exact header
    body = [tuple(r) for r in rows[1:]]
    assert len(body) == len(set(body))  # deduplicated
    assert ("1", "2112", "7168", "torch.float8_e4m3fnuz") in body  # DeepSeek fused_qkv_a (replicated)
    assert {int(r[0]) for r in body} == set(shapes.vllm_capture_sizes(512))
    with pytest.raises(SystemExit):  # no overwrite without --force
        shapes._main(args)
    assert shapes._main(args + ["--force", "--kind", "bpreshuffle", "--q-dtype-w", "torch.float8_e4m3fn"]) == 0
    assert list(csv.reader(open(out)))[1][3] == "torch.float8_e4m3fn"
