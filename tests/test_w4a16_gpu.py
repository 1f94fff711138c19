"""INT4 kernels on the GPU against the fp32 reference: fresh random data, outputs poisoned with NaN
before every run (an unwritten element fails), tolerance relative to torch's own low-precision error."""

import math

import pytest
import torch

import tinygemm
from tinygemm import _C, formats, shapes
from tinygemm import reference as R
from tinygemm._ext import dtype_name, stream_handle

pytestmark = pytest.mark.gpu

M_LIST = [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 64, 100, 128, 256, 1000]
GROUPS = [32, 64, 128, -1]
DTYPES = [torch.float16, torch.bfloat16]


def kn_list():
    kn = {s.kn for m in ("Llama-3-8B", "Llama-3-70B") for tp in (1, 2, 4, 8) for s in shapes.layer_shapes(m, tp)}
    # not powers of two, from real models: Llama-2-7B down (K 11008, 5504 at tp2), Qwen2.5-7B down
    # (K 18944, N 3584), DeepSeek-V3 fused_qkv_a (N 2112)
    kn |= {(11008, 4096), (5504, 4096), (18944, 3584), (7168, 2112), (3584, 3584)}
    return sorted(kn)


def make(K, N, gs, symmetric, dtype):
    w = torch.randn(K, N, device="cuda", dtype=torch.float32).to(dtype)
    return tinygemm.quantize(w, gs, symmetric)


def poisoned(shape, dtype):
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


def gemv(x, qw, **cfg):
    K, N = qw.shape
    y = poisoned((x.shape[0], N), x.dtype)
    _C.w4a16_gemv(x.data_ptr(), qw.qweight.data_ptr(), qw.scales.data_ptr(),
                  qw.zeros.data_ptr() if qw.zeros is not None else 0, y.data_ptr(), x.shape[0], N, K,
                  qw.group_size, dtype_name(x.dtype), stream_handle(), layout=qw.layout, **cfg)
    return y


def triton_gemm(x, qw, config=None):
    """The Triton GEMM with the heuristic's configuration, or the one given."""
    from tinygemm.triton.w4a16_gemm import w4a16_gemm

    y = poisoned((x.shape[0], qw.shape[1]), x.dtype)
    return w4a16_gemm(x, qw.qweight, qw.scales, qw.zeros, qw.group_size, out=y, config=config)


_dequantized = [None, None, None]  # (qw, fp32 W, W in x's dtype) of the last weight checked


def check(y, x, qw, what):
    """y against the fp32 reference (R.w4a16_ref / R.w4a16_lowp, their products computed here from
    one dequantization per weight: the tests check one weight at many M, and dequantizing a 70B
    layer twice per M was most of this file's GPU time)."""
    if _dequantized[0] is not qw or _dequantized[2].dtype != x.dtype:
        _dequantized[:] = [qw, tinygemm.dequantize(qw, torch.float32), tinygemm.dequantize(qw, x.dtype)]
    _, w32, wlp = _dequantized
    ref = R.matmul_ref(x, w32)
    err = R.rel_error(y, ref)
    tol = R.tolerance(R.rel_error(x @ wlp, ref))
    assert not math.isnan(err) and err <= tol, f"{what}: rel error {err:.3e} > {tol:.3e}"


@pytest.mark.parametrize("K,N", kn_list())
@pytest.mark.parametrize("gs", GROUPS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["gemv", "triton"])  # -k gemv: the CUDA kernels alone
def test_kernels_against_reference(kernel, K, N, gs, symmetric, dtype):
    qw = make(K, N, gs, symmetric, dtype)
    for M in M_LIST:
        x = torch.randn(M, K, device="cuda").to(dtype)
        if kernel == "gemv":
            check(gemv(x, qw), x, qw, f"w4a16_gemv M={M}")
        else:
            check(triton_gemm(x, qw), x, qw, f"w4a16_gemm M={M}")
    if kernel == "triton":
        return
    wd = poisoned((K, N), dtype)
    _C.w4_dequant(qw.qweight.data_ptr(), qw.scales.data_ptr(), qw.zeros.data_ptr() if qw.zeros is not None else 0,
                  wd.data_ptr(), N, K, gs, dtype_name(dtype), stream_handle())
    assert torch.equal(wd, tinygemm.dequantize(qw)), "w4_dequant differs from the exact dequantization"


@pytest.mark.parametrize("n_tiles", [1, 2, 4])
@pytest.mark.parametrize("warps", [4, 8])
@pytest.mark.parametrize("M", [1, 9, 16, 33])
def test_every_gemv_configuration(n_tiles, warps, M):
    # K = 1024, N = 2112: every stage whole (the unchecked loop); K = 1088 (17 chunks: a half stage at
    # n_tiles = 1) and N = 2096 (131 tiles: a half-filled last block at n_tiles 2 and 4): the checked one
    for K, N, gs, sym, dtype in [(1024, 2112, 128, True, torch.float16), (1024, 2112, 32, False, torch.bfloat16),
                                 (1024, 2112, -1, False, torch.float16), (1088, 2096, 64, True, torch.float16),
                                 (1088, 2096, 32, False, torch.bfloat16), (1088, 2096, -1, True, torch.bfloat16)]:
        qw = make(K, N, gs, sym, dtype)
        x = torch.randn(M, K, device="cuda").to(dtype)
        check(gemv(x, qw, n_tiles=n_tiles, warps=warps, impl=1), x, qw, f"nt={n_tiles} w={warps} gs={gs} K={K} N={N}")


@pytest.mark.parametrize("gs", GROUPS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_portable_simt_gemv(gs, symmetric, dtype):
    """The HIP / pre-sm80 implementation, run on NVIDIA so it is tested somewhere."""
    qw = make(1024, 320, gs, symmetric, dtype)
    for M in (1, 3, 16, 17):
        x = torch.randn(M, 1024, device="cuda").to(dtype)
        check(gemv(x, qw, impl=2), x, qw, f"simt M={M}")


# A covering set rather than the full product (each configuration compiles per format): every tile
# height and width, step length, split-K (3: uneven shares) and orientation, and the portable unpack.
TRITON_GRID = [(16, 2, 1, 1, False, False), (16, 4, 2, 3, True, False), (32, 4, 2, 3, False, True),
               (64, 2, 4, 3, False, False), (64, 8, 1, 1, True, True), (64, 16, 1, 3, True, False),
               (128, 2, 1, 3, True, False), (128, 8, 1, 1, False, False)]


@pytest.mark.parametrize("bm,bt,bc,sk,swap,portable", TRITON_GRID)
def test_every_triton_configuration(bm, bt, bc, sk, swap, portable):
    """Each configuration on every scale path: per step (group a multiple of the step), per weight
    (group shorter than the step), per channel; N = 2112 leaves a column tail for wide tiles."""
    from tinygemm.triton.w4a16_gemm import GemmConfig

    cfg = GemmConfig(bm, bt, bc, sk, warps=8 if bm * bt >= 1024 else 4, stages=3, swap=swap, portable=portable)
    for gs, sym, dtype in [(128, True, torch.float16), (32, False, torch.bfloat16), (64, True, torch.bfloat16),
                           (-1, False, torch.float16)]:
        qw = make(1536, 2112, gs, sym, dtype)
        for M in (1, 17, 130):
            x = torch.randn(M, 1536, device="cuda").to(dtype)
            check(triton_gemm(x, qw, cfg), x, qw, f"{cfg} gs={gs} M={M}")


@pytest.mark.parametrize("backend", ["auto", "cuda", "gemv", "triton"])
def test_public_api_batched_and_autotuned(backend):
    qw = make(4096, 1024, 128, True, torch.float16)
    for M in (1, 16, 64):
        x = torch.randn(2, M, 4096, device="cuda").half()
        y = tinygemm.w4a16_matmul(x, qw, backend)
        assert y.shape == (2, M, 1024)
        check(y.reshape(-1, 1024), x.reshape(-1, 4096), qw, f"{backend} M={M}")


def test_opcheck_and_compile():
    qw = make(512, 256, 64, False, torch.float16)
    x = torch.randn(4, 512, device="cuda").half()
    args = (x, qw.qweight, qw.scales, qw.zeros, 64)
    torch.library.opcheck(torch.ops.tinygemm.w4a16_gemv.default, args)
    torch.library.opcheck(torch.ops.tinygemm.w4a16_gemm.default, args)
    torch.library.opcheck(torch.ops.tinygemm.w4_dequant.default, args[1:])
    torch.library.opcheck(torch.ops.tinygemm.w4_dequant_triton.default, args[1:])  # the same signature
    lin = tinygemm.nn.Int4Linear(qw)
    compiled = torch.compile(lin, fullgraph=True)
    assert torch.equal(compiled(x), lin(x))


def test_int4linear_matches_linear():
    lin = torch.nn.Linear(1024, 512, bias=True, device="cuda", dtype=torch.bfloat16)
    q = tinygemm.nn.Int4Linear.from_linear(lin, group_size=128)
    x = torch.randn(3, 1024, device="cuda", dtype=torch.bfloat16)
    ref = R.w4a16_ref(x, q.quantized_weight) + lin.bias.float()
    assert R.rel_error(q(x), ref) < 1e-2


def test_int4pack_converter_matches_reference():
    qw = make(4096, 1024, 128, False, torch.bfloat16)
    w, sz = formats.to_int4pack(qw)
    x = torch.randn(8, 4096, device="cuda", dtype=torch.bfloat16)
    y = torch._weight_int4pack_mm(x, w, 128, sz)
    # torch's kernel works from bf16 scale/zero pairs: bf16-level error
    assert R.rel_error(y, R.w4a16_ref(x, qw)) < 2e-2


@pytest.mark.parametrize("bad, msg", [
    (lambda x, qw: (x.t().contiguous().t(), qw), "contiguous"),
    (lambda x, qw: (x.cpu(), qw), "device"),
    (lambda x, qw: (x.float(), qw), "same dtype"),
    (lambda x, qw: (x[:, :256], qw), "K ="),
])
def test_bad_input_is_a_value_error(bad, msg):
    qw = make(512, 256, 128, True, torch.float16)
    x = torch.randn(4, 512, device="cuda").half()
    x, qw = bad(x, qw)
    with pytest.raises(ValueError, match=msg):
        torch.ops.tinygemm.w4a16_gemv(x, qw.qweight, qw.scales, qw.zeros, qw.group_size)


def test_cxx_checks_reject_bad_shapes():
    with pytest.raises(ValueError, match="K % 64"):
        _C.check_w4_shape(256, 100, -1, "float16")
    with pytest.raises(ValueError, match="n_tiles"):
        qw = make(512, 256, 128, True, torch.float16)
        gemv(torch.randn(1, 512, device="cuda").half(), qw, n_tiles=3, impl=1)
