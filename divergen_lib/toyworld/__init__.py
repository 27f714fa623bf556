"""The toy world: the offline, CPU-sized stand-in for LVIS v1 that the ``demo`` profile runs on."""

from .build import TOY_LABEL, ToyWorld, build_toyworld, load_toyworld
from .catalog import Appearance, CategorySpec
from .config import ToyWorldConfig

__all__ = ["TOY_LABEL", "Appearance", "CategorySpec", "ToyWorld", "ToyWorldConfig", "build_toyworld", "load_toyworld"]
