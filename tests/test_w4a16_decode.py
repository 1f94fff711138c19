"""bench/w4a16_decode.py's summary and bars (issues 11 and 12), on a small hand-made results directory."""

import csv
import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wd():
    spec = importlib.util.spec_from_file_location("w4a16_decode", os.path.join(ROOT, "bench", "w4a16_decode.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    yield mod
    del sys.modules[spec.name]


LAYERS = {"qkv_proj": (4096, 6144), "down_proj": (14336, 4096)}
# (backend, M) -> (qkv_proj us, down_proj us); None = not measured
TIMES = {
    ("tinygemm_auto", 1): (5.0, 10.0), ("marlin_uint4b8", 1): (6.0, 11.0), ("torch_matmul", 1): (15.0, 30.0),
    ("tinygemm_auto", 16): (7.0, 12.0), ("marlin_uint4b8", 16): (6.5, 13.0), ("torch_matmul", 16): (15.0, 15.0),
    ("tinygemm_auto", 32): (20.0, 20.0), ("marlin_uint4b8", 32): (25.0, 25.0),
    ("machete_uint4b8", 32): (22.0, 24.0),
    ("tinygemm_auto", 128): (30.0, 30.0), ("torch_matmul", 128): (35.0, 35.0),
    ("machete_uint4b8", 128): (40.0, 40.0),
    ("tinygemm_auto", 512): (100.0, 100.0), ("torch_matmul", 512): (90.0, 100.0), ("gemlite", 512): (50.0, None),
}


def write_fixture(d, command="python3 -m tinygemm.bench --model Llama-3-8B --tp 1 --group-size 128"):
    cols = ["op", "backend", "model", "layer", "tp", "M", "N", "K", "act_dtype", "group_size", "time_us", "status",
            "note"]
    with open(os.path.join(d, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for (b, M), per in TIMES.items():
            for (lay, (K, N)), t in zip(LAYERS.items(), per):
                row = dict(op="w4a16", backend=b, model="Llama-3-8B", layer=lay, tp=1, M=M, N=N, K=K,
                           act_dtype="float16", group_size=128, time_us=t if t is not None else "",
                           status="ok" if t is not None else "error", note="" if t is not None else "boom")
                w.writerow(row)
    meta = {"command": command, "device": {"name": "NVIDIA H200"}, "unavailable": {"torch_int4pack": "not here"},
            "measured_ceilings": {"copy_gbps": 4000.0, "matmul_tflops": 800.0}}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(meta, f)


def test_floors(wd):
    # qkv_proj at M = 1: 4096*6144/2 weight bytes + 32*6144 fp16 scales + x (4096 * 2) + y (6144 * 2)
    assert wd.byte_floor_us(4096, 6144, 1, 4000.0) == pytest.approx(12_996_608 / 4e6)
    # zero points add 4 bits per group and column; per channel (-1) is one group
    assert wd.byte_floor_us(4096, 6144, 1, 4000.0, 128, asym=True) == pytest.approx((12_996_608 + 98_304) / 4e6)
    per_channel = 12_582_912 + 6144 * 2 + 4096 * 2 + 6144 * 2
    assert wd.byte_floor_us(4096, 6144, 1, 4000.0, -1) == pytest.approx(per_channel / 4e6)
    assert wd.compute_floor_us(4096, 6144, 16, 800.0) == pytest.approx(2 * 16 * 6144 * 4096 / 800e6)


def test_sums_floors_and_bars(wd, tmp_path):
    write_fixture(tmp_path)
    res = wd.load(str(tmp_path))
    assert res.layers[("Llama-3-8B", 1)] == [("qkv_proj", 4096, 6144), ("down_proj", 14336, 4096)]
    assert res.batches == [1, 16, 32, 128, 512] and not res.asym and res.group_size == 128
    assert res.total("Llama-3-8B", 1, "tinygemm_auto", 16) == pytest.approx(19.0)
    assert res.total("Llama-3-8B", 1, "gemlite", 512) is None       # a layer failed: no sum
    floor16 = (13_303_808 + 30_867_456) / 4e6
    assert res.byte_floor("Llama-3-8B", 1, 16) == pytest.approx(floor16)

    v = {(x.issue, x.M, x.bar.split(":")[0] if x.issue == 12 else ""): x for x in wd.evaluate_bars(res)}
    by = lambda issue, M, bar="": v[(issue, M, bar)]  # noqa: E731
    # issue 11: vs the fastest peer, summed
    assert by(11, 1, "").status == "MET" and "17.0 us" in by(11, 1, "").detail           # Marlin 17 vs 15
    assert by(11, 16, "").status == "MET"                                                 # 19 vs Marlin 19.5
    assert by(11, 32, "").status == "MISSED" and "Machete 46.0" in by(11, 32, "").detail  # 40/46 = 0.87 > 0.85
    assert by(11, 128, "").status == "MET" and "torch fp16 70.0" in by(11, 128, "").detail  # 60/70 = 0.857 <= 0.9
    v512 = by(11, 512, "")
    assert v512.status == "MISSED" and "1.05x" in v512.detail                             # 200 vs fp16 190
    assert "gemlite" in v512.detail and "torch int4pack" in v512.detail                   # named as not measured
    # issue 12: summed vs the byte floor, and every layer vs Marlin
    assert by(12, 1, "M = 1, 2, 4, 8").status == "MET"                                    # 15 / 10.83 = 1.39
    assert by(12, 16, "M = 16").status == "MISSED" and f"{19 / floor16:.2f}x" in by(12, 16, "M = 16").detail
    assert by(12, 1, "every layer faster than Marlin").status == "MET"
    m16 = by(12, 16, "every layer faster than Marlin")
    assert m16.status == "MISSED" and "not faster: qkv_proj" in m16.detail
    assert not any(x.issue == 12 and x.M and x.M > 16 for x in wd.evaluate_bars(res))


def test_summarize_only_writes_the_report(wd, tmp_path, capsys):
    write_fixture(tmp_path)
    assert wd.main(["--out", str(tmp_path), "--summarize-only"]) == 0
    md = (tmp_path / "w4a16_decode.md").read_text()
    assert "**MISSED** Llama-3-8B TP1, M = 32" in md and "**MET** Llama-3-8B TP1, M = 1" in md
    assert "torch_int4pack: not here" in md                                   # skipped backends are named
    assert "| gemlite | 50.00 | - | - | - | - |" in md                         # a missing layer: no sum
    assert "| tinygemm_auto | 5.00 | 10.00 | **15.0** |" in md
    assert "| gemlite | Llama-3-8B TP1 | down_proj | 512 | error | boom |" in md    # rows not ok, with why
    assert "| tinygemm_auto | **15.0** | **19.0** | **40.0** | **60.0** | 200.0 |" in md   # the overview of sums
    assert "issue 11" in capsys.readouterr().out


def test_asym_is_read_from_the_command(wd, tmp_path):
    write_fixture(tmp_path, command="python3 -m tinygemm.bench --model Llama-3-8B --asym")
    res = wd.load(str(tmp_path))
    assert res.asym
    assert res.byte_floor("Llama-3-8B", 1, 1, "qkv_proj") == pytest.approx((12_996_608 + 98_304) / 4e6)
    # the zero-point peers are the ones compared with
    assert "marlin_uint4" in wd.peer_names(True) and "machete_uint4" in wd.default_backends(True)


def test_bad_inputs(wd, tmp_path, capsys):
    assert wd.main(["--out", str(tmp_path), "--summarize-only"]) == 2     # nothing there
    assert "results.csv does not exist" in capsys.readouterr().err
    write_fixture(tmp_path)
    # a second run into the same directory neither overwrites nor starts without --force / --resume
    before = (tmp_path / "results.csv").read_text()
    assert wd.main(["--out", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "results.csv").read_text() == before
    with pytest.raises(SystemExit) as e:
        wd.main(["--out", str(tmp_path), "--models", "Llama-3-8B"])       # no :TP
    assert e.value.code == 2
    meta = json.loads((tmp_path / "results.json").read_text())
    meta["measured_ceilings"] = {"copy_gbps": 4000.0}
    (tmp_path / "results.json").write_text(json.dumps(meta))
    assert wd.main(["--out", str(tmp_path), "--summarize-only"]) == 2
    assert "lacks matmul_tflops" in capsys.readouterr().err


def test_a_resumed_run_for_another_model_joins_the_earlier_ones(wd, tmp_path):
    """One model per invocation (--resume for the second): OUT/results.csv then holds both models'
    rows, the first run's first, and OUT/results.json is the first run's."""
    out = tmp_path / "bar"
    first, second = out / "Llama-3-8B-tp1", out / "Llama-3-70B-tp4"
    for d, model in ((first, "Llama-3-8B"), (second, "Llama-3-70B")):
        d.mkdir(parents=True)
        write_fixture(str(d), command=f"python3 -m tinygemm.bench --model {model}")
        rows = list(csv.DictReader(open(d / "results.csv")))
        for r in rows:
            r["model"] = model
        with open(d / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    (out / "notes").mkdir()  # a directory without results.csv is not a run
    parts = wd.with_earlier_parts(str(out), [str(second)])
    assert parts == [str(first), str(second)]
    wd.join_parts(parts, str(out))
    models = [r["model"] for r in csv.DictReader(open(out / "results.csv"))]
    assert models == ["Llama-3-8B"] * (len(models) // 2) + ["Llama-3-70B"] * (len(models) // 2)
    assert "Llama-3-8B" in json.load(open(out / "results.json"))["command"]
    # the same run again: no part twice
    assert wd.with_earlier_parts(str(out), [str(first), str(second)]) == [str(first), str(second)]
