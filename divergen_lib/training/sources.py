"""A run's training data as every engine consumes it: the training json, the classes (targets and the pool's
extras) and the paste source, checked before anything is trained; and the torchvision Dataset over it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..categories import read_category_metadata
from ..config import DatasetSplit
from ..errors import InputError
from ..formats import PoolEntry, image_file, read_area_prior, read_instance_pool, read_lvis, resolve_pool_paths
from ..paste import area_prior
from .classes import build_class_map, pool_by_category
from .config import RunSpec, TrainingConfig
from .data import PasteSource, PoolCrops, TrainingStream
from .run import RunInputs
from .sampling import RepeatFactorStream, repeat_factors


def run_inputs(cfg: TrainingConfig, spec: RunSpec, profile_seed: int) -> RunInputs:
    """Read the training json and the run's pool; decide its classes. A missing training image or pool file is an
    error here, before anything is written or trained (images and crops are read only when drawn)."""
    train = read_lvis(cfg.train.annotations)
    if not train["annotations"]:
        raise InputError(f"{cfg.train.annotations}: no annotations (a training json needs at least one instance)")
    _check_images_exist(train, cfg.train)
    metadata = read_category_metadata(cfg.categories) if cfg.categories else None
    pool = resolve_pool_paths(read_instance_pool(spec.pool), spec.pool.parent) if spec.pool else None
    pool_name = f"instance pool {spec.pool}"
    classes = build_class_map(train["categories"], metadata, pool, spec.extra_categories, pool_name)
    paste = None
    if pool is not None:
        by_category = pool_by_category(pool, metadata or train["categories"], classes, pool_name)
        _check_pool_files_exist(by_category, pool_name)
        crops = {cid: PoolCrops(entries, f"{pool_name}: category {cid}") for cid, entries in by_category.items()}
        prior = read_area_prior(cfg.area_prior) if cfg.area_prior else area_prior(train)
        paste = PasteSource(crops, prior, cfg.paste)
    return RunInputs(train, classes, paste, spec.seed if spec.seed is not None else profile_seed)


def _check_images_exist(train: dict[str, Any], split: DatasetSplit) -> None:
    missing = [path for path in (image_file(img, split.image_root) for img in train["images"]) if not path.is_file()]
    if missing:
        raise InputError(
            f"{split.annotations}: {len(missing)} of its {len(train['images'])} images are not under "
            f"training.train.image_root {split.image_root} (first: {missing[0]})"
        )


def _check_pool_files_exist(by_category: dict[int, list[PoolEntry]], pool_name: str) -> None:
    for cid, entries in by_category.items():
        for entry in entries:
            for path in (entry.path, entry.mask_path):
                if path is not None and not os.path.isfile(path):
                    raise InputError(f"{pool_name}: file of an entry of category {cid} not found: {path}")


def training_stream(cfg: TrainingConfig, inputs: RunInputs) -> TrainingStream:
    """The torchvision Dataset of a run (repeat-factor stream, flip, paste)."""
    threshold = cfg.repeat_factor_threshold
    factors = repeat_factors(inputs.train, threshold) if threshold else np.ones(len(inputs.train["images"]))
    stream = RepeatFactorStream(factors, inputs.seed)
    return TrainingStream(
        inputs.train, cfg.train.image_root, inputs.classes, stream, inputs.paste, cfg.horizontal_flip, inputs.seed
    )
