"""What one sweep point costs to measure.

The shard split balances shards by `point_cost_s`, an estimate of the wall-clock seconds the sweep
spends on one point of one backend (the same for every backend, so it does not change the split).
It counts bytes and FLOPs as the runner does, with the counts' one home: `gemm_flops` and
`gemm_bytes` in tinygemm.backends, which each backend's `flops` / `bytes_moved` answer from.

The estimate's constants come from the default sweep on one H100 (bench/results/h100/bench-default:
1836 points in 49.9 s of wall-clock, of which 4.9 s were the timed kernels): a point costs about
25 ms of fixed work (its correctness run against the fp32 reference, cold-L2 flushes, warm-up,
bookkeeping) plus its samples, about ten launches for kernels of a few microseconds and up. Only the
ratios between points matter for balance; the absolute value is printed as a rough guide.
"""

from __future__ import annotations

from .. import timing
from ..backends import gemm_bytes, gemm_flops

# fixed per-point work, seconds (see the module docstring)
POINT_OVERHEAD_S = 0.025
# launches timed per point: the harness's min_samples default, where stable points stop
SAMPLES = timing.DEFAULTS["min_samples"]
# nominal rates of an H100-class GPU (measured ceilings of the run above, rounded)
NOMINAL_BYTES_PER_S = 3.0e12
NOMINAL_FLOPS = 7.5e14
# launch latency a kernel never goes below, seconds
LAUNCH_S = 5e-6
FP16_BYTES = 2


def point_cost_s(K: int, N: int, M: int) -> float:
    """Estimated wall-clock seconds of one (shape, M) point of one backend, from fp16 bytes and FLOPs."""
    moved = gemm_bytes(K * N * FP16_BYTES, M * K * FP16_BYTES, M * N * FP16_BYTES)
    call_s = max(moved / NOMINAL_BYTES_PER_S, gemm_flops(M, N, K) / NOMINAL_FLOPS, LAUNCH_S)
    return POINT_OVERHEAD_S + SAMPLES * call_s
