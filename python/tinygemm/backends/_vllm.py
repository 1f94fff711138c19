"""Importing vLLM's kernels, once, with the reason when they cannot be imported.

On a machine without vLLM's server dependencies (the GPU machine's offline bundle), vllm_stubs must
be imported first; it is when importable (TINYGEMM_IMPORT_VLLM_STUBS=1 forces it).
"""

from __future__ import annotations

import functools
import importlib
import os
from types import SimpleNamespace


@functools.lru_cache(maxsize=None)
def load() -> SimpleNamespace | str:
    """vLLM's ops and Marlin test utilities, or a string saying why not."""
    try:
        if os.environ.get("TINYGEMM_IMPORT_VLLM_STUBS") == "1" or importlib.util.find_spec("vllm_stubs"):
            import vllm_stubs  # noqa: F401
        import vllm
        from vllm import _custom_ops as ops
        from vllm.model_executor.layers.quantization.utils import marlin_utils, marlin_utils_test
        from vllm.scalar_type import scalar_types
    except Exception as e:  # vLLM raises many kinds of errors when half-installed
        return f"vLLM is not importable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    return SimpleNamespace(version=vllm.__version__, ops=ops, marlin_utils=marlin_utils,
                           marlin_utils_test=marlin_utils_test, scalar_types=scalar_types)


def version() -> str:
    v = load()
    return v if isinstance(v, str) else v.version
