"""The training engines, by the name ``training.engine`` gives. Adding one: a package with an object that keeps
the :class:`~.engine.Engine` contract, and one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from .engine import Engine

ENGINES: Registry[Engine] = Registry(
    "training engine",
    {
        "torchvision": "divergen_lib.training.torchvision_engine.engine:ENGINE",
        "detectron2": "divergen_lib.training.detectron2_engine.engine:ENGINE",
    },
)
