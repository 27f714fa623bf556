"""Prediction with a torchvision-engine checkpoint: LVIS results and box-head logits."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from ...formats import image_file, read_image
from ...formats.results import detections_to_results
from ...progress import progress
from ..classes import ClassMap
from ..config import TestSettings
from ..run import RunOutput
from .model import load_model


@torch.no_grad()
def predict(
    model: nn.Module,
    classes: ClassMap,
    images: list[dict[str, Any]],
    image_root: str | os.PathLike,
    test: TestSettings,
) -> list[dict[str, Any]]:
    """LVIS results (boxes and RLE masks, at most ``test.max_detections`` per image) for ``images``."""
    dev = next(model.parameters()).device
    ids = np.asarray(classes.category_ids)
    results: list[dict[str, Any]] = []
    for start in progress(range(0, len(images), test.batch_size), desc="predict", unit="batch"):
        batch = images[start : start + test.batch_size]
        tensors = [
            torch.tensor(read_image(image_file(img, image_root))).permute(2, 0, 1).float().div(255).to(dev)
            for img in batch
        ]
        for img, out in zip(batch, model(tensors), strict=True):
            masks = (out["masks"][:, 0] > test.mask_threshold).cpu().numpy()
            results += detections_to_results(
                img["id"],
                out["boxes"].cpu().numpy(),
                out["scores"].cpu().numpy(),
                ids[out["labels"].cpu().numpy() - 1],
                masks,
                test.max_detections,
            )
    return results


@torch.no_grad()
def box_logits(model: nn.Module, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Foreground class logits (N×C, background dropped) of the box head at given boxes of one image."""
    dev = next(model.parameters()).device
    tensor = torch.tensor(image).permute(2, 0, 1).float().div(255).to(dev)
    batch, targets = model.transform(
        [tensor], [{"boxes": torch.as_tensor(boxes_xyxy, dtype=torch.float32, device=dev)}]
    )
    features = model.backbone(batch.tensors)
    heads = model.roi_heads
    pooled = heads.box_roi_pool(features, [targets[0]["boxes"]], batch.image_sizes)
    logits, _ = heads.box_predictor(heads.box_head(pooled))
    return logits[:, 1:].float().cpu().numpy()


class TorchvisionDetector:
    """A finished torchvision-engine run as a detector: its evaluation checkpoint (EMA weights when present)."""

    def __init__(self, run: RunOutput, device: str) -> None:
        self.model, self.classes = load_model(run.eval_checkpoint, device, run.config.test)
        self.test = run.config.test

    def predict(self, images: list[dict[str, Any]], image_root: str | os.PathLike) -> list[dict[str, Any]]:
        return predict(self.model, self.classes, images, image_root, self.test)

    def box_logits(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        return box_logits(self.model, image, boxes_xyxy)
