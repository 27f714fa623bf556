"""One writer per stage folder: a lock file naming its owner (host, pid, since when).

A second process that wants the folder is refused with one line naming the owner. A lock whose owner process is
gone (killed) on this host is stale: it is taken over, with a message. The owner of a lock on another host cannot be
checked from here; such a lock is reported with the command that removes it. A process may take a lock it holds
again (a notebook kernel rerunning a cell); the lock goes when the ``with`` block that took it ends, and so do
the folders it made if nothing was written into them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError

log = logging.getLogger(__name__)

LOCK_NAME = ".writer.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # gone meanwhile, or torn by a kill mid-write
        return None
    return owner if isinstance(owner, dict) else None


def _describe(owner: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"pid {owner.get('pid')} on host {owner.get('host')} (since {since})"


def _try_create(path: Path, me: dict[str, Any]) -> bool:
    """Create the lock with its owner already in it (a hard link of a written file, so no reader ever sees it
    empty); False if it exists."""
    draft = path.with_name(f"{path.name}.{me['host']}.{me['pid']}")
    draft.write_text(json.dumps(me), encoding="utf-8")
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        draft.unlink(missing_ok=True)
    return True


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the block (see the module doc)."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    taken = _try_create(path, me)
    while not taken:
        owner = _owner(path)
        if owner is not None and owner.get("host") == me["host"] and owner.get("pid") == me["pid"]:
            yield  # already ours: the outer block releases it
            return
        if owner is not None and owner.get("host") != me["host"]:
            raise InputError(f"{folder} is being written by {_describe(owner)}; if that run is over, remove {path}")
        if owner is not None and isinstance(owner.get("pid"), int) and _alive(owner["pid"]):
            raise InputError(f"{folder} is being written by {_describe(owner)}; wait for it to end or stop it")
        if owner is not None:
            log.warning("%s: taking over the lock of %s, which is no longer running", folder, _describe(owner))
        path.unlink(missing_ok=True)
        taken = _try_create(path, me)
    try:
        yield
    finally:
        if (_owner(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
        for made in created:  # a run that wrote nothing leaves no empty folders behind
            with contextlib.suppress(OSError):
                made.rmdir()
