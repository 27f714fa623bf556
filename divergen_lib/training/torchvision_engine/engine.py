"""The torchvision engine as a plug-in of :data:`~divergen_lib.training.engines.ENGINES` (imports no torch until
it trains or predicts)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ...preflight import Check, path_checks
from ..engine import ClassLayer, Detector

if TYPE_CHECKING:
    from ..config import TrainingConfig
    from ..layout import RunLayout
    from ..run import RunInputs, RunOutput


class TorchvisionEngine:
    """torchvision Mask R-CNN: background at class row 0, per-class box regression and mask logits."""

    name = "torchvision"
    background_first = True
    class_layers = (
        ClassLayer(re.compile(r"roi_heads\.box_predictor\.cls_score\.(weight|bias)$"), 1, True),
        ClassLayer(re.compile(r"roi_heads\.box_predictor\.bbox_pred\.(weight|bias)$"), 4, True),
        ClassLayer(re.compile(r"roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)$"), 1, True),
    )

    def describe(self, cfg: TrainingConfig) -> str:
        return f"Mask R-CNN {cfg.model.backbone}-FPN (torchvision)"

    def validate(self, cfg: TrainingConfig) -> None:
        if cfg.model.frozen_batchnorm and cfg.model.backbone_weights is None:
            raise ValueError("model.frozen_batchnorm needs model.backbone_weights: frozen random statistics diverge")

    def required_inputs(self, cfg: TrainingConfig) -> Iterator[Check]:
        how = "a torchvision ResNet state dict"
        yield from path_checks(cfg.model.backbone_weights, "backbone ImageNet weights", how)

    def train(self, cfg: TrainingConfig, inputs: RunInputs, run: RunLayout, device: str) -> Path:
        from .train import train

        return train(cfg, inputs, run, device)

    def load_detector(self, run: RunOutput, device: str) -> Detector:
        from .inference import TorchvisionDetector

        return TorchvisionDetector(run, device)


ENGINE = TorchvisionEngine()
