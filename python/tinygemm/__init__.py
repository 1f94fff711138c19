"""tinygemm: trustworthy GEMM benchmarks for LLM inference and a packed-INT4 (W4A16) kernel.

    import tinygemm
    qw = tinygemm.quantize(w, group_size=128)        # w: [K, N] for y = x @ w
    y = tinygemm.w4a16_matmul(x, qw)                  # CUDA GEMV for small M, Triton GEMM otherwise
    t = tinygemm.timing.measure(lambda: tinygemm.w4a16_matmul(x, qw))
"""

__version__ = "0.1.0"

from . import formats, nn, ops, reference, timing  # noqa: E402  (ops registers torch.ops.tinygemm.*)
from ._ext import GPU_BACKEND, gpu_available  # noqa: E402
from .api import w4a16_matmul  # noqa: E402
from .formats import QuantizedWeight, dequantize, quantize  # noqa: E402

__all__ = ["QuantizedWeight", "quantize", "dequantize", "w4a16_matmul", "timing", "formats", "ops",
           "reference", "nn", "GPU_BACKEND", "gpu_available", "__version__"]
