"""torch.matmul in fp16 / bf16 (cuBLAS or hipBLAS): the baseline every other backend is measured against."""

from __future__ import annotations

import torch

from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes


class TorchMatmul(Backend):
    """torch.matmul, weights in the activation dtype (cuBLAS / hipBLAS)."""

    name = "torch_matmul"
    op = "matmul"
    tolerance = 1e-2

    def unavailable(self):
        return None if torch.cuda.is_available() else "no GPU visible to torch"

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        wd = w.to(p.dtype).contiguous()
        return Prepared(
            call=lambda s, x: torch.matmul(x, s),
            states=[wd], clone=clone_tensors, ref_w=wd.float(), weight_bytes=tensor_bytes(wd),
            weight_format=str(p.dtype).removeprefix("torch."), x_dtype=p.dtype,
        )
