"""The torchvision engine's model: Mask R-CNN with a ResNet-FPN backbone, built from ``training.model``, and its
checkpoints read back for prediction."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ...distributed import resolve_device
from ...errors import InputError, unreadable_weights_reason
from ..checkpoints import load_checkpoint
from ..classes import ClassMap
from ..config import TestSettings, TorchvisionModel
from .crowd import ignore_crowds

ENGINE = "torchvision"  # the ``engine`` entry of its checkpoints


def build_model(cfg: TorchvisionModel, num_classes: int, test: TestSettings | None = None) -> nn.Module:
    """Mask R-CNN with a ResNet-FPN backbone for ``num_classes`` classes (+ background); crowd regions of the
    targets are ignore regions (:mod:`.crowd`)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
    from torchvision.ops.misc import FrozenBatchNorm2d

    norm = FrozenBatchNorm2d if cfg.frozen_batchnorm else nn.BatchNorm2d
    backbone = resnet_fpn_backbone(
        backbone_name=cfg.backbone, weights=None, norm_layer=norm, trainable_layers=cfg.trainable_layers
    )
    if cfg.backbone_weights is not None:
        _load_backbone_weights(backbone.body, Path(cfg.backbone_weights))
    if cfg.fpn_channels != backbone.out_channels:
        widths = [block[0].in_channels for block in backbone.fpn.inner_blocks]
        backbone.fpn = FeaturePyramidNetwork(widths, cfg.fpn_channels, extra_blocks=LastLevelMaxPool())
        backbone.out_channels = cfg.fpn_channels
    anchors = AnchorGenerator(tuple((s,) for s in cfg.anchor_sizes), ((0.5, 1.0, 2.0),) * len(cfg.anchor_sizes))
    test = test or TestSettings()
    model = MaskRCNN(
        backbone,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=cfg.rpn_proposals_train,
        rpn_post_nms_top_n_train=cfg.rpn_proposals_train,
        box_batch_size_per_image=cfg.roi_batch_size,
        box_predictor=FastRCNNPredictor(1024, num_classes + 1),  # torchvision's TwoMLPHead width
        mask_head=MaskRCNNHeads(cfg.fpn_channels, [cfg.mask_head_channels] * 4, 1),
        mask_predictor=MaskRCNNPredictor(cfg.mask_head_channels, cfg.mask_head_channels, num_classes + 1),
        box_score_thresh=test.score_threshold,
        box_detections_per_img=test.max_detections,
    )
    return ignore_crowds(model)


def _load_backbone_weights(body: nn.Module, path: Path) -> None:
    """An ImageNet ResNet state dict (``.pth`` read with ``weights_only`` or ``.safetensors``); ``fc`` is dropped."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises anything from KeyError to UnpicklingError on a bad file
        raise InputError(f"{path}: not readable as ResNet weights ({unreadable_weights_reason(err)})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict of this ResNet (found {type(state).__name__})")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = body.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise InputError(
            f"{path}: not a state dict of this ResNet (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def load_model(
    path: str | os.PathLike, device: str = "cpu", test: TestSettings | None = None, use_ema: bool = True
) -> tuple[nn.Module, ClassMap]:
    """A torchvision-engine checkpoint as an eval-mode model and its class map (EMA weights when present)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("engine") != ENGINE or "model_config" not in ckpt:
        raise InputError(f"{path}: not a torchvision-engine checkpoint of this project")
    cfg_values = {k: v for k, v in ckpt["model_config"].items() if k != "backbone_weights"}
    cfg = TorchvisionModel(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_values.items()})
    classes = ClassMap.from_json(ckpt["classes"])
    model = build_model(cfg, classes.num_classes, test)
    weights = ckpt["model_ema"] if use_ema and "model_ema" in ckpt else ckpt["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise InputError(f"{path}: weights do not fit the model it describes ({str(err).splitlines()[0]})") from None
    return model.to(resolve_device(device)).eval(), classes
