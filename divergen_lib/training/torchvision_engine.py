"""The torchvision engine: Mask R-CNN (ResNet-FPN), trained with generative copy-paste in its Dataset.

Single process or DDP under ``torchrun`` (gloo on CPU, NCCL on GPUs); AMP on CUDA; optional EMA of the
weights (``torch.optim.swa_utils``). Every ``checkpoint_period`` steps ``last.pth`` is rewritten atomically
with model, EMA, optimiser, scheduler and scaler state, and a rerun resumes from it. The torch RNG is reseeded
from ``(seed, rank, step)`` each step and paste randomness comes from stream positions, so on CPU a resumed
run ends with the weights an uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..config import plain_values
from ..distributed import DistInfo, barrier, dist_info, init_process_group, resolve_device, unwrap_ddp
from ..errors import InputError, unreadable_weights_reason
from ..evaluation.results import detections_to_results
from ..formats import image_file, read_image
from .checkpoints import load_checkpoint, save_checkpoint
from .classes import ClassMap
from .config import RUN_FILES, Solver, TestSettings, TorchvisionModel
from .data import TrainingStream, collate, one_line_worker_errors, to_torchvision
from .loss_log import TrainingDiverged, append_loss_row, drop_rows_after
from .sampling import StepPositions, step_seed

log = logging.getLogger(__name__)

ENGINE = "torchvision"


def build_model(cfg: TorchvisionModel, num_classes: int, test: TestSettings | None = None) -> nn.Module:
    """Mask R-CNN with a ResNet-FPN backbone for ``num_classes`` classes (+ background)."""
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
    return MaskRCNN(
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


def lr_factor(step: int, solver: Solver) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up from ``warmup_factor``, then cosine to 0 or steps."""
    if step < solver.warmup_iterations:
        alpha = step / solver.warmup_iterations
        warm = solver.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    if solver.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * step / solver.iterations))
    return warm * 0.1 ** sum(step >= int(f * solver.iterations) for f in solver.steps)


def _optimizer(model: nn.Module, solver: Solver) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if solver.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=solver.lr, weight_decay=solver.weight_decay)
    return torch.optim.SGD(params, lr=solver.lr, momentum=solver.momentum, weight_decay=solver.weight_decay)


@dataclasses.dataclass
class TrainState:
    """Everything a step changes."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    step: int = 0

    def checkpoint(self, classes: ClassMap, model_cfg: TorchvisionModel) -> dict[str, Any]:
        ckpt = {
            "engine": ENGINE,
            "model": unwrap_ddp(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "classes": classes.to_json(),
            "model_config": plain_values(model_cfg),
        }
        if self.ema is not None:
            ckpt["model_ema"] = self.ema.module.state_dict()
        return ckpt

    def restore(self, ckpt: dict[str, Any]) -> None:
        unwrap_ddp(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and "model_ema" in ckpt:
            self.ema.module.load_state_dict(ckpt["model_ema"])
        self.step = int(ckpt["step"])


def train(
    stream: TrainingStream,
    classes: ClassMap,
    model_cfg: TorchvisionModel,
    solver: Solver,
    out_dir: Path,
    seed: int,
    device: str = "auto",
    num_workers: int = 0,
    checkpoint_period: int = 1000,
    log_period: int = 20,
) -> Path:
    """Train (or resume) a run in ``out_dir`` (``last.pth``, ``loss.jsonl``); returns ``model_final.pth``."""
    info = dist_info()
    init_process_group(info)
    dev = torch.device(resolve_device(device, info))
    final = out_dir / RUN_FILES["final"]
    if final.is_file():
        log.info("%s exists; training is complete", final)
        return final
    torch.manual_seed(seed)
    model = build_model(model_cfg, classes.num_classes).to(dev)
    if info.world_size > 1 and dev.type == "cuda" and not model_cfg.frozen_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = _optimizer(model, solver)
    state = TrainState(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, solver)),
        scaler=torch.amp.GradScaler("cuda", enabled=solver.amp and dev.type == "cuda"),
        ema=_ema(model, solver.ema),
    )
    last = out_dir / RUN_FILES["checkpoint"]
    if last.is_file():
        state.restore(load_checkpoint(last, map_location=dev))
        log.info("resuming %s at step %d", out_dir.name, state.step)
    drop_rows_after(out_dir / RUN_FILES["log"], state.step)
    if info.world_size > 1:
        state.model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    loader = DataLoader(
        stream,
        batch_size=solver.batch_size // info.world_size,
        sampler=StepPositions(solver.batch_size, info.rank, info.world_size, state.step, solver.iterations),
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    state.model.train()
    bar = tqdm(total=solver.iterations, initial=state.step, desc=f"train {out_dir.name}", disable=not info.is_main)
    for samples in one_line_worker_errors(loader):
        lr = state.optimizer.param_groups[0]["lr"]
        losses = _step(state, samples, solver, dev, seed, info)
        state.step += 1
        bar.update()
        if info.is_main and (state.step % log_period == 0 or state.step == solver.iterations):
            append_loss_row(out_dir / RUN_FILES["log"], state.step, lr, losses)
            bar.set_postfix(loss=f"{sum(losses.values()):.3f}")
        if state.step % checkpoint_period == 0 or state.step == solver.iterations:
            if info.is_main:
                save_checkpoint(state.checkpoint(classes, model_cfg), last)
            barrier()
    bar.close()
    if info.is_main:
        ckpt = state.checkpoint(classes, model_cfg)
        for key in ("optimizer", "scheduler", "scaler"):
            ckpt.pop(key)
        save_checkpoint(ckpt, final)
    barrier()
    return final


def _ema(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    if decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _step(
    state: TrainState, samples: list, solver: Solver, dev: torch.device, seed: int, info: DistInfo
) -> dict[str, float]:
    torch.manual_seed(step_seed(seed, info.rank, state.step))
    images, targets = zip(*(to_torchvision(s, dev) for s in samples), strict=True)
    with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=state.scaler.is_enabled()):
        loss_dict = state.model(list(images), list(targets))
    loss = sum(loss_dict.values())
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"loss is {loss.item()} at step {state.step} ({ {k: round(v.item(), 4) for k, v in loss_dict.items()} });"
            " lower solver.lr, raise solver.warmup_iterations or set solver.grad_clip"
        )
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if solver.grad_clip:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_value_(state.model.parameters(), solver.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update_parameters(unwrap_ddp(state.model))
    return {k: float(v.detach()) for k, v in loss_dict.items()}


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
    for start in tqdm(range(0, len(images), test.batch_size), desc="predict", unit="batch"):
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
