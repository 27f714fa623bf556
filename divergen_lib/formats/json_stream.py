"""The entries of a json file holding one top-level list, read a window at a time (a results file of LVIS val size
is gigabytes; ``json.load`` would hold every entry as Python objects at once).

Each window is parsed by orjson in one call: the window is cut after the last ``}`` that
is followed by ``,`` and ``{`` and parsed as a list. That succeeds only where the cut is a real boundary between
two entries (a cut inside a string leaves it unterminated; one inside an entry leaves a bracket open), so a
wrong guess is never taken for data; then the next candidate is tried, and after a few, the window is parsed
entry by entry with the standard library (which also reads ``NaN`` and ``Infinity``, so that such a score is named
as not finite rather than as broken json), which is also what names a malformed entry.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from .errors import FormatError

CHUNK_CHARS = 1 << 24  # characters read at a time
MAX_ENTRY_CHARS = 1 << 26  # an entry longer than this is reported as malformed rather than buffered
_CANDIDATES = 3  # cuts tried per window before it is parsed entry by entry
_SPACE = re.compile(r"[ \t\n\r]*")
_BACK_SPACE = " \t\n\r"
_BOUNDARY = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")


def _last_cuts(text: str, start: int) -> Iterator[tuple[int, int]]:
    """``(end, next_start)`` of the last few places in ``text[start:]`` that look like ``} , {``."""
    k = len(text)
    for _ in range(_CANDIDATES):
        k = text.rfind("{", start + 1, k)
        if k < 0:
            return
        j = k - 1
        while j > start and text[j] in _BACK_SPACE:
            j -= 1
        if text[j] != ",":
            continue
        j -= 1
        while j > start and text[j] in _BACK_SPACE:
            j -= 1
        if text[j] == "}":
            yield j + 1, k


class _Reader:
    """A window ``text`` over bytes ``[start, end)`` of a file; ``pos`` is where unread text starts. ``slow`` is set
    when the window could not be parsed in one call and cleared when more is read."""

    def __init__(
        self, handle: Any, start: int, end: int, chunk_chars: int, on_read: Callable[[int], Any] | None
    ) -> None:
        handle.seek(start)
        self.handle, self.left, self.chunk_chars, self.on_read = handle, end - start, chunk_chars, on_read
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.eof, self.slow = "", 0, False, False

    def more(self) -> bool:
        """Read another chunk (dropping what was read); False at the end of the range."""
        data = self.handle.read(min(self.chunk_chars, self.left))
        self.left -= len(data)
        if self.on_read is not None:
            self.on_read(len(data))
        try:
            chunk = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            raise FormatError(f"{self.handle.name}: not UTF-8 text ({err.reason})") from None
        self.text, self.pos, self.slow = self.text[self.pos :] + chunk, 0, False
        self.eof = not data
        return bool(data)

    def skip_space(self) -> str:
        """The next non-space character ('' at the end of the range), not consumed."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def batch(self, closing: str) -> list[Any] | None:
        """The entries up to the last boundary of the window in one parse (to the end of the range at its end,
        ``closing`` completing the list there), moving ``pos`` past them; None if no cut parses."""
        if not self.eof and len(self.text) - self.pos < self.chunk_chars:
            self.more()
        if self.eof:
            try:
                entries = orjson.loads("[" + self.text[self.pos :] + closing)
            except orjson.JSONDecodeError:
                return None
            self.pos = len(self.text)
            return entries
        for end, next_start in _last_cuts(self.text, self.pos):
            try:
                entries = orjson.loads("[" + self.text[self.pos : end] + "]")
            except orjson.JSONDecodeError:
                continue
            self.pos = next_start
            return entries
        return None

    def entry(self, decoder: json.JSONDecoder, path: str | os.PathLike, index: int) -> Any:
        """The one entry at ``pos`` (reading more until it is complete), moving ``pos`` past it."""
        while True:
            try:
                entry, self.pos = decoder.raw_decode(self.text, self.pos)
                return entry
            except json.JSONDecodeError as err:
                if len(self.text) - self.pos > MAX_ENTRY_CHARS or not self.more():
                    raise FormatError(f"{path}: entry {index} is not valid json ({err.msg})") from None


def _list_body(path: str | os.PathLike, what: str) -> int:
    """The byte offset just after the ``[`` that opens the file's list."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    stripped = head.lstrip(b" \t\n\r")
    if not stripped.startswith(b"["):
        raise FormatError(f"{path}: expected {what} (a json list)")
    return len(head) - len(stripped) + 1


def iter_json_range(
    path: str | os.PathLike,
    start: int,
    end: int,
    closed: bool,
    chunk_chars: int = CHUNK_CHARS,
    on_read: Callable[[int], Any] | None = None,
) -> Iterator[tuple[int, list[Any]]]:
    """``(index of the first, entries)`` of the list entries in bytes ``[start, end)`` of ``path``, which begin
    with an entry (or the list's end) and, unless ``closed`` (the range ends with the list's ``]``), end with one;
    indices count from the range's first entry. ``on_read`` is called with the size of every chunk read."""
    decoder = json.JSONDecoder()
    with open(path, "rb") as handle:
        reader = _Reader(handle, start, end, chunk_chars, on_read)
        first = reader.skip_space()
        if not first or (closed and first == "]"):
            return
        index = 0
        while True:  # reader.pos is at the start of entry ``index``
            entries = None if reader.slow else reader.batch("" if closed else "]")
            if entries is not None:
                yield index, entries
                index += len(entries)
                if reader.eof and reader.pos == len(reader.text):
                    return
                continue
            reader.slow = True  # until more is read, entry by entry
            yield index, [reader.entry(decoder, path, index)]
            index += 1
            separator = reader.skip_space()
            if separator == "]" if closed else not separator:
                return
            if separator != ",":
                raise FormatError(f"{path}: expected ',' or ']' after entry {index - 1}")
            reader.pos += 1
            reader.skip_space()


def iter_json_batches(
    path: str | os.PathLike,
    what: str = "a list",
    chunk_chars: int = CHUNK_CHARS,
    on_read: Callable[[int], Any] | None = None,
) -> Iterator[tuple[int, list[Any]]]:
    """``(index of the first, entries)`` for consecutive runs of the entries of the top-level list in ``path``. A
    file that is not a list, or whose entry ``i`` is not valid json, raises FormatError naming the file (and
    ``i``); ``what`` names the expected content in that message."""
    yield from iter_json_range(path, _list_body(path, what), os.path.getsize(path), True, chunk_chars, on_read)


def split_json_list(path: str | os.PathLike, parts: int, what: str = "a list") -> list[tuple[int, int, bool]]:
    """At most ``parts`` byte ranges ``(start, end, closed)`` for :func:`iter_json_range` that together hold the
    file's list entries: each begins at what looks like an entry's start (``{`` after ``} ,``). Whether it really
    is one is proven only by parsing: a range's parse succeeds only if its end is a boundary between entries,
    which is where the next range begins; so if every range parses, the split was right."""
    body, size = _list_body(path, what), os.path.getsize(path)
    cuts: list[tuple[int, int]] = []  # (end of an entry, start of the next)
    with open(path, "rb") as handle:
        for k in range(1, parts):
            offset = max(body, size * k // parts)
            if cuts and offset <= cuts[-1][1]:
                continue
            handle.seek(offset)
            found = _BOUNDARY.search(handle.read(1 << 20))
            if found is not None:
                cuts.append((offset + found.start() + 1, offset + found.end() - 1))
    starts, ends = [body, *(s for _, s in cuts)], [*(e for e, _ in cuts), size]
    return [(s, e, k == len(cuts)) for k, (s, e) in enumerate(zip(starts, ends, strict=True))]


def iter_json_list(
    path: str | os.PathLike, what: str = "a list", chunk_chars: int = CHUNK_CHARS
) -> Iterator[tuple[int, Any]]:
    """``(index, entry)`` of each entry of the top-level list in ``path`` (see :func:`iter_json_batches`)."""
    for first, batch in iter_json_batches(path, what, chunk_chars):
        yield from enumerate(batch, first)
