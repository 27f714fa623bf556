"""Checkpoint files: written atomically, read with ``weights_only=True`` (tensors and plain values only)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
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
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise InputError(f"{path}: not a checkpoint of this project (no 'model' state dict)")
    return checkpoint
