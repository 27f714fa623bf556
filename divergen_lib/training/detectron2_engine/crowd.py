"""Crowd regions as ignore regions in detectron2's R-CNNs: an anchor or proposal that would be a background
example but lies mostly inside a crowd region (:mod:`..ignore_regions`) is left out of the samples of an ``RPN``
and of any ``StandardROIHeads`` (cascades included: their first stage samples there), instead of teaching the
model that a crowd of objects is background.

The mapper puts the crowd boxes of each training input under ``crowd_boxes`` (pixels of the resized image); the
model, given the classes below by :func:`ignore_crowds`, hands them to its heads before each training forward.
Heads of other kinds (CenterNet2's CenterNet proposals, for one) still leave crowds out as instances only."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import torch
from detectron2.modeling.proposal_generator.rpn import RPN
from detectron2.modeling.roi_heads.roi_heads import StandardROIHeads
from detectron2.structures import Boxes, Instances
from torch import Tensor

from ..ignore_regions import inside_regions

CROWD_KEY = "crowd_boxes"
log = logging.getLogger(__name__)


class _CrowdHead:
    """What both heads share: the crowd boxes of the batch, and background labels inside them set to -1."""

    crowd: list[Tensor | None] | None = None
    _ignored: Iterator[Tensor]

    def _ignore_per_image(self, boxes: list[Tensor]) -> None:
        crowd = self.crowd or [None] * len(boxes)
        self._ignored = iter([inside_regions(b, c) for b, c in zip(boxes, crowd, strict=True)])

    def _without_ignored_background(self, labels: Tensor) -> Tensor:
        """``labels`` (1 / 0 / -1 per candidate) with 0 → -1 inside a crowd region; candidates past the boxes
        given (ground truth appended as proposals) are never ignored."""
        ignored = next(self._ignored)
        padded = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
        padded[: len(ignored)] = ignored.to(labels.device)
        return torch.where(padded & (labels == 0), torch.full_like(labels, -1), labels)


class _CrowdRPN(_CrowdHead):
    def label_and_sample_anchors(self, anchors: list[Boxes], gt_instances: list[Instances]):
        every = Boxes.cat(anchors).tensor
        self._ignore_per_image([every] * len(gt_instances))
        return super().label_and_sample_anchors(anchors, gt_instances)  # type: ignore[misc]

    def _subsample_labels(self, label: Tensor) -> Tensor:
        return super()._subsample_labels(self._without_ignored_background(label))  # type: ignore[misc]


class _CrowdROIHeads(_CrowdHead):
    def label_and_sample_proposals(self, proposals: list[Instances], targets: list[Instances]):
        self._ignore_per_image([p.proposal_boxes.tensor for p in proposals])
        return super().label_and_sample_proposals(proposals, targets)  # type: ignore[misc]

    def _sample_proposals(self, matched_idxs: Tensor, matched_labels: Tensor, gt_classes: Tensor):
        labels = self._without_ignored_background(matched_labels)
        return super()._sample_proposals(matched_idxs, labels, gt_classes)  # type: ignore[misc]


class _CrowdMetaArch:
    def forward(self, batched_inputs: list[dict[str, Any]]):
        crowd = [x.get(CROWD_KEY) for x in batched_inputs] if self.training else None  # type: ignore[attr-defined]
        for head in (getattr(self, "proposal_generator", None), getattr(self, "roi_heads", None)):
            if isinstance(head, _CrowdHead):
                head.crowd = crowd
        return super().forward(batched_inputs)  # type: ignore[misc]


@functools.cache
def _with(mixin: type, cls: type) -> type:
    return type(f"CrowdIgnoring{cls.__name__}", (mixin, cls), {"__module__": cls.__module__})


def ignore_crowds(model: torch.nn.Module) -> torch.nn.Module:
    """Give ``model``'s RPN and ROI heads (where they are detectron2's or derive from them) the crowd handling
    above, in place; weights and state-dict keys stay the same. Logs which heads ignore crowd regions."""
    heads = []
    for name, mixin, base in (("proposal_generator", _CrowdRPN, RPN), ("roi_heads", _CrowdROIHeads, StandardROIHeads)):
        head = getattr(model, name, None)
        if isinstance(head, base) and not isinstance(head, _CrowdHead):
            heads.append(type(head).__name__)
            head.__class__ = _with(mixin, type(head))
    if heads and not isinstance(model, _CrowdMetaArch):
        model.__class__ = _with(_CrowdMetaArch, type(model))
    log.info("crowd regions are ignore regions in: %s", ", ".join(heads) or "no head (left out as instances only)")
    return model
