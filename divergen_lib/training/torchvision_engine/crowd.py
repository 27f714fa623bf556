"""Crowd regions as ignore regions in torchvision's Mask R-CNN: an anchor or proposal that would be a background
example but lies mostly inside a crowd region (:mod:`..ignore_regions`) is left out of the RPN's and the box
head's samples, instead of teaching the model that a crowd of objects is background.

The targets carry ``crowd_boxes`` (``x0, y0, x1, y1`` as fractions of the image's width and height, so that they
need no part in torchvision's resizing of the targets); the two heads below read them where they pick samples.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

from ..ignore_regions import inside_regions

CROWD_KEY = "crowd_boxes"


def inside_crowd(boxes: Tensor, crowd: Tensor | None, image_size: tuple[int, int]) -> Tensor:
    """Whether each of ``boxes`` (pixels of the resized image) lies mostly inside one of the ``crowd`` boxes
    (fractions of the image; :func:`~..ignore_regions.inside_regions`)."""
    if crowd is not None:
        h, w = image_size
        crowd = crowd.to(boxes) * torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    return inside_regions(boxes, crowd)


class CrowdIgnoringRPN(RegionProposalNetwork):
    """torchvision's RPN; background anchors inside a crowd region are ignored (label -1)."""

    def forward(self, images: Any, features: dict[str, Tensor], targets: list[dict[str, Tensor]] | None = None):
        self._image_sizes = images.image_sizes
        return super().forward(images, features, targets)

    def assign_targets_to_anchors(self, anchors: list[Tensor], targets: list[dict[str, Tensor]]):
        labels, matched = super().assign_targets_to_anchors(anchors, targets)
        for k, (anchors_k, target) in enumerate(zip(anchors, targets, strict=True)):
            ignored = inside_crowd(anchors_k, target.get(CROWD_KEY), self._image_sizes[k]) & (labels[k] == 0)
            labels[k][ignored] = -1.0
        return labels, matched


class CrowdIgnoringRoIHeads(RoIHeads):
    """torchvision's RoI heads; background proposals inside a crowd region are not sampled."""

    def forward(self, features, proposals, image_shapes, targets=None):  # type: ignore[override]
        self._image_shapes, self._crowd = image_shapes, [t.get(CROWD_KEY) for t in targets or []]
        return super().forward(features, proposals, image_shapes, targets)

    def assign_targets_to_proposals(self, proposals, gt_boxes, gt_labels):  # type: ignore[override]
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        for k, crowd in enumerate(self._crowd):
            ignored = inside_crowd(proposals[k], crowd, self._image_shapes[k]) & (labels[k] == 0)
            labels[k][ignored] = -1
        return matched, labels


def ignore_crowds(model: Any) -> Any:
    """Give a torchvision Mask R-CNN the two heads above (their weights and state-dict keys are the same)."""
    model.rpn.__class__ = CrowdIgnoringRPN
    model.roi_heads.__class__ = CrowdIgnoringRoIHeads
    return model
