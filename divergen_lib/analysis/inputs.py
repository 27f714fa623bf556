"""What the ``analysis`` section needs before it runs (preflight): real train/val sets, category metadata, CLIP
weights, and what each generated set's prompts and models need."""

from __future__ import annotations

from collections.abc import Iterator

from ..generation.inputs import category_checks, model_checks, prompt_checks
from ..preflight import LVIS_HOW, Check, clip_checks, path_checks
from .config import AnalysisConfig


def required_inputs(cfg: AnalysisConfig) -> Iterator[Check]:
    yield from path_checks(cfg.train_annotations, "train annotations", LVIS_HOW)
    yield from path_checks(cfg.val_annotations, "val annotations", LVIS_HOW)
    yield from path_checks(cfg.image_root, "images", LVIS_HOW, True)
    yield from category_checks(cfg.categories)
    yield from clip_checks(cfg.clip)
    for generated in cfg.generated:
        yield from prompt_checks(generated.prompts)
        yield from model_checks(generated.models)
