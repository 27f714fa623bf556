"""What every annotator takes and returns, and the annotator registry.

An annotator is a class built as ``Annotator(config: AnnotatorConfig, device: str)`` with one method,
``raw_masks(images, names) -> list[np.ndarray]``: one boolean H×W *object* mask per uint8 H×W×3 RGB image, in
order, before the shared post-processing (:mod:`divergen_lib.annotation.postprocess`); ``names`` holds the
category name of each image (for the methods prompted with it, such as CLIPSeg).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np

from ..config import ConfigError, check_component
from ..registry import Choice, Registry

# annotator classes, imported only when used; adding a method: its module and one line here. ``true_mask`` has no
# annotator: the generator's recorded mask is the annotation.
ANNOTATORS: Registry[type | None] = Registry(
    "annotation method",
    {
        "sam_background": "divergen_lib.annotation.sam:SamBackgroundAnnotator",
        "sam_foreground": "divergen_lib.annotation.sam:SamForegroundAnnotator",
        "border_fallback": "divergen_lib.annotation.fallback:BorderFallbackAnnotator",
        "clipseg": "divergen_lib.annotation.clipseg:ClipSegAnnotator",
        "salient_onnx": "divergen_lib.annotation.salient_onnx:SalientOnnxAnnotator",
        "true_mask": None,
    },
)
TRUE_MASK = "true_mask"


@dataclass(frozen=True)
class AnnotatorConfig:
    """One annotation method of the ``annotation.methods`` list of a params file.

    ``name`` is recorded in the manifest; ``checkpoint`` is the method's local weights: a SAM ``.pth`` (SAM methods),
    a ``from_pretrained`` folder (``clipseg``) or an ``.onnx`` file (``salient_onnx``); ``options`` are the method's
    own settings, checked by the annotator (``ConfigError`` naming the key). ``sample``: annotate only a deterministic
    subsample of that many images (a heavy method on CPU); ``optional``: when the checkpoint is missing, skip the
    method with a warning instead of stopping. ``true_mask`` takes the mask the generator recorded (the toy generator
    only): the upper bound of annotation.
    """

    name: str
    method: Annotated[str, Choice(ANNOTATORS)]
    checkpoint: Path | None = None
    model_type: str = "vit_h"
    batch_size: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    sample: int | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        check_component("annotation method", self.name, self.batch_size)
        if self.method == TRUE_MASK and self.options:
            raise ValueError(f"annotation method {self.name}: true_mask takes no options")
        if self.sample is not None and self.sample < 1:
            raise ValueError(f"annotation method {self.name}: sample must be >= 1 (leave it out for every image)")
        if self.optional and self.checkpoint is None:
            raise ValueError(f"annotation method {self.name}: optional needs a checkpoint (skipped when it is missing)")

    @property
    def missing_weights(self) -> bool:
        """Whether ``checkpoint`` is given and absent (an ``optional`` method is then skipped)."""
        return self.checkpoint is not None and not self.checkpoint.exists()


class Annotator(Protocol):
    def raw_masks(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]: ...


def existing_weights(checkpoint: Path | None, where: str, what: str, folder: bool = False) -> Path:
    """``checkpoint`` when it is there (a file, or a ``folder``); else one ``ConfigError`` line starting with ``where``
    (``what``: the kind of weights expected, for the message when none is given)."""
    if checkpoint is None:
        raise ConfigError(f"{where}: no checkpoint given ({what})")
    path = Path(checkpoint)
    if not (path.is_dir() if folder else path.is_file()):
        raise ConfigError(f"{where}: checkpoint {'folder ' if folder else ''}not found: {path}")
    return path


def annotator_class(method: str) -> type | None:
    """The class of annotation ``method`` (its ``options_cls`` is the dataclass its ``options`` must fit); None
    for ``true_mask``."""
    return ANNOTATORS.get(method)


def build_annotator(config: AnnotatorConfig, device: str = "cpu") -> Annotator | None:
    """Instantiate the annotator of ``config.method`` (None for ``true_mask``: the generator's masks)."""
    cls = annotator_class(config.method)
    return None if cls is None else cls(config, device)
