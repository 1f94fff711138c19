"""The checkpoint converters (AWQ, GPTQ act-order, compressed-tensors) against each format's own
definition, on the CPU.

compressed-tensors inputs are made by compressed-tensors' own packer. AutoAWQ and AutoGPTQ are not
light to install, so their packing is written out here as their code does it (cited per test).
"""

from dataclasses import replace

import pytest
import torch

import tinygemm
from tinygemm import checkpoints, formats
from tinygemm.reference import rel_error


def _act_order_weight(K, N, gs, symmetric, dtype=torch.float16):
    """A weight quantized GPTQ-style in a random column order: (dense W [K, N], QuantizedWeight with perm)."""
    W = torch.randn(K, N).to(dtype)
    perm = torch.randperm(K)
    qs = tinygemm.quantize(W[perm], gs, symmetric)  # groups over the permuted rows, as act-order does
    return W, replace(qs, perm=perm.to(torch.int32))


def _autogptq_pack(q_kn: torch.Tensor, z_gn: torch.Tensor, zero_offset: int):
    """AutoGPTQ QuantLinear.pack (4 bits): qweight[row] |= intweight[j] << 4 (j - i) over 8 rows;
    qzeros[:, col] |= (zeros - 1)[:, j] << 4 (j - i) over 8 columns."""
    K, N = q_kn.shape
    qweight = torch.zeros(K // 8, N, dtype=torch.int64)
    for j in range(8):
        qweight |= q_kn[j::8].long() << (4 * j)
    zs = (z_gn.long() - zero_offset) & 0xF
    qzeros = torch.zeros(z_gn.shape[0], N // 8, dtype=torch.int64)
    for j in range(8):
        qzeros |= zs[:, j::8] << (4 * j)
    as32 = lambda t: ((t + 2**31) % 2**32 - 2**31).to(torch.int32)  # noqa: E731 (numpy's uint32 -> int32 view)
    return as32(qweight), as32(qzeros)


# --- AWQ -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("gs", [32, 128, -1])
def test_awq_matches_autoawq_packing(gs):
    """AutoAWQ WQLinear_GEMM.from_linear: order_map = [0, 2, 4, 6, 1, 3, 5, 7];
    qweight[:, col] |= intweight[:, col * 8 + order_map[i]] << (i * 4); qzeros the same way."""
    K, N = 256, 64
    qw = tinygemm.quantize(torch.randn(K, N).half(), gs, symmetric=False)
    q, z = qw.unpack().long(), qw.zeros.long()
    order_map = [0, 2, 4, 6, 1, 3, 5, 7]
    qweight = torch.zeros(K, N // 8, dtype=torch.int64)
    qzeros = torch.zeros(z.shape[0], N // 8, dtype=torch.int64)
    for col in range(N // 8):
        for i in range(8):
            qweight[:, col] |= q[:, col * 8 + order_map[i]] << (i * 4)
            qzeros[:, col] |= z[:, col * 8 + order_map[i]] << (i * 4)
    qweight = ((qweight + 2**31) % 2**32 - 2**31).to(torch.int32)
    qzeros = ((qzeros + 2**31) % 2**32 - 2**31).to(torch.int32)
    written = formats.to_awq(qw)
    assert torch.equal(written["qweight"], qweight) and torch.equal(written["qzeros"], qzeros)
    back = formats.from_awq(qweight, qzeros, qw.scales, gs)
    assert torch.equal(back.qweight, qw.qweight) and torch.equal(back.zeros, qw.zeros)
    assert torch.equal(tinygemm.dequantize(back), tinygemm.dequantize(qw))


def test_awq_symmetric_and_errors():
    qw = tinygemm.quantize(torch.randn(128, 32).half(), 64, symmetric=True)
    a = formats.to_awq(qw)
    back = formats.from_awq(a["qweight"], a["qzeros"], a["scales"], 64)
    assert back.symmetric and torch.equal(back.qweight, qw.qweight)
    with pytest.raises(ValueError, match="qzeros must be int32"):
        formats.from_awq(a["qweight"], a["qzeros"][:1], a["scales"], 64)
    # Llama-style intermediate sizes the kernels cannot take: the layer's shape in the message
    with pytest.raises(ValueError, match=r"AWQ layer of shape K=1368 x N=64.*K % 64"):
        formats.from_awq(torch.zeros(1368, 8, dtype=torch.int32), torch.zeros(11, 8, dtype=torch.int32),
                         torch.ones(11, 64).half(), 128)
    with pytest.raises(ValueError, match="no act-order"):
        formats.to_awq(_act_order_weight(128, 32, 64, True)[1])


# --- GPTQ act-order --------------------------------------------------------------------------------

@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("zero_offset", [1, 0])
def test_gptq_act_order_against_autogptq_packing(symmetric, zero_offset):
    """AutoGPTQ's act-order: Q = Q[:, invperm], g_idx = [i // groupsize][invperm] (gptq.py fasterquant),
    rows packed in the model's order with their own group (QuantLinear.pack)."""
    K, N, gs = 256, 48, 64
    W, qp = _act_order_weight(K, N, gs, symmetric)
    perm = qp.perm.long()
    invperm = torch.argsort(perm)
    q_model = qp.unpack()[invperm]                          # rows back in the model's order
    g_idx = (torch.arange(K) // gs)[invperm].to(torch.int32)
    z = qp.zeros if qp.zeros is not None else torch.full((K // gs, N), 8.0)
    qweight, qzeros = _autogptq_pack(q_model, z, zero_offset)
    written = formats.to_gptq(qp, zero_offset=zero_offset)
    assert torch.equal(written["qweight"], qweight) and torch.equal(written["qzeros"], qzeros)
    assert torch.equal(written["g_idx"], g_idx)

    back = formats.from_gptq(qweight, qzeros, qp.scales, gs, zero_offset=zero_offset, g_idx=g_idx)
    assert back.perm is not None and back.perm.dtype == torch.int32 and back.symmetric == symmetric
    # the model's weight: w[k, n] = (q[k, n] - z[g_idx[k], n]) * s[g_idx[k], n], straight from the format
    zz = z.float()[g_idx.long()]
    w_format = (q_model.float() - zz) * qp.scales.float()[g_idx.long()]
    assert torch.equal(tinygemm.dequantize(back, torch.float32), w_format)
    assert rel_error(w_format, W.float()) < 0.2
    # stored groups are contiguous and y = x[:, perm] @ W_stored
    assert torch.equal(g_idx[back.perm.long()].long(), torch.arange(K) // gs)
    x = torch.randn(3, K)
    stored = tinygemm.dequantize(replace(back, perm=None), torch.float32)
    assert torch.allclose(x[:, back.perm.long()] @ stored, x @ w_format, rtol=1e-5, atol=1e-4)


def test_quantized_weight_perm_copies_and_bytes():
    _, qp = _act_order_weight(128, 32, 64, False)
    c = qp.clone()
    assert c.perm is not None and c.perm.data_ptr() != qp.perm.data_ptr() and torch.equal(c.perm, qp.perm)
    assert qp.to("cpu").perm is not None
    assert qp.nbytes() == replace(qp, perm=None).nbytes() + 128 * 4


def test_act_order_perm_rules():
    K, gs = 256, 64
    assert formats.act_order_perm(torch.arange(K) // gs, K, gs) is None
    assert formats.act_order_perm(torch.zeros(K, dtype=torch.int32), K, -1) is None
    g = (torch.arange(K) // gs)[torch.randperm(K)]
    p = formats.act_order_perm(g, K, gs)
    assert torch.equal(g[p.long()], torch.arange(K) // gs)
    uneven = g.clone()
    uneven[uneven == 1] = 0
    with pytest.raises(ValueError, match="exactly group_size = 64 rows"):
        formats.act_order_perm(uneven, K, gs)
    with pytest.raises(ValueError, match="groups 0..3"):
        formats.act_order_perm(g + 1, K, gs)
    with pytest.raises(ValueError, match=r"g_idx must be \[K\]"):
        formats.act_order_perm(g[:10], K, gs)


def test_w4a16_matmul_gathers_x_for_act_order():
    """The Triton kernel (its interpreter on CPU) through w4a16_matmul with perm set."""
    import os

    if os.environ.get("TRITON_INTERPRET") != "1" and not tinygemm.gpu_available():
        pytest.skip("needs the Triton interpreter or a GPU")
    W, qp = _act_order_weight(128, 32, 32, False)
    dev = "cuda" if tinygemm.gpu_available() else "cpu"
    qp = qp.to(dev)
    x = torch.randn(3, 128, device=dev).half()
    y = tinygemm.w4a16_matmul(x, qp, backend="triton")
    ref = x.float() @ tinygemm.dequantize(qp, torch.float32)
    assert rel_error(y, ref) < 5e-3


@pytest.mark.gpu
def test_gptq_from_gpu_tensors_uses_the_repack_kernel_with_act_order():
    """from_gptq on CUDA tensors with act-order: the row sort, then the GPU repack; same as on the CPU."""
    w = torch.randn(512, 1024).half()
    qw = checkpoints.quantize_linear_weight(w, 128, symmetric=False, act_order=True)
    ckpt = formats.to_gptq(qw)
    cpu = formats.from_gptq(ckpt["qweight"], ckpt["qzeros"], ckpt["scales"], 128, g_idx=ckpt["g_idx"])
    gpu = formats.from_gptq(*(ckpt[k].cuda() for k in ("qweight", "qzeros", "scales")), 128,
                            g_idx=ckpt["g_idx"].cuda())
    assert torch.equal(gpu.qweight.cpu(), cpu.qweight) and torch.equal(gpu.perm.cpu(), cpu.perm)


# --- compressed-tensors (its own packer) --------------------------------------------------------------

def _ct_compress(W_nk: torch.Tensor, strategy: str, symmetric: bool, gs: int | None):
    """compressed-tensors' PackedQuantizationCompressor on one Linear weight [N, K]."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams

    args = QuantizationArgs(num_bits=4, type="int", symmetric=symmetric, strategy=strategy,
                            group_size=gs if strategy == "group" else None)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    N, K = W_nk.shape
    wg = W_nk.reshape(N, -1, gs if strategy == "group" else K)
    scale, zp = calculate_qparams(wg.amin(-1), wg.amax(-1), args)
    state = {"weight": W_nk, "weight_scale": scale, "weight_zero_point": zp}
    packed = PackedQuantizationCompressor.compress(state, scheme)
    dense = PackedQuantizationCompressor.decompress(dict(packed), scheme)["weight"]
    return packed, dense


@pytest.mark.parametrize("strategy,gs", [("group", 32), ("group", 128), ("channel", None)])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_compressed_tensors_pack_quantized(strategy, gs, symmetric, dtype):
    pytest.importorskip("compressed_tensors")
    N, K = 48, 256
    W = torch.randn(N, K).to(dtype)
    packed, dense = _ct_compress(W, strategy, symmetric, gs)
    assert packed["weight_packed"].shape == (N, K // 8)
    qw = formats.from_compressed_tensors(packed["weight_packed"], packed["weight_scale"], packed["weight_shape"],
                                         packed.get("weight_zero_point"), gs)
    assert qw.shape == (K, N) and qw.group_size == (gs or -1) and qw.dtype == dtype
    # compressed-tensors' own decompress is the truth: the same weights, transposed
    assert torch.equal(tinygemm.dequantize(qw, dtype), dense.t().to(dtype))
    if not symmetric:  # the older, unpacked [N, G] zero points read the same
        from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

        zp = unpack_from_int32(packed["weight_zero_point"], 4, (N, packed["weight_scale"].shape[1]), packed_dim=0)
        qw2 = formats.from_compressed_tensors(packed["weight_packed"], packed["weight_scale"], None, zp)
        assert torch.equal(qw2.qweight, qw.qweight) and torch.equal(qw2.zeros, qw.zeros)


def test_compressed_tensors_errors_and_g_idx():
    pytest.importorskip("compressed_tensors")
    packed, dense = _ct_compress(torch.randn(32, 128).half(), "group", True, 32)
    wp, ws = packed["weight_packed"], packed["weight_scale"]
    with pytest.raises(ValueError, match="does not match weight_shape"):
        formats.from_compressed_tensors(wp, ws, torch.tensor([32, 127]))
    with pytest.raises(ValueError, match="group_size 64"):
        formats.from_compressed_tensors(wp, ws, None, None, 64)
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        formats.from_compressed_tensors(wp, ws.float())
    with pytest.raises(ValueError, match=r"compressed-tensors layer of shape K=96 x N=32.*K % 64"):
        formats.from_compressed_tensors(torch.zeros(32, 12, dtype=torch.int32), torch.ones(32, 3).half())
    # actorder "group" checkpoints (weight_g_idx): column k belongs to group g_idx[k]
    K = 128
    g = (torch.arange(K) // 32)[torch.randperm(K)]
    qw = formats.from_compressed_tensors(wp, ws, None, None, 32, weight_g_idx=g)
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    q = unpack_from_int32(wp, 4, (32, K)).float()  # signed, [N, K]
    w_format = (q * ws.float()[:, g]).t()
    assert torch.equal(tinygemm.dequantize(qw, torch.float32), w_format)


def test_compressed_tensors_refuses_what_it_would_misread():
    """An unpacked [N, G] zero point that is not an integer in -8..7 (a float one was rounded, an
    out-of-range one wrapped into another weight), a float g_idx, and non-finite scales: each a
    ValueError naming the tensor, never a different weight."""
    pytest.importorskip("compressed_tensors")
    packed, _ = _ct_compress(torch.randn(32, 128).half(), "group", False, 32)
    wp, ws = packed["weight_packed"], packed["weight_scale"]
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    zp = unpack_from_int32(packed["weight_zero_point"], 4, (32, ws.shape[1]), packed_dim=0)  # signed [N, G]
    formats.from_compressed_tensors(wp, ws, None, zp)  # the real thing is accepted
    with pytest.raises(ValueError, match="weight_zero_point must be int8 or int16"):
        formats.from_compressed_tensors(wp, ws, None, zp.float() + 0.5)
    with pytest.raises(ValueError, match=r"must hold signed 4-bit zero points in -8..7; got .*\.\.2[0-9]"):
        formats.from_compressed_tensors(wp, ws, None, zp.to(torch.int32) + 20)
    with pytest.raises(ValueError, match="g_idx must be int8 or int16"):
        formats.from_compressed_tensors(wp, ws, None, None, 32, weight_g_idx=(torch.arange(128) // 32).float())
    bad = ws.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"weight_scale must be finite; 1 value\(s\) are not \(the first at \[3, 1\]"):
        formats.from_compressed_tensors(wp, bad)


def test_non_finite_scales_are_refused_by_every_converter():
    qw = tinygemm.quantize(torch.randn(256, 64), 64, symmetric=False)
    g = formats.to_gptq(qw)
    s = g["scales"].clone()
    s[0, 5] = float("inf")
    with pytest.raises(ValueError, match="scales must be finite"):
        formats.from_gptq(g["qweight"], g["qzeros"], s, 64)
    from dataclasses import replace

    with pytest.raises(ValueError, match="scales must be finite"):
        tinygemm.dequantize(replace(qw, scales=s))
    a = formats.to_awq(qw)
    with pytest.raises(ValueError, match="AWQ scales must be finite"):
        formats.from_awq(a["qweight"], a["qzeros"], s, 64)
