"""JSONL in and out: one object per line, UTF-8, bad lines named by number.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "x.jsonl")
>>> write_jsonl(p, [{"a": 1}, {"a": 2}])
2
>>> [row["a"] for row in read_jsonl(p)]
[1, 2]
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from minisearch.errors import UserError


@dataclass(frozen=True)
class BadLine:
    """A line that is not a JSON object; `line` counts from 1."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict | BadLine]]:
    """Yield (line number, object or BadLine) for every non-blank line; `.gz` is read as gzip."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                yield number, BadLine(str(path), number, f"not UTF-8 ({e.reason} at byte {e.start})")
                continue
            except json.JSONDecodeError as e:
                yield number, BadLine(str(path), number, f"bad JSON ({e.msg}, column {e.colno})")
                continue
            if not isinstance(obj, dict):
                yield number, BadLine(str(path), number, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield number, obj


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the objects of a JSONL file; the first bad line raises UserError naming it."""
    for _, obj in iter_jsonl(path):
        if isinstance(obj, BadLine):
            raise UserError(f"{obj}; fix or remove that line")
        yield obj


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows atomically (a temporary file renamed into place); return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def read_log(path: str | os.PathLike) -> list[dict]:
    """The rows of an append-only log (a stage's progress). A last line without its newline is
    what a kill left half-written: it is cut off, so appending can go on; a bad line before it
    raises UserError."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # complete lines end with a newline
    rows = []
    for number, raw in enumerate(data[:end].splitlines(), start=1):
        if raw.strip():
            try:
                rows.append(json.loads(raw))
            except ValueError as e:
                raise UserError(f"{path}:{number}: damaged ({e}); delete the file to start over") from e
    if end < len(data):
        with path.open("r+b") as f:
            f.truncate(end)
    return rows


def append_jsonl(f, rows: Iterable[dict]) -> None:
    """Append rows to an open log file and flush, so a kill loses at most the row being written."""
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()
    os.fsync(f.fileno())
