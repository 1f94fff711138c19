"""Where `backend="auto"` leaves the GEMV for a GEMM: a measured table per GPU and layout, per layer
shape, instead of one M for every shape.

An entry is the largest M at which the GEMV was faster than the GEMM auto runs above it (from the
sm90 layout: the Hopper GEMM) for one layer shape (K, N) on one GPU, read off committed
measurements by `bench/crossover_table.py`, which also writes `crossover_data.py` (the table and the
files it came from; tests regenerate it from those files). A shape that was not measured takes the
entry of the nearest measured shape on that GPU, nearest in (log K, log N) (K and N each set how the
kernels split the work, so equal sizes of different aspect are not alike: 4096 x 28672 and
8192 x 14336 cross at different M on an H200); a GPU or layout not in the table, the caller's default.
"""

from __future__ import annotations

import math

from .crossover_data import SOURCES, TABLE  # noqa: F401  (SOURCES: where TABLE was measured)


def entries(gemv: dict[tuple[int, int, int], float], gemm: dict[tuple[int, int, int], float]) -> dict:
    """{(K, N): largest M where the GEMV beat the GEMM} from times keyed (K, N, M), over the M both
    measured. A shape where the GEMM won even at the smallest M gets 0 (auto never runs the GEMV)."""
    out: dict[tuple[int, int], int] = {}
    for K, N in sorted({(k, n) for k, n, _ in gemv} & {(k, n) for k, n, _ in gemm}):
        ms = sorted(m for k, n, m in gemv if (k, n) == (K, N) and (k, n, m) in gemm)
        best = 0
        for m in ms:  # the first M where the GEMM wins ends the GEMV's range
            if gemv[(K, N, m)] < gemm[(K, N, m)]:
                best = m
            else:
                break
        out[(K, N)] = best
    return out


def gemv_max_m(gpu: str, layout: str, K: int, N: int, default: int) -> int:
    """The largest M for which auto runs the GEMV for a K x N weight in `layout` on `gpu` (a device
    name as torch reports it)."""
    shapes = TABLE.get(gpu, {}).get(layout)
    if not shapes:
        return default
    if (K, N) in shapes:
        return shapes[(K, N)]
    lk, ln = math.log(K), math.log(N)
    nearest = min(shapes, key=lambda kn: ((math.log(kn[0]) - lk) ** 2 + (math.log(kn[1]) - ln) ** 2, kn))
    return shapes[nearest]
