"""GEMM backends for the sweep: one module each, one registry.

A backend turns a weight W[K, N] into its own format once per shape (`prepare`, outside timing) and
then runs y = x @ W for any batch (`Prepared.call`). It holds the fp32 weights it effectively
multiplies by (`ref_w`), so the reference check measures the kernel, not the quantization. An
optional backend that cannot run here says why (`unavailable()`), and one that cannot run a shape
says why for that shape (`unsupported()`): the sweep records both and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Problem:
    K: int
    N: int
    dtype: torch.dtype = torch.float16      # activation / output dtype
    group_size: int = 128                   # INT4/INT8 backends
    symmetric: bool = True


@dataclass
class Prepared:
    """Weights in a backend's format, and how to multiply by them."""

    call: Callable[[Any, torch.Tensor], torch.Tensor]   # call(state, x) -> y
    states: list                                          # weight states; clones for L2 rotation
    clone: Callable[[Any], Any]
    ref_w: torch.Tensor                                   # fp32 [K, N] the backend multiplies by
    weight_bytes: int                                     # bytes of one state (read per call)
    weight_format: str
    x_dtype: torch.dtype                                  # what call() takes
    # activations in the backend's input format (e.g. fp8 + scale); returns (x_in, x for the ref: fp32,
    # or a dtype that converts to fp32 exactly, as the reference converts the rows it checks)
    make_input: Callable[[torch.Tensor], tuple[Any, torch.Tensor]] | None = None
    workspace_bytes: int = 0
    # the load-time conversion from a checkpoint format into this backend's (timed by --prepare-cost;
    # its first call is untimed and may build the checkpoint-format source)
    repack: Callable[[], Any] | None = None
    repack_from: str = ""
    note: str = ""
    # the kernel and launch configuration run for M rows (each row's note records it)
    config: Callable[[int], str] | None = None
    extra: dict = field(default_factory=dict)

    def add_copies(self, total: int) -> None:
        while len(self.states) < total:
            self.states.append(self.clone(self.states[0]))

    def input(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        if self.make_input is not None:
            return self.make_input(x)
        xi = x.to(self.x_dtype)
        # xi itself for the reference, not xi.float(): the check reads a few rows of it and matmul_ref
        # converts those (the same values), so no fp32 copy of every row (512 MB at M = 32768, K = 4096)
        return xi, xi


def gemm_flops(M: int, N: int, K: int) -> float:
    """Multiply-adds of y[M, N] = x[M, K] . W[K, N], counted as two FLOPs each."""
    return 2.0 * M * N * K


def gemm_bytes(weight_bytes: int, x_bytes: int, y_bytes: int) -> int:
    """Bytes one call moves at least: its weights, its activations and its output, each once."""
    return weight_bytes + x_bytes + y_bytes


class Backend:
    name: str = ""
    op: str = "gemm"              # the op family, as the CSV's `op` column names it
    tolerance: float = 2e-2       # max relative error vs the fp32 reference before a row is "wrong"
    default: bool = True          # in the default backend set (variants are asked for by name)

    def unavailable(self) -> str | None:
        """None when usable here, else why not."""
        return None

    def unsupported(self, p: Problem) -> str | None:
        """None when this shape/format runs, else why not."""
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        raise NotImplementedError

    # What one call costs, as the sweep reports it (TFLOP/s, GB/s, % of peak): each backend answers
    # for its own formats. The counts are gemm_flops / gemm_bytes above, their one home.
    def flops(self, M: int, N: int, K: int) -> float:
        """FLOPs of one call of M rows."""
        return gemm_flops(M, N, K)

    def bytes_moved(self, prep: Prepared, M: int, N: int, K: int, out_dtype: torch.dtype) -> int:
        """Bytes one call moves at least: one weight state, x in the dtype call() takes (fp8 for the
        scaled-mm backends), y in `out_dtype`."""
        return gemm_bytes(prep.weight_bytes, M * K * prep.x_dtype.itemsize, M * N * out_dtype.itemsize)

    def peak_tflops(self, peaks: dict | None, dtype: torch.dtype) -> float | None:
        """The datasheet peak its math runs at (tinygemm.gpus.peaks): the activations' dtype's
        tensor-core rate; None when unknown."""
        if not peaks:
            return None
        return peaks.get("bf16") if dtype == torch.bfloat16 else peaks.get("fp16")

    def describe(self) -> str:
        return (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else ""


def clone_tensors(state):
    """Clone every tensor of a (nested) tuple / dict state: a fresh copy for L2 rotation."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, tuple):
        return tuple(clone_tensors(s) for s in state)
    if isinstance(state, dict):
        return {k: clone_tensors(v) for k, v in state.items()}
    return state


def tensor_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, tuple):
        return sum(tensor_bytes(s) for s in state)
    if isinstance(state, dict):
        return sum(tensor_bytes(v) for v in state.values())
    return 0


def registry() -> dict[str, Backend]:
    """Every backend tinygemm knows, available or not, by name."""
    from . import aiter, gemlite, machete, marlin, tinygemm_kernels, torch_fp8, torch_int4pack, torch_matmul

    backends: list[Backend] = [
        torch_matmul.TorchMatmul(),
        torch_fp8.TorchScaledMM("tensorwise"),
        torch_fp8.TorchScaledMM("rowwise"),
        torch_int4pack.TorchInt4Pack(),
        tinygemm_kernels.DequantMatmul(),
        tinygemm_kernels.TinygemmGemv(),
        tinygemm_kernels.TinygemmTriton(),
        tinygemm_kernels.TinygemmGemmSm90(),
        tinygemm_kernels.TinygemmAuto(),
        *marlin.variants(),
        *machete.variants(),
        gemlite.Gemlite(),
        aiter.AiterA8W8("ck"),
        aiter.AiterA8W8("bpreshuffle"),
    ]
    return {b.name: b for b in backends}
