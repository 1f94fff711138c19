"""The sweep: for each weight shape, each backend prepares its weights once (outside timing), then
every batch size is checked against the fp32 reference and timed with the harness.

One row per (shape, backend, M). A backend that cannot run a shape, runs out of memory or fails is
recorded with that status and its reason, and the sweep goes on.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch

from .. import _C, timing
from ..backends import Backend, Prepared, Problem
from ..results import row_key
from .cost import NOMINAL_BYTES_PER_S
from .phases import Phases

# a point whose p90 exceeds this multiple of its p10 is flagged in its note
UNSTABLE_P90_OVER_P10 = 1.5
# rows of x checked against the reference per point: both ends plus a random sample (cheap at any M)
REF_ROWS = 64
# --kernel-names: points named per profiler session (starting and stopping one costs ~8 ms on an H200,
# more than most points' timing)
KERNEL_NAMES_CHUNK = 64
# the harness's spin kernel, launched between the profiled calls as a separator (kernel_names_of)
MARKER_KERNEL = "spin_kernel"


@dataclass
class Shape:
    model: str
    layer: str
    tp: int
    K: int
    N: int
    batches: list[int]


@dataclass
class Options:
    dtype: torch.dtype = torch.float16
    group_size: int = 128
    symmetric: bool = True
    timing: dict = field(default_factory=dict)   # tinygemm.timing.options(...) keywords
    refcheck: bool = True
    kernel_names: bool = False
    prepare_cost: bool = False                    # one "prepare" row per shape and backend (M = 0)
    peaks: dict | None = None                     # datasheet peaks (tinygemm.gpus.peaks)
    ceilings: dict = field(default_factory=dict)  # measured: copy_gbps, matmul_tflops


@dataclass
class Stats:
    points: int = 0
    # sum over points of (median time x samples): one launch per sample, so in graph mode (a sample
    # replays many launches) far less than the GPU time of the samples (phases' "timing.samples")
    timed_s: float = 0.0
    wall_s: float = 0.0
    backend_extra: dict = field(default_factory=dict)  # per backend: what it reports once (Machete's schedules)
    phases: Phases = field(default_factory=Phases)     # where the wall time went (results.json's phase_s)


def sample_rows(M: int) -> list[int] | None:
    """The rows of an M-row result the check compares: None for all of them (M <= REF_ROWS), else
    both ends and REF_ROWS - 2 others drawn at random with M as the seed, ascending. Drawn on the
    host: no GPU work or wait (a randperm and unique on the GPU cost a synchronisation each), and
    the same rows whenever M is checked again."""
    if M <= REF_ROWS:
        return None
    mid = random.Random(M).sample(range(1, M - 1), REF_ROWS - 2)
    return [0, *sorted(mid), M - 1]


def _max_rel_err(y: torch.Tensor, xref: torch.Tensor, ref_w: torch.Tensor) -> float:
    from ..reference import matmul_ref, max_rel_error

    rows = sample_rows(y.shape[0])
    if rows is not None:
        idx = torch.tensor(rows, device=y.device)
        y, xref = y[idx], xref[idx]
    return max_rel_error(y, matmul_ref(xref, ref_w))


def _kernel_names(fn) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return join_names(e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def join_names(names) -> str:
    """The kernel_names column: each GPU activity's name once, in order of first appearance."""
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return ";".join(n[:120] for n in seen)


def split_at_markers(events, n: int) -> list[list[str]] | None:
    """`events`: (GPU start time, name) of a profiled run in n segments, each ended by a device-wide
    synchronisation and one marker kernel: the names in each segment, or None when the markers are
    not exactly n (a lost record, or a call's own kernel named like the marker)."""
    groups: list[list[str]] = [[]]
    for _, name in sorted(events, key=lambda e: e[0]):
        if MARKER_KERNEL in name:
            groups.append([])
        else:
            groups[-1].append(name)
    if len(groups) != n + 1 or groups[-1]:
        return None
    return groups[:-1]


def kernel_names_of(makers: list, ran: list[bool]) -> list[str | None]:
    """--kernel-names for several points in one profiler session. `makers`: per point, a function
    that prepares its input and returns its call; `ran`: whether that call has already run once,
    unprofiled, and succeeded (its lazy initialisation or autotuning is then neither named nor done
    under the profiler). Each of those runs once more, profiled: a device-wide synchronisation and
    the harness's spin kernel after the input's preparation and after the call separate the GPU
    activities, so each point gets the names of its own steady-state call alone, as a session of its
    own would give. None for a point that had not run; all None when the records do not split
    exactly."""
    from torch.profiler import ProfilerActivity, profile

    from .._ext import stream_handle

    def marker():
        torch.cuda.synchronize()
        _C.spin(0, stream_handle())
        torch.cuda.synchronize()

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for make, good in zip(makers, ran):
            fn = make() if good else None
            marker()  # the input's preparation: not named
            if fn is not None:
                fn()
            marker()
            del fn
    events = [(e.time_range.start, e.name) for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    groups = split_at_markers(events, 2 * len(makers))
    if groups is None:
        return [None] * len(makers)
    return [join_names(g) if good else None for g, good in zip(groups[1::2], ran)]


@dataclass
class FirstCall:
    """A point's first call, made ahead with its --kernel-names chunk: its check and peak memory, and
    the names of its kernels (None: the point profiles its own call)."""
    err: float | None
    peak_mb: float
    kernel_names: str | None = None


def first_calls_and_names(prep: Prepared, Ms: list[int], x_all: torch.Tensor, opts: Options,
                          ph: Phases) -> dict[int, FirstCall]:
    """--kernel-names, for the points Ms of one prepared backend: each point's first call and
    reference check, as measure_point makes them, then one profiler session for all (kernel_names_of):
    two untimed calls per point, not three, and one session per chunk instead of one per point. A
    point whose first call failed is left out (measure_point makes it, and records the failure)."""
    def maker(M):
        def make():
            xin = prep.input(x_all[:M])[0]
            return lambda: prep.call(prep.states[0], xin)
        return make

    out: dict[int, FirstCall] = {}
    for M in Ms:
        try:
            with ph.time("inputs"):
                xin, xref = prep.input(x_all[:M])
            with ph.time("first_call"):
                y, peak_mb = _first_call(prep, xin)
            with ph.time("refcheck"):
                out[M] = FirstCall(_check(y, xref, prep, opts), peak_mb)
                del y
        except Exception:  # measure_point makes this call again and records what happens
            continue
    with ph.time("kernel_names"):
        try:
            names = kernel_names_of([maker(M) for M in Ms], [M in out for M in Ms])
        except Exception:  # no session: each point profiles its own call
            names = [None] * len(Ms)
    for M, n in zip(Ms, names):
        if M in out:
            out[M].kernel_names = n
    return out


def base_row(shape: Shape, backend: Backend, M: int, opts: Options) -> dict:
    return {"op": backend.op, "backend": backend.name, "model": shape.model, "layer": shape.layer, "tp": shape.tp,
            "M": M, "N": shape.N, "K": shape.K, "act_dtype": str(opts.dtype).removeprefix("torch."),
            "group_size": opts.group_size}


def measure_point(prep: Prepared, backend: Backend, shape: Shape, M: int, x: torch.Tensor, opts: Options,
                  stats: Stats, first: FirstCall | None = None) -> dict:
    """One row: the backend's result checked, its memory, its time, and what that time means.
    (Host-side spans: GPU work a phase only enqueues lands in the next phase that waits for it.)
    `first`: this point's first call, made ahead with its --kernel-names chunk; None: made here."""
    ph = stats.phases
    with ph.time("rows"):
        row = base_row(shape, backend, M, opts)
        row.update(weight_format=prep.weight_format, weight_mb=prep.weight_bytes / 1e6,
                   note=_config_note(prep, M))
    with ph.time("inputs"):
        xin, xref = prep.input(x)
    if first is None:
        with ph.time("first_call"):
            y, row["peak_mem_mb"] = _first_call(prep, xin)
        with ph.time("refcheck"):
            err = _check(y, xref, prep, opts)
            del y
    else:
        err, row["peak_mem_mb"] = first.err, first.peak_mb
    row["max_rel_err"] = err if err is not None else ""
    with ph.time("rotation"):
        _add_rotation(prep, opts)
    t = _time(prep, xin, opts, stats)
    with ph.time("rows"):
        row.update(_metrics(t, backend, prep, shape, M, opts))
    if opts.kernel_names:
        with ph.time("kernel_names"):
            names = first.kernel_names if first is not None else None
            row["kernel_names"] = names if names is not None else _kernel_names(lambda: prep.call(prep.states[0], xin))
    with ph.time("rows"):
        _flag(row, t, err, backend)
    return row


def _config_note(prep: Prepared, M: int) -> str:
    """The kernel and configuration run for M rows, then the backend's own note."""
    return "; ".join(n for n in (prep.config(M) if prep.config else "", prep.note) if n)


def _first_call(prep: Prepared, xin) -> tuple[object, float]:
    """One run outside timing (the point's first: lazy initialisation, a library's heuristics or
    autotuning for this M), its result and the peak memory in MB (weights, workspace, and what the
    call allocated). The allocator's counts are the host's, final once the call has returned: no
    wait here, so the call's GPU time lands in the check's readback."""
    torch.cuda.reset_peak_memory_stats()
    before = _allocated_bytes()["current"]
    y = prep.call(prep.states[0], xin)
    transient = _allocated_bytes()["peak"] - before
    return y, (prep.weight_bytes + prep.workspace_bytes + max(transient, 0)) / 1e6


def _check(y, xref: torch.Tensor, prep: Prepared, opts: Options) -> float | None:
    """Correctness first: the first call's result against the fp32 reference (None when refcheck is
    off). The error's readback waits for the call (and surfaces its failure here); without a check a
    synchronisation does, so that its GPU time is not billed to the timing."""
    err = _max_rel_err(y, xref, prep.ref_w) if opts.refcheck else None
    if err is None:
        torch.cuda.synchronize()
    return err


def _allocated_bytes() -> dict:
    """torch's allocated-bytes counters ("current", "peak", ...) for the current device, from the
    nested statistics (memory_allocated() and max_memory_allocated() each flatten and sort all of
    them, hundreds of keys, in Python)."""
    return torch.cuda.memory_stats_as_nested_dict()["allocated_bytes"]["all"]


def _add_rotation(prep: Prepared, opts: Options) -> None:
    """Weight copies for graph mode's cold L2 (timing.rotation_copies), where graphs may be used.

    Only kernels under the graph threshold can end up in graph mode, and a kernel cannot read its
    weights faster than the copy bandwidth: that bound decides. Without a measured copy bandwidth
    the nominal one (cost.py) stands in; a guess on the high side errs toward making copies (memory
    only) rather than toward a graph without rotation ("cold-first"). At most half the free memory.
    """
    t_opts = timing.options(**opts.timing)
    read_floor_us = prep.weight_bytes / (opts.ceilings.get("copy_gbps", NOMINAL_BYTES_PER_S / 1e9) * 1e3)
    may_graph = t_opts.mode == _C.TimingMode.graph or (
        t_opts.mode == _C.TimingMode.auto and read_floor_us < t_opts.graph_threshold_us)
    if may_graph and t_opts.l2 == _C.L2Mode.cold:
        want = timing.rotation_copies(max(prep.weight_bytes, 1))
        if len(prep.states) >= want:
            return  # made at an earlier point (add_copies would add none): no free-memory query
        free = torch.cuda.mem_get_info()[0]
        prep.add_copies(max(1, min(want, int(0.5 * free // max(prep.weight_bytes, 1)))))


def _time(prep: Prepared, xin, opts: Options, stats: Stats) -> timing.Timing:
    """The harness's measurement, rotating through the weight states."""
    fns = [(lambda s=s: prep.call(s, xin)) for s in prep.states]
    spent: dict[str, float] = {}
    try:
        t = timing.measure(fns=fns, bytes_per_call=prep.weight_bytes, spent=spent, **opts.timing)
    finally:
        stats.phases.add_timing(spent)
    stats.timed_s += t.median_us * t.samples * 1e-6
    return t


def _metrics(t: timing.Timing, backend: Backend, prep: Prepared, shape: Shape, M: int, opts: Options) -> dict:
    """The time and its rates: TFLOP/s and GB/s by the backend's own counts, against the datasheet
    peaks and the measured ceilings."""
    tflops = backend.flops(M, shape.N, shape.K) / (t.median_us * 1e6)
    gbps = backend.bytes_moved(prep, M, shape.N, shape.K, opts.dtype) / (t.median_us * 1e3)
    peak = backend.peak_tflops(opts.peaks, opts.dtype)
    return dict(
        timing_mode=t.mode, l2=t.l2, time_us=t.median_us, time_us_min=t.min_us, time_us_p10=t.p10_us,
        time_us_p90=t.p90_us, samples=t.samples, tflops=tflops, gbps=gbps,
        pct_peak_flops=100 * tflops / peak if peak else "",
        pct_peak_bw=100 * gbps / opts.peaks["mem_bw_gbs"] if opts.peaks and opts.peaks.get("mem_bw_gbs") else "",
        pct_measured_bw=100 * gbps / opts.ceilings["copy_gbps"] if opts.ceilings.get("copy_gbps") else "",
        pct_measured_flops=100 * tflops / opts.ceilings["matmul_tflops"] if opts.ceilings.get("matmul_tflops") else "",
        sm_clock_mhz=t.sm_clock_mhz_min, clock_sagged=int(t.clock_sagged), kernel_names="",
    )


def _flag(row: dict, t: timing.Timing, err: float | None, backend: Backend) -> None:
    """The row's status, and notes on what makes its time or its result doubtful."""
    if t.p90_us > UNSTABLE_P90_OVER_P10 * t.p10_us:
        # a bimodal or disturbed point (another process, a clock event): the median is not to be trusted
        row["note"] = f"unstable: p90 {t.p90_us:.1f} us = {t.p90_us / t.p10_us:.1f}x p10; " + row["note"]
    if t.clock_slowdown:  # power or thermal capping while it ran: the time holds for a hot, loaded card
        row["note"] = f"clock held down: {t.clock_slowdown}; " + row["note"]
    if err is not None and err > backend.tolerance:
        row.update(status="wrong", note=f"max_rel_err {err:.3g} > tolerance {backend.tolerance:g}; {row['note']}")
    else:
        row["status"] = "ok"


REPACK_RUNS = 5


def measure_repack(prep: Prepared, backend: Backend, shape: Shape, opts: Options) -> dict:
    """The load-time conversion into the backend's format: wall-clock per weight matrix (it mixes
    host and device work, and a model load pays the wall-clock), median of REPACK_RUNS after one
    warm-up, and the peak memory it allocates beyond what exists before it."""
    row = base_row(shape, backend, 0, opts)
    row.update(op="prepare", weight_format=prep.weight_format, timing_mode="wall", l2="",
               note=f"{prep.repack_from} -> {prep.weight_format}")
    out = prep.repack()
    del out
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    times = []
    for _ in range(REPACK_RUNS):
        t0 = time.perf_counter()
        out = prep.repack()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e6)
        del out
    times.sort()
    row.update(time_us=times[len(times) // 2], time_us_min=times[0], time_us_p10=times[0], time_us_p90=times[-1],
               samples=len(times), peak_mem_mb=(torch.cuda.max_memory_allocated() - before) / 1e6,
               weight_mb=prep.weight_bytes / 1e6, status="ok")
    return row


def run_shape(shape: Shape, backends: list[Backend], opts: Options, write, done: set, stats: Stats, advance) -> None:
    """All backends and batch sizes of one weight shape."""
    ph = stats.phases
    with ph.time("inputs"):
        p = Problem(shape.K, shape.N, opts.dtype, opts.group_size, opts.symmetric)
        gen = torch.Generator(device="cuda").manual_seed(hash((shape.K, shape.N)) % 2**31)
        # y ~ N(0, 1) entries: x ~ N(0, 1), W ~ N(0, 1/K); never zeros
        w = torch.randn(shape.K, shape.N, device="cuda", generator=gen) / shape.K**0.5
        x_all = torch.randn(max(shape.batches), shape.K, device="cuda", generator=gen).to(opts.dtype)
        torch.cuda.synchronize()  # their GPU time counted here, not in the first point's check
    for b in backends:
        todo = [M for M in shape.batches if row_key(base_row(shape, b, M, opts)) not in done]
        if not todo:
            continue
        with ph.time("prepare"):
            reason = b.unsupported(p)
            prep = None
            if reason is None:
                try:
                    prep = b.prepare(w, p)
                    torch.cuda.synchronize()  # as above (and its failure is this backend's row)
                except torch.cuda.OutOfMemoryError as e:
                    reason, status = f"out of memory preparing weights: {str(e).splitlines()[0]}", "oom"
                except Exception as e:  # a backend's failure is a row, not the end of the sweep
                    reason, status = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}", "error"
            else:
                status = "unsupported"
        if prep is not None and prep.extra and b.name not in stats.backend_extra:
            stats.backend_extra[b.name] = prep.extra
        prep_key = row_key(base_row(shape, b, 0, opts))
        if opts.prepare_cost and prep is not None and prep.repack is not None and prep_key not in done:
            with ph.time("prepare_cost"):
                try:
                    row = measure_repack(prep, b, shape, opts)
                except Exception as e:
                    row = {**base_row(shape, b, 0, opts), "op": "prepare", "status": "error",
                           "note": f"repack: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
                torch.cuda.empty_cache()
            with ph.time("csv"):
                write(row)
        firsts: dict[int, FirstCall] = {}
        for i, M in enumerate(todo):
            t0 = time.perf_counter()
            if prep is not None and opts.kernel_names and i % KERNEL_NAMES_CHUNK == 0:
                firsts = first_calls_and_names(prep, todo[i:i + KERNEL_NAMES_CHUNK], x_all, opts, ph)
            if prep is None:
                with ph.time("rows"):
                    row = {**base_row(shape, b, M, opts), "status": status, "note": reason}
            else:
                try:
                    row = measure_point(prep, b, shape, M, x_all[:M], opts, stats, firsts.get(M))
                except torch.cuda.OutOfMemoryError as e:
                    with ph.time("cleanup"):
                        torch.cuda.empty_cache()
                    row = {**base_row(shape, b, M, opts), "status": "oom", "note": str(e).splitlines()[0][:200]}
                except Exception as e:
                    row = {**base_row(shape, b, M, opts), "status": "error",
                           "note": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
                stats.points += 1
            with ph.time("csv"):
                write(row)
            stats.wall_s += time.perf_counter() - t0
            with ph.time("progress"):
                advance(row)
        with ph.time("cleanup"):
            del prep
            torch.cuda.empty_cache()
