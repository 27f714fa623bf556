"""The base of every error caused by user input rather than by a bug, and one-line reasons for unreadable files."""

import errno
import os
import pickle

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, an exceeded quota


class InputError(ValueError):
    """Bad params, files, prompts or models; the message is one line naming the file, key or id at fault."""


class DiskFullError(InputError):
    """No space (or quota) left where a file was being written: the stage stops there; what it finished is kept,
    so a rerun after freeing space does only the rest."""


def no_space_left(err: BaseException | None) -> bool:
    """Whether ``err``, or an exception it was raised from, is an ``OSError`` of a full disk or quota (torch's
    checkpoint writer, for one, turns it into a ``RuntimeError: ... unexpected pos``)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def disk_full(path: str | os.PathLike) -> DiskFullError:
    """The one-line error of a write to ``path`` that found no space left."""
    return DiskFullError(f"{path}: no space left on the device; free some and rerun (finished work is kept)")


def unreadable_weights_reason(err: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` could not read a file, in one line: the first sentence of the
    error, or for a refused pickle what was refused (torch's advice to retry with ``weights_only=False`` is left out:
    that would run code from the file)."""
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        detail = _first_sentence(text.partition("WeightsUnpickler error:")[2]) or "not only tensors and plain values"
        return f"refused by torch.load(weights_only=True): {detail}"
    return _first_sentence(text) or type(err).__name__


def _first_sentence(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
