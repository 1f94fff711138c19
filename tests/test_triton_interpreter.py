"""The Triton kernels in Triton's CPU interpreter, against the fp32 reference (CI has no GPU).

The interpreter's bf16 tl.dot is broken (a plain 16x16 bf16 dot is wrong there), so the GEMM runs
in fp16 here; bf16 is covered on the GPU (test_w4a16_gpu.py).
"""

import os

import pytest
import torch

import tinygemm
from tinygemm import reference as R
from tinygemm.nn import Int4Linear

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="interpreter tests (run where no GPU is present)")


@pytest.mark.parametrize("gs", [32, 64, 128, -1])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("M,K,N", [(1, 128, 32), (5, 256, 48), (17, 192, 64)])
def test_w4a16_gemm_interpreted(gs, symmetric, M, K, N):
    if gs > 0 and K % gs:
        pytest.skip("K not a multiple of the group")
    qw = tinygemm.quantize(torch.randn(K, N).half(), gs, symmetric)
    x = torch.randn(M, K).half()
    y = tinygemm.w4a16_matmul(x, qw, backend="triton")
    ref = R.w4a16_ref(x, qw)
    assert y.shape == (M, N)
    assert R.rel_error(y, ref) <= R.tolerance(R.rel_error(R.w4a16_lowp(x, qw), ref))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gs", [32, 128, -1])
def test_w4_dequant_interpreted(dtype, gs):
    qw = tinygemm.quantize(torch.randn(256, 48).to(dtype), gs, symmetric=False)
    w = torch.ops.tinygemm.w4_dequant_triton(qw.qweight, qw.scales, qw.zeros, gs)
    exact = tinygemm.dequantize(qw, torch.float32)
    # one rounding to the output dtype (the interpreter truncates to bf16: up to twice that error)
    assert R.rel_error(w, exact) <= 2 * R.rel_error(exact.to(dtype), exact) + 1e-6


def test_int4linear_and_validation_interpreted():
    lin = torch.nn.Linear(128, 32, bias=True).half()
    q = Int4Linear.from_linear(lin, group_size=64, backend="triton")
    x = torch.randn(2, 3, 128).half()
    y = q(x)
    ref = R.w4a16_ref(x.reshape(-1, 128), q.quantized_weight).reshape(2, 3, 32) + lin.bias.float()
    assert y.shape == (2, 3, 32)
    assert R.rel_error(y, ref) < 1e-2
    with pytest.raises(ValueError, match="same dtype"):
        tinygemm.w4a16_matmul(x.float(), q.quantized_weight, backend="triton")
    with pytest.raises(ValueError, match="last dimension"):
        tinygemm.w4a16_matmul(torch.randn(2, 64).half(), q.quantized_weight)
    with pytest.raises(ValueError, match="backend"):
        tinygemm.w4a16_matmul(x, q.quantized_weight, backend="marlin")


def test_launch_heuristic_rules():
    """pick_config: NVIDIA and AMD rules apart, steps never longer than a group, split-K bounded
    (at most 8, every share >= 4 steps), and the grid grown only while the SMs are not covered."""
    from tinygemm.triton.w4a16_gemm import pick_config

    for hip in (False, True):
        for M in (1, 16, 17, 32, 64, 1000):
            for K, N in ((4096, 6144), (14336, 4096), (4096, 28672), (1024, 2112)):
                for gs in (32, 64, 128, -1):
                    c = pick_config(M, N, K, gs, 132, hip=hip)
                    assert c.block_m >= min(M, 16) and 1 <= c.split_k <= 8
                    assert (K // 64) // (c.bc * c.split_k) >= 4 or c.split_k == 1
                    if gs in (32, 64):
                        assert c.bc == 1
                    assert c.stages == 2 if hip else c.stages >= 3
    # wide layers fill the GPU without split-K; narrow ones split
    assert pick_config(16, 28672, 4096, 128, 132, hip=False).split_k == 1
    assert pick_config(16, 4096, 14336, 128, 132, hip=False).split_k == 8


def test_launch_rules_are_named_configurations():
    """The rule tables hold GemmConfig values, in order of M, ending with the rule for any M; what
    pick_config returns is its rule's configuration with split_k (and bc for short groups) chosen."""
    from dataclasses import replace

    from tinygemm.triton.w4a16_gemm import RULES_AMD, RULES_NVIDIA, GemmConfig, GemmRule, pick_config

    for hip, rules in ((False, RULES_NVIDIA), (True, RULES_AMD)):
        assert all(isinstance(r, GemmRule) and isinstance(r.base, GemmConfig) for r in rules)
        tops = [r.max_m for r in rules]
        assert tops[-1] is None and tops[:-1] == sorted(tops[:-1])
        for r in rules:
            M = r.max_m or 4096
            c = pick_config(M, 4096, 4096, 128, 132, hip=hip)
            assert replace(c, split_k=1) == r.base, (hip, M, c, r)
    assert str(RULES_NVIDIA[-1].base) == "bm64_bt8_bc1_sk1_w4_s3_swap"


@pytest.mark.parametrize("cfg", [(16, 2, 1, 1, False), (16, 2, 2, 3, True), (32, 4, 4, 2, False), (16, 8, 1, 4, True)])
@pytest.mark.parametrize("gs,symmetric", [(32, False), (64, True), (128, False), (-1, True)])
def test_w4a16_gemm_configurations_interpreted(cfg, gs, symmetric):
    """The kernel's index arithmetic on CPU for pinned configurations: split-K with uneven shares
    (K = 640 is 10 chunks), both orientations, steps longer and shorter than the group, a column
    tail (N = 96 with 128-column tiles) and M beyond one row block."""
    from tinygemm.triton.w4a16_gemm import GemmConfig, w4a16_gemm

    K, N, M = 640, 96, 19
    qw = tinygemm.quantize(torch.randn(K, N).half(), gs, symmetric)
    x = torch.randn(M, K).half()
    y = w4a16_gemm(x, qw.qweight, qw.scales, qw.zeros, qw.group_size,
                   out=torch.full((M, N), float("nan")).half(), config=GemmConfig(*cfg[:4], swap=cfg[4]))
    ref = R.w4a16_ref(x, qw)
    assert R.rel_error(y, ref) <= R.tolerance(R.rel_error(R.w4a16_lowp(x, qw), ref))


def test_eager_calls_skip_the_dispatcher_and_compiled_ones_keep_the_op():
    """ops.call: an eager w4a16_matmul on plain tensors runs the op's function without torch.library's
    dispatch (the profiler sees no tinygemm:: op), with the same result; autograd recording and
    torch.compile get the registered op (one opaque node in the compiled graph)."""
    qw = tinygemm.quantize(torch.randn(128, 32).half(), 64)
    x = torch.randn(3, 128).half()

    def dispatched(fn):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            y = fn()
        return y, any(e.name == "tinygemm::w4a16_gemm" for e in prof.events())

    y_fast, via_op = dispatched(lambda: tinygemm.w4a16_matmul(x, qw, backend="triton"))
    y_op, op_seen = dispatched(lambda: torch.ops.tinygemm.w4a16_gemm(x, qw.qweight, qw.scales, qw.zeros, 64))
    assert op_seen and not via_op
    assert torch.equal(y_fast, y_op)
    _, via_op = dispatched(lambda: tinygemm.w4a16_matmul(x.clone().requires_grad_(), qw, backend="triton"))
    assert via_op
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    f = torch.compile(lambda x: tinygemm.w4a16_matmul(x, qw, backend="triton"), backend=capture)
    assert torch.equal(f(x), y_op)
    targets = [n.target for g in graphs for n in g.graph.nodes if n.op == "call_function"]
    assert torch.ops.tinygemm.w4a16_gemm.default in targets, targets
