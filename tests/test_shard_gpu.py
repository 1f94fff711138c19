"""Sharded sweeps on a GPU: two shards run one after the other and merged give the unsharded run's rows,
with times within the run-to-run spread; --gpus runs real workers and merges them."""

import json
import math
import os
import subprocess
import sys

import pytest

from tinygemm import results
from tinygemm.bench.__main__ import main

pytestmark = pytest.mark.gpu

ARGS = ["--kn", "4096,4096", "--kn", "4096,14336", "--batches", "1,8,16,64,256",
        "--backends", "torch_matmul,tinygemm_gemv", "--quiet", "--max-samples", "40", "--budget-ms", "200"]


def by_key(path):
    return {results.row_key(r): r for r in results.read_rows(str(path))}


def test_two_shards_in_turn_merge_to_the_unsharded_rows(tmp_path):
    assert main([*ARGS, "--out", str(tmp_path / "whole")]) == 0
    for i in (0, 1):
        assert main([*ARGS, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
        assert json.load(open(tmp_path / f"s{i}" / "results.json"))["shard"]["index"] == i
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    whole, merged = by_key(tmp_path / "whole" / "results.csv"), by_key(tmp_path / "m" / "results.csv")
    assert set(merged) == set(whole) and len(whole) == 2 * 5 * 2
    assert json.load(open(tmp_path / "m" / "results.json"))["complete"]
    ratios = []
    for k, w in whole.items():
        m = merged[k]
        assert m["status"] == w["status"], (k, m["note"], w["note"])
        if w["status"] != "ok":
            continue
        tw, tm = float(w["time_us"]), float(m["time_us"])
        # the run-to-run spread: each point within the wider of 25 % and twice either run's p10-p90 band
        band = 2 * max(float(w["time_us_p90"]) - float(w["time_us_p10"]), float(m["time_us_p90"]) - float(m["time_us_p10"]))
        assert abs(tm - tw) <= max(0.25 * tw, band), (k, tw, tm)
        ratios.append(tm / tw)
    assert ratios and abs(math.exp(sum(map(math.log, ratios)) / len(ratios)) - 1) < 0.10


def test_gpus_launcher_with_real_workers(tmp_path):
    """--gpus on this host's first GPU (and on every GPU when there are several): real bench workers, merged."""
    import torch

    gpus = "all" if torch.cuda.device_count() > 1 else "0"
    r = subprocess.run([sys.executable, "-m", "tinygemm.bench", *ARGS, "--gpus", gpus, "--out", str(tmp_path / "g")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    n = torch.cuda.device_count() if gpus == "all" else 1
    shards = sorted(d for d in os.listdir(tmp_path / "g") if d.startswith("shard-"))
    assert shards == sorted(f"shard-{i}-of-{n}" for i in range(n))
    rows = results.read_rows(str(tmp_path / "g" / "results.csv"))
    assert len(rows) == 2 * 5 * 2 and all(r["status"] == "ok" for r in rows)
    meta = json.load(open(tmp_path / "g" / "results.json"))
    assert meta["complete"] and len(meta["merged_from"]) == n
