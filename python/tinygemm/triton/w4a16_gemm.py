"""Triton INT4 kernels over tinygemm's packed layout (formats.py): w4a16_gemm (any M) and w4_dequant.

Reading the layout in Triton: a block loads the words of BT tiles x BC chunks as a 2-D int32 tile
[(tile, g), (chunk, t, j)] (rows of 64 contiguous bytes), then expands each word's 8 nibbles with
one broadcast shift into [(tile, g), h, (chunk, t, j), s] and reshapes it to [(tile, g, h), k'].
Row (tile, g, h) is output column n = 16*tile + 8*h + g; reduction index k' = (chunk, t, j, s) is
physical k = 64*chunk + 32*(j // 2) + 8*t + 4*(j % 2) + s. The dot product does not care about the order of k, so x is
loaded in the same permuted order instead of moving nibbles around. Weights become exact integers
(q - z) in the activation dtype; the group scale multiplies the fp32 partial product.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _load_q(w_ptr, pid_n, c0, chunks, ntiles, BT: tl.constexpr, BC: tl.constexpr):
    """Stored nibbles of BT tiles x BC chunks from chunk c0 on, as int32 [16*BT, 64*BC]."""
    rows = tl.arange(0, 8 * BT)
    cols = tl.arange(0, 16 * BC)
    tile = pid_n * BT + rows // 8
    g = rows % 8
    cc = c0 + cols // 16
    t = (cols // 4) % 4
    j = cols % 4
    offs = (tile[:, None] * chunks + cc[None, :]) * 128 + (4 * g[:, None] + t[None, :]) * 4 + j[None, :]
    mask = (tile < ntiles)[:, None] & (cc < chunks)[None, :]
    words = tl.load(w_ptr + offs, mask=mask, other=0)
    hh = tl.arange(0, 2)
    ss = tl.arange(0, 4)
    # nibble p = 4*(s & 1) + 2*(s >> 1) + h sits at bits 4p
    sh = 4 * (4 * (ss[None, :] & 1) + 2 * (ss[None, :] >> 1) + hh[:, None])
    q = (words[:, None, :, None] >> sh[None, :, None, :]) & 0xF
    return tl.reshape(q, (16 * BT, 64 * BC))


@triton.jit
def _w4a16_gemm_kernel(x_ptr, w_ptr, s_ptr, z_ptr, y_ptr, M, N, K, stride_xm, stride_ym, M_BUCKET,
                       GS: tl.constexpr, HAS_ZEROS: tl.constexpr, BLOCK_M: tl.constexpr,
                       BT: tl.constexpr, BC: tl.constexpr, NGB: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    chunks = K // 64
    ntiles = N // 16
    rr = tl.arange(0, 16 * BT)
    n = pid_n * BT * 16 + (rr // 16) * 16 + (rr % 2) * 8 + (rr // 2) % 8
    nmask = n < N
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mmask = m < M
    kk = tl.arange(0, 64 * BC)
    j = (kk // 4) % 4
    kl = (kk // 64) * 64 + (j // 2) * 32 + ((kk // 16) % 4) * 8 + (j % 2) * 4 + kk % 4  # physical k in the block
    acc = tl.zeros((BLOCK_M, 16 * BT), dtype=tl.float32)
    for c0 in range(0, chunks, BC):
        q = _load_q(w_ptr, pid_n, c0, chunks, ntiles, BT, BC).to(tl.float32)
        kp = c0 * 64 + kl
        xv = tl.load(x_ptr + m[:, None] * stride_xm + kp[None, :], mask=mmask[:, None] & (kp < K)[None, :], other=0.0)
        for gi in tl.static_range(NGB):
            grp = gi
            if GS > 0:
                grp = (c0 * 64) // GS + gi
            if HAS_ZEROS:
                z = tl.load(z_ptr + grp * N + n, mask=nmask, other=0.0).to(tl.float32)
            else:
                z = tl.full((16 * BT,), 8.0, tl.float32)
            wi = q - z[:, None]
            if NGB > 1:
                wi = tl.where(((kl // GS) == gi)[None, :], wi, 0.0)
            part = tl.dot(xv, tl.trans(wi.to(xv.dtype)))
            if GS == 0:
                acc += part
            else:
                s = tl.load(s_ptr + grp * N + n, mask=nmask, other=0.0).to(tl.float32)
                acc += part * s[None, :]
    if GS == 0:
        acc = acc * tl.load(s_ptr + n, mask=nmask, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + m[:, None] * stride_ym + n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=mmask[:, None] & nmask[None, :])


def _cfg(bm, bt, bc, warps, stages) -> triton.Config:
    return triton.Config({"BLOCK_M": bm, "BT": bt, "BC": bc}, num_warps=warps, num_stages=stages)


# NVIDIA: small BT for decode-sized M (more blocks to fill the SMs without split-K), larger tiles as
# M grows; 3-4 stages hide the weight stream's latency.
_CONFIGS_CUDA = [
    _cfg(16, 2, 1, 4, 4), _cfg(16, 2, 2, 4, 4), _cfg(16, 4, 1, 4, 4), _cfg(16, 4, 2, 4, 3),
    _cfg(32, 4, 1, 4, 4), _cfg(32, 4, 2, 4, 3), _cfg(32, 8, 1, 4, 3),
    _cfg(64, 4, 1, 4, 4), _cfg(64, 8, 1, 8, 3), _cfg(64, 8, 2, 8, 3),
    _cfg(128, 8, 1, 8, 3), _cfg(128, 8, 2, 8, 3), _cfg(128, 16, 1, 8, 3),
]
# AMD (wave64, LDS-bound software pipelining): fewer stages, larger K steps.
_CONFIGS_HIP = [
    _cfg(16, 2, 2, 4, 2), _cfg(16, 4, 2, 4, 2), _cfg(32, 4, 2, 4, 2),
    _cfg(64, 8, 2, 8, 2), _cfg(128, 8, 2, 8, 2), _cfg(128, 16, 1, 8, 2),
]


def _prune(configs, named_args, **kwargs):
    bucket = named_args["M_BUCKET"]
    gs = kwargs.get("GS", named_args.get("GS", 0))
    keep = [c for c in configs if c.kwargs["BLOCK_M"] <= max(16, bucket)
            and (gs == 0 or gs >= 64 or c.kwargs["BC"] == 1)]
    return keep or configs[:1]


# Scale groups inside one K step of 64*BC: 1 unless the group is shorter (group 32; 64 with BC=2).
_w4a16_gemm = triton.heuristics(
    {"NGB": lambda a: 1 if a["GS"] == 0 else max(1, 64 * a["BC"] // a["GS"])}
)(_w4a16_gemm_kernel)
CONFIGS = _CONFIGS_HIP if torch.version.hip else _CONFIGS_CUDA
_w4a16_gemm_tuned = triton.autotune(
    configs=CONFIGS, key=["M_BUCKET", "N", "K", "GS", "HAS_ZEROS"],
    prune_configs_by={"early_config_prune": _prune},
)(_w4a16_gemm)


def w4a16_gemm(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               group_size: int, out: torch.Tensor | None = None, config: triton.Config | None = None) -> torch.Tensor:
    """y[M, N] = x[M, K] @ W; arguments as validated by tinygemm.ops (2-D contiguous x).

    `config` pins one configuration (tests use it to cover each one) instead of autotuning.
    """
    M, K = x.shape
    N = qweight.shape[0] * 16
    y = out if out is not None else torch.empty((M, N), dtype=x.dtype, device=x.device)
    gs = 0 if group_size == -1 else group_size
    bucket = max(16, triton.next_power_of_2(M))
    z = zeros if zeros is not None else scales  # never read when HAS_ZEROS is False
    args = (x, qweight, scales, z, y, M, N, K, x.stride(0), y.stride(0), bucket)
    if config is None and _interpreting():
        # the CPU interpreter: one small configuration (autotuning there would take minutes)
        config = _cfg(16, 2, 1, 4, 1)
    if config is not None:
        kw = config.kwargs
        grid = (triton.cdiv(N, 16 * kw["BT"]), triton.cdiv(M, kw["BLOCK_M"]))
        _w4a16_gemm[grid](*args, GS=gs, HAS_ZEROS=zeros is not None, **kw, num_warps=config.num_warps,
                          num_stages=config.num_stages)
    else:
        def grid(meta):
            return (triton.cdiv(N, 16 * meta["BT"]), triton.cdiv(M, meta["BLOCK_M"]))
        _w4a16_gemm_tuned[grid](*args, GS=gs, HAS_ZEROS=zeros is not None)
    return y


@triton.jit
def _w4_dequant_kernel(w_ptr, s_ptr, z_ptr, out_ptr, N, K, GS: tl.constexpr, HAS_ZEROS: tl.constexpr,
                       BT: tl.constexpr, BC: tl.constexpr):
    pid_n = tl.program_id(0)
    c0 = tl.program_id(1) * BC
    chunks = K // 64
    q = _load_q(w_ptr, pid_n, c0, chunks, N // 16, BT, BC).to(tl.float32)
    rr = tl.arange(0, 16 * BT)
    n = pid_n * BT * 16 + (rr // 16) * 16 + (rr % 2) * 8 + (rr // 2) % 8
    kk = tl.arange(0, 64 * BC)
    j = (kk // 4) % 4
    kp = c0 * 64 + (kk // 64) * 64 + (j // 2) * 32 + ((kk // 16) % 4) * 8 + (j % 2) * 4 + kk % 4
    mask = (n < N)[:, None] & (kp < K)[None, :]
    grp = kp * 0
    if GS > 0:
        grp = kp // GS
    s = tl.load(s_ptr + grp[None, :] * N + n[:, None], mask=mask, other=0.0).to(tl.float32)
    if HAS_ZEROS:
        z = tl.load(z_ptr + grp[None, :] * N + n[:, None], mask=mask, other=0.0).to(tl.float32)
    else:
        z = 8.0
    w = (q - z) * s
    tl.store(out_ptr + kp[None, :] * N + n[:, None], w.to(out_ptr.dtype.element_ty), mask=mask)


def w4_dequant(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, group_size: int,
               K: int) -> torch.Tensor:
    """W[K, N] in the scales' dtype."""
    N = qweight.shape[0] * 16
    out = torch.empty((K, N), dtype=scales.dtype, device=scales.device)
    gs = 0 if group_size == -1 else group_size
    z = zeros if zeros is not None else scales
    grid = (triton.cdiv(N, 32), triton.cdiv(K // 64, 1))
    _w4_dequant_kernel[grid](qweight, scales, z, out, N, K, GS=gs, HAS_ZEROS=zeros is not None, BT=2, BC=1)
    return out
