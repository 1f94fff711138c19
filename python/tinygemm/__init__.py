"""tinygemm: trustworthy GEMM benchmarks for LLM inference and a packed-INT4 (W4A16) kernel.

    import tinygemm
    qw = tinygemm.quantize(w, group_size=128)        # w: [K, N] for y = x @ w
    y = tinygemm.w4a16_matmul(x, qw)                  # CUDA GEMV for small M, Triton GEMM otherwise
    t = tinygemm.timing.measure(lambda: tinygemm.w4a16_matmul(x, qw))
"""

__version__ = "0.1.0"

# The kernels' API needs torch; the analysis, plot and report tools do not, and run on a laptop with
# only the CSVs. So `import tinygemm` imports torch only when the caller has imported it already (then
# it costs nothing and torch.ops.tinygemm.* is registered at once, as it always was); otherwise the
# first use of any name below imports the whole torch side at once (ops among it).
_TORCH_SIDE = {
    "formats": ("formats", None), "nn": ("nn", None), "ops": ("ops", None), "reference": ("reference", None),
    "timing": ("timing", None), "GPU_BACKEND": ("_ext", "GPU_BACKEND"), "gpu_available": ("_ext", "gpu_available"),
    "w4a16_matmul": ("api", "w4a16_matmul"), "QuantizedWeight": ("formats", "QuantizedWeight"),
    "dequantize": ("formats", "dequantize"), "quantize": ("formats", "quantize"),
}


def __getattr__(name: str):
    if name not in _TORCH_SIDE:
        raise AttributeError(f"module 'tinygemm' has no attribute {name!r}")
    import importlib

    for mod in ("formats", "nn", "ops", "reference", "timing", "api"):
        importlib.import_module(f"{__name__}.{mod}")
    mod, attr = _TORCH_SIDE[name]
    m = importlib.import_module(f"{__name__}.{mod}")
    value = m if attr is None else getattr(m, attr)
    globals()[name] = value
    return value


def _load_torch_side() -> None:
    for name in _TORCH_SIDE:
        __getattr__(name)


def __dir__():
    return sorted(list(globals()) + list(_TORCH_SIDE))


if "torch" in __import__("sys").modules:
    _load_torch_side()

__all__ = ["QuantizedWeight", "quantize", "dequantize", "w4a16_matmul", "timing", "formats", "ops",
           "reference", "nn", "GPU_BACKEND", "gpu_available", "__version__"]
