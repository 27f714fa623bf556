"""Checkpoint files: written atomically, read with ``weights_only=True`` (tensors and plain values only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, unreadable_weights_reason
from ..formats import atomic_open


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file and a rename: an interrupted save leaves the old file intact."""
    with atomic_open(path, "wb", encoding=None) as fh:
        torch.save(checkpoint, fh)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict; a missing, truncated or non-checkpoint file raises InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch.load raises anything from KeyError to UnpicklingError on a bad file
        raise InputError(f"{path}: not a readable checkpoint ({unreadable_weights_reason(err)})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise InputError(f"{path}: not a checkpoint of this project (no 'model' state dict)")
    return checkpoint
