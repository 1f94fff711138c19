"""End-to-end decode: a Llama-3-8B-shaped transformers model with random weights (built from a config,
nothing downloaded), a static KV cache, one CUDA graph per decode step, batch 1, 4, 16 and 64 at
context 512: tokens/s and per-token latency for fp16, tinygemm (Int4Linear, backend auto), torch's int4
kernel (_weight_int4pack_mm; bf16, its only dtype) and vLLM Marlin (MarlinLinear, GPTQ uint4b8), all
four INT4 variants from one GPTQ checkpoint (group 128, round-to-nearest) written to disk first. Also
tinygemm's load time from that checkpoint and each variant's GPU memory.

    python bench/e2e_decode.py --out DIR                       # H200/H100: all 32 layers
    python bench/e2e_decode.py --out DIR --layers 4 --batches 1,16
    python bench/e2e_decode.py --tiny --out DIR --context 8 --steps 2   # CPU smoke run (eager)

Writes DIR/e2e_decode.csv (one row per variant and batch) and DIR/e2e_decode.md (tokens/s table,
speedups, the issue's bars and every batch where tinygemm is slower than a peer). A variant that cannot
run here (no vLLM, no GPU for torch's int4 kernel) gets rows with status `unavailable` and the reason.
Decode steps are timed as replays of the captured graph, back to back, with CUDA events; a step whose
capture fails is timed eagerly and says so (mode `eager`, the reason in the note).
"""

from __future__ import annotations

import argparse
import csv
import gc
import inspect
import os
import shutil
import statistics
import sys
import tempfile
import time

import torch

from tinygemm import checkpoints, formats
from tinygemm.nn import Int4Linear, load_quantized

VARIANTS = ("fp16", "tinygemm", "torch_int4pack", "marlin")
MODES = "graph: one CUDA graph per step, replayed back to back; eager: one Python forward per step"
FIELDS = ["variant", "batch", "context", "layers", "dtype", "mode", "step_ms", "tokens_per_s", "weights_gib",
          "peak_gib", "load_s", "status", "note"]


class Fail(Exception):
    """A bad argument or environment: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Fail(message)


def parse_args(argv=None):
    p = _Parser(prog="e2e_decode.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory (e2e_decode.csv/.md; not overwritten)")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (default: 32, --tiny: 2)")
    p.add_argument("--batches", default="1,4,16,64")
    p.add_argument("--context", type=int, default=512, help="prompt tokens in the KV cache before decoding")
    p.add_argument("--steps", type=int, default=64, help="decode steps per timed run (3 runs, median)")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--act-order", action="store_true", help="write the GPTQ checkpoint with act-order (g_idx)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-graphs", action="store_true", help="time eager decode steps (no CUDA graphs)")
    p.add_argument("--ckpt-dir", default=None, help="where to write the GPTQ checkpoint (default: a temp dir, removed)")
    p.add_argument("--tiny", action="store_true", help="a tiny Llama config (CPU smoke runs)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    a = p.parse_args(argv)
    try:
        a.batches = [int(b) for b in a.batches.split(",")]
    except ValueError:
        raise Fail(f"--batches must be comma-separated integers; got {a.batches!r}") from None
    a.variants = a.variants.split(",")
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad:
        raise Fail(f"--variants must be among {','.join(VARIANTS)}; got {','.join(bad)}")
    a.layers = a.layers if a.layers is not None else (2 if a.tiny else 32)
    for name in ("layers", "context", "steps"):
        if getattr(a, name) < 1:
            raise Fail(f"--{name} must be >= 1; got {getattr(a, name)}")
    if any(b < 1 for b in a.batches):
        raise Fail(f"--batches must be >= 1; got {a.batches}")
    if a.group_size not in formats.GROUP_SIZES:
        raise Fail(f"--group-size must be one of {formats.GROUP_SIZES}; got {a.group_size}")
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise Fail("--device cuda asked for, but torch sees no GPU")
    for f in ("e2e_decode.csv", "e2e_decode.md"):
        if os.path.exists(os.path.join(a.out, f)):
            raise Fail(f"{os.path.join(a.out, f)} exists: not overwriting it (pick another --out)")
    return a


def llama_config(layers: int, tiny: bool):
    import transformers

    if tiny:
        kw = dict(vocab_size=512, hidden_size=256, intermediate_size=512, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096)
    else:  # Llama-3-8B (meta-llama/Meta-Llama-3-8B's config.json), rope scaling left out
        kw = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
                  num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0)
    cfg = transformers.LlamaConfig(num_hidden_layers=layers, rms_norm_eps=1e-5, tie_word_embeddings=False, **kw)
    cfg._attn_implementation = "sdpa"
    return cfg


def build_model(cfg, dtype, device):
    """Random weights, made on the device in `dtype` (no fp32 copy of the whole model)."""
    import transformers

    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = transformers.LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    return model.eval()


class Int4PackLinear(torch.nn.Module):
    """torch._weight_int4pack_mm on a tinygemm QuantizedWeight (bf16; act-order gathers x like tinygemm)."""

    def __init__(self, qw):
        super().__init__()
        self.in_features, self.out_features = qw.shape
        self.group_size = qw.group_size
        w, sz = formats.to_int4pack(qw)
        self.register_buffer("w", w)
        self.register_buffer("sz", sz)
        self.register_buffer("perm", qw.perm)

    def forward(self, x):
        x2 = x.reshape(-1, self.in_features)
        if self.perm is not None:
            x2 = x2.index_select(-1, self.perm)
        y = torch._weight_int4pack_mm(x2.contiguous(), self.w, self.group_size, self.sz)
        return y.reshape(*x.shape[:-1], self.out_features)


def swap_int4(model, make):
    """Replace every Int4Linear by make(name, layer)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, Int4Linear):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, make(name, m))


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _mem_gib(device, peak=False):
    if not str(device).startswith("cuda"):
        return float("nan")
    return (torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()) / 2**30


def _static_cache(model, batch, max_len, device, dtype):
    from transformers import StaticCache

    kw = dict(config=model.config, max_cache_len=max_len, max_batch_size=batch, batch_size=batch,
              device=device, dtype=dtype)
    params = inspect.signature(StaticCache.__init__).parameters
    return StaticCache(**{k: v for k, v in kw.items() if k in params})


class Decoder:
    """One decode step of `model` at batch B after a `context`-token prefill, with a static KV cache.

    transformers moved the cache argument (past_key_values -> cache) and, in 5.2x, the write position
    from cache_position into the cache itself; the step passes what the installed version takes. The
    position tensor is advanced inside the step (and so inside the graph): every replay is the next token.
    """

    def __init__(self, model, batch, context, max_len, device, dtype):
        self.model, self.device = model, device
        params = inspect.signature(model.model.forward).parameters
        self.cache_kw = "past_key_values" if "past_key_values" in params else "cache"
        self.with_cache_position = "cache_position" in params
        self.cache = _static_cache(model, batch, max_len, device, dtype)
        vocab = model.config.vocab_size
        self.prompt = prompt = torch.randint(0, vocab, (batch, context), device=device)
        self.tok = torch.randint(0, vocab, (batch, 1), device=device)
        self.pos = torch.full((1,), context, dtype=torch.long, device=device)
        self.position_ids = self.pos.view(1, 1).expand(batch, 1)
        with torch.no_grad():
            model(**self._kw(prompt, torch.arange(context, device=device)), logits_to_keep=1)
        self.graph = None

    def _kw(self, ids, positions):
        kw = {"input_ids": ids, self.cache_kw: self.cache, "use_cache": True,
              "position_ids": positions.view(1, -1).expand(ids.shape[0], -1)}
        if self.with_cache_position:
            kw["cache_position"] = positions
        return kw

    def step(self):
        with torch.no_grad():
            kw = self._kw(self.tok, self.pos)
            kw["position_ids"] = self.position_ids
            out = self.model(**kw).logits
            self.pos.add_(1)
        return out

    def capture(self):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                self.step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self.step()
        self.graph = g

    def run(self, n):
        for _ in range(n):
            self.graph.replay() if self.graph is not None else self.step()

    def time_ms(self, steps, reps=3):
        """Median over `reps` runs of `steps` back-to-back steps: ms per step."""
        self.run(2)
        times = []
        for _ in range(reps):
            if str(self.device).startswith("cuda"):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                self.run(steps)
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) / steps)
            else:
                t0 = time.perf_counter()
                self.run(steps)
                times.append((time.perf_counter() - t0) * 1e3 / steps)
        return statistics.median(times)


def measure(model, variant, a, dtype, weights_gib, load_s, note=""):
    rows = []
    for B in a.batches:
        row = dict(variant=variant, batch=B, context=a.context, layers=a.layers, dtype=str(dtype).replace("torch.", ""),
                   weights_gib=round(weights_gib, 3), load_s=round(load_s, 3) if load_s == load_s else "", note=note)
        if str(a.device).startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        max_len = a.context + 2 + 2 + 2 + 3 * a.steps + 8  # prefill, warm-up, capture warm-up, timing
        try:
            dec = Decoder(model, B, a.context, max_len, a.device, dtype)
            mode = "eager"
            if not a.no_graphs and str(a.device).startswith("cuda"):
                try:
                    dec.capture()
                    mode = "graph"
                except Exception as e:  # a step that cannot be captured is timed eagerly, and says why
                    torch.cuda.synchronize()
                    row["note"] = (note + "; " if note else "") + f"graph capture failed: {type(e).__name__}: {str(e)[:120]}"
            ms = dec.time_ms(a.steps)
            row.update(mode=mode, step_ms=round(ms, 4), tokens_per_s=round(B * 1e3 / ms, 1),
                       peak_gib=round(_mem_gib(a.device, peak=True), 3), status="ok")
        except torch.OutOfMemoryError as e:
            row.update(status="oom", note=str(e)[:160])
        except Exception as e:
            row.update(status="error", note=f"{type(e).__name__}: {str(e)[:200]}")
        finally:
            dec = None  # noqa: F841 (frees the cache and graph before the next batch)
            gc.collect()
        print(f"  {variant:15s} batch {B:3d}: " + (f"{row['step_ms']:.3f} ms/step, {row['tokens_per_s']:.0f} tok/s "
              f"({row['mode']})" if row["status"] == "ok" else f"{row['status']}: {row['note']}"), flush=True)
        rows.append(row)
    return rows


def unavailable(variant, a, why):
    print(f"  {variant}: unavailable: {why}", flush=True)
    return [dict(variant=variant, batch=B, context=a.context, layers=a.layers, status="unavailable", note=why)
            for B in a.batches]


def _free(device):
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()


class Rows(list):
    """The result rows, each also appended to the CSV as it comes (a run cut short keeps what it measured)."""

    def __init__(self, path):
        super().__init__()
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=FIELDS, extrasaction="ignore")
        self.w.writeheader()

    def __iadd__(self, rows):
        for r in rows:
            self.append(r)
            self.w.writerow(r)
        self.f.flush()
        return self


def run(a, rows):
    cfg = llama_config(a.layers, a.tiny)
    dev, fp16 = a.device, torch.float16
    ckpt = a.ckpt_dir or tempfile.mkdtemp(prefix="e2e-gptq-")
    cuda = str(dev).startswith("cuda")

    def quantized(dtype):
        skel = build_model(cfg, dtype, dev)
        _sync(dev)
        t0 = time.perf_counter()
        rep = load_quantized(skel, ckpt)
        _sync(dev)
        load_s = time.perf_counter() - t0
        if rep.missing or rep.unused or len(rep.replaced) != 7 * a.layers:
            raise RuntimeError(f"checkpoint load: {len(rep.replaced)} layers replaced, missing {rep.missing}, "
                               f"unused {rep.unused}")
        return skel, load_s

    def tinygemm_variant():
        model, load_s = quantized(fp16)
        _free(dev)
        return measure(model, "tinygemm", a, fp16, _mem_gib(dev), load_s,
                       note=f"load_quantized from {state['ckpt_gib']:.2f} GiB GPTQ safetensors (page-cached)")

    def int4pack_variant():
        if not cuda or not hasattr(torch.ops.aten, "_weight_int4pack_mm"):
            return unavailable("torch_int4pack", a, "needs a CUDA GPU and torch._weight_int4pack_mm")
        model, _ = quantized(torch.bfloat16)
        swap_int4(model, lambda n, m: Int4PackLinear(m.quantized_weight))
        _free(dev)
        return measure(model, "torch_int4pack", a, torch.bfloat16, _mem_gib(dev), float("nan"),
                       note="bf16 (the kernel's only dtype)")

    def marlin_variant():
        if not cuda:
            return unavailable("marlin", a, "needs a CUDA GPU")
        from tinygemm.backends import marlin_linear

        try:
            v = marlin_linear.load_vllm()
        except ValueError as e:
            return unavailable("marlin", a, str(e))
        model, _ = quantized(fp16)
        tensors = checkpoints.Tensors(ckpt)

        def make(name, m):  # the checkpoint's own GPTQ tensors, prepared as vLLM's loader does
            t = {k: tensors.get(f"{name}.{k}").to(dev) for k in ("qweight", "scales", "g_idx") if f"{name}.{k}" in tensors}
            return marlin_linear.MarlinLinear.from_gptq(t["qweight"], t["scales"], a.group_size, t.get("g_idx"))

        swap_int4(model, make)
        _free(dev)
        return measure(model, "marlin", a, fp16, _mem_gib(dev), float("nan"), note=f"vllm {v.version}")

    state = {}
    try:
        print(f"fp16 model: {a.layers} layers, hidden {cfg.hidden_size}, on {dev}", flush=True)
        state["model"] = build_model(cfg, fp16, dev)
        _sync(dev)
        state["fp16_gib"] = _mem_gib(dev)
        t0 = time.perf_counter()
        checkpoints.save_quantized(state["model"], ckpt, "gptq", group_size=a.group_size, symmetric=True,
                                   act_order=a.act_order)
        state["ckpt_gib"] = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt)) / 2**30
        print(f"GPTQ checkpoint: {state['ckpt_gib']:.2f} GiB written in {time.perf_counter() - t0:.1f} s", flush=True)
        for name, fn in (("fp16", lambda: measure(state["model"], "fp16", a, fp16, state["fp16_gib"], float("nan"))),
                         ("tinygemm", tinygemm_variant), ("torch_int4pack", int4pack_variant),
                         ("marlin", marlin_variant)):
            if name != "fp16" and "model" in state:  # the fp16 model goes before a quantized one is built
                state.pop("model")
                _free(dev)
            if name not in a.variants:
                continue
            try:
                rows += fn()
            except Exception as e:  # one variant that cannot be built leaves the others' results
                why = f"{type(e).__name__}: {str(e)[:200]}"
                print(f"  {name}: error: {why}", flush=True)
                rows += [dict(variant=name, batch=B, context=a.context, layers=a.layers, status="error", note=why)
                         for B in a.batches]
            _free(dev)
    finally:
        if not a.ckpt_dir:
            shutil.rmtree(ckpt, ignore_errors=True)
    return rows


def summary(rows, a) -> str:
    tps = {(r["variant"], r["batch"]): r["tokens_per_s"] for r in rows if r.get("status") == "ok"}
    modes = {r["mode"] for r in rows if r.get("status") == "ok"}
    dev = torch.cuda.get_device_name() if str(a.device).startswith("cuda") else "CPU"
    lines = [f"# End-to-end decode: Llama-3-8B-shaped, {a.layers} layers, context {a.context}, GPTQ group "
             f"{a.group_size}{' act-order' if a.act_order else ''}", "",
             f"{dev}; torch {torch.__version__}; static KV cache; decode steps timed as "
             f"{' and '.join(sorted(modes)) or 'nothing'} ({MODES}); {a.steps} steps x 3 runs, median", "",
             "| batch | " + " | ".join(f"{v} tok/s" for v in VARIANTS) + " | tinygemm / fp16 | tinygemm / marlin |",
             "|---" * (len(VARIANTS) + 3) + "|"]
    slower = []
    for B in a.batches:
        ours = tps.get(("tinygemm", B))
        cells = [f"{tps[(v, B)]:.0f}" if (v, B) in tps else "-" for v in VARIANTS]
        ratio = [f"{ours / tps[(p, B)]:.2f}x" if ours and (p, B) in tps else "-" for p in ("fp16", "marlin")]
        lines.append(f"| {B} | " + " | ".join(cells) + " | " + " | ".join(ratio) + " |")
        for p in ("fp16", "torch_int4pack", "marlin"):
            if ours and (p, B) in tps and tps[(p, B)] > ours:
                slower.append(f"batch {B}: tinygemm {ours:.0f} tok/s < {p} {tps[(p, B)]:.0f} tok/s")
    lines += ["", "| variant | weights GiB | peak GiB (largest batch) | load s | mode | notes |", "|---|---|---|---|---|---|"]
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if rs:
            r = rs[-1]
            lines.append(f"| {v} | {r.get('weights_gib', '-')} | {r.get('peak_gib', '-')} | {r.get('load_s', '') or '-'} | "
                         f"{r.get('mode', '-')} | {r.get('note', '')} |")
    lines += ["", "## Bars"]

    def bar(B, peer, x):
        if ("tinygemm", B) in tps and (peer, B) in tps:
            r = tps[("tinygemm", B)] / tps[(peer, B)]
            lines.append(f"- batch {B}: tinygemm {r:.2f}x {peer}'s tokens/s ({'meets' if r >= x else 'MISSES'} {x}x)")
        else:
            lines.append(f"- batch {B}: tinygemm vs {peer}: not measured")

    bar(1, "fp16", 2.3)
    bar(1, "marlin", 1.15)
    bar(16, "marlin", 1.15)
    lines += ["", "## Where tinygemm is slower than a peer", ""] + ([f"- {s}" for s in slower] or ["- nowhere"])
    return "\n".join(lines) + "\n"


def main(argv=None):
    try:
        a = parse_args(argv)
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise Fail("transformers is not installed (pip install transformers safetensors)") from None
    except Fail as e:
        print(f"e2e_decode.py: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    rows = Rows(os.path.join(a.out, "e2e_decode.csv"))
    try:
        run(a, rows)
    finally:
        rows.f.close()
    text = summary(rows, a)
    with open(os.path.join(a.out, "e2e_decode.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
