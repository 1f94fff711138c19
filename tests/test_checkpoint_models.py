"""A tiny random Llama-style transformers model, written as GPTQ (plain and act-order), AWQ and
compressed-tensors checkpoints, loaded back through tinygemm.nn.load_quantized: logits against the
model with the same dequantized weights in fp32 (CPU: Int4Linear's reference path)."""

import json
import os

import pytest
import torch

import tinygemm
from tinygemm import checkpoints, formats
from tinygemm.nn import Int4Linear, load_quantized, quantize_model
from tinygemm.reference import rel_error

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def tiny_llama(dtype=torch.float16, device="cpu", bias=False):
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   tie_word_embeddings=False, attention_bias=bias)
    cfg._attn_implementation = "eager"
    return transformers.LlamaForCausalLM(cfg).to(dtype).to(device).eval()


def expected_layers(n=2):
    return sorted(f"model.layers.{i}.{p}" for i in range(n) for p in LINEARS)


def reference_model(model, dense_weights: dict[str, torch.Tensor]):
    """An fp32 copy of `model` whose quantized Linears hold the given dequantized weights [N, K]."""
    ref = tiny_llama(torch.float32, model.device, model.config.attention_bias)
    ref.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    with torch.no_grad():
        for name, w in dense_weights.items():
            ref.get_submodule(name).weight.copy_(w.float())
    return ref


def check_logits(loaded, ref, dtype=torch.float16):
    for shape in ((2, 12), (1, 5)):  # on a GPU: Triton GEMM (24 rows), CUDA GEMV (5 rows)
        ids = torch.randint(0, 256, shape, device=ref.device)
        with torch.no_grad():
            got = loaded(ids).logits
            want = ref(ids).logits
        assert got.dtype == dtype
        # the loaded model computes in fp16/bf16; its error is that precision's, not the quantization's
        assert rel_error(got, want) < (1e-2 if dtype == torch.float16 else 3e-2), rel_error(got, want)


def check_report(rep):
    assert sorted(rep.replaced) == expected_layers()
    assert rep.unmatched == ["lm_head"] and rep.skipped == [] and rep.unused == [] and rep.missing == []


@pytest.mark.parametrize("method,symmetric,act_order,zero_offset,bias", [
    ("gptq", True, False, 1, False), ("gptq", True, True, 1, True), ("gptq", False, True, 0, False),
    ("awq", False, False, 1, True)])
def test_gptq_awq_checkpoint_roundtrip(tmp_path, method, symmetric, act_order, zero_offset, bias, device="cpu"):
    model = tiny_llama(device=device, bias=bias)
    qws = checkpoints.save_quantized(model, str(tmp_path / "ckpt"), method, group_size=32, symmetric=symmetric,
                                     act_order=act_order, zero_offset=zero_offset)
    cfg = json.load(open(tmp_path / "ckpt" / "config.json"))
    assert cfg["quantization_config"]["quant_method"] == method and cfg["model_type"] == "llama"
    ref = reference_model(model, {n: formats.dequantize(q, torch.float32).t() for n, q in qws.items()})

    loaded = tiny_llama(device=device, bias=bias)  # fresh random weights: everything must come from the checkpoint
    rep = load_quantized(loaded, str(tmp_path / "ckpt"))
    check_report(rep)
    layer = loaded.get_submodule("model.layers.1.mlp.down_proj")
    assert isinstance(layer, Int4Linear) and (layer.perm is not None) == act_order
    assert (loaded.get_submodule("model.layers.0.self_attn.q_proj").bias is not None) == bias
    assert layer.qweight.device.type == device
    check_logits(loaded, ref)


@pytest.mark.gpu
@pytest.mark.parametrize("method,symmetric,act_order", [("gptq", True, True), ("awq", False, False)])
def test_checkpoint_roundtrip_on_gpu(tmp_path, method, symmetric, act_order):
    """The same model test with the kernels: 24 rows per Linear (Triton GEMM) and 5 (CUDA GEMV)."""
    test_gptq_awq_checkpoint_roundtrip(tmp_path, method, symmetric, act_order, 1, False, device="cuda")


def _write_compressed_tensors(model, path, symmetric, strategy, gs):
    """A compressed-tensors pack-quantized checkpoint, made by compressed-tensors itself: its qparams,
    its PackedQuantizationCompressor, its QuantizationConfig (ignore lm_head) in config.json."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig, QuantizationScheme
    from compressed_tensors.quantization.utils import calculate_qparams
    from safetensors.torch import save_file

    args = QuantizationArgs(num_bits=4, type="int", symmetric=symmetric, strategy=strategy,
                            group_size=gs if strategy == "group" else None)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    tensors, dense = {}, {}
    for name, m in model.named_modules():
        if type(m) is torch.nn.Linear and name != "lm_head":
            W = m.weight.detach()
            N, K = W.shape
            wg = W.reshape(N, -1, gs if strategy == "group" else K)
            scale, zp = calculate_qparams(wg.amin(-1), wg.amax(-1), args)
            packed = PackedQuantizationCompressor.compress({"weight": W, "weight_scale": scale,
                                                            "weight_zero_point": zp}, scheme)
            dense[name] = PackedQuantizationCompressor.decompress(dict(packed), scheme)["weight"]
            tensors.update({f"{name}.{k}": v for k, v in packed.items()})
    for k, v in model.state_dict().items():
        if k.rpartition(".")[0] not in dense:
            tensors[k] = v
    qc = QuantizationConfig(config_groups={"group_0": scheme}, format="pack-quantized", ignore=["lm_head"],
                            quantization_status="compressed").model_dump()
    qc["quant_method"] = "compressed-tensors"
    config = model.config.to_dict()
    config["quantization_config"] = qc
    os.makedirs(path)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, default=str)
    return dense


@pytest.mark.parametrize("symmetric,strategy,gs", [(True, "group", 32), (False, "group", 64), (False, "channel", None)])
def test_compressed_tensors_checkpoint(tmp_path, symmetric, strategy, gs):
    pytest.importorskip("compressed_tensors")
    model = tiny_llama()
    dense = _write_compressed_tensors(model, str(tmp_path / "ct"), symmetric, strategy, gs)
    ref = reference_model(model, dense)
    loaded = tiny_llama()
    check_report(load_quantized(loaded, str(tmp_path / "ct")))
    check_logits(loaded, ref)


def test_quantize_model_in_place_bf16():
    model = tiny_llama(torch.bfloat16)
    dense = {n: formats.dequantize(checkpoints.quantize_linear_weight(model.get_submodule(n).weight, 64, False, False),
                                   torch.float32).t() for n in expected_layers()}
    ref = reference_model(model, dense)
    rep = quantize_model(model, group_size=64, symmetric=False)
    assert sorted(rep.replaced) == expected_layers() and rep.skipped == ["lm_head: in the skip list"]
    check_logits(model, ref, torch.bfloat16)


def test_quantize_model_reports_what_it_leaves():
    model = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.Linear(64, 24), torch.nn.Linear(24, 128)).half()
    model.append(torch.nn.Linear(128, 32).float())
    rep = quantize_model(model, group_size=32, skip=())
    assert rep.replaced == ["0"] and isinstance(model[0], Int4Linear)
    assert [s.split(":")[0] for s in rep.skipped] == ["1", "2", "3"]
    assert "N % 16" in rep.skipped[0] and "K % 64" in rep.skipped[1] and "dtype" in rep.skipped[2]
    assert type(model[1]) is torch.nn.Linear


def test_load_quantized_errors(tmp_path):
    model = tiny_llama()
    checkpoints.save_quantized(model, str(tmp_path / "g"), "gptq", group_size=32)
    with pytest.raises(ValueError, match="not empty"):
        checkpoints.save_quantized(model, str(tmp_path / "g"), "gptq")
    with pytest.raises(ValueError, match="fp16 or bf16"):
        load_quantized(tiny_llama(torch.float32), str(tmp_path / "g"))
    # a model whose layer is not the checkpoint's shape
    other = tiny_llama()
    other.model.layers[0].mlp.down_proj = torch.nn.Linear(128, 128).half()
    with pytest.raises(ValueError, match="down_proj"):
        load_quantized(other, str(tmp_path / "g"))
    cfg = json.load(open(tmp_path / "g" / "config.json"))
    cfg["quantization_config"]["bits"] = 8
    json.dump(cfg, open(tmp_path / "g" / "config.json", "w"))
    with pytest.raises(ValueError, match="4-bit"):
        load_quantized(tiny_llama(), str(tmp_path / "g"))
    with pytest.raises(ValueError, match="no .safetensors"):
        os.makedirs(tmp_path / "empty")
        json.dump({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 32}},
                  open(tmp_path / "empty" / "config.json", "w"))
        load_quantized(tiny_llama(), str(tmp_path / "empty"))


def test_load_quantized_skip_list_and_unused(tmp_path):
    model = tiny_llama()
    checkpoints.save_quantized(model, str(tmp_path / "g"), "gptq", group_size=32)
    loaded = tiny_llama()
    rep = load_quantized(loaded, str(tmp_path / "g"), skip=("mlp.down_proj",))
    assert rep.skipped == [f"model.layers.{i}.mlp.down_proj: in the skip list" for i in range(2)]
    assert "model.layers.0.mlp.down_proj.qweight" in rep.unused
    assert "model.layers.0.mlp.down_proj.weight" in rep.missing
    assert isinstance(loaded.model.layers[0].mlp.down_proj, torch.nn.Linear)
    assert tinygemm.nn.SwapReport is type(rep)


def test_load_quantized_names_a_layer_the_kernels_cannot_take(tmp_path):
    """K = 1368 (a Llama-style intermediate size) in a GPTQ checkpoint: the error names layer, shape, rule."""
    from safetensors.torch import save_file

    os.makedirs(tmp_path / "g")
    save_file({"0.qweight": torch.zeros(171, 64, dtype=torch.int32), "0.qzeros": torch.zeros(11, 8, dtype=torch.int32),
               "0.scales": torch.ones(11, 64).half()}, str(tmp_path / "g" / "model.safetensors"))
    json.dump({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}},
              open(tmp_path / "g" / "config.json", "w"))
    with pytest.raises(ValueError, match=r"layer 0 \(gptq, K=1368 x N=64 \(in x out\)\): .*K % 64 == 0"):
        load_quantized(torch.nn.Sequential(torch.nn.Linear(1368, 64).half()), str(tmp_path / "g"))


@pytest.mark.parametrize("qc,msg", [
    ({"quant_method": "bitsandbytes"}, "quant_method must be one of"),
    ({"quant_method": "gptq", "bits": 3, "group_size": 128}, "4-bit weights; got bits = 3"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"}, "gptq or gptq_v2"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}, "GEMM packing"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": False}, "zero_point=False"),
    ({"quant_method": "compressed-tensors", "format": "float-quantized",
      "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}}, "pack-quantized"),
    ({"quant_method": "compressed-tensors", "format": "pack-quantized",
      "config_groups": {"g": {"weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}}, "4-bit int"),
    ({"quant_method": "compressed-tensors", "format": "pack-quantized",
      "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int", "strategy": "tensor"}}}}, "group or channel"),
])
def test_quantization_configs_it_refuses(qc, msg):
    with pytest.raises(ValueError, match=msg):
        checkpoints.parse_quant_config(qc)


def test_quantization_configs_it_reads(tmp_path):
    c = checkpoints.parse_quant_config({"quant_method": "gptq", "bits": 4, "group_size": 64, "desc_act": True,
                                        "checkpoint_format": "gptq_v2"})
    assert (c.method, c.group_size, c.zero_offset) == ("gptq", 64, 0)
    # AutoGPTQ's quantize_config.json (no quant_method) when config.json has no quantization_config
    json.dump({"model_type": "llama"}, open(tmp_path / "config.json", "w"))
    json.dump({"bits": 4, "group_size": 128, "desc_act": False, "sym": True}, open(tmp_path / "quantize_config.json", "w"))
    c = checkpoints.read_quant_config(str(tmp_path))
    assert (c.method, c.group_size, c.zero_offset) == ("gptq", 128, 1)
