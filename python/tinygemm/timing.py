"""Time GPU work launched from Python with the C++ harness (tinygemm._C.Timer).

The method is the one the microbenchmark binaries use: device events, warm-up, cold L2 by default
(a read of 2x the L2 between samples, untimed), CUDA/HIP graphs for launches under ~10 us, adaptive
repetitions until the median is known to 1 %, the SM clock read while the samples run. mode="cupti"
times each sample by the GPU's own kernel timestamps (CUPTI) instead of events.

    t = tinygemm.timing.measure(lambda: torch.matmul(x, w, out=y))
    t.median_us, t.mode, t.samples

Graph mode replays many launches at once, so with a single callable only the first launch of each
replay sees a cold L2. Pass several callables that read *different* buffers (`fns=[...]`) and the
bytes each reads (`bytes_per_call`): the launches then rotate through them, and the result is
labelled "cold" only when the rotation reads more than twice the L2 between reuses of a buffer.

`measure(..., spent={})` also says where its own wall time went (SPENT: the mode's estimate, graph
capture, warm-up, the timed samples, the flushes between them ...), added into the dict: what a
sweep's cost breakdown sums.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch

from . import _C
from ._ext import require_gpu, stream_handle

_TIMERS: dict[int, object] = {}
# auto: graphs under ~10 us, events above. cupti: each sample is the span of the GPU's own timestamps
# of the kernels it launched (CUPTI; what Nsight Systems reports), without the ~2 us of
# launch latency that events include.
MODES = ("auto", "event", "graph", "cupti")


@dataclass(frozen=True)
class Timing:
    median_us: float
    min_us: float
    mean_us: float
    p10_us: float
    p90_us: float
    stdev_us: float
    samples: int
    rel_spread: float       # half-width of the median's ~95 % interval, over the median
    mode: str               # "event", "graph" or "cupti"
    l2: str                 # "cold", "hot", or "cold-first" (graph mode without enough rotation)
    ops_per_sample: int
    sm_clock_mhz_min: float
    sm_clock_mhz_max: float
    clock_sagged: bool
    clock_slowdown: str     # why NVML says the clock was held down during the samples ("sw_power_cap", ...)
    clock_source: str

    def as_dict(self) -> dict:
        return asdict(self)


def _defaults() -> dict:
    d = _C.TimerOptions()
    return dict(target=d.target_rel_spread, min_samples=d.min_samples, max_samples=d.max_samples,
                budget_ms=d.budget_ms, warmup_ms=d.warmup_ms, graph_threshold_us=d.graph_threshold_us,
                graph_launches=d.graph_launches, flush_bytes=d.flush_bytes)


# The harness's defaults, by options()' keyword: read from the C++ TimerOptions (csrc/harness/timer.h),
# their one home, which the microbenchmark binaries' flags read too.
DEFAULTS = _defaults()
_D = DEFAULTS


def options(
    l2: str = "cold",
    mode: str = "auto",
    target: float = _D["target"],
    min_samples: int = _D["min_samples"],
    max_samples: int = _D["max_samples"],
    budget_ms: float = _D["budget_ms"],
    warmup_ms: float = _D["warmup_ms"],
    graph_threshold_us: float = _D["graph_threshold_us"],
    graph_launches: int = _D["graph_launches"],
    flush_bytes: int = _D["flush_bytes"],
) -> "_C.TimerOptions":
    """Harness options, validated with errors that name the bad value."""
    if l2 not in ("cold", "hot"):
        raise ValueError(f"l2 must be 'cold' or 'hot'; got {l2!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in MODES)}; got {mode!r}")
    check_options(target, min_samples, max_samples, budget_ms, warmup_ms, graph_threshold_us, graph_launches,
                  flush_bytes)
    o = _C.TimerOptions()
    o.l2 = getattr(_C.L2Mode, l2)
    o.mode = getattr(_C.TimingMode, mode)
    o.target_rel_spread = target
    o.min_samples = min_samples
    o.max_samples = max_samples
    o.budget_ms = budget_ms
    o.warmup_ms = warmup_ms
    o.graph_threshold_us = graph_threshold_us
    o.graph_launches = graph_launches
    o.flush_bytes = flush_bytes
    return o


MAX_SAMPLES = _C.max_samples_limit  # kMaxSamplesLimit, timer.h


def check_options(target: float = _D["target"], min_samples: int = _D["min_samples"],
                  max_samples: int = _D["max_samples"], budget_ms: float = _D["budget_ms"],
                  warmup_ms: float = _D["warmup_ms"], graph_threshold_us: float = _D["graph_threshold_us"],
                  graph_launches: int = _D["graph_launches"], flush_bytes: int = _D["flush_bytes"],
                  flags: bool = False) -> None:
    """The numeric options' ranges (the harness would loop, hang or divide by them); with flags=True
    the errors name the command-line flags (--min-samples) instead of the keywords."""
    def name(n: str) -> str:
        return "--" + n.replace("_", "-") if flags else n

    def real(n: str, v, lo: float, lo_open: bool, hi: float = math.inf) -> None:
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v <= hi and (
            v > lo if lo_open else v >= lo)
        if not ok:
            rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
            raise ValueError(f"{name(n)} must be a finite number {rng}; got {v!r}")

    def integer(n: str, v, lo: int, hi: int) -> None:
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"{name(n)} must be an integer in [{lo}, {hi}]; got {v!r}")

    real("target", target, 0, True, 1.0)
    integer("min_samples", min_samples, 1, MAX_SAMPLES)
    integer("max_samples", max_samples, 1, MAX_SAMPLES)
    if min_samples > max_samples:
        raise ValueError(f"need {name('min_samples')} <= {name('max_samples')}; got {min_samples} and {max_samples}")
    real("budget_ms", budget_ms, 0, True)
    real("warmup_ms", warmup_ms, 0, False)
    real("graph_threshold_us", graph_threshold_us, 0, False)
    integer("graph_launches", graph_launches, 0, 1 << 20)
    integer("flush_bytes", flush_bytes, 0, 1 << 40)


def timer() -> "_C.Timer":
    """The harness bound to torch's current stream (one per stream, kept for its flush buffer)."""
    require_gpu("tinygemm.timing")
    h = stream_handle()
    if h not in _TIMERS:
        _TIMERS[h] = _C.Timer(h)
    return _TIMERS[h]


def l2_bytes() -> int:
    return _l2_bytes(torch.cuda.current_device())


@functools.cache
def _l2_bytes(device: int) -> int:
    # once per device: device_info() reads every device property (cudaGetDeviceProperties is slow)
    return _C.device_info(device).l2_bytes


# measure(spent=...)'s keys: where one measurement's host wall time goes.
SPENT = {
    "estimate": "the per-call estimate that picks the mode (a few untimed calls)",
    "graph_capture": "graph mode: warming the capture stream, capturing the launches, instantiating",
    "setup": "the harness's setup before its warm-up (flush buffer, checks)",
    "warmup": "the harness's warm-up: its own estimate (graph mode) and the untimed warm-up runs",
    "samples": "the GPU time of the timed samples (every launch of each; what the statistics are of)",
    "lead_in": "the untimed GPU spin before each sample (lets the host enqueue it)",
    "flush_and_wait": "the rest of the sampling loop: the L2 flushes, clock readings, each batch's wait",
    "other": "the rest of measure(): options, graph teardown, Python",
}


def measure(
    fn: Callable[[], object] | None = None,
    *,
    fns: Sequence[Callable[[], object]] | None = None,
    bytes_per_call: int | None = None,
    spent: dict[str, float] | None = None,
    **opts,
) -> Timing:
    """Time `fn` (or a rotation `fns`), which must launch its work on torch's current stream. With
    `spent`, the seconds this call took are added into it by phase (the keys of SPENT)."""
    t_start = time.perf_counter()
    acc: dict[str, float] = {}
    try:
        return _measure(fn, fns, bytes_per_call, acc, opts)
    finally:
        if spent is not None:
            acc["other"] = time.perf_counter() - t_start - sum(acc.values())
            for k, v in acc.items():
                spent[k] = spent.get(k, 0.0) + v


def _sample(t, fn, o, ops: int, label: str, acc: dict, est_us: float = -1.0) -> "_C.TimerResult":
    """The harness's sample(), its wall time split as SPENT says (the C++ side reports its warm-up and
    sampling loop; the samples' own GPU time is their sum: mean x count x launches per sample).
    est_us > 0: the estimate just made of this same fn, which sample() then uses instead of its own."""
    t0 = time.perf_counter()
    r = t.sample(fn, o, ops, label, est_us)
    wall = time.perf_counter() - t0
    samples = r.us.mean * r.us.n * r.ops_per_sample * 1e-6
    lead_in = r.lead_in_us * r.us.n * 1e-6  # the mean spin per sample, times the samples
    sampling = r.sampling_ms * 1e-3
    acc["setup"] = wall - r.warmup_ms * 1e-3 - sampling
    acc["warmup"] = r.warmup_ms * 1e-3
    acc["samples"] = samples
    acc["lead_in"] = lead_in
    acc["flush_and_wait"] = max(sampling - samples - lead_in, 0.0)
    return r


def _measure(fn, fns, bytes_per_call, acc: dict, opts: dict) -> Timing:
    if (fn is None) == (fns is None):
        raise ValueError("pass exactly one of fn or fns")
    calls = [fn] if fn is not None else list(fns)
    if not calls or not all(callable(c) for c in calls):
        raise ValueError("fns must be a non-empty sequence of callables")
    o = options(**opts)
    t = timer()
    counter = itertools.count()
    rotate = calls[0] if len(calls) == 1 else (lambda: calls[next(counter) % len(calls)]())
    t0 = time.perf_counter()
    est = t.estimate_us(rotate, 3)
    acc["estimate"] = time.perf_counter() - t0
    mode = _C.choose_mode(est, o)
    if mode in (_C.TimingMode.event, _C.TimingMode.cupti):
        # the samples are of `rotate` itself, just estimated: no second estimate in sample()
        return _to_timing(_sample(t, rotate, o, 1, mode.name, acc, est), "cold" if o.l2 == _C.L2Mode.cold else "hot")

    t0 = time.perf_counter()
    n = _C.graph_launch_count(est, o)
    n = -(-n // len(calls)) * len(calls)  # whole rotations
    graph = torch.cuda.CUDAGraph()
    # capture on a side stream, as torch requires; warm the side stream first (allocator, handles)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        for i in range(n):
            calls[i % len(calls)]()
    l2 = "hot"
    if o.l2 == _C.L2Mode.cold:
        enough = bytes_per_call is not None and bytes_per_call > 0 and _C.rotation_is_cold(
            len(calls), int(bytes_per_call), l2_bytes())
        l2 = "cold" if enough else "cold-first"
    acc["graph_capture"] = time.perf_counter() - t0
    try:
        return _to_timing(_sample(t, graph.replay, o, n, "graph", acc), l2)
    finally:
        del graph


def rotation_copies(bytes_per_call: int, max_copies: int = _C.max_rotation_copies) -> int:
    """How many buffer copies a graph-mode rotation needs for every launch to miss in L2 (the
    harness's rule, csrc/harness/timer.h: the one measure() labels "cold" by)."""
    if bytes_per_call <= 0:
        raise ValueError(f"bytes_per_call must be > 0; got {bytes_per_call}")
    return _C.rotation_copies(int(bytes_per_call), l2_bytes(), max_copies)


def _to_timing(r, l2: str) -> Timing:
    s = r.us
    return Timing(
        median_us=s.median, min_us=s.min, mean_us=s.mean, p10_us=s.p10, p90_us=s.p90, stdev_us=s.stdev,
        samples=s.n, rel_spread=s.median_rel_spread, mode=r.mode, l2=l2, ops_per_sample=r.ops_per_sample,
        sm_clock_mhz_min=r.clock.min_mhz, sm_clock_mhz_max=r.clock.max_mhz, clock_sagged=r.clock.sagged,
        clock_slowdown=r.clock.slowdown, clock_source=r.clock.source,
    )
