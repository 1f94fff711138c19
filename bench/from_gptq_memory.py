"""Peak memory and time of tinygemm.formats.from_gptq (the load-time conversion from a GPTQ
checkpoint) for one weight matrix, in a fresh process so that the peak is this call's alone.

    python bench/from_gptq_memory.py [--k 4096 --n 28672] [--device cpu|cuda]

CPU (Linux): the peak resident set during the call (VmHWM, reset through /proc/self/clear_refs just
before it) beyond the resident set before it; GPU: torch.cuda.max_memory_allocated beyond what is
allocated before the call.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def measure(path: str, device: str) -> None:
    from tinygemm import formats

    g = {k: v.to(device) for k, v in torch.load(path).items()}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set to the current one
        base = _status_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    formats.from_gptq(**g, group_size=128)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_kb("VmHWM") * 1024 - base
    print(f"from_gptq on {device}: {time.perf_counter() - t0:.3f} s, peak extra memory {peak / 1e6:.0f} MB")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--n", type=int, default=28672)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return measure(a.child, a.device)
    import tinygemm

    w = torch.randn(a.k, a.n).half()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gptq.pt")
        torch.save(tinygemm.formats.to_gptq(tinygemm.quantize(w, 128)), path)
        subprocess.run([sys.executable, __file__, "--device", a.device, "--child", path], check=True)


if __name__ == "__main__":
    main()
