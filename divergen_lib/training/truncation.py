"""Class truncation (METHOD_SPEC §2.3): a detector trained on target + extra categories keeps only the target
rows of its class-dependent layers, so that extra-class logits cannot take detections from the target ones.

torchvision puts the background at class 0 and has per-class box regression and mask logits; detectron2
puts the background last (``cls_score`` has C + 1 rows), has per-class box deltas / mask logits unless
configured class-agnostic, and a federated-loss weight per class (``fed_loss_cls_weights``, Detic/DiverGen:
``freq_weight``). Both ``model`` and ``model_ema`` state dicts of a checkpoint are truncated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any, Literal

import torch

from ..errors import InputError
from .classes import ClassMap

Engine = Literal["torchvision", "detectron2"]

# (pattern on the parameter name, rows per class, whether the layer has a background row)
_TORCHVISION = (
    (re.compile(r"roi_heads\.box_predictor\.cls_score\.(weight|bias)$"), 1, True),
    (re.compile(r"roi_heads\.box_predictor\.bbox_pred\.(weight|bias)$"), 4, True),
    (re.compile(r"roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)$"), 1, True),
)
_DETECTRON2 = (
    (re.compile(r"roi_heads\.box_predictor(\.\d+)?\.cls_score\.(weight|bias)$"), 1, True),
    (re.compile(r"roi_heads\.box_predictor(\.\d+)?\.bbox_pred\.(weight|bias)$"), 4, False),
    (re.compile(r"roi_heads\.mask_head\.predictor\.(weight|bias)$"), 1, False),
    (re.compile(r"roi_heads\.box_predictor(\.\d+)?\.(fed_loss_cls_weights|freq_weight)$"), 1, False),
)


def _rows(engine: Engine, num_classes: int, targets: Sequence[int], per_class: int, background: bool) -> list[int]:
    if engine == "torchvision":  # background first, class k at row k + 1
        classes = ([0] if background else []) + [t + 1 for t in targets]
    else:  # classes first, background last
        classes = list(targets) + ([num_classes] if background else [])
    return [c * per_class + j for c in classes for j in range(per_class)]


def truncate_state_dict(
    state: dict[str, torch.Tensor], num_classes: int, targets: Sequence[int], engine: Engine
) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose class-dependent tensors keep only the ``targets`` classes (and background).

    Class-agnostic layers (one class's worth of rows) are left alone; any other row count raises InputError.
    """
    out = dict(state)
    for name, tensor in state.items():
        for pattern, per_class, background in _TORCHVISION if engine == "torchvision" else _DETECTRON2:
            if not pattern.search(name):
                continue
            full = (num_classes + int(background)) * per_class
            if tensor.shape[0] == per_class != full:
                break  # class-agnostic
            if tensor.shape[0] != full:
                raise InputError(f"{name} has {tensor.shape[0]} rows, expected {full} for {num_classes} classes")
            rows = torch.tensor(_rows(engine, num_classes, targets, per_class, background))
            out[name] = tensor.index_select(0, rows).clone()
            break
    return out


def truncate_checkpoint(checkpoint: dict[str, Any], classes: ClassMap, engine: Engine) -> dict[str, Any]:
    """Truncate ``checkpoint["model"]`` (and ``model_ema`` when present) to the target classes; the class map
    stored under ``classes`` is replaced by the truncated one."""
    if "model" not in checkpoint:
        raise InputError("checkpoint has no 'model' state dict")
    out = dict(checkpoint)
    for key in ("model", "model_ema"):
        if key in checkpoint:
            out[key] = truncate_state_dict(checkpoint[key], classes.num_classes, classes.targets, engine)
    out["classes"] = classes.truncated().to_json()
    return out


def truncate_checkpoint_file(src: str | os.PathLike, dst: str | os.PathLike, classes: ClassMap, engine: Engine) -> None:
    """Load ``src`` (``weights_only``), truncate, and save to ``dst`` atomically."""
    from .checkpoints import load_checkpoint, save_checkpoint

    save_checkpoint(truncate_checkpoint(load_checkpoint(src), classes, engine), dst)
