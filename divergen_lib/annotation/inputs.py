"""What the ``annotation`` section needs before it runs (preflight): the SAM checkpoint of every SAM method."""

from __future__ import annotations

from collections.abc import Iterator

from ..preflight import Check, path_checks
from .config import AnnotationConfig


def required_inputs(cfg: AnnotationConfig) -> Iterator[Check]:
    for method in cfg.methods:
        if method.method.startswith("sam"):
            how = f"SAM {method.model_type} checkpoint from https://github.com/facebookresearch/segment-anything"
            where = method.checkpoint or "(no checkpoint given)"
            yield from path_checks(where, f"SAM weights of method {method.name}", how)
