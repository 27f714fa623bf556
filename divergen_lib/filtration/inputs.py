"""What the ``filtration`` section needs before it runs (preflight): the real training set and CLIP weights."""

from __future__ import annotations

from collections.abc import Iterator

from ..preflight import LVIS_HOW, Check, clip_checks, path_checks
from .config import FiltrationConfig


def required_inputs(cfg: FiltrationConfig) -> Iterator[Check]:
    yield from path_checks(cfg.real.annotations, "real training annotations", LVIS_HOW)
    yield from path_checks(cfg.real.image_root, "real training images", LVIS_HOW, True)
    yield from clip_checks(cfg.clip)
