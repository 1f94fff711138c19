"""python -m tinygemm.bench (see __main__.py)."""
