"""Turn result CSVs into answers: efficiency cliffs, split-GEMM opportunities, comparisons, aiter CSVs.

    python -m tinygemm.analyze cliffs RESULTS.csv [--threshold 0.85] [--check-split [--split-threshold 0.9]]
    python -m tinygemm.analyze compare A.csv B.csv            # or: compare R.csv --a-backend X --b-backend Y
    python -m tinygemm.analyze dedup TUNED.csv -o OUT.csv      # aiter tuned CSVs: fastest row per shape
    python -m tinygemm.analyze tuned-compare CK.csv PRESHUFFLE.csv [--model ... --tp ...]

Inputs: tinygemm.bench's results.csv, or the seed formats (torchgemm_*_K<K>_N<N>_*.csv with
batch,kernel_time,flops,utils,kernel_name; Marlin_*_K<K>_N<N>_*.csv with batch,time,flops,utils).
A batch size M is a cliff when its utilization is below threshold x the best utilization of any
smaller M of the same shape and backend. A cliff is a split opportunity when two GEMMs of measured
sizes b1 + b2 = M take less than split_threshold x t(M).

One module per tool (cliffs.py, compare.py, sums.py, aiter.py) over the checked loading of points.py;
cli.py is the command line, whose check_outputs is the one overwrite check of every tool.
"""

from __future__ import annotations

# the package's tools, importable from tinygemm.analyze as when it was one module
from .aiter import AITER_KEY, dedup_aiter, read_aiter, tuned_compare  # noqa: E402
from .cliffs import check_split, find_cliffs  # noqa: E402
from .compare import M_RANGES, compare, geomean, gpu_of  # noqa: E402
from .points import Point, check_rows, groups, load  # noqa: E402
from .sums import layer_sums, sums_markdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["AITER_KEY", "M_RANGES", "Point", "check_rows", "check_split", "compare", "dedup_aiter", "find_cliffs",
           "geomean", "gpu_of", "groups", "layer_sums", "load", "main", "read_aiter", "sums_markdown", "tuned_compare"]
