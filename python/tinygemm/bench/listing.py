"""python -m tinygemm.bench --list-backends: every backend and why one is off, the other INT4 peers
looked for, and the microbenchmark binaries (one missing for lack of cuBLAS says so)."""

from __future__ import annotations

import os


def binaries() -> list[tuple[str, str]]:
    """(binary, status) for the microbenchmark binaries: one missing for lack of cuBLAS says so."""
    import shutil
    import sysconfig

    def found(name: str) -> bool:
        return bool(shutil.which(name)) or os.path.exists(os.path.join(sysconfig.get_path("scripts"), name))

    if not found("tinygemm-bench-bandwidth"):
        why = "not installed (a CPU-only build: no CUDA toolkit or ROCm was found when tinygemm was built)"
        return [(b, why) for b in ("tinygemm-bench-bandwidth", "tinygemm-bench-gemm")]
    return [("tinygemm-bench-bandwidth", "installed"),
            ("tinygemm-bench-gemm", "installed" if found("tinygemm-bench-gemm") else
             "not installed: cuBLAS (hipBLAS on ROCm) was not found when tinygemm was built; install cuBLAS "
             "(the CUDA toolkit's, or the nvidia-cublas wheel of a CUDA torch) and reinstall tinygemm")]


def list_backends(reg: dict) -> int:
    from rich.table import Table

    from ..display import console
    from ..precision import precision_class

    out = console()
    t = Table(title="tinygemm backends")
    for c in ("backend", "op", "precision", "default", "status"):
        t.add_column(c, no_wrap=c == "backend")
    for n, b in reg.items():
        why = b.unavailable()
        t.add_row(n, b.op, precision_class(n, b.op), "yes" if b.default else "",
                  "[green]available[/]" if why is None else f"[red]{why}[/]")
    out.print(t)
    from ..backends.peers import other_peers

    t = Table(title="other INT4/INT8 kernels looked for")
    t.add_column("peer", no_wrap=True)
    t.add_column("status")
    for n, why in other_peers():
        t.add_row(n, why)
    out.print(t)
    t = Table(title="microbenchmark binaries")
    t.add_column("binary", no_wrap=True)
    t.add_column("status")
    for n, why in binaries():
        t.add_row(n, why if why == "installed" else f"[yellow]{why}[/]")
    out.print(t)
    return 0
