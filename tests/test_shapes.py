"""The shape registry, TP rules and batch lists."""

import pytest

from tinygemm import shapes


def kn(model, tp, layer):
    return next(s.kn for s in shapes.layer_shapes(model, tp) if s.layer == layer)


def test_llama3_8b_checks_from_the_issue():
    assert kn("Llama-3-8B", 2, "gate_up_proj") == (4096, 14336)
    assert kn("Llama-3-8B", 1, "qkv_proj") == (4096, 6144)
    assert [s.kn for s in shapes.layer_shapes("llama3_8b", 1)] == [(4096, 6144), (4096, 4096), (4096, 28672), (14336, 4096)]


def test_tp_splits_and_kv_replication():
    # 8 KV heads: split up to tp 8, replicated (1 per rank) beyond
    assert kn("Llama-3-70B", 8, "qkv_proj") == (8192, (8 + 2) * 128)
    assert kn("Llama-3.1-405B", 16, "qkv_proj") == (16384, (8 + 2) * 128)
    assert kn("Llama-3-70B", 4, "o_proj") == (2048, 8192)
    assert kn("Llama-3-70B", 4, "down_proj") == (7168, 8192)
    assert kn("Qwen3-32B", 1, "o_proj") == (8192, 5120)  # heads * head_dim != hidden


def test_moe_and_mla_layers():
    names = {s.layer for s in shapes.layer_shapes("DeepSeek-V3", 8)}
    assert {"fused_qkv_a_proj", "q_b_proj", "kv_b_proj", "o_proj", "experts.w13", "experts.w2",
            "shared_expert.gate_up_proj", "gate_up_proj"} <= names
    assert kn("DeepSeek-R1", 8, "fused_qkv_a_proj") == (7168, 2112)
    assert kn("Mixtral-8x7B", 1, "experts.w13") == (4096, 28672)
    assert kn("Mixtral-8x7B", 1, "experts.w2") == (14336, 4096)
    assert kn("Qwen3-Coder-480B-A35B", 8, "experts.w2") == (320, 6144)


def test_every_model_has_shapes_at_tp1():
    for name in shapes.MODELS:
        assert shapes.layer_shapes(name, 1)


def test_errors():
    with pytest.raises(ValueError, match="unknown model"):
        shapes.find_model("GPT-5")
    with pytest.raises(ValueError, match="not divisible by tp"):
        shapes.layer_shapes("Qwen2.5-7B", 8)
    with pytest.raises(ValueError, match="unknown module"):
        shapes.select(["Llama-3-8B"], [1], "mlp")


def test_batch_lists():
    v = shapes.parse_batches("vllm")
    assert v[:5] == [1, 2, 4, 8, 16] and 248 in v and 256 in v and 272 in v and v[-1] == 512 and len(v) == 51
    assert shapes.parse_batches("decode") == list(range(1, 17))
    full = shapes.parse_batches("4:32768:4")
    assert full[0] == 4 and full[-1] == 32768 and len(full) == 8192
    assert shapes.parse_batches("8,1,4,4") == [1, 4, 8]
    for bad in ["0:4", "5:1", "a,b", "", "1:2:3:4", "-1,2"]:
        with pytest.raises(ValueError, match="batch"):
            shapes.parse_batches(bad)


def test_custom_shapes():
    assert shapes.parse_custom_shapes("1,4096,4096; 8,4096,1024") == [(1, 4096, 4096), (8, 4096, 1024)]
    assert shapes.parse_kn("4096,6144") == (4096, 6144)
    with pytest.raises(ValueError, match="M,K,N"):
        shapes.parse_custom_shapes("1,2")
    with pytest.raises(ValueError, match="K,N"):
        shapes.parse_kn("4096")
