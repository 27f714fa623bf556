"""Resize and crop of a detectron2 config, for training and test: detectron2's own (``ResizeShortestEdge`` from
``INPUT.MIN_SIZE_*``, a crop when ``INPUT.CROP.ENABLED``) or a project's builder, CenterNet2's by default when the
config sets ``INPUT.CUSTOM_AUG`` (``EfficientDetResizeCrop``: DiverGen's and X-Paste's large-scale jitter from
``INPUT.TRAIN_SIZE`` and ``INPUT.SCALE_RANGE``). Flips are left out: the sample flips itself
(``training.horizontal_flip``). Training draws come from the sample's RNG, not from numpy's global one."""

from __future__ import annotations

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.data.detection_utils import build_augmentation

from ...errors import InputError
from .d2config import BUILDER_KEY, project_function


def build_augmentations(d2: CfgNode, is_train: bool) -> list[T.Augmentation]:
    """The config's augmentations (its ``AUGMENTATIONS_BUILDER``), without flips."""
    entry = d2.get(BUILDER_KEY, "")
    if entry:
        augmentations = project_function(entry, "augmentations")(d2, is_train)
    else:
        sampling = d2.INPUT.MIN_SIZE_TRAIN_SAMPLING
        two = len(d2.INPUT.MIN_SIZE_TRAIN) == 2
        if is_train and (sampling not in ("choice", "range") or (sampling == "range" and not two)):
            raise InputError("INPUT.MIN_SIZE_TRAIN_SAMPLING must be 'choice', or 'range' with two MIN_SIZE_TRAIN")
        augmentations = build_augmentation(d2, is_train)
    return [a for a in augmentations if not isinstance(a, T.RandomFlip)]


def augment(
    augmentations: list[T.Augmentation], image: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, T.Transform]:
    """``image`` augmented, and the transform that did it; the augmentations' random draws (numpy's global RNG)
    come from ``rng`` when given, and numpy's global state is left as it was."""
    state = np.random.get_state()
    if rng is not None:
        np.random.seed(int(rng.integers(2**32)))
    try:
        given = T.AugInput(image)
        transform = T.AugmentationList(augmentations)(given)
    finally:
        np.random.set_state(state)
    return given.image, transform
