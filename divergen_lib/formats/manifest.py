"""JSONL manifests: one JSON object per line, each keyed by a stable string ``id``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import disk_full, no_space_left
from .atomic import atomic_open, dumps_json
from .errors import FormatError


def read_manifest(path: str | os.PathLike, tolerate_torn_tail: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL manifest.

    ``tolerate_torn_tail`` drops a last line cut short by an interrupted append (a shard being written);
    any other malformed line raises :class:`FormatError` naming file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: manifest not found")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if tolerate_torn_tail and lineno == len(lines) and not text.endswith("\n"):
                break
            raise FormatError(f"{path}:{lineno}: not a JSON object") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise FormatError(f"{path}:{lineno}: manifest rows need a string 'id'")
        rows.append(row)
    return rows


def write_manifest(rows: Iterable[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write rows atomically, one per line; ids must be unique strings."""
    rows = list(rows)
    seen: set[str] = set()
    for row in rows:
        rid = row.get("id")
        if not isinstance(rid, str):
            raise FormatError(f"{path}: manifest rows need a string 'id', got {rid!r}")
        if rid in seen:
            raise FormatError(f"{path}: id {rid!r} appears twice")
        seen.add(rid)
    with atomic_open(path) as fh:
        fh.writelines(dumps_json(row) for row in rows)


def append_row(fh: IO[str], row: dict[str, Any]) -> None:
    """Append one row to a manifest opened by :func:`appending` and force it to disk, so a completed item survives
    a kill."""
    fh.write(dumps_json(row))
    fh.flush()
    os.fsync(fh.fileno())


@contextmanager
def appending(path: str | os.PathLike) -> Iterator[IO[str]]:
    """Open a manifest to append rows to; a full disk or quota anywhere (a row, the close) is one
    :class:`..errors.DiskFullError` naming it (a torn last line is dropped by the next reader that tolerates it)."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            yield fh
    except OSError as err:
        if no_space_left(err):
            raise disk_full(path) from None
        raise
