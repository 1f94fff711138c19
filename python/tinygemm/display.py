"""How the command lines show numbers and tables: one rule for every tool.

Integer dimensions (M, K, N, tp) print as integers, never as 2.867e+04; rates print with thousands
separators (4,276 GB/s; 789 TFLOP/s). A rich console writing to a pipe or a file gets an unlimited
width, so a table is never cut or wrapped: what `--list-backends | grep` shows can be copied.
Standard library only at import (rich is imported when a console is asked for).
"""

from __future__ import annotations

import math
import sys

# wide enough for any table, narrow enough that rich's layout stays cheap
PIPE_WIDTH = 1000


def console(stderr: bool = False, quiet: bool = False):
    """A rich Console: the terminal's width on a TTY, unlimited when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, quiet=quiet, width=None if tty else PIPE_WIDTH, soft_wrap=not tty)


def number(v, digits: int = 4) -> str:
    """A cell: integers as integers, other numbers with `digits` significant digits and no exponent
    for values people read (1e-3 .. 1e9); anything else as text."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        s = v.strip()
        try:
            return str(int(s))
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return v
    elif isinstance(v, float):
        f = v
    else:
        return str(v)
    if not math.isfinite(f):
        return str(f)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    a = abs(f)
    if a >= 10 ** digits or 1e-3 <= a:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(a))))
        text = f"{f:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{f:.{digits}g}"


def rate(v: float | None, unit: str) -> str:
    """4276.3, 'GB/s' -> '4,276 GB/s'; None -> 'not measured'."""
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "not measured"
    return f"{v:,.0f} {unit}"
