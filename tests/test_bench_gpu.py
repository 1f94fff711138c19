"""A short real sweep over every backend available on this machine, checked for sane numbers."""

import math

import pytest

from tinygemm import gpus, results
from tinygemm.backends import registry
from tinygemm.bench.__main__ import main

pytestmark = pytest.mark.gpu


def test_short_run_over_every_available_backend(tmp_path):
    rc = main(["--kn", "4096,4096", "--batches", "1,16,128", "--backends", "all", "--out", str(tmp_path),
               "--quiet", "--max-samples", "40", "--budget-ms", "200"])
    assert rc == 0
    rows = results.read_rows(str(tmp_path / "results.csv"))
    reg = registry()
    available = {n for n, b in reg.items() if b.unavailable() is None}
    assert {r["backend"] for r in rows} == available
    import torch

    peak = gpus.peaks(torch.cuda.get_device_name())
    for r in rows:
        assert r["status"] in ("ok", "unsupported"), (r["backend"], r["M"], r["status"], r["note"])
        if r["status"] == "unsupported":
            assert r["note"]
            continue
        t = float(r["time_us"])
        assert 0.5 < t < 10_000 and int(r["samples"]) >= 3, r
        assert float(r["max_rel_err"]) <= reg[r["backend"]].tolerance, r
        assert not math.isnan(float(r["gbps"]))
        if peak and r["pct_peak_flops"]:
            assert float(r["pct_peak_flops"]) < 105, r  # nothing runs above the datasheet
