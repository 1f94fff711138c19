"""The Hopper GEMM (w4a16_gemm_sm90) against the fp32 reference: the GEMV's test matrix (every
format, group size and dtype, Llama-3-8B/70B shapes at TP 1-8 and odd K/N from real models, M from 1
to 1000 with odd M), every token-tile width and cluster split, outputs poisoned with NaN."""

import pytest
import torch

import tinygemm
from tinygemm import _C, api, formats
from tinygemm._ext import dtype_name, stream_handle
from test_w4a16_gpu import DTYPES, GROUPS, M_LIST, check, gemv, kn_list, poisoned

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _hopper():
    if not (torch.cuda.is_available() and api.has_gemm_sm90()
            and torch.cuda.get_device_capability() == (9, 0)):
        pytest.skip("needs a Hopper GPU and a build with sm_90a code")


def make(K, N, gs, symmetric, dtype):
    w = torch.randn(K, N, device="cuda", dtype=torch.float32).to(dtype)
    return tinygemm.quantize(w, gs, symmetric, layout=formats.LAYOUT_SM90)


def gemm_sm90(x, qw, **cfg):
    K, N = qw.shape
    y = poisoned((x.shape[0], N), x.dtype)
    _C.w4a16_gemm_sm90(x.data_ptr(), qw.qweight.data_ptr(), qw.scales.data_ptr(),
                       qw.zeros.data_ptr() if qw.zeros is not None else 0, y.data_ptr(), x.shape[0], N, K,
                       qw.group_size, dtype_name(x.dtype), stream_handle(), **cfg)
    return y


@pytest.mark.parametrize("K,N", kn_list())
@pytest.mark.parametrize("gs", GROUPS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_sm90_against_reference(K, N, gs, symmetric, dtype):
    qw = make(K, N, gs, symmetric, dtype)
    for M in M_LIST:
        x = torch.randn(M, K, device="cuda").to(dtype)
        check(gemm_sm90(x, qw), x, qw, f"w4a16_gemm_sm90 M={M}")


@pytest.mark.parametrize("block_m", [8, 16, 32, 64, 128])
@pytest.mark.parametrize("split", [1, 2, 3, 8])
def test_every_gemm_sm90_configuration(block_m, split):
    """Every token tile and cluster split (3: uneven K shares; 8 with K = 640: CTAs with no K at
    all), on every scale path; N = 2112 leaves a partial column block."""
    for gs, sym, dtype in [(128, True, torch.float16), (32, False, torch.bfloat16), (64, True, torch.bfloat16),
                           (-1, False, torch.float16), (-1, True, torch.bfloat16)]:
        for K in (640, 1536):
            qw = make(K, 2112, gs, sym, dtype)
            for M in (1, block_m - 1 or 1, block_m + 3, 300):
                x = torch.randn(M, K, device="cuda").to(dtype)
                check(gemm_sm90(x, qw, block_m=block_m, split=split), x, qw,
                      f"block_m={block_m} split={split} gs={gs} sym={sym} K={K} M={M}")


@pytest.mark.parametrize("split", [1, 2, 3, 8])
def test_three_warpgroups(split):
    """Three consumer warpgroups (192 columns per CTA) at 128 tokens, on every scale path: N = 2240 is
    11 column blocks and a partial one (128 of 192 columns), N = 2112 exactly 11; M past 128 leaves a
    partial token tile."""
    for gs, sym, dtype in [(128, True, torch.float16), (32, False, torch.bfloat16), (64, True, torch.bfloat16),
                           (-1, False, torch.float16)]:
        for K, N in ((640, 2240), (1536, 2112)):
            qw = make(K, N, gs, sym, dtype)
            for M in (1, 127, 131, 300):
                x = torch.randn(M, K, device="cuda").to(dtype)
                check(gemm_sm90(x, qw, block_m=128, split=split, warpgroups=3), x, qw,
                      f"warpgroups=3 split={split} gs={gs} sym={sym} K={K} N={N} M={M}")


def gemv_sm90(x, qw, impl, **cfg):
    """The GEMV from the sm90 layout with the implementation named ('mma': the register GEMV's
    shared-memory x path; 'tma': the bulk-copy GEMV)."""
    return gemv(x, qw, impl=impl, **cfg)


@pytest.mark.parametrize("gs", GROUPS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemv_reads_the_sm90_layout(gs, symmetric, dtype):
    """The decode path of a Hopper-layout weight: the register GEMV's mma kernel with natural-k x loads."""
    # K = 1088 (17 chunks, groups of <= 64 only) and N = 2096 (131 tiles): the GEMV's checked loop
    kn = [(4096, 6144), (14336, 4096), (5504, 4096), (7168, 2112)] + ([(1088, 2096)] if gs in (32, 64, -1) else [])
    for K, N in kn:
        qw = make(K, N, gs, symmetric, dtype)
        for M in (1, 3, 8, 9, 16, 33):
            x = torch.randn(M, K, device="cuda").to(dtype)
            check(gemv_sm90(x, qw, "mma"), x, qw, f"w4a16_gemv mma sm90 layout K={K} N={N} M={M}")
            if N % 32:  # an odd tile count: a half-filled last block with two tiles per block
                check(gemv_sm90(x, qw, "mma", n_tiles=2, warps=4), x, qw, f"mma sm90 n_tiles=2 K={K} N={N} M={M}")


TMA_M = [1, 2, 3, 5, 8, 9, 15, 16]


@pytest.mark.parametrize("K,N", kn_list())
@pytest.mark.parametrize("gs", GROUPS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemv_tma_against_reference(K, N, gs, symmetric, dtype):
    """The bulk-copy GEMV over the GEMV's shape and format matrix, every compiled shape, M 1-16."""
    qw = make(K, N, gs, symmetric, dtype)
    for M in TMA_M:
        x = torch.randn(M, K, device="cuda").to(dtype)
        for nt, w in _C.w4a16_gemv_tma_shapes():
            check(gemv_sm90(x, qw, "tma", n_tiles=nt, warps=w), x, qw, f"tma nt={nt} w={w} M={M}")


@pytest.mark.parametrize("K", [640, 1536, 11008])
@pytest.mark.parametrize("N", [16, 2096, 4128])
def test_gemv_tma_edges(K, N):
    """Partial last stages (K = 640: 10 chunks; 11008: 172), an odd tile count (2096: 131 tiles, so
    the last two-tile group has one), fewer tiles than SMs (16: one CTA) and grids where CTAs get
    unequal tile ranges; every scale path."""
    for gs, sym, dtype in [(128, True, torch.float16), (32, False, torch.bfloat16), (64, True, torch.bfloat16),
                           (-1, False, torch.float16), (-1, True, torch.bfloat16)]:
        if K % gs and gs > 0:
            continue
        qw = make(K, N, gs, sym, dtype)
        for M in (1, 7, 12, 16):
            x = torch.randn(M, K, device="cuda").to(dtype)
            for nt, w in _C.w4a16_gemv_tma_shapes():
                check(gemv_sm90(x, qw, "tma", n_tiles=nt, warps=w), x, qw, f"tma nt={nt} w={w} gs={gs} K={K} N={N} M={M}")


def test_gemv_tma_rejects_what_it_cannot_run():
    qw = make(1024, 512, 128, True, torch.float16)
    x = torch.randn(17, 1024, device="cuda").half()
    with pytest.raises(ValueError, match="M must be 1..16"):
        gemv_sm90(x, qw, "tma")
    with pytest.raises(ValueError, match=r"\(n_tiles, warps\)"):
        gemv_sm90(x[:4], qw, "tma", n_tiles=4, warps=8)
    v1 = formats.to_layout(qw, formats.LAYOUT)
    with pytest.raises(ValueError, match="sm90 layout"):
        gemv_sm90(x[:4], v1, "tma")


def test_gemv_tma_under_graph_capture():
    """Replays of a captured bulk-copy GEMV give the eager result bit for bit (the shared-memory
    reduction's order of atomics may differ between runs: the check allows that, not more)."""
    qw = make(4096, 6144, 128, True, torch.float16)
    x = torch.randn(4, 4096, device="cuda").half()
    eager = gemv_sm90(x, qw, "tma")
    check(eager, x, qw, "eager")
    y = torch.empty_like(eager)
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        g.capture_begin()
        y.copy_(tinygemm.ops.w4a16_gemv(x, qw.qweight, qw.scales, None, 128, layout=qw.layout))
        g.capture_end()
    for _ in range(3):
        y.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        check(y, x, qw, "graph replay")
        assert (y.float() - eager.float()).abs().max().item() <= 1e-2 * eager.float().abs().max().item()


def test_layout_roundtrip_and_public_api():
    qw = make(1024, 512, 128, False, torch.float16)
    v1 = formats.to_layout(qw, formats.LAYOUT)
    assert torch.equal(v1.unpack(), qw.unpack())
    assert torch.equal(formats.to_layout(v1, formats.LAYOUT_SM90).qweight, qw.qweight)
    x = torch.randn(3, 5, 1024, device="cuda").half()
    y = tinygemm.w4a16_matmul(x, qw)  # auto: the sm90 layout runs the Hopper GEMM
    check(y.reshape(-1, 512), x.reshape(-1, 1024), qw, "auto from LAYOUT_SM90")
    with pytest.raises(ValueError, match="layout"):
        tinygemm.w4a16_matmul(x, qw, "triton")
    for M in (1, 8, 9, 64):
        xm = torch.randn(M, 1024, device="cuda").half()
        check(tinygemm.w4a16_matmul(xm, qw), xm, qw, f"auto from LAYOUT_SM90 M={M}")
    torch.library.opcheck(torch.ops.tinygemm.w4a16_gemm_sm90.default,
                          (x.reshape(-1, 1024), qw.qweight, qw.scales, qw.zeros, 128))


def test_graph_capture_and_repeat_determinism():
    """Cluster split-K under a CUDA graph: replays give the eager result bit for bit."""
    qw = make(4096, 4096, 128, True, torch.float16)
    x = torch.randn(16, 4096, device="cuda").half()
    eager = gemm_sm90(x, qw, block_m=16, split=4)
    y = torch.empty_like(eager)
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        g.capture_begin()
        y.copy_(tinygemm.ops.w4a16_gemm_sm90(x, qw.qweight, qw.scales, None, 128))
        g.capture_end()
    for _ in range(3):
        y.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(y, tinygemm.ops.w4a16_gemm_sm90(x, qw.qweight, qw.scales, None, 128))
    check(eager, x, qw, "eager")


def test_gemm_sm90_rejects_bad_config():
    qw = make(512, 256, 128, True, torch.float16)
    x = torch.randn(4, 512, device="cuda").half()
    for bad in (24, 256):
        with pytest.raises(ValueError, match="block_m"):
            gemm_sm90(x, qw, block_m=bad)
    with pytest.raises(ValueError, match="split"):
        gemm_sm90(x, qw, split=9)
    for bm, wg in ((64, 3), (128, 4), (128, 1)):
        with pytest.raises(ValueError, match="warpgroups must be 2, or 3 with block_m 128"):
            gemm_sm90(x, qw, block_m=bm, warpgroups=wg)


def test_cluster_counts_and_the_split_they_choose():
    """The co-resident cluster counts the split heuristic reads: one-CTA clusters fill every SM with
    the occupancy the kernel was sized for (2 CTAs per SM up to 64 tokens, 1 above), wider clusters
    never hold more CTAs than that, and the heuristic's split stays in 1..8 and within K's stages."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for bm in (8, 16, 32, 64, 128):
        per_sm = 2 if bm <= 64 else 1
        caps = [_C.w4a16_gemm_sm90_clusters(bm, s) for s in range(1, 9)]
        assert caps[0] == sms * per_sm, (bm, caps)
        for s, cap in enumerate(caps, 1):
            assert 1 <= cap and cap * s <= sms * per_sm, (bm, s, caps)
    for bad in (0, 9):
        with pytest.raises(ValueError, match="split must be 1..8"):
            _C.w4a16_gemm_sm90_clusters(128, bad)
    with pytest.raises(ValueError, match="block_m must be"):
        _C.w4a16_gemm_sm90_clusters(48, 2)
    for M, N, K in [(1, 4096, 4096), (16, 4096, 14336), (128, 6144, 4096), (512, 28672, 4096), (77, 2112, 7168),
                    (1, 4096, 64), (16, 2112, 192)]:
        c = _C.w4a16_gemm_sm90_config(M, N, K, sms)
        assert 1 <= c["split"] <= 8 and c["split"] <= (K // 64 + 1) // 2, (M, N, K, c)
        # and the kernel runs what the heuristic picked (a split it cannot launch would raise here)
        qw = tinygemm.quantize(torch.randn(K, N, device="cuda").half(), 64, layout=formats.LAYOUT_SM90)
        x = torch.randn(M, K, device="cuda").half()
        check(tinygemm.w4a16_matmul(x, qw, "gemm_sm90"), x, qw, f"heuristic {c} M={M} N={N} K={K}")


def test_auto_dispatch_and_its_description():
    """auto from the sm90 layout: the GEMV up to GEMV_MAX_M_SM90 rows, the Hopper GEMM above; describe()
    names what runs with the heuristics' configuration."""
    dev = torch.device("cuda")
    assert api.choose_backend(api.GEMV_MAX_M_SM90, dev, formats.LAYOUT_SM90) == "gemv"
    assert api.choose_backend(api.GEMV_MAX_M_SM90 + 1, dev, formats.LAYOUT_SM90) == "gemm_sm90"
    d = api.describe("auto", 64, 4096, 4096, 128, dev, formats.LAYOUT_SM90)
    c = _C.w4a16_gemm_sm90_config(64, 4096, 4096, torch.cuda.get_device_properties(dev).multi_processor_count)
    assert d == f"w4a16_gemm_sm90 block_m={c['block_m']} split={c['split']} warpgroups={c['warpgroups']}"
    assert api.describe("auto", 1, 4096, 4096, 128, dev, formats.LAYOUT_SM90).startswith("w4a16_gemv ")
    assert "impl=mma" in api.describe("auto", 1, 4096, 4096, 128, dev, formats.LAYOUT_SM90)
    assert "impl=mma" in api.describe("gemv", 1, 4096, 4096, 128, dev, formats.LAYOUT)
    assert api.describe("triton", 64, 4096, 4096, 128, dev).startswith("w4a16_gemm (triton) ")
