"""Triton kernels (imported lazily: triton is optional at run time)."""
