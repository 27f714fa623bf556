"""detectron2 checkpoints in either layout as a detector's weights, and their truncation to the first classes.

This project's layout is ``engine``, ``model``, ``model_ema`` (optional), ``step`` and ``classes`` (a
:class:`~..classes.ClassMap`); the originals' (DiverGen's and X-Paste's ``train_net.py``, detectron2's
``DetectionCheckpointer``) is ``model``, ``model_ema``, ``optimizer``, ``scheduler`` and ``iteration``, without a
class map. The EMA of a multi-GPU run is a copy of the DDP-wrapped model, so its keys may start with ``module.``;
the weights given back never do. A classifier's rows less background give its class count (DiverGen: 1453, the 1203
LVIS categories first, then 250 ImageNet ones); keeping the first classes keeps the background row and leaves the
class-agnostic layers alone, as DiverGen's ``tools/convert_imgnet_model_to_lvis.py`` does. Imports no detectron2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from ...errors import InputError
from ..checkpoints import load_checkpoint, save_checkpoint
from ..classes import ClassMap
from ..engines import ENGINES
from ..truncation import truncate_checkpoint, truncate_state_dict, truncate_weights

WeightsKey = Literal["model", "model_ema"]
MODULE_PREFIX = "module."  # of the state dict of a DistributedDataParallel-wrapped model
_ENGINE = ENGINES.get("detectron2")  # the plug-in, which imports no detectron2
_CLASSIFIER = _ENGINE.class_layers[0]  # cls_score: a row per class and one for background


def checkpoint_weights(
    checkpoint: dict[str, Any], source: str, ema: bool | None = None
) -> tuple[dict[str, torch.Tensor], WeightsKey]:
    """The weights of a detectron2 checkpoint in either layout, without ``module.`` prefixes, and which they are:
    ``model_ema`` when ``ema`` (one line when the checkpoint has none), ``model`` when not; by default this
    project's EMA weights when present and the originals' ``model``. ``source`` names the checkpoint in errors."""
    if checkpoint.get("engine", _ENGINE.name) != _ENGINE.name:
        raise InputError(f"{source}: not a detectron2-engine checkpoint of this project")
    if ema and "model_ema" not in checkpoint:
        raise InputError(f"{source}: has no EMA weights (no 'model_ema'); use its 'model' weights (no --ema)")
    default_ema = "engine" in checkpoint and "model_ema" in checkpoint
    key: WeightsKey = "model_ema" if (default_ema if ema is None else ema) else "model"
    state = checkpoint[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{source}: its {key!r} is not a state dict (names to tensors)")
    return {name.removeprefix(MODULE_PREFIX): tensor for name, tensor in state.items()}, key


def classifier_classes(state: dict[str, torch.Tensor]) -> int | None:
    """The classes of a state dict's box classifier (its rows less background); None without one."""
    for name, tensor in state.items():
        if _CLASSIFIER.pattern.search(name):
            return tensor.shape[0] - 1
    return None


def _first(num_classes: int | None, keep: int, source: str) -> tuple[int, list[int]]:
    """The classes of a classifier and the indices of its first ``keep``; one line when there are not that many."""
    if num_classes is None:
        raise InputError(f"{source}: no box classifier (roi_heads.box_predictor...cls_score) to truncate")
    if not 1 <= keep <= num_classes:
        raise InputError(f"{source}: cannot keep {keep} classes of its {num_classes} (1 to {num_classes})")
    return num_classes, list(range(keep))


@dataclass(frozen=True)
class DetectorWeights:
    """A checkpoint's weights for a detector: its ``key`` state dict, the class map this project's checkpoints
    store (None in the originals'), and ``source``, the checkpoint they came from."""

    state: dict[str, torch.Tensor]
    key: WeightsKey
    classes: ClassMap | None
    source: str

    @property
    def num_classes(self) -> int | None:
        """The stored class map's classes, else the classifier's (None without one)."""
        return self.classes.num_classes if self.classes else classifier_classes(self.state)

    def truncated(self, keep: int) -> DetectorWeights:
        """The weights (and class map) of the first ``keep`` classes."""
        num_classes, targets = _first(self.num_classes, keep, self.source)
        state = truncate_state_dict(self.state, num_classes, targets, _ENGINE.name)
        classes = replace(self.classes, targets=tuple(targets)).truncated() if self.classes else None
        return replace(self, state=state, classes=classes)

    def check_classes(self, classes: ClassMap) -> None:
        """One line when the weights are not of ``classes``: the stored categories, or the classifier's count."""
        if self.classes:
            wrong = self.classes.category_ids != classes.category_ids
        else:
            wrong = self.num_classes not in (None, classes.num_classes)
        if wrong:
            raise InputError(
                f"{self.source}: trained for {self.num_classes} categories, not the {classes.num_classes} given"
            )


def read_detector_weights(path: str | os.PathLike, ema: bool | None = None) -> DetectorWeights:
    """The weights of a checkpoint file in either layout (:func:`checkpoint_weights`)."""
    checkpoint = load_checkpoint(path)
    state, key = checkpoint_weights(checkpoint, str(path), ema)
    classes = ClassMap.from_json(checkpoint["classes"]) if "classes" in checkpoint else None
    return DetectorWeights(state, key, classes, str(path))


def truncate_file(src: str | os.PathLike, dst: str | os.PathLike, keep: int) -> tuple[int, list[str]]:
    """Save ``src`` with the first ``keep`` classes of its ``model`` and ``model_ema`` (either layout, keys as
    they are; this project's class map too) to ``dst`` atomically; the classes it had and the keys truncated."""
    checkpoint = load_checkpoint(src)
    state, _ = checkpoint_weights(checkpoint, str(src), ema=False)
    num_classes, targets = _first(classifier_classes(state), keep, str(src))
    if "classes" in checkpoint:
        classes = ClassMap.from_json(checkpoint["classes"])
        truncated = truncate_checkpoint(checkpoint, replace(classes, targets=tuple(targets)), _ENGINE.name)
    else:
        truncated = truncate_weights(checkpoint, num_classes, targets, _ENGINE.name)
    save_checkpoint(truncated, dst)
    return num_classes, [key for key in ("model", "model_ema") if key in checkpoint]
