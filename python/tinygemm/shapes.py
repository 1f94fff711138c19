"""LLM weight shapes: models x layers x tensor parallelism, and the batch lists the sweeps use.

A GEMM here is y[M, N] = x[M, K] . W[K, N] with M the tokens in flight (the batch). Tensor
parallelism follows Megatron / vLLM: column-parallel layers (qkv, gate_up, the MLA up-projections)
split N by tp, row-parallel layers (o_proj, down_proj) split K. KV heads are split too while tp does
not exceed their number; beyond that each rank keeps one replicated KV head. MoE experts are split
by tp (vLLM's default without expert parallelism); the MLA down-projections are replicated.

Model dimensions: shared/reference/model_dims.csv (HF configs; see its sources column).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Model:
    name: str
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int = 128
    # MoE: experts' intermediate size (per expert), counts, shared expert
    moe_intermediate: int = 0
    experts: int = 0
    experts_per_token: int = 0
    shared_intermediate: int = 0
    dense_intermediate: int = 0  # dense MLP layers of an interleaved / first-k-dense MoE model
    # DeepSeek MLA
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0


MODELS: dict[str, Model] = {m.name: m for m in [
    Model("Llama-2-7B", 4096, 11008, 32, 32, aliases=("llama2_7b", "meta-llama/Llama-2-7b-hf")),
    Model("Llama-3-8B", 4096, 14336, 32, 8, aliases=("llama3_8b", "llama3.1_8b", "meta-llama/Meta-Llama-3-8B",
                                                         "meta-llama/Llama-3.1-8B")),
    Model("Llama-3-70B", 8192, 28672, 64, 8, aliases=("llama3_70b", "llama3.1_70b", "llama3.3_70b",
                                                           "meta-llama/Meta-Llama-3-70B", "meta-llama/Llama-3.3-70B-Instruct")),
    Model("Llama-3.1-405B", 16384, 53248, 128, 8, aliases=("llama3.1_405b", "meta-llama/Llama-3.1-405B")),
    Model("Mistral-7B", 4096, 14336, 32, 8, aliases=("mistral_7b", "mistralai/Mistral-7B-v0.1")),
    Model("Mixtral-8x7B", 4096, 0, 32, 8, moe_intermediate=14336, experts=8, experts_per_token=2,
          aliases=("mixtral_8x7b", "mistralai/Mixtral-8x7B-v0.1")),
    Model("Qwen2.5-7B", 3584, 18944, 28, 4, aliases=("qwen2.5_7b", "Qwen/Qwen2.5-7B")),
    Model("Qwen2.5-72B", 8192, 29568, 64, 8, aliases=("qwen2.5_72b", "Qwen/Qwen2.5-72B")),
    Model("Qwen3-32B", 5120, 25600, 64, 8, aliases=("qwen3_32b", "Qwen/Qwen3-32B")),
    Model("Llama-4-Scout", 5120, 0, 40, 8, moe_intermediate=8192, experts=16, experts_per_token=1,
          shared_intermediate=8192, aliases=("llama4_scout", "meta-llama/Llama-4-Scout-17B-16E")),
    Model("Llama-4-Maverick", 5120, 0, 40, 8, moe_intermediate=8192, experts=128, experts_per_token=1,
          shared_intermediate=8192, dense_intermediate=16384, aliases=("llama4_maverick", "meta-llama/Llama-4-Maverick-17B-128E")),
    Model("Qwen3-Coder-480B-A35B", 6144, 0, 96, 8, moe_intermediate=2560, experts=160, experts_per_token=8,
          aliases=("qwen3_coder_480b", "Qwen/Qwen3-Coder-480B-A35B-Instruct")),
    Model("DeepSeek-V3", 7168, 0, 128, 128, moe_intermediate=2048, experts=256, experts_per_token=8,
          shared_intermediate=2048, dense_intermediate=18432, q_lora_rank=1536, kv_lora_rank=512,
          qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, aliases=("deepseek_v3", "DeepSeek-R1", "deepseek_r1",
                                                                   "deepseek-ai/DeepSeek-V3")),
]}

LAYERS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "experts.w13", "experts.w2",
          "shared_expert.gate_up_proj", "shared_expert.down_proj", "fused_qkv_a_proj", "q_b_proj", "kv_b_proj")


@dataclass(frozen=True)
class GemmShape:
    model: str
    layer: str
    tp: int
    K: int
    N: int

    @property
    def kn(self) -> tuple[int, int]:
        return self.K, self.N


# Words of a checkpoint name that do not change its linear layers' shapes: fine-tunes and revisions.
_NAME_NOISE = re.compile(r"(^|-)(instruct|chat|hf|base|it|v\d+(\.\d+)*|\d{4})(?=-|$)")


def normalize_name(name: str) -> str:
    """How a model is looked up: case, the Hugging Face organization, a leading 'Meta-', the
    separators - _ and space, and instruct/chat/hf/base/version suffixes do not matter, so that
    llama3_8b, llama3-8b, Llama-3-8B and meta-llama/Meta-Llama-3-8B-Instruct are one model."""
    key = name.strip().lower().rsplit("/", 1)[-1].replace("_", "-").replace(" ", "-")
    key = key.removeprefix("meta-")
    key = _NAME_NOISE.sub("", key)
    return key.replace("-", "")


def _names(m: Model) -> tuple[str, ...]:
    return (m.name, *m.aliases)


def find_model(name: str) -> Model:
    key = normalize_name(name)
    for m in MODELS.values():
        if key and key in (normalize_name(a) for a in _names(m)):
            return m
    known = "; ".join(f"{m.name} ({', '.join(m.aliases)})" if m.aliases else m.name for m in MODELS.values())
    raise ValueError(f"unknown model {name!r}; known models (and aliases): {known}")


def _split(value: int, tp: int, what: str) -> int:
    if value % tp:
        raise ValueError(f"{what} = {value} is not divisible by tp = {tp}")
    return value // tp


def layer_shapes(model: str | Model, tp: int = 1) -> list[GemmShape]:
    """Every distinct linear layer of `model` on one rank at tensor parallelism `tp`."""
    m = model if isinstance(model, Model) else find_model(model)
    if tp < 1:
        raise ValueError(f"tp must be >= 1; got {tp}")
    out: list[GemmShape] = []

    def add(layer: str, K: int, N: int) -> None:
        out.append(GemmShape(m.name, layer, tp, K, N))

    if m.is_mla:
        heads = _split(m.heads, tp, f"{m.name} num_attention_heads")
        add("fused_qkv_a_proj", m.hidden, m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim)  # replicated
        add("q_b_proj", m.q_lora_rank, heads * (m.qk_nope_head_dim + m.qk_rope_head_dim))
        add("kv_b_proj", m.kv_lora_rank, heads * (m.qk_nope_head_dim + m.v_head_dim))
        add("o_proj", heads * m.v_head_dim, m.hidden)
    else:
        heads = _split(m.heads, tp, f"{m.name} num_attention_heads")
        kv = m.kv_heads // tp if m.kv_heads >= tp else 1
        if m.kv_heads >= tp and m.kv_heads % tp:
            raise ValueError(f"{m.name} num_key_value_heads = {m.kv_heads} is not divisible by tp = {tp}")
        add("qkv_proj", m.hidden, (heads + 2 * kv) * m.head_dim)
        add("o_proj", heads * m.head_dim, m.hidden)
    dense = m.intermediate or m.dense_intermediate
    if dense:
        inter = _split(dense, tp, f"{m.name} intermediate_size")
        add("gate_up_proj", m.hidden, 2 * inter)
        add("down_proj", inter, m.hidden)
    if m.is_moe:
        inter = _split(m.moe_intermediate, tp, f"{m.name} moe_intermediate_size")
        add("experts.w13", m.hidden, 2 * inter)
        add("experts.w2", inter, m.hidden)
        if m.shared_intermediate:
            inter = _split(m.shared_intermediate, tp, f"{m.name} shared_expert_intermediate_size")
            add("shared_expert.gate_up_proj", m.hidden, 2 * inter)
            add("shared_expert.down_proj", inter, m.hidden)
    return out


def select(models: list[str], tps: list[int], module: str = "all") -> list[GemmShape]:
    """Shapes for several models and tp values, filtered to one layer (or all)."""
    if module != "all" and module not in LAYERS:
        raise ValueError(f"unknown module {module!r}; choose 'all' or one of {', '.join(LAYERS)}")
    shapes = [s for name in models for tp in tps for s in layer_shapes(name, tp)]
    if module != "all":
        shapes = [s for s in shapes if s.layer == module]
        if not shapes:
            raise ValueError(f"no layer {module!r} in {', '.join(models)}")
    return shapes


# --- batch lists ---------------------------------------------------------------------------------

def vllm_capture_sizes(max_size: int = 512) -> list[int]:
    """vLLM's default CUDA-graph capture sizes (non-Blackwell: up to 512)."""
    sizes = [i for i in (1, 2, 4) if i <= max_size]
    sizes += list(range(8, min(max_size + 1, 256), 8))
    if max_size >= 256:
        sizes += list(range(256, max_size + 1, 16))
    return sorted(set(sizes))


NAMED_BATCHES = {
    "decode": list(range(1, 17)),
    "vllm": vllm_capture_sizes(512),
    "vllm-blackwell": vllm_capture_sizes(1024),
    "marlin": [1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192],  # vLLM's benchmark_marlin.py
    "large": [1024, 2048, 4096, 8192, 16384, 32768],
}


# Batch lists are built in memory (and x[M, K] on the GPU): a typo such as 1:10000000000 is refused
# from its length, before any list exists.
MAX_BATCH = 1 << 20          # the largest M (the binaries' --m limit)
MAX_BATCH_SIZES = 200_000    # sizes in one batch list


def _batches(spec: str) -> "range | list[int]":
    """A batch spec as a range (lazy, so its length is known without building it) or a sorted list."""
    spec = spec.strip()
    if spec in NAMED_BATCHES:
        return list(NAMED_BATCHES[spec])
    try:
        if ":" in spec:
            parts = [int(p) for p in spec.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            a, b = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if a < 1 or b < a or step < 1:
                raise ValueError
            values = range(a, b + 1, step)
        else:
            values = sorted({int(p) for p in spec.split(",") if p.strip()})
    except ValueError:
        raise ValueError(f"batch list {spec!r} must be one of {', '.join(NAMED_BATCHES)}, a range a:b[:step] "
                         "with 1 <= a <= b, or a comma-separated list of positive integers") from None
    if not len(values) or values[0] < 1:
        raise ValueError(f"batch sizes must be positive integers; got {spec!r}")
    if values[-1] > MAX_BATCH:
        raise ValueError(f"batch list {spec!r} goes up to M = {values[-1]:,}; the largest supported is {MAX_BATCH:,}")
    if len(values) > MAX_BATCH_SIZES:
        raise ValueError(f"batch list {spec!r} has {len(values):,} sizes; at most {MAX_BATCH_SIZES:,}")
    return values


def parse_batches(spec: str) -> list[int]:
    """'decode' | 'vllm' | ... | 'a:b:step' (inclusive) | '1,2,4,8' -> sorted unique batch sizes."""
    return list(_batches(spec))


def parse_custom_shapes(spec: str) -> list[tuple[int, int, int]]:
    """'M,K,N;M,K,N' -> [(M, K, N), ...]."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        try:
            m, k, n = (int(v) for v in part.split(","))
        except ValueError:
            raise ValueError(f"shape {part!r} must be 'M,K,N' with three integers") from None
        if min(m, k, n) < 1:
            raise ValueError(f"shape {part!r}: M, K and N must be positive")
        if max(m, k, n) > MAX_BATCH:
            raise ValueError(f"shape {part!r}: M, K and N must be at most {MAX_BATCH:,}")
        out.append((m, k, n))
    if not out:
        raise ValueError(f"no shapes in {spec!r}; write them as 'M,K,N;M,K,N'")
    return out


def parse_kn(spec: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(f"--kn {spec!r} must be 'K,N' with two integers") from None
    if min(k, n) < 1:
        raise ValueError(f"--kn {spec!r}: K and N must be positive")
    if max(k, n) > MAX_BATCH:
        raise ValueError(f"--kn {spec!r}: K and N must be at most {MAX_BATCH:,}")
    return k, n


# --- aiter tuning shapes (python -m tinygemm.shapes aiter ...) ----------------------------------

AITER_M_LISTS = {"vllm": vllm_capture_sizes(512), "large": NAMED_BATCHES["large"], "decode": NAMED_BATCHES["decode"]}


def aiter_rows(models: list[str], tps: list[int], m_list: list[int], q_dtype_w: str) -> list[dict]:
    """Untuned-shape rows in aiter's format (M, N, K, q_dtype_w), deduplicated, sorted."""
    seen = set()
    rows = []
    for s in select(models, tps):
        for m in m_list:
            key = (m, s.N, s.K)
            if key not in seen:
                seen.add(key)
                rows.append({"M": m, "N": s.N, "K": s.K, "q_dtype_w": q_dtype_w})
    rows.sort(key=lambda r: (r["N"], r["K"], r["M"]))
    return rows


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygemm.shapes", description="LLM GEMM shapes.")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="print the shapes of models at tp values")
    ls.add_argument("--model", nargs="+", default=["Llama-3-8B"])
    ls.add_argument("--tp", nargs="+", type=int, default=[1])
    ls.add_argument("--module", default="all")
    ai = sub.add_parser("aiter", help="write aiter untuned-shape CSVs (M,N,K,q_dtype_w)")
    ai.add_argument("--model", nargs="+", required=True)
    ai.add_argument("--tp", nargs="+", type=int, default=[1])
    ai.add_argument("--kind", choices=["ck", "bpreshuffle"], default="ck")
    ai.add_argument("--m-list", default="vllm", help="vllm, large, decode, a range a:b:step or a list")
    ai.add_argument("--q-dtype-w", default=None,
                    help="value of the q_dtype_w column (default: torch.float8_e4m3fnuz, MI300's fp8)")
    ai.add_argument("-o", "--output", default=None, help="output CSV (default: a8w8[_bpreshuffle]_untuned_gemm.csv)")
    ai.add_argument("--force", action="store_true", help="overwrite an existing output")
    a = p.parse_args(argv)
    from .cli_errors import atomic_write, check_output, exit_2_on_bad_input

    with exit_2_on_bad_input(p.prog):
        if a.cmd == "list":
            shapes = select(a.model, a.tp, a.module)  # validated before the header is printed
            w = csv.writer(sys.stdout)
            w.writerow(["model", "layer", "tp", "K", "N"])
            for s in shapes:
                w.writerow([s.model, s.layer, s.tp, s.K, s.N])
            return 0
        out = a.output or ("a8w8_untuned_gemm.csv" if a.kind == "ck" else "a8w8_bpreshuffle_untuned_gemm.csv")
        check_output(out, a.force)  # before any work
        m_list = AITER_M_LISTS.get(a.m_list) or parse_batches(a.m_list)
        qd = a.q_dtype_w or "torch.float8_e4m3fnuz"
        rows = aiter_rows(a.model, a.tp, m_list, qd)
        with atomic_write(out, newline="") as f:
            w = csv.DictWriter(f, fieldnames=["M", "N", "K", "q_dtype_w"])
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {len(rows)} shapes to {out}")
        return 0


if __name__ == "__main__":
    sys.exit(_main())
