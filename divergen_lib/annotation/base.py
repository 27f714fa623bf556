"""What every annotator takes and returns, and the annotator registry.

An annotator is a class built as ``Annotator(config: AnnotatorConfig, device: str)`` with one method,
``raw_masks(images) -> list[np.ndarray]``: one boolean H×W *object* mask per uint8 H×W×3 RGB image, in
order, before the shared post-processing (:mod:`divergen_lib.annotation.postprocess`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..config import check_component

# method -> "module:Class", imported only when used
ANNOTATORS: dict[str, str] = {
    "sam_background": "divergen_lib.annotation.sam:SamBackgroundAnnotator",
    "sam_foreground": "divergen_lib.annotation.sam:SamForegroundAnnotator",
    "border_fallback": "divergen_lib.annotation.fallback:BorderFallbackAnnotator",
}


@dataclass(frozen=True)
class AnnotatorConfig:
    """One annotation method of the ``annotation.methods`` list of a params file.

    ``name`` is recorded in the manifest; ``checkpoint`` is a local SAM ``.pth`` (SAM methods);
    ``options`` are the method's own settings, checked by the annotator (``ConfigError`` naming the key).
    ``true_mask`` takes the mask the generator recorded (the toy generator only): the upper bound of annotation.
    """

    name: str
    method: Literal["sam_background", "sam_foreground", "border_fallback", "true_mask"]
    checkpoint: Path | None = None
    model_type: str = "vit_h"
    batch_size: int = 1
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_component("annotation method", self.name, self.batch_size)
        if self.method == "true_mask" and self.options:
            raise ValueError(f"annotation method {self.name}: true_mask takes no options")


class Annotator(Protocol):
    def raw_masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def annotator_class(method: str) -> type:
    """The class of annotation ``method`` (its ``options_cls`` is the dataclass its ``options`` must fit)."""
    module, _, cls = ANNOTATORS[method].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_annotator(config: AnnotatorConfig, device: str = "cpu") -> Annotator:
    """Instantiate the annotator of ``config.method``."""
    return annotator_class(config.method)(config, device)
