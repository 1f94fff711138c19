"""AWQ and GPTQ act-order checkpoint tensors through tinygemm's converters and through vLLM's own
Marlin path (its repack, scale/zero-point permutation and g_idx sort): the same outputs (GPU, vLLM)."""

import pytest
import torch

import tinygemm
from tinygemm import checkpoints, formats
from tinygemm.reference import rel_error

pytestmark = [pytest.mark.gpu, pytest.mark.vllm]


@pytest.fixture(scope="module")
def marlin_linear():
    from tinygemm.backends import marlin_linear

    try:
        marlin_linear.load_vllm()
    except ValueError as e:
        pytest.skip(str(e))
    return marlin_linear.MarlinLinear


def _compare(y_tg, y_marlin, ref):
    e_tg, e_marlin = rel_error(y_tg, ref), rel_error(y_marlin, ref)
    # both multiply by the same 4-bit weights: each within fp16 rounding of the fp32 product, and of each other
    assert e_tg < 5e-3 and e_marlin < 5e-3, (e_tg, e_marlin)
    assert rel_error(y_tg, y_marlin.float()) < 5e-3


@pytest.mark.parametrize("M", [1, 16, 64])
@pytest.mark.parametrize("K,N,gs", [(4096, 1024, 128), (2048, 512, 32)])
def test_gptq_act_order_matches_vllm_marlin(marlin_linear, M, K, N, gs):
    w = torch.randn(N, K, device="cuda").half() * 0.02
    qw = checkpoints.quantize_linear_weight(w, gs, symmetric=True, act_order=True)
    ckpt = formats.to_gptq(qw)  # AutoGPTQ's tensors: rows in the model's order, g_idx per row
    assert not torch.equal(ckpt["g_idx"].long(), torch.arange(K, device="cuda") // gs)
    ours = formats.from_gptq(ckpt["qweight"], ckpt["qzeros"], ckpt["scales"], gs, g_idx=ckpt["g_idx"])
    theirs = marlin_linear.from_gptq(ckpt["qweight"], ckpt["scales"], gs, g_idx=ckpt["g_idx"])
    x = torch.randn(M, K, device="cuda").half()
    ref = x.float() @ formats.dequantize(qw, torch.float32)
    _compare(tinygemm.w4a16_matmul(x, ours), theirs(x), ref)


@pytest.mark.parametrize("M", [1, 16, 64])
@pytest.mark.parametrize("K,N,gs", [(4096, 1024, 128), (1024, 2048, 64)])
def test_awq_matches_vllm_marlin(marlin_linear, M, K, N, gs):
    w = torch.randn(N, K, device="cuda").half() * 0.02
    qw = checkpoints.quantize_linear_weight(w, gs, symmetric=False, act_order=False)
    ckpt = formats.to_awq(qw)  # AutoAWQ's packing
    ours = formats.from_awq(ckpt["qweight"], ckpt["qzeros"], ckpt["scales"], gs)
    theirs = marlin_linear.from_awq(ckpt["qweight"], ckpt["qzeros"], ckpt["scales"], gs)
    x = torch.randn(M, K, device="cuda").half()
    ref = x.float() @ formats.dequantize(qw, torch.float32)
    _compare(tinygemm.w4a16_matmul(x, ours), theirs(x), ref)

