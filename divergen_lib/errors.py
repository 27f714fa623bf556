"""The base of every error caused by user input rather than by a bug, and one-line reasons for unreadable files."""

import pickle


class InputError(ValueError):
    """Bad params, files, prompts or models; the message is one line naming the file, key or id at fault."""


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
