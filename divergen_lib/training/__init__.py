"""Detector training with generative copy-paste: torchvision engine (default) and detectron2 engine."""

from .classes import ClassMap, build_class_map
from .config import RunSpec, TrainingConfig
from .truncation import truncate_checkpoint, truncate_state_dict

__all__ = ["ClassMap", "RunSpec", "TrainingConfig", "build_class_map", "truncate_checkpoint", "truncate_state_dict"]
