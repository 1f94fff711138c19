"""Group-wise 4-bit weight formats, tinygemm's packed layout, and converters to the peers' formats.

Semantics (weight W[K, N] of y = x @ W, groups of `group_size` along K, -1 = one group per column):
  symmetric  ("uint4b8", GPTQ):  stored q in 0..15, w = (q - 8) * s
  asymmetric ("uint4" + zero point, AWQ): w = (q - z) * s, z an integer in 0..15 per group and column
Scales (and zero points) are [K / group_size, N] in the activations' dtype (fp16 or bf16).

tinygemm's packed layout "tinygemm-w4-v1" (LAYOUT; read by the GEMV, the dequant and the Triton kernels):
  int32 words shaped [N/16 tiles, K/64 chunks, 32 lanes, 4 words]. Word j of lane 4g+t of a
  (tile, chunk) holds nibble p (bits 4p..4p+3) of
      n = 16*tile + g + 8*(p & 1),
      k = 64*chunk + 32*(j >> 1) + 8*t + 4*(j & 1) + 2*((p >> 1) & 1) + (p >> 2)
  Why:
  - a (tile, chunk) is 512 contiguous bytes and each lane's 4 words are 16 contiguous bytes, so a
    warp reads it with one fully coalesced 16-byte load per lane;
  - word j of lane (g, t) holds exactly the 8 elements that lane owns in the A fragment of the j-th
    mma.m16n8k16 (rows g and g+8), so no shuffles are needed between load and tensor core;
  - nibbles p and p+4 sit 16 bits apart, so one AND with 0x000F000F and one OR with the exponent
    bits of 1024.0 (fp16) or 128.0 (bf16) turn two of them into an exact half2 (1024 + q);
  - physical k is permuted so that a lane's activations for mmas j = 0, 1 (and 2, 3) are 8
    consecutive values: one 16-byte load feeds two mmas; mmas 0-1 cover k 0..31 of the chunk and
    2-3 cover 32..63, so group sizes 32 and up stay aligned.
  Requirements: N % 16 == 0, K % 64 == 0, K % group_size == 0.

The "tinygemm-w4-sm90" layout (LAYOUT_SM90, read by the Hopper GEMM w4a16_gemm_sm90 and the GEMV):
the same words, lanes, tiles and chunks, with k in natural order inside each 16-deep step j:
      n = 16*tile + g + 8*(p & 1),
      k = 64*chunk + 16*j + 2*t + (p >> 2) + 8*((p >> 1) & 1)
  Why another layout: the Hopper GEMM's x tile comes into shared memory by a bulk tensor copy,
  which copies rectangles and cannot permute k, and wgmma reads k in natural order there; so the
  weights' register fragment (the same A fragment as mma.m16n8k16's) must hold natural k. A
  (tile, chunk) stays 512 contiguous bytes and 8 tiles x 2 chunks are one 3-D tensor-copy box.
  Convert with to_layout(qw, LAYOUT_SM90); dequantize() and unpack() read either layout.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import torch

from ._ext import GPU_BACKEND, _C, stream_handle

GROUP_SIZES = tuple(_C.w4_group_sizes)  # 32, 64, 128, -1 (per channel): csrc/kernels/w4a16.h
LAYOUTS = tuple(_C.w4_layouts)  # named in csrc/kernels/w4a16.h, where the kernels read them
LAYOUT, LAYOUT_SM90 = LAYOUTS


@dataclass(frozen=True)
class QuantizedWeight:
    """A 4-bit weight in tinygemm's packed layout (see the module doc)."""

    qweight: torch.Tensor          # int32 [N/16, K/64, 32, 4]
    scales: torch.Tensor           # [G, N], fp16 or bf16
    zeros: torch.Tensor | None     # [G, N] integer-valued, scales' dtype; None = symmetric (z = 8)
    shape: tuple[int, int]         # (K, N)
    group_size: int                # 32, 64, 128 or -1
    layout: str = LAYOUT
    # act-order (GPTQ desc_act): K rows stored sorted by group, row i is the model's input feature
    # perm[i]; y = x[..., perm] @ W_stored. int32 [K] or None (rows in the model's order).
    perm: torch.Tensor | None = None

    @property
    def symmetric(self) -> bool:
        return self.zeros is None

    @property
    def format(self) -> str:
        """The peers' name for the value format: uint4b8 (symmetric) or uint4 (zero points)."""
        return "uint4b8" if self.symmetric else "uint4"

    @property
    def dtype(self) -> torch.dtype:
        return self.scales.dtype

    @property
    def device(self) -> torch.device:
        return self.qweight.device

    @property
    def num_groups(self) -> int:
        return self.scales.shape[0]

    def nbytes(self) -> int:
        """Bytes the kernels read: packed weights, scales and zero points."""
        n = self.qweight.numel() * 4 + self.scales.numel() * self.scales.element_size()
        n += self.perm.numel() * self.perm.element_size() if self.perm is not None else 0
        return n + (self.zeros.numel() * self.zeros.element_size() if self.zeros is not None else 0)

    def clone(self) -> "QuantizedWeight":
        """A copy in fresh memory (benchmarks rotate through copies to keep the L2 cold)."""
        z = self.zeros.clone() if self.zeros is not None else None
        perm = self.perm.clone() if self.perm is not None else None
        return replace(self, qweight=self.qweight.clone(), scales=self.scales.clone(), zeros=z, perm=perm)

    def to(self, device) -> "QuantizedWeight":
        z = self.zeros.to(device) if self.zeros is not None else None
        perm = self.perm.to(device) if self.perm is not None else None
        return replace(self, qweight=self.qweight.to(device), scales=self.scales.to(device), zeros=z, perm=perm)

    def unpack(self) -> torch.Tensor:
        """The stored values q as uint8 [K, N] (rows in stored order: permuted by `perm` when set)."""
        return unpack(self.qweight, *self.shape, layout=self.layout)


def check_shape(K: int, N: int, group_size: int) -> None:
    """The layout's shape rules, as ValueErrors that name the constraint and the values: the C++ rules
    the kernels and the repack check (csrc/kernels/w4a16_host.cpp, check_w4_dims), in every build."""
    for name, v in (("K", K), ("N", N), ("group_size", group_size)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or not -2**31 <= v < 2**31:
            raise ValueError(f"{name} must be a 32-bit integer; got {v!r}")
    _C.check_w4_dims(int(N), int(K), int(group_size))


SCALE_DTYPES = (torch.float16, torch.bfloat16)


INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _check_tensor(t, name: str, dtypes: tuple, shape: tuple | None = None) -> None:
    """A converter's argument: a tensor of one of `dtypes` and, when given, exactly `shape`; a
    floating tensor (scales) must be finite too: a NaN or inf scale is a NaN or inf weight."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise ValueError(f"{name} must be {' or '.join(str(d).removeprefix('torch.') for d in dtypes)}; "
                         f"got {str(t.dtype).removeprefix('torch.')}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {tuple(t.shape)}")
    if t.is_floating_point():
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            at = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"{name} must be finite; {int(bad.sum())} value(s) are not (the first at {list(at)}: "
                             f"{float(t[at])})")


def check_quantized(qw: "QuantizedWeight") -> None:
    """A QuantizedWeight's tensors agree with its shape and group size (converters read them blindly)."""
    if not isinstance(qw, QuantizedWeight):
        raise ValueError(f"expected a tinygemm QuantizedWeight; got {type(qw).__name__}")
    K, N = qw.shape
    check_shape(K, N, qw.group_size)
    G = _groups(K, qw.group_size)
    _check_tensor(qw.qweight, "qweight", (torch.int32,), (N // 16, K // 64, 32, 4))
    _check_tensor(qw.scales, "scales", SCALE_DTYPES, (G, N))
    if qw.zeros is not None:
        _check_tensor(qw.zeros, "zeros", (qw.scales.dtype,), (G, N))
    devices = {t.device for t in (qw.qweight, qw.scales, qw.zeros) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"qweight, scales and zeros must be on one device; got {', '.join(map(str, devices))}")


def _groups(K: int, group_size: int) -> int:
    return 1 if group_size == -1 else K // group_size


def quantize(w: torch.Tensor, group_size: int = 128, symmetric: bool = True,
             layout: str = LAYOUT) -> QuantizedWeight:
    """Round-to-nearest 4-bit quantization of W[K, N] (y = x @ W), groups along K.

    Scales take w's dtype when it is fp16 or bf16, else fp16. `layout`: LAYOUT (GEMV and Triton
    kernels) or LAYOUT_SM90 (the Hopper GEMM); `preferred_layout(device)` says which one
    w4a16_matmul runs fastest from on a device.
    """
    _check_layout(layout)
    if w.dim() != 2:
        raise ValueError(f"quantize expects a 2-D weight [K, N]; got shape {tuple(w.shape)}")
    K, N = w.shape
    check_shape(K, N, group_size)
    sdtype = w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.float16
    G = _groups(K, group_size)
    wg = w.float().reshape(G, K // G, N)
    finite = torch.isfinite(wg)
    if not bool(finite.all()):  # NaN or inf (or a float64 beyond fp32's range) would quantize to garbage
        bad = (~finite).reshape(K, N).nonzero()
        k, n = (int(v) for v in bad[0])
        raise ValueError(f"quantize: the weight has {bad.shape[0]} non-finite value(s) (NaN, inf, or beyond fp32's "
                         f"range), the first at [k={k}, n={n}] = {float(w[k, n])}")
    if symmetric:
        amax = wg.abs().amax(dim=1)
        s = torch.where(amax > 0, amax / 7.0, torch.ones_like(amax)).to(sdtype)
        _check_scales(amax / 7.0, s, amax > 0)
        q = torch.clamp(torch.round(wg / s.float()[:, None, :]) + 8, 0, 15)
        z = None
    else:
        lo = wg.amin(dim=1).clamp(max=0)
        hi = wg.amax(dim=1).clamp(min=0)
        s = torch.where(hi > lo, (hi - lo) / 15.0, torch.ones_like(hi)).to(sdtype)
        _check_scales((hi - lo) / 15.0, s, hi > lo)
        zf = torch.clamp(torch.round(-lo / s.float()), 0, 15)
        q = torch.clamp(torch.round(wg / s.float()[:, None, :]) + zf[:, None, :], 0, 15)
        z = zf.to(sdtype)
    q = q.reshape(K, N).to(torch.uint8)
    return QuantizedWeight(pack(q, layout), s.contiguous(), z, (K, N), group_size, layout)


# A stored scale may differ from the exact one by at most this fraction: 8x the rounding of bf16's
# normal numbers, so only an underflow to a subnormal or to zero trips it (fp16's subnormals below
# ~4e-6), where every weight of the group would come out scaled wrong by more than ~1 %.
SCALE_REL_TOL = 2.0**-7


def _check_scales(exact: torch.Tensor, stored: torch.Tensor, used: torch.Tensor) -> None:
    """The scales' dtype must hold every scale: one that overflows to inf or underflows to zero or a
    coarse subnormal (fp32 weights x 1e6 or x 1e-9 into fp16 scales) is an error, not garbage weights."""
    fi = torch.finfo(stored.dtype)
    name = str(stored.dtype).removeprefix("torch.")
    st = stored.float()
    # bfloat16 has fp32's exponent range: the way out of an fp16 range problem, not of a bf16 one
    fix = "quantize the weight as bfloat16, or rescale it" if stored.dtype != torch.bfloat16 else "rescale the weight"
    over = used & ~torch.isfinite(st)
    if bool(over.any()):
        raise ValueError(f"quantize: {int(over.sum())} scale(s) overflow {name} (largest "
                         f"{float(exact[over].max()):.4g} > {fi.max:.4g}); {fix}")
    under = used & ((st - exact).abs() > SCALE_REL_TOL * exact)
    if bool(under.any()):
        raise ValueError(f"quantize: {int(under.sum())} scale(s) underflow {name} (smallest "
                         f"{float(exact[under].min()):.4g}; {name}'s smallest normal number is {fi.tiny:.4g}); {fix}")


def dequantize(qw: QuantizedWeight, dtype: torch.dtype | None = None) -> torch.Tensor:
    """W[K, N] = (q - z) * s, computed in fp32 and returned in `dtype` (default: the scales').

    Rows are in the model's order (an act-order weight's stored rows are put back), so y = x @ W.
    """
    check_quantized(qw)
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(f"dequantize: dtype must be a floating-point torch.dtype; got {dtype}")
    K, N = qw.shape
    q = qw.unpack().float().reshape(qw.num_groups, -1, N)
    z = qw.zeros.float()[:, None, :] if qw.zeros is not None else 8.0
    w = ((q - z) * qw.scales.float()[:, None, :]).reshape(K, N)
    if qw.perm is not None:
        w = torch.empty_like(w).index_copy_(0, qw.perm.long(), w)  # stored row i is the model's row perm[i]
    return w.to(dtype or qw.dtype)


def _nibbles_to_words(v: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 8] nibbles (nibble p at bits 4p) -> int32 [...].

    Built as bytes (nibbles 2b and 2b + 1 make byte b) and reinterpreted as little-endian int32:
    uint8 arithmetic has no overflow to care about, and the temporaries stay at one or two bytes per
    weight (int64 shifts and sums needed 40 per weight at load time).
    """
    v = v.contiguous()
    b = v[..., 0::2] | (v[..., 1::2] << 4)  # [..., 4] bytes, byte 0 lowest
    return b.contiguous().view(torch.int32).squeeze(-1)


def _words_to_nibbles(w: torch.Tensor) -> torch.Tensor:
    """The inverse of _nibbles_to_words: int32 [...] -> uint8 [..., 8]."""
    b = w.contiguous().unsqueeze(-1).view(torch.uint8)  # [..., 4]
    return torch.stack([b & 0xF, b >> 4], dim=-1).flatten(-2)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")


def pack(q: torch.Tensor, layout: str = LAYOUT) -> torch.Tensor:
    """uint8 q[K, N] (values 0..15) -> int32 [N/16, K/64, 32, 4] in one of tinygemm's layouts."""
    K, N = q.shape
    if q.is_floating_point() or q.is_complex():
        raise ValueError(f"pack expects an integer tensor q[K, N]; got {q.dtype}")
    if q.numel() and (int(q.min()) < 0 or int(q.max()) > 15):  # a wider value would spill into a neighbour
        raise ValueError(f"pack: values must be in 0..15; got {int(q.min())}..{int(q.max())}")
    check_shape(K, N, -1)
    _check_layout(layout)
    if layout == LAYOUT_SM90:
        # k = 64 c + 16 j + 8 u + 2 t + i0 ;  n = 16 T + 8 h + g ;  nibble p = 4 i0 + 2 u + h
        v = q.to(torch.uint8).reshape(K // 64, 4, 2, 4, 2, N // 16, 2, 8)  # c j u t i0 T h g
        v = v.permute(5, 0, 7, 3, 1, 4, 2, 6)  # T c g t j i0 u h
        return _nibbles_to_words(v.reshape(N // 16, K // 64, 32, 4, 8))
    # k = 64 c + 32 jh + 8 t + 4 jl + 2 i1 + i0 (j = 2 jh + jl) ;  n = 16 T + 8 h + g ;
    # nibble p = 4 i0 + 2 i1 + h
    v = q.to(torch.uint8).reshape(K // 64, 2, 4, 2, 2, 2, N // 16, 2, 8)  # c jh t jl i1 i0 T h g
    v = v.permute(6, 0, 8, 2, 1, 3, 5, 4, 7)  # T c g t jh jl i0 i1 h
    return _nibbles_to_words(v.reshape(N // 16, K // 64, 32, 4, 8))


def unpack(words: torch.Tensor, K: int, N: int, layout: str = LAYOUT) -> torch.Tensor:
    """The inverse of pack: int32 [N/16, K/64, 32, 4] -> uint8 q[K, N]."""
    check_shape(K, N, -1)
    _check_tensor(words, "packed weights", (torch.int32,))
    expected = (N // 16, K // 64, 32, 4)
    if tuple(words.shape) != expected:
        raise ValueError(f"packed weights for K={K}, N={N} must have shape {expected}; got {tuple(words.shape)}")
    _check_layout(layout)
    nib = _words_to_nibbles(words)  # T c lane j p
    if layout == LAYOUT_SM90:
        nib = nib.reshape(N // 16, K // 64, 8, 4, 4, 2, 2, 2)  # T c g t j i0 u h
        return nib.permute(1, 4, 6, 3, 5, 0, 7, 2).reshape(K, N)  # c j u t i0 T h g
    nib = nib.reshape(N // 16, K // 64, 8, 4, 2, 2, 2, 2, 2)  # T c g t jh jl i0 i1 h
    nib = nib.permute(1, 4, 3, 5, 7, 6, 0, 8, 2)  # c jh t jl i1 i0 T h g
    return nib.reshape(K, N)


def to_layout(qw: QuantizedWeight, layout: str) -> QuantizedWeight:
    """The same weight in another of tinygemm's packed layouts (a repack of the words; scales and
    zero points are shared). Runs where the tensors are, GPU included."""
    _check_layout(layout)
    if qw.layout == layout:
        return qw
    return replace(qw, qweight=pack(qw.unpack(), layout), layout=layout)


# --- GPTQ / AWQ checkpoint tensors ---------------------------------------------------------------

def _pack_rows(q: torch.Tensor) -> torch.Tensor:
    """uint8 [R, C] -> int32 [R/8, C]: 8 consecutive rows per word, row 8r+i at bits 4i (GPTQ qweight)."""
    R, C = q.shape
    return _nibbles_to_words(q.to(torch.uint8).reshape(R // 8, 8, C).permute(0, 2, 1))


def _unpack_rows(w: torch.Tensor) -> torch.Tensor:
    return _words_to_nibbles(w).permute(0, 2, 1).reshape(-1, w.shape[1])


def to_gptq(qw: QuantizedWeight, zero_offset: int = 1) -> dict[str, torch.Tensor]:
    """GPTQ checkpoint tensors: qweight int32 [K/8, N], qzeros int32 [G, N/8], scales [G, N].

    GPTQ's v1 checkpoints store zero - 1 (`zero_offset=1`, what AutoGPTQ and vLLM's loaders expect);
    pass 0 for the v2 convention. Symmetric weights store z = 8. An act-order weight (perm set) also
    gets g_idx int32 [K], with qweight's rows in the model's order, as AutoGPTQ writes them.
    """
    check_quantized(qw)
    if zero_offset not in (0, 1) or isinstance(zero_offset, bool):
        raise ValueError(f"zero_offset must be 1 (GPTQ v1) or 0 (v2); got {zero_offset!r}")
    K, N = qw.shape
    z = qw.zeros.to(torch.int32) if qw.zeros is not None else torch.full(
        (qw.num_groups, N), 8, dtype=torch.int32, device=qw.device)
    zs = (z - zero_offset) & 0xF
    q = qw.unpack()
    out = {}
    if qw.perm is not None:  # act-order: rows back in the model's order, each with its group
        inv = torch.argsort(qw.perm.long())
        q = q[inv]
        out["g_idx"] = (inv // (qw.shape[0] // qw.num_groups)).to(torch.int32)
    return {
        "qweight": _pack_rows(q),
        "qzeros": _pack_rows(zs.t().contiguous().to(torch.uint8)).t().contiguous(),
        "scales": qw.scales.clone(),
        **out,
    }


def from_gptq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int,
              zero_offset: int = 1, g_idx: torch.Tensor | None = None) -> QuantizedWeight:
    """A GPTQ checkpoint's tensors to tinygemm's layout (symmetric when every zero point is 8).

    GPTQ (AutoGPTQ / GPTQModel `QuantLinear.pack`, vLLM's gptq loaders), 4 bits:
      qweight int32 [K/8, N]: word [r, n] holds input row k = 8r + i at bits 4i..4i+3 (i = 0..7)
      qzeros  int32 [G, N/8]: word [g, w] holds column n = 8w + i at bits 4i, the value z - zero_offset
      scales  [G, N] fp16;  w[k, n] = (q - z) * s with the group g_idx[k] (k // group_size without act-order)
      g_idx   int32 [K] (optional): act-order (desc_act) checkpoints keep qweight's rows in the model's
              order and give each row its group; each group has exactly group_size rows.
    An act-order weight is stored with its rows sorted by group and `perm` set (see act_order_perm).
    """
    # dtypes first: float or uint8 words unpack to other numbers without an error
    _check_tensor(qweight, "qweight", (torch.int32,))
    _check_tensor(qzeros, "qzeros", (torch.int32,))
    _check_tensor(scales, "scales", SCALE_DTYPES)
    if qweight.dim() != 2:
        raise ValueError(f"qweight must be 2-D [K/8, N]; got shape {tuple(qweight.shape)}")
    if zero_offset not in (0, 1) or isinstance(zero_offset, bool):
        raise ValueError(f"zero_offset must be 1 (GPTQ v1) or 0 (v2); got {zero_offset!r}")
    K, N = qweight.shape[0] * 8, qweight.shape[1]
    check_shape(K, N, group_size)
    G = _groups(K, group_size)
    if tuple(scales.shape) != (G, N):
        raise ValueError(f"scales must be [K/group_size, N] = {(G, N)}; got {tuple(scales.shape)}")
    if tuple(qzeros.shape) != (G, N // 8):
        raise ValueError(f"qzeros must be [K/group_size, N/8] = {(G, N // 8)}; got {tuple(qzeros.shape)}")
    if len({qweight.device, qzeros.device, scales.device}) > 1:
        raise ValueError(f"qweight, qzeros and scales must be on one device; got {qweight.device}, {qzeros.device}, "
                         f"{scales.device}")
    if g_idx is not None:
        if not isinstance(g_idx, torch.Tensor) or g_idx.is_floating_point() or g_idx.dim() != 1:
            raise ValueError(f"g_idx must be a 1-D integer tensor; got {getattr(g_idx, 'dtype', type(g_idx).__name__)} "
                             f"of shape {tuple(getattr(g_idx, 'shape', ()))}")
        if g_idx.numel() != K:
            raise ValueError(f"g_idx must have one entry per row of the weight, K = {K}; got {g_idx.numel()}")
    perm = act_order_perm(g_idx, K, group_size) if g_idx is not None else None
    if perm is not None:  # act-order: rows sorted by group (K/8 x N words through one byte per weight)
        qweight = _pack_rows(_unpack_rows(qweight)[perm.long()])
    z = (_unpack_rows(qzeros.t().contiguous()).t().to(torch.int32) + zero_offset) & 0xF
    zeros = None if bool((z == 8).all()) else z.to(scales.dtype).contiguous()
    return QuantizedWeight(gptq_to_layout(qweight, K, N), scales.contiguous(), zeros, (K, N), group_size,
                           perm=perm)


# Without the GPU kernel (CPU tensors, a CPU-only build), gptq_to_layout converts a slab of columns at
# a time: the byte-per-weight intermediate of one slab, not of the whole matrix, sets the peak memory
# (the whole 4096 x 28672 gate_up took ~6x its packed size).
GPTQ_SLAB_BYTES = 16 << 20


def gptq_to_layout(qweight: torch.Tensor, K: int, N: int) -> torch.Tensor:
    """A GPTQ qweight's words (int32 [K/8, N], checked by the caller) in tinygemm-w4-v1 (LAYOUT).

    The op of the same name in C++ and _C (csrc/kernels/gptq_to_layout.cu) on a GPU, slab by slab
    on the CPU. from_gptq is a different thing, named for what it takes: a checkpoint's tensors
    (qweight, qzeros, scales, g_idx) to a whole QuantizedWeight, checking them, sorting act-order
    rows and reading zero points, with this as its one step on the weight words."""
    out = torch.empty((N // 16, K // 64, 32, 4), dtype=torch.int32, device=qweight.device)
    if qweight.is_cuda and qweight.dtype == torch.int32 and GPU_BACKEND != "cpu":
        # one kernel, two reads and one write per word
        with torch.cuda.device(qweight.device):
            _C.gptq_to_layout(qweight.contiguous().data_ptr(), out.data_ptr(), N, K, stream_handle())
        return out
    cols = max(16, GPTQ_SLAB_BYTES // K // 16 * 16)  # whole 16-column tiles
    for n0 in range(0, N, cols):
        n1 = min(N, n0 + cols)
        out[n0 // 16:n1 // 16] = pack(_unpack_rows(qweight[:, n0:n1].contiguous()))
    return out


# --- torch's _weight_int4pack_mm -----------------------------------------------------------------

def to_int4pack(qw: QuantizedWeight, inner_k_tiles: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed weight, qScaleAndZeros) for torch._weight_int4pack_mm (bf16 activations, CUDA).

    torch computes w = (q - 8) * scale + zero, so zero = (8 - z) * scale. Needs group_size in
    {32, 64, 128} here (torch also takes 256), K % (inner_k_tiles * 16) == 0 and a CUDA tensor.
    """
    check_quantized(qw)
    if not qw.qweight.is_cuda:  # torch's _convert_weight_to_int4pack has no CPU kernel: say so, not torch's error
        raise ValueError(f"to_int4pack needs the weight on a GPU (torch's int4pack conversion runs on CUDA only); "
                         f"got device {qw.qweight.device}: call qw.to('cuda') first")
    K, N = qw.shape
    if qw.group_size not in (32, 64, 128):
        raise ValueError(f"torch's int4pack kernel takes group sizes 32/64/128/256; got {qw.group_size}")
    if inner_k_tiles not in (2, 4, 8) or K % (inner_k_tiles * 16):
        raise ValueError(f"inner_k_tiles must be 2, 4 or 8 with K % (inner_k_tiles*16) == 0; got {inner_k_tiles}, K={K}")
    q = qw.unpack().t().contiguous()  # [N, K]
    packed_bytes = ((q[:, 0::2] << 4) | q[:, 1::2]).to(torch.uint8).contiguous()  # high nibble = even k
    weight = torch.ops.aten._convert_weight_to_int4pack(packed_bytes, inner_k_tiles)
    s = qw.scales.float()
    z = qw.zeros.float() if qw.zeros is not None else torch.full_like(s, 8.0)
    zero = (8.0 - z) * s
    sz = torch.stack([s, zero], dim=2).to(torch.bfloat16).contiguous()  # [G, N, 2]
    return weight, sz


# --- checkpoint formats: act-order, AWQ, compressed-tensors --------------------------------------

def check_layer_shape(K: int, N: int, group_size: int, source: str) -> None:
    """check_shape, with the layer's shape and the source format in the message (load-time errors)."""
    try:
        check_shape(K, N, group_size)
    except ValueError as e:
        raise ValueError(f"{source} layer of shape K={K} x N={N} (in x out), group_size {group_size}: {e}") from None


def act_order_perm(g_idx: torch.Tensor, K: int, group_size: int) -> torch.Tensor | None:
    """The row order that makes an act-order weight's groups contiguous: int32 [K], or None when
    g_idx is already k // group_size.

    Stored row i is the model's input row perm[i] (a stable sort of g_idx), so stored rows
    i * group_size .. (i + 1) * group_size - 1 are group i; that needs every group to hold exactly
    group_size rows, which GPTQ's act-order guarantees (it quantizes the permuted columns in runs
    of group_size). vLLM's Marlin path sorts the same way (g_idx_sort_indices).
    """
    _check_tensor(g_idx, "g_idx", INT_DTYPES)
    if g_idx.dim() != 1 or g_idx.numel() != K:
        raise ValueError(f"g_idx must be [K] = [{K}]; got shape {tuple(g_idx.shape)}")
    g = g_idx.long()
    gs = K if group_size == -1 else group_size
    G = K // gs
    if torch.equal(g, torch.arange(K, device=g.device) // gs):
        return None
    if group_size == -1 or int(g.min()) < 0 or int(g.max()) >= G:
        raise ValueError(f"g_idx values must be groups 0..{G - 1} (K={K}, group_size={group_size}); "
                         f"got {int(g.min())}..{int(g.max())}")
    counts = torch.bincount(g, minlength=G)
    if not bool((counts == gs).all()):
        bad = int(torch.nonzero(counts != gs)[0])
        raise ValueError(f"act-order g_idx must give every group exactly group_size = {gs} rows "
                         f"(so sorted rows form whole groups); group {bad} has {int(counts[bad])}")
    return torch.argsort(g, stable=True).to(torch.int32)


# AWQ packs 8 output columns per int32 word in this order: nibble i (bits 4i..4i+3) of word w holds
# column 8w + AWQ_ORDER[i] (AutoAWQ's WQLinear_GEMM.from_linear `order_map`; vLLM's awq_triton
# undoes it with AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]).
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def _unpack_cols(w: torch.Tensor, order: tuple[int, ...] | None = None) -> torch.Tensor:
    """int32 [R, C/8] -> uint8 [R, C]: nibble i of word c holds column 8c + order[i] (default i)."""
    nib = _words_to_nibbles(w)  # [R, C/8, 8], nibble i at index i
    if order is not None:
        nib = nib[..., [order.index(j) for j in range(8)]]  # index j = column 8c + j
    return nib.reshape(w.shape[0], -1)


def _pack_cols(q: torch.Tensor, order: tuple[int, ...] | None = None) -> torch.Tensor:
    """The inverse of _unpack_cols: uint8 [R, C] -> int32 [R, C/8]."""
    R, C = q.shape
    v = q.to(torch.uint8).reshape(R, C // 8, 8)
    if order is not None:
        v = v[..., list(order)]  # nibble i takes column 8c + order[i]
    return _nibbles_to_words(v)


def from_awq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int) -> QuantizedWeight:
    """An AWQ (AutoAWQ GEMM "version": "gemm") checkpoint's tensors to tinygemm's layout.

    AWQ, 4 bits, zero points (AutoAWQ `WQLinear_GEMM`, vLLM's awq / awq_marlin loaders):
      qweight int32 [K, N/8]: word [k, w] holds column n = 8w + AWQ_ORDER[i] at bits 4i..4i+3,
              i.e. nibbles 0..7 hold columns 0, 2, 4, 6, 1, 3, 5, 7 of the word's 8
      qzeros  int32 [G, N/8]: the zero points z (0..15, no offset), packed in the same order
      scales  [G, N] fp16;  w[k, n] = (q - z) * s with the group k // group_size
    Symmetric when every zero point is 8 (as from_gptq).
    """
    if qweight.dtype != torch.int32 or qweight.dim() != 2:
        raise ValueError(f"AWQ qweight must be int32 [K, N/8]; got {qweight.dtype} {tuple(qweight.shape)}")
    K, N = qweight.shape[0], qweight.shape[1] * 8
    check_layer_shape(K, N, group_size, "AWQ")
    G = _groups(K, group_size)
    _check_tensor(scales, "AWQ scales", SCALE_DTYPES)
    if tuple(scales.shape) != (G, N):
        raise ValueError(f"AWQ scales must be [K/group_size, N] = {(G, N)}; got {tuple(scales.shape)}")
    if qzeros.dtype != torch.int32 or tuple(qzeros.shape) != (G, N // 8):
        raise ValueError(f"AWQ qzeros must be int32 [K/group_size, N/8] = {(G, N // 8)}; "
                         f"got {qzeros.dtype} {tuple(qzeros.shape)}")
    q = _unpack_cols(qweight, AWQ_ORDER)
    z = _unpack_cols(qzeros, AWQ_ORDER)
    zeros = None if bool((z == 8).all()) else z.to(scales.dtype).contiguous()
    return QuantizedWeight(pack(q), scales.contiguous(), zeros, (K, N), group_size)


def to_awq(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
    """AWQ checkpoint tensors (qweight [K, N/8], qzeros [G, N/8], scales [G, N]) for tests.

    Written as AutoAWQ's WQLinear_GEMM.from_linear packs them: for each word, column 8w + order_map[i]
    goes to bits 4i (order_map = [0, 2, 4, 6, 1, 3, 5, 7]); zero points packed the same way.
    """
    if qw.perm is not None:
        raise ValueError("AWQ has no act-order: this weight has a row permutation")
    z = qw.zeros.to(torch.uint8) if qw.zeros is not None else torch.full(
        (qw.num_groups, qw.shape[1]), 8, dtype=torch.uint8, device=qw.device)
    return {"qweight": _pack_cols(qw.unpack(), AWQ_ORDER), "qzeros": _pack_cols(z, AWQ_ORDER),
            "scales": qw.scales.clone()}


def from_compressed_tensors(weight_packed: torch.Tensor, weight_scale: torch.Tensor,
                            weight_shape: torch.Tensor | tuple[int, int] | None = None,
                            weight_zero_point: torch.Tensor | None = None, group_size: int | None = None,
                            weight_g_idx: torch.Tensor | None = None) -> QuantizedWeight:
    """A compressed-tensors `pack-quantized` 4-bit weight (llm-compressor's W4A16) to tinygemm's layout.

    compressed-tensors (`PackedQuantizationCompressor`, `pack_to_int32`), weight [N, K] = [out, in]:
      weight_packed int32 [N, K/8]: word [n, w] holds input column k = 8w + i at bits 4i..4i+3, as the
                    unsigned value q = q_signed + 8 (q_signed in -8..7)
      weight_scale  [N, G]: G = K / group_size ("group" strategy) or 1 ("channel")
      weight_zero_point (asymmetric only): the signed zero point zp in -8..7, either packed along N
                    (int32 [ceil(N/8), G], row w holds n = 8w + i at bits 4i, value zp + 8; what
                    current versions write) or unpacked [N, G] (older versions)
      weight_shape  [2] = (N, K);  weight_g_idx [K] (actorder "group"): each input column's group
      w[n, k] = (q_signed - zp) * s = (q - (zp + 8)) * s;  symmetric: zp = 0, so z = 8
    `group_size` (from the config) is checked against the scales' shape when given.
    """
    if weight_packed.dtype != torch.int32 or weight_packed.dim() != 2:
        raise ValueError("compressed-tensors weight_packed must be int32 [N, K/8]; "
                         f"got {weight_packed.dtype} {tuple(weight_packed.shape)}")
    N, K = weight_packed.shape[0], weight_packed.shape[1] * 8
    if weight_shape is not None:
        shp = tuple(int(v) for v in (weight_shape.tolist() if torch.is_tensor(weight_shape) else weight_shape))
        if shp != (N, K):
            # pack_to_int32 pads K up to a multiple of 8: a K that is not fits no INT4 kernel here
            raise ValueError(f"compressed-tensors layer of shape K={shp[1]} x N={shp[0]} (in x out): "
                             f"weight_packed {tuple(weight_packed.shape)} is padded (K % 8 != 0) or does "
                             "not match weight_shape; packed INT4 weights need K % 64 == 0")
    if weight_scale.dim() != 2 or weight_scale.shape[0] != N:
        raise ValueError(f"compressed-tensors weight_scale must be [N, G] with N = {N}; got {tuple(weight_scale.shape)}")
    _check_tensor(weight_scale, "weight_scale", SCALE_DTYPES)  # float16 / bfloat16, finite
    G = weight_scale.shape[1]
    gs = -1 if G == 1 else group_size if group_size is not None else K // G
    check_layer_shape(K, N, gs, "compressed-tensors")
    if G != _groups(K, gs):
        raise ValueError(f"compressed-tensors weight_scale {tuple(weight_scale.shape)} does not fit "
                         f"K={K} x N={N} with group_size {gs} (expected {_groups(K, gs)} groups)")
    q = _unpack_rows(weight_packed.t().contiguous())  # [K, N]: row-packing of the transpose
    zeros = None
    if weight_zero_point is not None:
        zp = weight_zero_point
        if zp.dtype == torch.int32 and tuple(zp.shape) == ((N + 7) // 8, G):
            z = _unpack_rows(zp)[:N]  # packed along N: values already zp + 8
        elif tuple(zp.shape) == (N, G):
            # unpacked (older versions): the signed zero point itself, an integer in -8..7; a float
            # or out-of-range one would be rounded or wrapped into another weight without a word
            _check_tensor(zp, "weight_zero_point", INT_DTYPES)
            if zp.numel() and (int(zp.min()) < -8 or int(zp.max()) > 7):
                raise ValueError(f"weight_zero_point (unpacked [N, G]) must hold signed 4-bit zero points in -8..7; "
                                 f"got {int(zp.min())}..{int(zp.max())}")
            z = (zp.to(torch.int32) + 8).to(torch.uint8)
        else:
            raise ValueError(f"weight_zero_point must be int32 [ceil(N/8), G] = {((N + 7) // 8, G)} (packed) "
                             f"or [N, G] = {(N, G)}; got {zp.dtype} {tuple(zp.shape)}")
        if not bool((z == 8).all()):
            zeros = z.t().to(weight_scale.dtype).contiguous()
    perm = act_order_perm(weight_g_idx, K, gs) if weight_g_idx is not None else None
    if perm is not None:
        q = q[perm.long()]
    return QuantizedWeight(pack(q), weight_scale.t().contiguous(), zeros, (K, N), gs, perm=perm)
