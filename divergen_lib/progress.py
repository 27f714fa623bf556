"""Progress bars that read well where they end up.

Interactive (JupyterLab, a terminal): ``tqdm.auto``, a live widget in a notebook and a text bar in a shell.
A headless notebook run (``run_all.sh``, the notebook runner; or any run with ``DIVERGEN_PROGRESS=text``) draws
nothing while a loop runs and prints the bar's final state as one line when it ends (bars made with
``leave=False`` print nothing): the executed copy reads ``train baseline: 100%|...| 300/300 [...]`` where a saved
widget would show a frozen ``0%``.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import std
from tqdm.auto import tqdm as auto_tqdm

PROGRESS_ENV = "DIVERGEN_PROGRESS"
TEXT = "text"


class FinalLine(std.tqdm):
    """A tqdm bar drawn nowhere while it runs; on close, its final state is printed to stdout (if ``leave``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, file=io.StringIO(), **kwargs)

    def close(self) -> None:
        if self.disable:
            return
        line = str(self) if self.leave else None
        super().close()
        if line:
            print(line, file=sys.stdout, flush=True)


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> std.tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total=``); ``kwargs`` as tqdm's."""
    if os.environ.get(PROGRESS_ENV) == TEXT:
        return FinalLine(iterable, **kwargs)
    return auto_tqdm(iterable, **kwargs)
