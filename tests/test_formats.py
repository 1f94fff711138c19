"""Quantization formats, the packed layout and the converters (CPU)."""

import pytest
import torch

import tinygemm
from tinygemm import _C, formats
from tinygemm.reference import rel_error


def _layout_positions(K, N, layout):
    """(word index, nibble) -> (k, n), written straight from the layouts' definitions."""
    chunks = K // 64
    for T in range(N // 16):
        for c in range(chunks):
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                for j in range(4):
                    for p in range(8):
                        if layout == formats.LAYOUT:
                            k = 64 * c + 32 * (j >> 1) + 8 * t + 4 * (j & 1) + 2 * ((p >> 1) & 1) + (p >> 2)
                        else:
                            k = 64 * c + 16 * j + 2 * t + (p >> 2) + 8 * ((p >> 1) & 1)
                        yield ((T * chunks + c) * 32 + lane) * 4 + j, p, k, 16 * T + g + 8 * (p & 1)


@pytest.mark.parametrize("layout", formats.LAYOUTS)
def test_pack_follows_the_documented_layout(layout):
    K, N = 128, 32
    q = torch.randint(0, 16, (K, N), dtype=torch.uint8)
    words = formats.pack(q, layout).flatten().tolist()
    for w, p, k, n in _layout_positions(K, N, layout):
        assert ((words[w] & 0xFFFFFFFF) >> (4 * p)) & 0xF == q[k, n]


@pytest.mark.parametrize("layout", formats.LAYOUTS)
@pytest.mark.parametrize("K,N", [(64, 16), (192, 48), (5504, 32)])
def test_pack_unpack_roundtrip(K, N, layout):
    q = torch.randint(0, 16, (K, N), dtype=torch.uint8)
    assert torch.equal(formats.unpack(formats.pack(q, layout), K, N, layout), q)


def test_to_layout_keeps_the_weight():
    qw = tinygemm.quantize(torch.randn(256, 64), 64, symmetric=False)
    q90 = formats.to_layout(qw, formats.LAYOUT_SM90)
    assert q90.layout == formats.LAYOUT_SM90 and not torch.equal(q90.qweight, qw.qweight)
    assert torch.equal(formats.dequantize(q90), formats.dequantize(qw))
    assert torch.equal(formats.to_layout(q90, formats.LAYOUT).qweight, qw.qweight)
    with pytest.raises(ValueError, match="layout must be one of"):
        formats.to_layout(qw, "marlin")


@pytest.mark.parametrize("gs", [32, 64, 128, -1])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_quantize_dequantize(gs, symmetric, dtype):
    w = torch.randn(256, 64).to(dtype)
    qw = tinygemm.quantize(w, group_size=gs, symmetric=symmetric)
    assert qw.shape == (256, 64) and qw.dtype == dtype and qw.symmetric == symmetric
    assert qw.format == ("uint4b8" if symmetric else "uint4")
    q = qw.unpack()
    assert int(q.max()) <= 15
    wd = tinygemm.dequantize(qw, torch.float32)
    # 4-bit round to nearest: error around 1/sqrt(12) of a step, relative ~0.1 for Gaussian weights
    assert rel_error(wd, w.float()) < 0.2
    if not symmetric:
        z = qw.zeros.float()
        assert torch.equal(z, z.round()) and 0 <= float(z.min()) and float(z.max()) <= 15
    # dequantize is the exact function of the stored values
    G = qw.num_groups
    zz = qw.zeros.float() if qw.zeros is not None else 8.0
    manual = ((q.float().reshape(G, -1, 64) - (zz[:, None, :] if qw.zeros is not None else 8.0))
              * qw.scales.float()[:, None, :]).reshape(256, 64)
    assert torch.equal(wd, manual)


def test_quantize_handles_all_zero_groups():
    w = torch.zeros(128, 32)
    w[:, 16:] = torch.randn(128, 16)
    qw = tinygemm.quantize(w, 64)
    assert torch.isfinite(qw.scales.float()).all()
    assert torch.equal(tinygemm.dequantize(qw, torch.float32)[:, :16], torch.zeros(128, 16))


@pytest.mark.parametrize("K,N,gs,msg", [
    (100, 32, -1, "K % 64"), (128, 24, -1, "N % 16"), (192, 32, 128, "multiple of group_size"),
    (128, 32, 16, "group_size must be"),
])
def test_shape_errors_name_the_constraint(K, N, gs, msg):
    with pytest.raises(ValueError, match=msg):
        tinygemm.quantize(torch.randn(K, N), group_size=gs)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("offset", [0, 1])
def test_gptq_roundtrip(symmetric, offset):
    qw = tinygemm.quantize(torch.randn(256, 64).half(), 64, symmetric)
    g = formats.to_gptq(qw, zero_offset=offset)
    assert g["qweight"].shape == (32, 64) and g["qzeros"].shape == (4, 8) and g["qweight"].dtype == torch.int32
    back = formats.from_gptq(g["qweight"], g["qzeros"], g["scales"], 64, zero_offset=offset)
    assert torch.equal(back.unpack(), qw.unpack())
    assert back.symmetric == symmetric
    if not symmetric:
        assert torch.equal(back.zeros, qw.zeros)


@pytest.mark.parametrize("slab_bytes", [1, 256 * 48, 1 << 30])
def test_from_gptq_in_column_slabs(monkeypatch, slab_bytes):
    """Slabs of 16 columns, of 48 (the last one shorter: N = 112), or the whole matrix: same words."""
    monkeypatch.setattr(formats, "GPTQ_SLAB_BYTES", slab_bytes)
    qw = tinygemm.quantize(torch.randn(256, 112).half(), 64, symmetric=False)
    g = formats.to_gptq(qw)
    back = formats.from_gptq(g["qweight"], g["qzeros"], g["scales"], 64)
    assert torch.equal(back.qweight, qw.qweight) and torch.equal(back.zeros, qw.zeros)


def test_gptq_packing_matches_gptq_convention():
    # GPTQ: qweight[r, n] holds k = 8r + i at bits 4i
    qw = tinygemm.quantize(torch.randn(64, 16).half(), -1)
    g = formats.to_gptq(qw)
    q = qw.unpack()
    word = int(g["qweight"][1, 3]) & 0xFFFFFFFF
    assert [(word >> (4 * i)) & 0xF for i in range(8)] == q[8:16, 3].tolist()


def test_from_gptq_rejects_bad_act_order_and_bad_shapes():
    qw = tinygemm.quantize(torch.randn(128, 16).half(), 64)
    g = formats.to_gptq(qw)
    # act-order is read (test_checkpoint_formats.py); a g_idx whose groups are not group_size rows is not
    uneven = torch.zeros(128, dtype=torch.int32)
    uneven[:10] = 1
    with pytest.raises(ValueError, match="act-order"):
        formats.from_gptq(g["qweight"], g["qzeros"], g["scales"], 64, g_idx=uneven)
    with pytest.raises(ValueError, match="scales must be"):
        formats.from_gptq(g["qweight"], g["qzeros"], g["scales"][:1], 64)


@pytest.mark.gpu
@pytest.mark.parametrize("K, N", [(64, 16), (256, 112), (4096, 2112), (11008, 4096)])
def test_gptq_to_layout_kernel_matches_the_reference(K, N):
    """The load-time GPU repack (csrc/kernels/gptq_to_layout.cu) against the CPU conversion, word for word,
    into a poisoned output; then from_gptq on CUDA tensors (which takes the kernel) round-trips."""
    from tinygemm import _C
    from tinygemm._ext import stream_handle

    qw = tinygemm.quantize(torch.randn(K, N).half(), 64, symmetric=False)
    g = formats.to_gptq(qw)
    ref = formats.gptq_to_layout(g["qweight"], K, N)  # CPU: the slab-wise path
    out = torch.full((N // 16, K // 64, 32, 4), 0x5A5A5A5A, dtype=torch.int32, device="cuda")
    _C.gptq_to_layout(g["qweight"].cuda().data_ptr(), out.data_ptr(), N, K, stream_handle())
    assert torch.equal(out.cpu(), ref)
    gc = {k: v.cuda() for k, v in g.items()}
    back = formats.from_gptq(gc["qweight"], gc["qzeros"], gc["scales"], 64)
    assert torch.equal(back.qweight.cpu(), qw.qweight) and torch.equal(back.zeros.cpu(), qw.zeros)
    with pytest.raises(ValueError, match="N % 16 == 0"):
        _C.gptq_to_layout(g["qweight"].cuda().data_ptr(), out.data_ptr(), 8, K, stream_handle())


@pytest.mark.parametrize("K,N,gs", [(100, 32, -1), (128, 24, -1), (192, 32, 128), (128, 32, 16), (0, 32, -1),
                                    (128, -16, 64)])
def test_shape_rules_have_one_home(K, N, gs):
    """formats.check_shape is the C++ rule the kernels and the repack check: same errors, same words."""
    with pytest.raises(ValueError) as py_err:
        formats.check_shape(K, N, gs)
    with pytest.raises(ValueError) as cxx_err:
        _C.check_w4_dims(N, K, gs)
    assert str(py_err.value) == str(cxx_err.value)
    formats.check_shape(256, 32, 64)  # and a good shape passes both
    _C.check_w4_dims(32, 256, 64)


def test_group_sizes_and_non_integer_shapes():
    assert formats.GROUP_SIZES == (32, 64, 128, -1) == tuple(_C.w4_group_sizes)
    for gs in formats.GROUP_SIZES:
        formats.check_shape(256, 32, gs)
    with pytest.raises(ValueError, match="group_size must be a 32-bit integer; got 128.0"):
        formats.check_shape(256, 32, 128.0)
    with pytest.raises(ValueError, match="K must be a 32-bit integer"):
        formats.check_shape(2**40, 32, -1)
