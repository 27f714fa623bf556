"""Ignore regions: which candidate boxes (anchors, proposals) lie mostly inside a crowd region, so that neither
engine samples them as background examples (a crowd of objects is not background)."""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_IOF = 0.5


def inside_regions(boxes: Tensor, regions: Tensor | None) -> Tensor:
    """Whether each of ``boxes`` (N×4 ``x0, y0, x1, y1``) has more than :data:`IGNORE_IOF` of its area inside one
    of ``regions`` (R×4, the same coordinates): intersection over the box's own area."""
    if regions is None or not len(regions) or not len(boxes):
        return torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    regions = regions.to(boxes)
    top_left = torch.maximum(boxes[:, None, :2], regions[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6).prod(dim=1)
    return (inter / area[:, None]).max(dim=1).values > IGNORE_IOF
