"""What a sweep runs: the (shape, batch list) plan from the flags, and the backends asked for.

No GPU here: the plan is built and checked (and printed by --dry-run) before any GPU
check.
"""

from __future__ import annotations

from .. import shapes as S
from ..results import canonical_backend


def build_plan(a) -> list:
    from .runner import Shape

    if a.shapes is not None:
        if a.model or a.kn:
            raise ValueError("--shapes replaces --model and --kn; give only one of them")
        by_kn: dict[tuple[int, int], list[int]] = {}
        for m, k, n in S.parse_custom_shapes(a.shapes):
            by_kn.setdefault((k, n), []).append(m)
        return [Shape("custom", "custom", 1, k, n, sorted(set(ms))) for (k, n), ms in by_kn.items()]
    batches = S.parse_batches(a.batches or "vllm")
    plan = [Shape("custom", "custom", 1, *S.parse_kn(kn), batches) for kn in (a.kn or [])]
    if a.model or not a.kn:
        seen = set()
        for s in S.select(a.model or ["Llama-3-8B"], a.tp or [1], a.module or "all"):
            if (s.model, s.tp, s.K, s.N) not in seen:  # a layer repeated in one model/tp is measured once
                seen.add((s.model, s.tp, s.K, s.N))
                plan.append(Shape(s.model, s.layer, s.tp, s.K, s.N, batches))
    return plan


def backend_names(spec: str, reg: dict) -> list[str]:
    """The names --backends asks for, old names as today's (results.BACKEND_ALIASES: tinygemm_cuda
    runs tinygemm_gemv); an unknown or empty one is a ValueError (before any GPU check)."""
    if spec in ("default", "all"):
        return [n for n, b in reg.items() if spec == "all" or b.default]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if canonical_backend(n) not in reg]
    if unknown:
        raise ValueError(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(reg)}")
    names = list(dict.fromkeys(canonical_backend(n) for n in names))  # an old and a new name run once
    if not names:
        raise ValueError(f"--backends {spec!r} names no backend; known: {', '.join(reg)}")
    return names


def select_backends(spec: str, reg: dict) -> tuple[list, list[tuple[str, str]]]:
    """(usable backends, [(name, why not)] for the asked-for ones that cannot run here)."""
    names = backend_names(spec, reg)
    usable, off = [], []
    for n in names:
        why = reg[n].unavailable()
        (off.append((n, why)) if why else usable.append(reg[n]))
    return usable, off
