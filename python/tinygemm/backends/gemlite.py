"""gemlite (mobiusml/gemlite): Triton W4A16 kernels, a pure-Python library, optional.

Weights: the codes, scales and zero points tinygemm.quantize makes (the same ones every INT4 backend
starts from), handed to gemlite's grouped INT path (GemLiteLinearTriton with W_nbits=4, what
gemlite.helper.A16Wn builds) in its HQQ convention w = (q - z) * s, codes [N, K], meta [N, G]:
  - symmetric (uint4b8): the integer zero point 8, gemlite's "symmetric with shift" mode: (q - 8) * s;
  - zero points (uint4): gemlite's default fma mode stores -z * s rounded to the scales' dtype and
    computes q * s + that (one fma per weight), so the reference is built from what it stored;
  - group -1: group_size = K with the mode helper.A16Wn sets for it ((q - z) * s, no post-scale).
gemlite packs the codes 8 per int32 along K itself (its default 32-bit packing).

Autotuning (set before the first weight is packed; recorded in every row's note):
  - gemlite's "fast" config list (its default; "max" is a cross product of ~1000 configs per kernel),
    timed in CUDA graphs (gemlite's enable_cudagraph_autotune: its more accurate timing, and the
    launch mode this benchmark times in);
  - set_autotune_setting(lambda M: M): each M is tuned for itself, so the config an M runs does not
    depend on which M of a bucket happened to run first;
  - kernel caching (a ring of preallocated outputs) stays off, as gemlite ships it;
  - a config file (Gemlite.config_path, gemlite.load_config) skips autotuning for every shape it has:
    a second run can replay the first one's choices exactly (save them with gemlite.cache_config).
The kernel gemlite dispatches to is its rule by M (core.get_matmul_type: GEMV_REVSPLITK for M <= 4,
GEMM_SPLITK below 64, GEMM beyond); the Triton config each (shape, M) ran is recorded in results.json
(backend_extra) when the backend first sees that M, outside timing.
"""

from __future__ import annotations

import importlib
import os

import torch

from .. import formats
from . import Backend, Prepared, Problem, clone_tensors, tensor_bytes

KERNEL_MODULES = ("gemv_kernels", "gemv_revsplitK_kernels", "gemv_splitK_kernels", "gemm_splitK_kernels",
                  "gemm_kernels")


def to_gemlite(qw: formats.QuantizedWeight) -> tuple[torch.Tensor, torch.Tensor, int | torch.Tensor]:
    """tinygemm's weight as gemlite's pack() takes it: (codes uint8 [N, K], scales [N, G], zero points:
    the int 8 when symmetric, else [N, G] in the scales' dtype), with w = (q - z) * s unchanged."""
    q = qw.unpack().t().contiguous()
    s = qw.scales.t().contiguous()
    z = 8 if qw.symmetric else qw.zeros.t().contiguous()
    return q, s, z


def fma_zeros(s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """What gemlite's fma mode stores for zero points z with scales s: -z * s in the scales' dtype."""
    return (-z.float() * s.float()).to(s.dtype)


def reference_weight(q: torch.Tensor, s: torch.Tensor, z, fma: bool) -> torch.Tensor:
    """fp32 W[K, N] that gemlite multiplies by, from codes q [N, K], scales s [N, G] and zero points z
    (an int, or [N, G]): (q - z) * s, or q * s + fma_zeros(s, z) in fma mode."""
    N, K = q.shape
    G = s.shape[1]
    qg = q.float().reshape(N, G, K // G)
    sf = s.float()[:, :, None]
    if fma:
        w = qg * sf + fma_zeros(s, z).float()[:, :, None]
    else:
        zf = float(z) if isinstance(z, int) else z.float()[:, :, None]
        w = (qg - zf) * sf
    return w.reshape(N, K).t().contiguous()


class Gemlite(Backend):
    """gemlite A16W4 grouped INT (Triton; GEMV rev-split-K / split-K GEMM / GEMM by M)."""

    name = "gemlite"
    op = "gemlite"
    tolerance = 2e-2
    # asked for by name: its autotuning compiles every candidate config per (shape, M range), minutes
    # for a model's layers, too long for the default sweep of ~70 batch sizes
    default = False
    autotune = "fast"                  # gemlite.set_autotune's mode: "fast", "max" or "default" (no tuning)
    config_path: str | None = None     # a gemlite config JSON to load (gemlite.load_config) before tuning

    def __init__(self):
        self._configured: str | None = None
        self._ran: dict = {}            # "K=..,N=..,M=..,dtype,group" -> "KERNEL_TYPE: triton config"
        self._extra: dict = {}

    def unavailable(self):
        # the import first: its failure is the most useful reason (gemlite queries the GPU at import)
        try:
            importlib.import_module("gemlite")
        except ImportError as e:
            return f"gemlite is not installed or lacks a dependency ({e}); pip install gemlite"
        except Exception as e:
            why = str(e).splitlines()[0] if str(e) else ""
            return f"gemlite failed to import: {type(e).__name__}: {why}"
        if not torch.cuda.is_available():
            return "no GPU visible to torch"
        if torch.version.hip is not None:
            return "tinygemm's gemlite backend is NVIDIA-only (its configs here are gemlite's NVIDIA lists)"
        return None

    def unsupported(self, p: Problem):
        if p.dtype not in (torch.float16, torch.bfloat16):
            return f"gemlite W4A16 takes fp16/bf16 activations; got {p.dtype}"
        try:
            formats.check_shape(p.K, p.N, p.group_size)  # tinygemm.quantize makes the codes
        except ValueError as e:
            return str(e)
        if p.group_size != -1 and p.group_size < 16:
            return f"gemlite needs group_size >= 16; got {p.group_size}"
        if p.K % 32:
            return f"gemlite needs K % 32 == 0; got K={p.K}"
        return None

    # --- gemlite's global settings -----------------------------------------------------------------

    def _configure(self) -> str:
        """Set gemlite's (process-wide) autotuning, once per backend instance (the bench makes one per
        run); return what was set, for the note."""
        if self._configured is not None:
            return self._configured
        import gemlite
        from gemlite import core

        if self.autotune not in ("fast", "max", "default"):
            raise ValueError(f"Gemlite.autotune must be 'fast', 'max' or 'default'; got {self.autotune!r}")
        # the M mapping must be set before set_autotune, which reloads the kernel modules that import it
        gemlite.set_autotune_setting(lambda M: M)
        gemlite.set_autotune(self.autotune, use_cuda_graph=True)
        gemlite.set_kernel_caching(False)
        # bf16 split-K partial sums in fp32, converted once: gemlite's default on Hopper adds them with
        # native bf16 atomics, each partial rounded to 8 bits of mantissa (a GEMV of K = 14336 sums 448
        # of them: max error ~5 % at M = 1-3, over the bench's 2 % check), while every other kernel here
        # accumulates in fp32. Costs one conversion kernel per bf16 split-K call; fp16 is unaffected.
        gemlite.set_native_atomic_bfp16(False)
        loaded = getattr(core, "selected_tag", None)  # the config gemlite ships for this GPU, if any
        loaded = os.path.basename(loaded) if loaded else None
        if self.config_path:
            if not gemlite.load_config(self.config_path):
                raise ValueError(f"gemlite could not load the config file {self.config_path}")
            loaded = self.config_path
        self._configured = (f"gemlite {gemlite.__version__}, autotune {self.autotune!r} in CUDA graphs, "
                            "per exact M, kernel caching off, bf16 split-K sums in fp32 (native bf16 atomics "
                            f"off), configs preloaded: {loaded or 'none'}")
        self._extra.update(settings=self._configured, ran=self._ran)
        return self._configured

    @staticmethod
    def _autotuners() -> list:
        from triton.runtime.autotuner import Autotuner

        tuners: dict[int, Autotuner] = {}  # the modules' current ones (set_autotune reloads them), once each
        for m in KERNEL_MODULES:
            mod = importlib.import_module(f"gemlite.triton_kernels.{m}")
            tuners.update({id(v): v for v in vars(mod).values() if isinstance(v, Autotuner)})
        return list(tuners.values())

    def _record(self, lin, x: torch.Tensor, p: Problem) -> None:
        """Run x once (outside timing: autotunes this M) and record the kernel type and Triton config
        that gemlite chose for it."""
        from gemlite import core

        M = x.shape[0]
        key = f"K={p.K},N={p.N},M={M},{str(p.dtype).removeprefix('torch.')},g{p.group_size}"
        if key in self._ran:
            return
        tuners = self._autotuners()
        for t in tuners:
            t.best_config = None
        lin(x)
        torch.cuda.synchronize()
        chosen = [", ".join(f"{k}: {v}" for k, v in t.best_config.all_kwargs().items() if v is not None)
                  for t in tuners if getattr(t, "best_config", None) is not None]
        self._ran[key] = f"{core.get_matmul_type(M, lin.W_nbits)}: {'; '.join(chosen) or 'config not exposed'}"

    # --- the backend ---------------------------------------------------------------------------------

    def prepare(self, w: torch.Tensor, p: Problem) -> Prepared:
        settings = self._configure()
        from gemlite import DType, GemLiteLinearTriton, forward_functional

        qw = formats.quantize(w.to(p.dtype), p.group_size, p.symmetric)
        q, s, z = to_gemlite(qw)
        K, N = qw.shape
        gs = K if p.group_size == -1 else p.group_size
        dt = DType.FP16 if p.dtype == torch.float16 else DType.BF16
        lin = GemLiteLinearTriton(4, group_size=gs, in_features=K, out_features=N, input_dtype=dt, output_dtype=dt)
        lin.pack(q, s, z, bias=None)
        if gs == K:
            # per-channel scales: what helper.A16Wn sets (dequantize with the scale, no post-scaling)
            lin.W_group_mode, lin.channel_scale_mode = 3, 0
        fma = lin.W_group_mode == 4
        ref_w = reference_weight(q, s, z, fma)
        del q
        meta = lin.get_meta_args()
        ms = lin.get_tensor_args()[3]

        def call(st, x):
            # what GemLiteLinearTriton.forward runs, with the state's tensors (copies rotate for a cold L2)
            return forward_functional(x, None, [st["W_q"], st["scales"], st["zeros"], ms], meta)

        state = {"W_q": lin.W_q.data, "scales": lin.scales.data, "zeros": lin.zeros.data}

        def make_input(x):
            xi = x.to(p.dtype)
            self._record(lin, xi, p)
            return xi, xi.float()

        zeros_how = ("z = 8 (integer shift)" if isinstance(z, int) else
                     "zero points stored as -z*s (fma mode)" if fma else "zero points (q - z) * s")
        return Prepared(call=call, states=[state], clone=clone_tensors, ref_w=ref_w,
                        weight_bytes=tensor_bytes(state), weight_format=f"gemlite_{qw.format}_g{p.group_size}",
                        x_dtype=p.dtype, make_input=make_input,
                        note=f"{settings}; {zeros_how}; W_group_mode {lin.W_group_mode}, "
                             f"{lin.elements_per_sample} codes per int32; kernel by M: core.get_matmul_type",
                        extra=self._extra)

