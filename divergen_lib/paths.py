"""Where relative paths point: one rule for notebooks, library calls and params files.

A relative path in a params file (and the params file named to :func:`~divergen_lib.config.load_config`) is
relative to the **repository root**, the folder holding ``params/`` and ``divergen_lib/``, whatever the current
directory: a Jupyter kernel starts in ``notebooks/``, a shell anywhere. Paths typed on the command line are
relative to the shell's current directory, as usual (:func:`from_command_line`).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def from_root(path: str | os.PathLike) -> Path:
    """``path`` as an absolute path: a relative one is taken from the repository root."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


def for_display(path: str | os.PathLike) -> str:
    """``path`` spelled relative to the repository root when it lies under it (as params files spell it), else
    as it is: what digests and files record, so they do not depend on where the repository is checked out."""
    path = Path(path)
    if path.is_absolute() and path.is_relative_to(REPO_ROOT):
        return str(path.relative_to(REPO_ROOT))
    return str(path)


def from_command_line(path: str | os.PathLike) -> Path:
    """A path typed in a shell (relative to its current directory), spelled as :func:`for_display` does."""
    return Path(for_display(Path(path).absolute()))
