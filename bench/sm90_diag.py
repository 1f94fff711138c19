"""Errors of w4a16_gemm_sm90 per format x fp32_scales x overlap (a diagnostic for kernel changes)."""
import torch
import tinygemm
from tinygemm import _C, formats
from tinygemm import reference as R
from tinygemm._ext import dtype_name, stream_handle

for bm in (8, 64, 128):
    for gs, sym, dt in [(128, True, torch.float16), (32, False, torch.bfloat16), (64, True, torch.bfloat16),
                        (-1, False, torch.float16), (-1, True, torch.bfloat16)]:
        K, N, M = 1536, 2112, max(1, bm - 3)
        qw = tinygemm.quantize(torch.randn(K, N, device="cuda").to(dt), gs, sym, layout=formats.LAYOUT_SM90)
        x = torch.randn(M, K, device="cuda").to(dt)
        ref = R.w4a16_ref(x, qw)
        tol = R.tolerance(R.rel_error(R.w4a16_lowp(x, qw), ref))
        out = []
        for f32 in (0, 1):
            for ov in (0, 1):
                y = torch.full((M, N), float("nan"), dtype=dt, device="cuda")
                _C.w4a16_gemm_sm90(x.data_ptr(), qw.qweight.data_ptr(), qw.scales.data_ptr(),
                                   qw.zeros.data_ptr() if qw.zeros is not None else 0, y.data_ptr(), M, N, K, gs,
                                   dtype_name(dt), stream_handle(), bm, 1, f32, ov)
                out.append(f"f32={f32} ov={ov}: {R.rel_error(y, ref):.2e}")
        print(f"bm={bm} gs={gs} sym={sym} {dt}: tol {tol:.2e} | " + " | ".join(out), flush=True)
