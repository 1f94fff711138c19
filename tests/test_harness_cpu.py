"""The harness's statistics and policies (pure C++ in every build), and its Python-side errors."""

import csv
import math
import os

import numpy as np
import pytest

from tinygemm import _C, timing


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    v = rng.lognormal(size=101).tolist()
    s = _C.summarize(v)
    assert s.n == 101
    assert s.median == pytest.approx(np.median(v))
    assert s.p10 == pytest.approx(np.percentile(v, 10))
    assert s.p90 == pytest.approx(np.percentile(v, 90))
    assert s.mean == pytest.approx(np.mean(v))
    assert s.stdev == pytest.approx(np.std(v, ddof=1))
    assert s.min == min(v) and s.max == max(v)


def test_percentile_interpolates():
    assert _C.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    with pytest.raises(ValueError):
        _C.percentile([], 0.5)


def test_median_spread_shrinks_with_samples_and_is_infinite_when_tiny():
    rng = np.random.default_rng(1)
    small = _C.summarize(rng.normal(100, 1, 20).tolist()).median_rel_spread
    large = _C.summarize(rng.normal(100, 1, 2000).tolist()).median_rel_spread
    assert large < small
    assert math.isinf(_C.summarize([1.0, 2.0]).median_rel_spread)
    assert _C.summarize([5.0] * 50).median_rel_spread == 0.0


def test_stopping_rule():
    tight = _C.summarize([10.0 + 0.001 * i for i in range(20)])
    noisy = _C.summarize([10.0 * (1 + (i % 2)) for i in range(20)])
    # stops once the median is known well enough and min_samples is met
    assert _C.should_stop(tight, 0.01, 10, 1000, 1.0, 1000.0)
    assert not _C.should_stop(tight, 0.01, 30, 1000, 1.0, 1000.0)
    # keeps sampling a noisy measurement ... until the budget or max_samples runs out
    assert not _C.should_stop(noisy, 0.01, 10, 1000, 1.0, 1000.0)
    assert _C.should_stop(noisy, 0.01, 10, 1000, 2000.0, 1000.0)
    assert _C.should_stop(noisy, 0.01, 10, 20, 1.0, 1000.0)


def test_mode_policy():
    o = timing.options()
    assert _C.choose_mode(3.0, o) == _C.TimingMode.graph
    assert _C.choose_mode(50.0, o) == _C.TimingMode.event
    o = timing.options(mode="event")
    assert _C.choose_mode(3.0, o) == _C.TimingMode.event
    o = timing.options(mode="cupti")  # never switched to graphs: each sample is one launch's timestamps
    assert _C.choose_mode(3.0, o) == _C.TimingMode.cupti and _C.TimingMode.cupti.name == "cupti"
    o = timing.options()
    assert 10 <= _C.graph_launch_count(2.0, o) <= 500
    assert _C.graph_launch_count(2.0, o) > _C.graph_launch_count(8.0, o)
    o.graph_launches = 7
    assert _C.graph_launch_count(2.0, o) == 7


@pytest.mark.parametrize("kw, msg", [
    (dict(l2="warm"), "l2 must be"),
    (dict(mode="fast"), "mode must be"),
    (dict(target=0), "target must be"),
    (dict(min_samples=5, max_samples=2), "min_samples"),
])
def test_bad_options_are_value_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        timing.options(**kw)


def test_cupti_availability_is_reported_with_a_reason():
    ok, why = _C.cupti_available()
    assert isinstance(ok, bool) and (ok or why), (ok, why)
    if _C.gpu_backend != "cuda":
        assert not ok and ("NVIDIA-only" in why or "CPU-only" in why)


def test_measure_without_gpu_says_why():
    import tinygemm

    if tinygemm.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="GPU"):
        timing.measure(lambda: None)


def test_measure_argument_errors():
    with pytest.raises(ValueError, match="exactly one"):
        timing.measure()
    with pytest.raises(ValueError, match="exactly one"):
        timing.measure(lambda: None, fns=[lambda: None])


def test_gemv_heuristic_follows_the_measurements():
    # H200 (132 SMs), Llama-3-8B TP1, the current kernel: the heuristic's pick per layer and M is the
    # fastest configuration of the committed sweep (bench/tune_w4a16_gemv.py), or within 2 % of it
    path = os.path.join(os.path.dirname(__file__), "..", "bench", "results", "h200", "sweeps",
                        "tune_w4a16_gemv_6ccb5cb.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    points = {(int(r["K"]), int(r["N"]), int(r["M"])) for r in rows}
    assert len(points) == 12
    for K, N, M in points:
        times = {(int(r["n_tiles"]), int(r["warps"])): float(r["us"]) for r in rows
                 if (int(r["K"]), int(r["N"]), int(r["M"])) == (K, N, M)}
        c = _C.w4a16_gemv_config(M, N, K, 132, 9)
        pick = times[(c["n_tiles"], c["warps"])]
        assert pick <= 1.02 * min(times.values()), (K, N, M, (c["n_tiles"], c["warps"]), pick, min(times.values()))
    assert _C.w4a16_gemv_config(1, 4096, 4096, 132, 7)["impl"] == 2  # pre-Ampere: portable path


def test_timing_defaults_have_one_home():
    """tinygemm.timing's defaults are the C++ TimerOptions' initializers (timer.h)."""
    import inspect

    d = _C.TimerOptions()
    assert timing.DEFAULTS["min_samples"] == d.min_samples
    assert timing.DEFAULTS["target"] == d.target_rel_spread
    for fn in (timing.options, timing.check_options):
        sig = inspect.signature(fn)
        for name, value in timing.DEFAULTS.items():
            assert sig.parameters[name].default == value, (fn.__name__, name)
    o = timing.options()
    assert (o.min_samples, o.max_samples, o.budget_ms, o.warmup_ms) == (
        d.min_samples, d.max_samples, d.budget_ms, d.warmup_ms)
    assert timing.MAX_SAMPLES == _C.max_samples_limit == 1_000_000


@pytest.mark.parametrize("l2", [0, 40 << 20, 50 << 20, 96 << 20])
@pytest.mark.parametrize("nbytes", [1, 4096 * 4096 // 2, 14336 * 4096 // 2, 3 << 20, 100 << 20, 1 << 30])
def test_rotation_rule_is_one_rule(l2, nbytes):
    """rotation_copies gives the fewest copies rotation_is_cold calls cold (the label measure() and the
    microbenchmarks give), at least 2, at most the cap."""
    n = _C.rotation_copies(nbytes, l2)
    assert 2 <= n <= _C.max_rotation_copies
    if n < _C.max_rotation_copies:
        assert _C.rotation_is_cold(n, nbytes, l2)
    if n > 2:
        assert not _C.rotation_is_cold(n - 1, nbytes, l2)
    assert _C.rotation_copies(nbytes, l2, 3) <= 3
    assert not _C.rotation_is_cold(1, nbytes, l2)


def test_rotation_rule_values_and_flush_size():
    l2 = 50 << 20  # H100
    assert _C.rotation_copies(l2, l2) == 3  # (3 - 1) x L2 = 2 x L2: exactly enough
    assert _C.rotation_copies(l2 + 1, l2) == 3
    assert _C.rotation_copies(2 * l2, l2) == 2
    assert _C.rotation_copies(1 << 20, l2) == 64  # capped: 101 wanted
    assert _C.default_flush_bytes(l2) == 2 * l2
    assert _C.default_flush_bytes(0) == 32 << 20
    with pytest.raises(ValueError, match="bytes_per_call must be > 0"):
        _C.rotation_copies(0, l2)


def test_gemv_impl_is_named():
    assert [i.name for i in _C.GemvImpl] == ["auto", "mma", "simt", "tma"]
    assert _C.GemvImpl.mma == 1 and _C.GemvImpl.simt == 2  # the old integers still mean the same
    assert _C.w4a16_gemv_config(1, 4096, 4096, 132, 9)["impl"] is _C.GemvImpl.mma
    assert _C.w4a16_gemv_config(1, 4096, 4096, 132, 7)["impl"].name == "simt"
    # the bulk-copy GEMV ('tma') runs only when named: measured slower than mma on every layer
    for M in (1, 8, 16, 17):
        assert _C.w4a16_gemv_config(M, 4096, 4096, 132, 9, "tinygemm-w4-sm90")["impl"].name == "mma"
    bads = (("tensor", "unknown GEMV implementation 'tensor'"), (4, "impl must be"), (1.0, "impl must be"))
    for bad, msg in bads:
        with pytest.raises(ValueError, match=msg):  # rejected before any device work
            _C.w4a16_gemv(0, 0, 0, 0, 0, 1, 32, 64, -1, "float16", 0, 0, 0, bad)


def test_gemv_heuristic_picks_compiled_configurations():
    """Every configuration the heuristic picks is one the tuning script sweeps (the compiled list)."""
    configs = {(c["n_tiles"], c["warps"]) for c in _C.w4a16_gemv_configs()}
    assert configs == {(1, 4), (1, 8), (1, 16), (2, 4), (2, 8), (4, 4), (4, 8)}
    for M in (1, 8, 9, 16, 64):
        for N in (256, 4096, 6144, 14336, 28672, 57344):
            for K in (256, 2048, 4096, 14336):
                for sms in (20, 108, 132):
                    c = _C.w4a16_gemv_config(M, N, K, sms, 9)
                    assert (c["n_tiles"], c["warps"]) in configs, (M, N, K, sms, c)
                    c = _C.w4a16_gemv_config(M, N, K, sms, 9, "tinygemm-w4-sm90")
                    if c["impl"].name == "tma":
                        assert (c["n_tiles"], c["warps"]) in set(_C.w4a16_gemv_tma_shapes()), (M, N, K, sms, c)


def test_sample_lead_in_covers_twice_the_host_time_with_what_is_queued_ahead():
    """flush + spin (+ the batch's previous sample) >= 2 x the host's time per sample, within the
    clamp: the timed region never waits on the host (timer_policy.cpp says why)."""
    lo, hi = _C.lead_in_us_range
    assert (lo, hi) == (5.0, 2000.0)
    # no flush, no credit: twice the host time (the old rule)
    assert _C.sample_lead_in_us(40.0, 0.0, 0.0) == 80.0
    # the flush queued just before the spin counts: 2 x 40 - 30
    assert _C.sample_lead_in_us(40.0, 30.0, 0.0) == 50.0
    # later in a batch the previous sample counts too; never below the floor
    assert _C.sample_lead_in_us(40.0, 30.0, 20.0) == 30.0
    assert _C.sample_lead_in_us(40.0, 30.0, 60.0) == lo
    assert _C.sample_lead_in_us(0.0, 0.0, 0.0) == lo
    # a slow callable: capped
    assert _C.sample_lead_in_us(5000.0, 30.0, 0.0) == hi
    for host in (0.5, 3.0, 40.0, 300.0, 900.0):
        for flush in (0.0, 30.0):
            for credit in (0.0, 10.0, 500.0):
                spin = _C.sample_lead_in_us(host, flush, credit)
                assert lo <= spin <= hi
                assert flush + spin + credit >= 2 * host or spin == hi


def test_estimate_lead_in_scales_with_the_first_calls_host_time():
    lo, hi = _C.estimate_lead_in_us_range
    assert (lo, hi) == (10.0, 500.0)
    assert _C.estimate_lead_in_us(3, 40.0) == 240.0  # 2 x 3 calls x 40 us
    assert _C.estimate_lead_in_us(1, 40.0) == 80.0
    assert _C.estimate_lead_in_us(3, 0.1) == lo
    assert _C.estimate_lead_in_us(3, 1e6) == hi  # a first call that compiled: capped at the old 0.5 ms
    assert _C.estimate_lead_in_us(0, 40.0) == 80.0  # calls < 1 count as one


def test_warmup_runs_fit_in_warmup_ms_by_gpu_or_host_time():
    cap = _C.max_warmup_runs
    assert cap == 200
    assert _C.warmup_runs(2.0, 100.0, 20.0) == 20  # GPU-bound: 2 ms / 100 us
    assert _C.warmup_runs(2.0, 10.0, 40.0) == 50   # host-bound: 2 ms / 40 us of enqueueing
    assert _C.warmup_runs(2.0, 0.01, 0.01) == cap  # under 1 us counts as 1 us: 2000, capped
    assert _C.warmup_runs(0.0, 50.0, 10.0) == 1    # at least one run
    assert _C.warmup_runs(10.0, 5000.0, 10.0) == 2
    # the estimate's back-to-back timed calls count: what remains, or none once they filled it
    assert _C.warmup_runs(2.0, 100.0, 20.0, 300.0) == 17
    assert _C.warmup_runs(2.0, 3000.0, 20.0, 3000.0) == 0
    assert _C.warmup_runs(2.0, 3000.0, 20.0, 0.0) == 1  # nothing done yet: still one run


def test_estimate_times_fewer_calls_only_when_the_first_shows_a_long_kernel():
    one = _C.one_call_us
    assert one == 100.0
    # the first call's events span its host time, the launch and its GPU time: the excess is GPU time
    assert _C.estimate_timed_calls(3, 5000.0, 300.0) == 1
    assert _C.estimate_timed_calls(3, 100.0 + one, 100.0) == 1
    assert _C.estimate_timed_calls(3, 100.0 + one - 1, 100.0) == 3
    # and where the host time is under 5 % of that, the span is the estimate: no call timed
    assert _C.estimate_timed_calls(3, 5000.0, 100.0) == 0
    assert _C.estimate_timed_calls(3, 2100.0, 100.0) == 0 and _C.estimate_timed_calls(3, 2099.0, 100.0) == 1
    # a slow first call (lazy initialisation, a Python callable) whose kernel is short: all three
    assert _C.estimate_timed_calls(3, 2_000_000.0, 1_999_950.0) == 3
    assert _C.estimate_timed_calls(1, 50.0, 10.0) == 1 and _C.estimate_timed_calls(0, 50.0, 10.0) == 1
