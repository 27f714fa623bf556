"""Class truncation (METHOD_SPEC §2.3): a detector trained on target + extra categories keeps only the target
rows of its class-dependent layers, so that extra-class logits cannot take detections from the target ones.

Which parameters depend on the class and where the background row is are the engine's
(:attr:`~.engine.Engine.class_layers`, :attr:`~.engine.Engine.background_first`); a class-agnostic layer is left
alone. Both ``model`` and ``model_ema`` state dicts of a checkpoint are truncated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import InputError
from .classes import ClassMap
from .engines import ENGINES


def _rows(
    background_first: bool, num_classes: int, targets: Sequence[int], per_class: int, background: bool
) -> list[int]:
    if background_first:  # background first, class k at row k + 1
        classes = ([0] if background else []) + [t + 1 for t in targets]
    else:  # classes first, background last
        classes = list(targets) + ([num_classes] if background else [])
    return [c * per_class + j for c in classes for j in range(per_class)]


def truncate_state_dict(
    state: dict[str, torch.Tensor], num_classes: int, targets: Sequence[int], engine: str
) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose class-dependent tensors keep only the ``targets`` classes (and background).

    Class-agnostic layers (one class's worth of rows) are left alone; any other row count raises InputError.
    """
    plugin = ENGINES.get(engine)
    out = dict(state)
    for name, tensor in state.items():
        for layer in plugin.class_layers:
            if not layer.pattern.search(name):
                continue
            per_class, background = layer.rows_per_class, layer.background
            full = (num_classes + int(background)) * per_class
            if tensor.shape[0] == per_class != full:
                break  # class-agnostic
            if tensor.shape[0] != full:
                raise InputError(f"{name} has {tensor.shape[0]} rows, expected {full} for {num_classes} classes")
            rows = torch.tensor(_rows(plugin.background_first, num_classes, targets, per_class, background))
            out[name] = tensor.index_select(0, rows).clone()
            break
    return out


def truncate_weights(
    checkpoint: dict[str, Any], num_classes: int, targets: Sequence[int], engine: str
) -> dict[str, Any]:
    """A copy of ``checkpoint`` whose ``model`` (and ``model_ema`` when present) keep only the ``targets``
    classes; its other entries are left as they are."""
    if "model" not in checkpoint:
        raise InputError("checkpoint has no 'model' state dict")
    out = dict(checkpoint)
    for key in ("model", "model_ema"):
        if key in checkpoint:
            out[key] = truncate_state_dict(checkpoint[key], num_classes, targets, engine)
    return out


def truncate_checkpoint(checkpoint: dict[str, Any], classes: ClassMap, engine: str) -> dict[str, Any]:
    """Truncate ``checkpoint["model"]`` (and ``model_ema`` when present) to the target classes; the class map
    stored under ``classes`` is replaced by the truncated one."""
    out = truncate_weights(checkpoint, classes.num_classes, classes.targets, engine)
    out["classes"] = classes.truncated().to_json()
    return out


def truncate_checkpoint_file(src: str | os.PathLike, dst: str | os.PathLike, classes: ClassMap, engine: str) -> None:
    """Load ``src`` (``weights_only``), truncate, and save to ``dst`` atomically."""
    from .checkpoints import load_checkpoint, save_checkpoint

    save_checkpoint(truncate_checkpoint(load_checkpoint(src), classes, engine), dst)
