"""vLLM Machete (machete_prepack_B + machete_mm): CUTLASS mixed-input GEMM for Hopper (wgmma), vLLM's
strongest INT4 kernel at larger batches. uint4b8 (GPTQ) and uint4 with zero points (AWQ), fp16/bf16,
group sizes -1/64/128.

Weights are quantized with vLLM's own quantize_weights (zero points applied after the scales, as
the kernel does), packed 8 per int32 along K, made column-major and prepacked: the steps of vLLM's
MacheteLinearKernel. Zero points are handed over pre-scaled (-scale * zero), as that layer does.
The schedule is Machete's default heuristic unless one is named (--machete-schedule).
"""

from __future__ import annotations

import importlib

import torch

from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes
from . import _vllm


class Machete(Backend):
    """vLLM Machete mixed-input GEMM (Hopper)."""

    op = "machete"
    schedule: str | None = None  # None: Machete's own heuristic (set from --machete-schedule)

    def __init__(self, qtype: str, default: bool = True):
        self.qtype, self.default = qtype, default
        self.name = "machete_" + qtype
        self.tolerance = 2e-2

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        if torch.version.hip is not None:
            return "Machete is CUTLASS for NVIDIA Hopper; this is a ROCm build of torch"
        v = _vllm.load()
        if isinstance(v, str):
            return v
        if not hasattr(v.ops, "machete_mm"):
            return f"vLLM {v.version} has no machete_mm"
        if torch.cuda.get_device_capability() != (9, 0):
            cc = "%d.%d" % torch.cuda.get_device_capability()
            return f"Machete needs compute capability 9.0 (Hopper wgmma); this GPU is {cc}"
        return None

    def unsupported(self, p: Problem):
        if p.dtype not in (torch.float16, torch.bfloat16):
            return f"Machete takes fp16/bf16 activations; got {p.dtype}"
        if p.group_size not in (-1, 64, 128):
            return f"Machete's group sizes for fp16/bf16 are -1/64/128; got {p.group_size}"
        if p.K % 64 or p.N % 128:
            return f"Machete prepacks 64 x 128 blocks: K % 64 == 0 and N % 128 == 0; got K={p.K}, N={p.N}"
        return None

    def supported_schedules(self, dtype: torch.dtype) -> list[str]:
        v = _vllm.load()
        qt = getattr(v.scalar_types, self.qtype)
        zeros = dtype if self.qtype == "uint4" else None
        return list(v.ops.machete_supported_schedules(dtype, qt, dtype, zeros))

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        v = _vllm.load()
        qu = importlib.import_module("vllm.model_executor.layers.quantization.utils.quant_utils")
        qt = getattr(v.scalar_types, self.qtype)
        zero_points = self.qtype == "uint4"
        w_ref, w_q, w_s, w_zp = qu.quantize_weights(w.to(p.dtype), qt, p.group_size, zero_points=zero_points,
                                                    ref_zero_points_after_scales=True)
        packed = qu.pack_quantized_values_into_int32(w_q, qt, packed_dim=0)  # [K / 8, N]
        col_major = packed.t().contiguous().t()
        b_q = v.ops.machete_prepack_B(col_major, p.dtype, qt, p.dtype)
        zp = (-w_s * w_zp.to(w_s.dtype)).contiguous() if zero_points else None
        schedules = self.supported_schedules(p.dtype)
        sched = self.schedule
        if sched is not None and sched not in schedules:
            raise ValueError(f"Machete schedule {sched!r} is not one of the {len(schedules)} supported here: "
                             + ", ".join(schedules))
        gs = p.group_size

        def call(st, x):
            return v.ops.machete_mm(a=x, b_q=st["q"], b_type=qt, b_group_scales=st["s"], b_group_zeros=st["zp"],
                                    b_group_size=gs, schedule=sched)

        def repack():
            """The load-time step: GPTQ-style packed int32 [K/8, N] -> Machete's prepacked layout."""
            return v.ops.machete_prepack_B(col_major, p.dtype, qt, p.dtype)

        state = {"q": b_q, "s": w_s.contiguous(), "zp": zp}
        return Prepared(call=call, states=[state], clone=clone_tensors, ref_w=w_ref.float(),
                        weight_bytes=tensor_bytes(state), weight_format=f"machete_{self.qtype}_g{gs}",
                        x_dtype=p.dtype, repack=repack, repack_from="GPTQ int32 [K/8, N] (column-major)",
                        note=f"vllm {v.version}, schedule {sched or 'heuristic'} ({len(schedules)} supported)",
                        extra={"machete_supported_schedules": schedules, "schedule": sched or "heuristic"})


def variants() -> list[Machete]:
    return [Machete("uint4b8"), Machete("uint4", default=False)]
