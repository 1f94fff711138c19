"""torch._weight_int4pack_mm: PyTorch's own INT4 kernel (bf16 activations; "tinygemm" in torchao,
labelled torch_int4pack here so it is not confused with this project)."""

from __future__ import annotations

import torch

from .. import formats
from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes


class TorchInt4Pack(Backend):
    """torch._weight_int4pack_mm (bf16, group 32/64/128, innerKTiles 8)."""

    name = "torch_int4pack"
    op = "w4a16"

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        if not hasattr(torch.ops.aten, "_weight_int4pack_mm"):
            return "this torch has no _weight_int4pack_mm"
        if torch.version.hip is None and torch.cuda.get_device_capability() < (8, 0):
            return "needs compute capability 8.0+"
        return None

    def unsupported(self, p: Problem):
        if p.group_size not in (32, 64, 128):
            return f"group_size {p.group_size} (torch's int4pack takes 32/64/128/256; -1 is not one)"
        if p.K % 128:
            return f"K % 128 == 0 needed (innerKTiles 8); got K={p.K}"
        if p.N % 16:
            return f"N % 16 == 0 needed; got N={p.N}"
        return None

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        qw = formats.quantize(w.to(torch.bfloat16), p.group_size, p.symmetric)
        wp, sz = formats.to_int4pack(qw, inner_k_tiles=8)
        # what torch multiplies by: (q - 8) * scale + zero with its bf16 scale/zero pairs
        q = qw.unpack().float().reshape(qw.num_groups, -1, p.N)
        ref_w = ((q - 8.0) * sz[:, None, :, 0].float() + sz[:, None, :, 1].float()).reshape(p.K, p.N)
        gs = p.group_size
        state = (wp, sz)
        return Prepared(
            call=lambda s, x: torch._weight_int4pack_mm(x, s[0], gs, s[1]),
            states=[state], clone=clone_tensors, ref_w=ref_w, weight_bytes=tensor_bytes(state),
            weight_format=f"int4pack_g{gs}", x_dtype=torch.bfloat16,
            repack=lambda: formats.to_int4pack(qw, inner_k_tiles=8),
            repack_from="4-bit codes + scales (unpack, byte-pack, _convert_weight_to_int4pack)",
            note="bf16 activations (the kernel's only dtype)" if p.dtype != torch.bfloat16 else "",
        )
