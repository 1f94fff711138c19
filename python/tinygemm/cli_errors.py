"""The one validation layer of tinygemm's command lines (bench, analyze, shapes, plot, report, profile).

Bad input is one line on stderr, `PROG: error: PATH: PROBLEM`, and exit code 2: never a traceback,
never a half-written or overwritten file. The rules live here so every entry point applies the
same ones:
  - inputs are read whole through read_text / read_csv / read_json, which turn operating-system,
    encoding and parse errors into ValueErrors that name the path;
  - outputs are checked with check_output before any work starts (no directory where a file goes,
    an existing parent directory, no overwrite without --force) and written through atomic_write
    (a temporary file in the same directory, renamed over the target only on success).
Standard library only: every module may import it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import tempfile
from typing import NoReturn

# What a CLI reports as bad input (UnicodeDecodeError and JSONDecodeError are ValueErrors).
ERRORS = (ValueError, OSError, csv.Error)


def message(e: BaseException) -> str:
    """One line: an OSError as 'PATH: what went wrong', anything else as its text."""
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    text = str(e).strip() or type(e).__name__
    return " ".join(text.split("\n"))


def fail(prog: str, e: BaseException | str) -> NoReturn:
    """Print PROG: error: ... on one line and exit 2 (SystemExit, like argparse's errors)."""
    print(f"{prog}: error: {e if isinstance(e, str) else message(e)}", file=sys.stderr)
    raise SystemExit(2)


@contextlib.contextmanager
def exit_2_on_bad_input(prog: str):
    """Run a CLI's body: bad input (ERRORS) becomes one line and exit 2."""
    try:
        yield
    except ERRORS as e:
        fail(prog, e)


# --- inputs -----------------------------------------------------------------------------------------


def read_text(path: str) -> str:
    """A UTF-8 text file, whole; errors name the path."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None


def read_csv(path: str) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts) of a CSV file. A row with more fields than the header, a field over
    the csv module's limit or a malformed quote is an error naming the file and line."""
    text = read_text(path)
    r = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        header = list(r.fieldnames or [])
        for row in r:
            if None in row:
                raise ValueError(f"{path}: line {r.line_num} has {len(header) + len(row[None])} fields; the header "
                                 f"has {len(header)}")
            rows.append(row)
    except csv.Error as e:
        raise ValueError(f"{path}: line {r.line_num}: {e}") from None
    return header, rows


def read_json(path: str, object_keys: tuple[str, ...] = ()) -> dict:
    """A JSON object from `path`; each of `object_keys` present must be an object too."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level; got {type(data).__name__}")
    for k in object_keys:
        if k in data and data[k] is not None and not isinstance(data[k], dict):
            raise ValueError(f"{path}: {k!r} must be a JSON object; got {type(data[k]).__name__}")
    return data


def check_input_file(path: str) -> None:
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a file")


# --- outputs ----------------------------------------------------------------------------------------


def check_output(path: str, force: bool) -> None:
    """Before any work: `path` can be written as a file, and is not overwritten without --force."""
    if not path:
        raise ValueError("empty output path")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ValueError(f"{path}: the parent directory {parent} {what}")
    if os.path.exists(path) and not force:
        raise ValueError(f"{path} exists; pass --force to overwrite it")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"{path}: not writable")


def check_output_dir(path: str) -> None:
    """Before any work: `path` is a directory or can be made one."""
    if not path:
        raise ValueError("empty output directory")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{path}: exists and is not a directory")
    probe = os.path.abspath(path)
    while not os.path.exists(probe):  # the nearest existing ancestor must be a writable directory
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"{path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK):
        raise ValueError(f"{path}: {probe} is not writable")


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", newline: str | None = None):
    """A file object whose content replaces `path` only when the block succeeds."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, newline=newline, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
