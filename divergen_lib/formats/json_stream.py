"""The entries of a json file holding one top-level list, read one at a time (a results file of LVIS val size is
gigabytes; ``json.load`` would hold every entry as Python objects at once). Each entry is parsed by the standard
library's C decoder from a bounded window of the file."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from .errors import FormatError

CHUNK_CHARS = 1 << 24  # characters read at a time
MAX_ENTRY_CHARS = 1 << 26  # an entry longer than this is reported as malformed rather than buffered
_SPACE = re.compile(r"[ \t\n\r]*")


class _Window:
    """A sliding window over a text file: ``text[pos:]`` is what has not been consumed yet."""

    def __init__(self, handle: Any, chunk_chars: int) -> None:
        self.handle, self.chunk_chars = handle, chunk_chars
        self.text, self.pos, self.eof = "", 0, False

    def more(self) -> bool:
        """Read another chunk (dropping what was consumed); False at the end of the file."""
        chunk = self.handle.read(self.chunk_chars)
        self.text, self.pos = self.text[self.pos :] + chunk, 0
        self.eof = not chunk
        return bool(chunk)

    def skip_space(self) -> str:
        """The next non-space character ('' at the end of the file), not consumed."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""


def iter_json_list(
    path: str | os.PathLike, what: str = "a list", chunk_chars: int = CHUNK_CHARS
) -> Iterator[tuple[int, Any]]:
    """``(index, entry)`` of each entry of the top-level list in ``path``. A file that is not a list, or whose
    entry ``i`` is not valid json, raises FormatError naming the file (and ``i``); ``what`` names the expected
    content in that message."""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as handle:
        window = _Window(handle, chunk_chars)
        if window.skip_space() != "[":
            raise FormatError(f"{path}: expected {what} (a json list)")
        window.pos += 1
        index = 0
        if window.skip_space() == "]":
            return
        while True:
            while True:
                try:
                    entry, end = decoder.raw_decode(window.text, window.pos)
                    break
                except json.JSONDecodeError as err:
                    if len(window.text) - window.pos > MAX_ENTRY_CHARS or not window.more():
                        raise FormatError(f"{path}: entry {index} is not valid json ({err.msg})") from None
            window.pos = end
            yield index, entry
            index += 1
            separator = window.skip_space()
            if separator == "]":
                return
            if separator != ",":
                raise FormatError(f"{path}: expected ',' or ']' after entry {index - 1}")
            window.pos += 1
            window.skip_space()
