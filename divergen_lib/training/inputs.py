"""What the ``training`` section needs before it runs (preflight): the datasets, pools, and what the chosen engine
needs (its package, weights and config)."""

from __future__ import annotations

from collections.abc import Iterator

from ..preflight import LVIS_HOW, Check, path_checks
from .config import TrainingConfig
from .engines import ENGINES


def required_inputs(cfg: TrainingConfig) -> Iterator[Check]:
    for name, split in (("train", cfg.train), ("val", cfg.val)):
        yield from path_checks(split.annotations, f"{name} annotations", LVIS_HOW)
        yield from path_checks(split.image_root, f"{name} images", LVIS_HOW, True)
    yield from path_checks(
        cfg.categories, "category metadata of the pools", "notebook 02 writes generation/categories.json"
    )
    yield from path_checks(
        cfg.area_prior,
        "area prior",
        "the originals' datasets/metadata/area_mean_std2.json (DiverGen's or X-Paste's checkout)",
    )
    for run in cfg.runs:
        yield from path_checks(run.pool, f"instance pool of run {run.name}", "notebook 04 writes filtration/pool.json")
    yield from ENGINES.get(cfg.engine).required_inputs(cfg)
