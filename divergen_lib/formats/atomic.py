"""Atomic writes: every file is written to a hidden temp file in its directory, then renamed into place.

A reader therefore sees either the previous complete file or the new complete file, never a partial one,
even if the writer is killed mid-write; only the hidden temp file (``.<name>.<random>.tmp``) is left behind then,
and :func:`remove_temp_files` clears such leftovers.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from ..errors import DiskFullError, disk_full, no_space_left
from .errors import FormatError

TEMP_SUFFIX = ".tmp"
TEMP_PATTERN = f".*{TEMP_SUFFIX}"  # the names atomic_open gives its temp files


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success fsync and rename it to ``path``.

    On an exception the temp file is removed and ``path`` is left untouched; a full disk or quota is then one
    :class:`..errors.DiskFullError` naming ``path``, however the writer reported it. The file gets the permissions the
    process umask gives new files (0644 with the usual 022), so other users of a shared file system can read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a file written in place would follow the umask
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if no_space_left(err) and not isinstance(err, DiskFullError):
            raise disk_full(path) from None
        raise


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files of atomic writes killed mid-way anywhere under ``folder``; returns their paths.

    Only safe while nothing writes under ``folder``.
    """
    folder = Path(folder)
    leftovers = sorted(p for p in folder.rglob(TEMP_PATTERN) if p.is_file()) if folder.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def dumps_json(obj: Any, indent: int | None = None) -> str:
    """Serialise deterministically (key order as given, no NaN) so equal inputs give equal bytes."""
    return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(obj: Any, path: str | os.PathLike, indent: int | None = None) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, dumps_json(obj, indent))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`FormatError` naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 array (H×W, H×W×3 or H×W×4) as PNG bytes; the encoding is deterministic."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"expected a uint8 H×W, H×W×3 or H×W×4 array, got {array.dtype} {array.shape}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_png(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 image array as PNG atomically."""
    atomic_write_bytes(path, encode_png(array))
