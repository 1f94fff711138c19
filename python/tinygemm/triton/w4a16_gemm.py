"""Triton INT4 kernels over tinygemm's packed layout (formats.py): w4a16_gemm (any M) and w4_dequant_triton.

Reading the layout in Triton: a program loads the words of BT tiles x BC chunks as a 2-D int32 tile
[(tile, g), (chunk, t, j)] (rows of 64 contiguous bytes). A word holds 2 output columns (n = 16*tile
+ g and + 8: the two "halves") x 4 consecutive k. Each half is unpacked into [(tile, g), k'] with
k' = (chunk, t, j, s) at physical k = 64*chunk + 32*(j // 2) + 8*t + 4*(j % 2) + s; the dot product
does not care about the order of k, so x is loaded in the same permuted order instead of moving
nibbles around. Weights become exact integers (q - z) in the activation dtype through the
magic-number trick; the group scale multiplies the fp32 partial product of each step.

Speed (H100, bench/results/h100/): a configuration sweep chose wide column tiles, split-K through an
fp32 workspace, and the inline-PTX unpack (the compiler's own version of the same bit operations
issued twice the instructions, and the kernel is issue-bound at small M).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

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


# PTX for one word's four k values of output half h, packed two per 32-bit register (magic + q):
# register 0 holds nibbles h and h + 4 (k offsets 0 and 1), register 1 nibbles h + 2 and h + 6 (2, 3).
# lop3 0xEA is (a & b) | c: mask two nibbles 16 bits apart and OR in the magic exponent at once.
_PAIR = "lop3.b32 {o}, {i}, 0x000F000F, {magic}, 0xEA;"
_SHIFTED = "shr.u32 {o}, $2, {sh}; " + _PAIR.replace("{i}", "{o}")


def _half_asm(h: int, magic: int) -> str:
    m2 = hex(magic * 0x10001)
    r0 = _PAIR.format(o="$0", i="$2", magic=m2) if h == 0 else _SHIFTED.format(o="$0", sh=4 * h, magic=m2)
    return r0 + " " + _SHIFTED.format(o="$1", sh=4 * h + 8, magic=m2)


# jit code reads module globals only as tl.constexpr
_ASM_F16_H0 = tl.constexpr(_half_asm(0, 0x6400))
_ASM_F16_H1 = tl.constexpr(_half_asm(1, 0x6400))
_ASM_BF16_H0 = tl.constexpr(_half_asm(0, 0x4300))
_ASM_BF16_H1 = tl.constexpr(_half_asm(1, 0x4300))


@triton.jit
def _magic_pair(words, p: tl.constexpr, MAGIC: tl.constexpr, DT: tl.constexpr):
    """Nibbles p and p + 4 of each word as two DT tensors holding MAGIC's float plus q, exactly.

    OR-ing 4 bits into the mantissa of a float whose unit is 1 (fp16 1024, bf16 128) converts
    without the int -> float instruction, which runs at a quarter of the FMA rate on Hopper: one per
    weight would cost more time than streaming the weight. Nibbles p and p + 4 sit 16 bits apart,
    so one shift, AND and OR make both halves of a 32-bit register at once.
    """
    v = ((words >> (4 * p)) & 0x000F000F) | (MAGIC * 0x10001)
    return (v.to(tl.int16).to(DT, bitcast=True), (v >> 16).to(tl.int16).to(DT, bitcast=True))


@triton.jit
def _half_tile(words, h: tl.constexpr, IS_BF16: tl.constexpr, R: tl.constexpr, KB: tl.constexpr,
               PTX: tl.constexpr):
    """The nibbles of output half h (columns 16*tile + g + 8*h) as [R, KB]: magic + q.

    Column k' = 4*word_col + s holds k offset s of the word's 4-run: nibble h (s=0), h + 4 (s=1),
    h + 2 (s=2), h + 6 (s=3), as formats.py places them. tl.join adds its axis innermost, in
    registers, so the reshape that folds a word's four k values into the reduction axis moves no
    data. With PTX the four come from one inline-assembly block per word (4 instructions); the
    portable path leaves the same bit operations to the compiler, which spends about twice as many.
    """
    if PTX:
        w4 = tl.reshape(tl.join(tl.join(words, words), tl.join(words, words)), (R, KB))
        if IS_BF16:
            asm: tl.constexpr = _ASM_BF16_H1 if h else _ASM_BF16_H0
            q = tl.inline_asm_elementwise(asm, "=r,=r,r,r,r,r", [w4], dtype=tl.bfloat16, is_pure=True, pack=4)
        else:
            asm: tl.constexpr = _ASM_F16_H1 if h else _ASM_F16_H0
            q = tl.inline_asm_elementwise(asm, "=r,=r,r,r,r,r", [w4], dtype=tl.float16, is_pure=True, pack=4)
    else:
        DT: tl.constexpr = tl.bfloat16 if IS_BF16 else tl.float16
        MAGIC: tl.constexpr = 0x4300 if IS_BF16 else 0x6400
        a_lo, a_hi = _magic_pair(words, h, MAGIC, DT)
        b_lo, b_hi = _magic_pair(words, h + 2, MAGIC, DT)
        q = tl.reshape(tl.join(tl.join(a_lo, b_lo), tl.join(a_hi, b_hi)), (R, KB))
    return q


@triton.jit
def _zero_plus_magic(z_ptr, offs, mask, HAS_ZEROS: tl.constexpr, MAGIC_F: tl.constexpr, DT: tl.constexpr):
    """magic + z in DT, exact (zero points are small integers): subtracting it from magic + q gives q - z."""
    if HAS_ZEROS:
        z = (tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32) + MAGIC_F).to(DT)
    else:
        z = tl.full(offs.shape, 8.0 + MAGIC_F, DT)
    return z


@triton.jit
def _mma(w, x, acc, SWAP: tl.constexpr):
    """acc + w . x^T as the orientation wants: [R, BLOCK_M] with SWAP, else [BLOCK_M, R]."""
    if SWAP:
        out = tl.dot(w, x, acc)
    else:
        out = tl.dot(x, tl.trans(w), acc)
    return out


@triton.jit
def _w4a16_gemm_kernel(x_ptr, w_ptr, s_ptr, z_ptr, y_ptr, ws_ptr, M, N, K, stride_xm, stride_ym, SPLIT_K,
                       GS: tl.constexpr, HAS_ZEROS: tl.constexpr, IS_BF16: tl.constexpr, EVEN: tl.constexpr,
                       PTX: tl.constexpr, BLOCK_M: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
                       SWAP: tl.constexpr):
    """One program: BLOCK_M rows x 16*BT columns over its 1/SPLIT_K share of K, BC chunks per step.

    The columns come as two halves (n = 16*tile + g and + 8) with their own accumulators, so the
    words never have to be rearranged: each half is one dot per step. SWAP computes y^T = W^T x^T
    (weights as the first operand). Scales: a group that spans whole steps multiplies the step's
    fp32 partial product (a few multiplies per output, not one per weight); a shorter group scales
    the weights; per-channel scales multiply the result once. EVEN: no column or K tails, so the
    loop needs no masks.
    """
    DT: tl.constexpr = tl.bfloat16 if IS_BF16 else tl.float16
    MAGIC_F: tl.constexpr = 128.0 if IS_BF16 else 1024.0
    R: tl.constexpr = 8 * BT
    KB: tl.constexpr = 64 * BC
    STEP_SCALED: tl.constexpr = GS > 0 and GS % KB == 0
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_k = tl.program_id(2)
    chunks = K // 64
    per = tl.cdiv(tl.cdiv(chunks, SPLIT_K), BC) * BC
    c_begin = pid_k * per
    c_end = tl.minimum(c_begin + per, chunks)

    rows = tl.arange(0, R)
    tile = pid_n * BT + rows // 8
    n0 = 16 * tile + rows % 8  # output column of half 0; half 1 is n0 + 8
    nmask = tile < N // 16
    cols = tl.arange(0, 16 * BC)
    woff = (tile[:, None] * chunks + cols[None, :] // 16) * 128 \
        + (4 * (rows % 8)[:, None] + (cols[None, :] // 4) % 4) * 4 + cols[None, :] % 4
    kk = tl.arange(0, KB)
    jj = (kk // 4) % 4
    kl = (kk // 64) * 64 + (jj // 2) * 32 + ((kk // 16) % 4) * 8 + (jj % 2) * 4 + kk % 4  # physical k of k'
    # runs of 4 consecutive k: the hint lets x load 8 bytes at a time, which also lets the pipeliner
    # stage it with cp.async (it needs 4 bytes or more) instead of waiting on it every step
    kl = tl.max_contiguous(tl.multiple_of(kl, 4), 4)
    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mmask = m < M
    if SWAP:
        x_offs = m[None, :] * stride_xm + kl[:, None]
        acc0 = tl.zeros((R, BLOCK_M), dtype=tl.float32)
    else:
        x_offs = m[:, None] * stride_xm + kl[None, :]
        acc0 = tl.zeros((BLOCK_M, R), dtype=tl.float32)
    acc1 = tl.zeros_like(acc0)
    zc0 = _zero_plus_magic(z_ptr, n0, nmask, HAS_ZEROS and GS == 0, MAGIC_F, DT)
    zc1 = _zero_plus_magic(z_ptr, n0 + 8, nmask, HAS_ZEROS and GS == 0, MAGIC_F, DT)

    for c0 in range(c_begin, c_end, BC):
        kmask = c0 * 64 + kl < K  # x is zero past K, so a tail's (0 - z) weights add nothing
        if EVEN:
            words = tl.load(w_ptr + woff + c0 * 128)
        else:
            words = tl.load(w_ptr + woff + c0 * 128, mask=nmask[:, None] & (c0 + cols // 16 < chunks)[None, :], other=0)
        if EVEN:  # a mask along m only: constant over each run of 4 k, so the loads vectorize
            kmask = kl >= 0
        if SWAP:
            xv = tl.load(x_ptr + x_offs + c0 * 64, mask=mmask[None, :] & kmask[:, None], other=0.0)
        else:
            xv = tl.load(x_ptr + x_offs + c0 * 64, mask=mmask[:, None] & kmask[None, :], other=0.0)
        q0 = _half_tile(words, 0, IS_BF16, R, KB, PTX)
        q1 = _half_tile(words, 1, IS_BF16, R, KB, PTX)
        if GS == 0:
            acc0 = _mma(q0 - zc0[:, None], xv, acc0, SWAP)
            acc1 = _mma(q1 - zc1[:, None], xv, acc1, SWAP)
        elif STEP_SCALED:
            g = (c0 * 64) // GS * N
            z0 = _zero_plus_magic(z_ptr, g + n0, nmask, HAS_ZEROS, MAGIC_F, DT)
            z1 = _zero_plus_magic(z_ptr, g + n0 + 8, nmask, HAS_ZEROS, MAGIC_F, DT)
            s0 = tl.load(s_ptr + g + n0, mask=nmask, other=0.0).to(tl.float32)
            s1 = tl.load(s_ptr + g + n0 + 8, mask=nmask, other=0.0).to(tl.float32)
            p0 = _mma(q0 - z0[:, None], xv, tl.zeros_like(acc0), SWAP)
            p1 = _mma(q1 - z1[:, None], xv, tl.zeros_like(acc1), SWAP)
            if SWAP:
                acc0 += p0 * s0[:, None]
                acc1 += p1 * s1[:, None]
            else:
                acc0 += p0 * s0[None, :]
                acc1 += p1 * s1[None, :]
        else:
            # groups shorter than a step: a scale (and zero) per weight, gathered from L1
            gk = ((c0 * 64 + kl) // GS * N)[None, :]
            m2 = nmask[:, None] & kmask[None, :]
            z0 = _zero_plus_magic(z_ptr, gk + n0[:, None], m2, HAS_ZEROS, MAGIC_F, DT)
            z1 = _zero_plus_magic(z_ptr, gk + n0[:, None] + 8, m2, HAS_ZEROS, MAGIC_F, DT)
            s0 = tl.load(s_ptr + gk + n0[:, None], mask=m2, other=0.0)
            s1 = tl.load(s_ptr + gk + n0[:, None] + 8, mask=m2, other=0.0)
            acc0 = _mma((q0 - z0) * s0, xv, acc0, SWAP)
            acc1 = _mma((q1 - z1) * s1, xv, acc1, SWAP)

    if GS == 0:
        sc0 = tl.load(s_ptr + n0, mask=nmask, other=0.0).to(tl.float32)
        sc1 = tl.load(s_ptr + n0 + 8, mask=nmask, other=0.0).to(tl.float32)
        if SWAP:
            acc0 = acc0 * sc0[:, None]
            acc1 = acc1 * sc1[:, None]
        else:
            acc0 = acc0 * sc0[None, :]
            acc1 = acc1 * sc1[None, :]
    if SWAP:
        y_offs = m[None, :] * stride_ym + n0[:, None]
        ws_offs = m[None, :] * N + n0[:, None]
        omask = mmask[None, :] & nmask[:, None]
    else:
        y_offs = m[:, None] * stride_ym + n0[None, :]
        ws_offs = m[:, None] * N + n0[None, :]
        omask = mmask[:, None] & nmask[None, :]
    if SPLIT_K == 1:
        tl.store(y_ptr + y_offs, acc0.to(DT), mask=omask)
        tl.store(y_ptr + y_offs + 8, acc1.to(DT), mask=omask)
    else:
        # split-K partials meet in an fp32 workspace (row stride N), cast to y by the caller
        tl.atomic_add(ws_ptr + ws_offs, acc0, mask=omask, sem="relaxed")
        tl.atomic_add(ws_ptr + ws_offs + 8, acc1, mask=omask, sem="relaxed")


@dataclass(frozen=True)
class GemmConfig:
    """One launch configuration: BLOCK_M rows x 16*bt columns per program, 64*bc of K per step.

    block_m  rows of x (tokens) per program
    bt       16-wide column tiles per program
    bc       64-deep K chunks per step (1 when a group is shorter than two chunks)
    split_k  programs sharing one output tile's K, meeting in an fp32 workspace
    warps    num_warps;  stages: num_stages (software pipelining depth)
    swap     compute y^T = W^T x^T (the weights as the first MMA operand: Hopper's 64-row wgmma)
    portable the compiler's unpack instead of inline PTX (AMD's path; tests run it on NVIDIA)
    """

    block_m: int
    bt: int
    bc: int
    split_k: int = 1
    warps: int = 4
    stages: int = 3
    swap: bool = False
    portable: bool = False

    def __str__(self) -> str:
        return (f"bm{self.block_m}_bt{self.bt}_bc{self.bc}_sk{self.split_k}_w{self.warps}_s{self.stages}"
                f"{'_swap' if self.swap else ''}{'_portable' if self.portable else ''}")


@dataclass(frozen=True)
class GemmRule:
    """The heuristic's rule for M <= max_m (None: every larger M): `base`, with its split_k chosen by
    pick_config while the grid stays under `programs_per_sm` programs per SM."""

    max_m: int | None
    base: GemmConfig
    programs_per_sm: int


# the CPU interpreter's one small configuration: a correctness check, not a timing
INTERPRETER_CONFIG = GemmConfig(block_m=16, bt=2, bc=1)


def _ptx_available() -> bool:
    """Inline PTX on NVIDIA; the portable path on AMD and in the CPU interpreter."""
    return torch.version.hip is None and not _interpreting()


def _num_sms(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


# Launch rules per vendor, in order of M. NVIDIA's come from the H100 sweep
# (bench/results/h100/tune_w4a16_gemm*.csv); AMD's keep its wave64 / LDS-bound pipelining in mind
# (2 stages, no swap) and are not yet measured: no AMD GPU is lent here. A fixed, measured rule
# instead of Triton's autotuner: no first-call tuning pause inside a model's forward or a CUDA-graph
# capture, and the same configuration on every run. Other GPUs: rerun bench/tune_w4a16_gemm.py
# there, or pin one with w4a16_gemm(..., config=).
RULES_NVIDIA = (
    GemmRule(16, GemmConfig(block_m=16, bt=4, bc=2, stages=3), programs_per_sm=4),
    GemmRule(32, GemmConfig(block_m=32, bt=8, bc=2, stages=4), programs_per_sm=3),
    GemmRule(None, GemmConfig(block_m=64, bt=8, bc=1, stages=3, swap=True), programs_per_sm=2),
)
RULES_AMD = (
    GemmRule(16, GemmConfig(block_m=16, bt=4, bc=2, stages=2), programs_per_sm=4),
    GemmRule(32, GemmConfig(block_m=32, bt=8, bc=2, stages=2), programs_per_sm=3),
    GemmRule(None, GemmConfig(block_m=64, bt=8, bc=1, stages=2), programs_per_sm=2),
)


def pick_config(M: int, N: int, K: int, group_size: int, num_sms: int, hip: bool | None = None) -> GemmConfig:
    """The launch heuristic: within 0-3 % of the best configuration of the H100 sweep, summed per M.

    Column tiles of 64-128 (bt 4-8) with split-K beat narrow tiles: each program keeps 8-16 KB of
    weights in flight per step and the grid still covers the SMs. Up to 32 rows the weights are the
    second MMA operand; from 64 rows, the first (SWAP), where Hopper's wgmma takes 64-row tiles.
    """
    hip = torch.version.hip is not None if hip is None else hip
    rule = next(r for r in (RULES_AMD if hip else RULES_NVIDIA) if r.max_m is None or M <= r.max_m)
    c = rule.base
    bc = c.bc
    if group_size == 64 or group_size == 32:
        bc = 1  # a step no longer than the group keeps one scale per column (group 32: per weight)
    chunks = K // 64
    programs = triton.cdiv(N, 16 * c.bt) * triton.cdiv(M, c.block_m)
    split = 1
    # split K while the grid stays under the rule's programs per SM and each share keeps >= 4 steps
    cap = rule.programs_per_sm * num_sms
    while split < 8 and programs * split * 2 <= cap and chunks // (bc * split * 2) >= 4:
        split *= 2
    return replace(c, bc=bc, split_k=split)


def w4a16_gemm(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
               group_size: int, out: torch.Tensor | None = None, config: GemmConfig | None = None) -> torch.Tensor:
    """y[M, N] = x[M, K] @ W; arguments as validated by tinygemm.ops (2-D contiguous x).

    `config` pins one launch configuration (tests and the tuning script use it) instead of the
    heuristic's.
    """
    M, K = x.shape
    N = qweight.shape[0] * 16
    y = out if out is not None else torch.empty((M, N), dtype=x.dtype, device=x.device)
    gs = 0 if group_size == -1 else group_size
    if config is None:
        config = (INTERPRETER_CONFIG if _interpreting()
                  else pick_config(M, N, K, group_size, _num_sms(x.device)))
    c = config
    split = max(1, min(c.split_k, K // (64 * c.bc)))
    ws = torch.zeros((M, N), dtype=torch.float32, device=x.device) if split > 1 else y
    z = zeros if zeros is not None else scales  # never read when HAS_ZEROS is False
    grid = (triton.cdiv(N, 16 * c.bt), triton.cdiv(M, c.block_m), split)
    even = N % (16 * c.bt) == 0 and (K // 64) % c.bc == 0
    _w4a16_gemm_kernel[grid](x, qweight, scales, z, y, ws, M, N, K, x.stride(0), y.stride(0), split,
                             GS=gs, HAS_ZEROS=zeros is not None, IS_BF16=x.dtype == torch.bfloat16,
                             EVEN=even, PTX=_ptx_available() and not c.portable,
                             BLOCK_M=c.block_m, BT=c.bt, BC=c.bc, SWAP=c.swap,
                             num_warps=c.warps, num_stages=c.stages)
    if split > 1:
        y.copy_(ws)
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


def w4_dequant_triton(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
                      group_size: int) -> torch.Tensor:
    """W[K, N] in the scales' dtype: torch.ops.tinygemm.w4_dequant_triton (named apart from the CUDA
    kernel's w4_dequant, which computes the same W)."""
    N, K = qweight.shape[0] * 16, qweight.shape[1] * 64
    out = torch.empty((K, N), dtype=scales.dtype, device=scales.device)
    gs = 0 if group_size == -1 else group_size
    z = zeros if zeros is not None else scales
    grid = (triton.cdiv(N, 32), triton.cdiv(K // 64, 1))
    _w4_dequant_kernel[grid](qweight, scales, z, out, N, K, GS=gs, HAS_ZEROS=zeros is not None, BT=2, BC=1)
    return out
