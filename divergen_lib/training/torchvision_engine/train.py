"""Training with the torchvision engine: single process or DDP under ``torchrun``, AMP on CUDA, optional EMA,
atomic resumable checkpoints, torch RNG reseeded from ``(seed, rank, step)`` each step."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...config import method_values
from ...distributed import DistInfo, barrier, dist_info, init_process_group, resolve_device, unwrap_ddp
from ...errors import InputError, unreadable_weights_reason
from ...progress import progress
from ..checkpoints import load_checkpoint, save_checkpoint
from ..classes import ClassMap
from ..config import Solver, TorchvisionModel, TrainingConfig
from ..data import collate, one_line_worker_errors, to_torchvision
from ..layout import RunLayout
from ..loss_log import DIVERGED_ADVICE, SpikeGuard, TrainingDiverged, append_loss_row, drop_rows_after
from ..run import RunInputs
from ..sampling import StepPositions, step_seed
from ..sources import training_stream
from .model import ENGINE, build_model

log = logging.getLogger(__name__)


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
            "model_config": method_values(model_cfg),
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


def train(cfg: TrainingConfig, inputs: RunInputs, run: RunLayout, device: str = "auto") -> Path:
    """Train (or resume) a run in ``run`` (``last.pth``, ``loss.jsonl``); returns ``model_final.pth``."""
    classes, model_cfg, solver, seed = inputs.classes, cfg.model, cfg.solver, inputs.seed
    info = dist_info()
    init_process_group(info)
    dev = torch.device(resolve_device(device, info))
    final = run.final
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
    last = run.checkpoint
    if last.is_file():
        try:
            state.restore(load_checkpoint(last, map_location=dev))
        except (RuntimeError, KeyError, ValueError) as err:  # a checkpoint of another model or optimizer
            if isinstance(err, InputError):
                raise
            raise InputError(
                f"{last}: not a checkpoint of this run's model ({unreadable_weights_reason(err)}); delete it to train "
                "the run from the start"
            ) from None
        log.info("resuming %s at step %d", run.name, state.step)
    drop_rows_after(run.loss_log, state.step)
    if info.world_size > 1:
        state.model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    loader = DataLoader(
        training_stream(cfg, inputs),
        batch_size=solver.batch_size // info.world_size,
        sampler=StepPositions(solver.batch_size, info.rank, info.world_size, state.step, solver.iterations),
        collate_fn=collate,
        num_workers=cfg.num_workers,
        pin_memory=dev.type == "cuda",
    )
    state.model.train()
    bar = progress(total=solver.iterations, initial=state.step, desc=f"train {run.name}", disable=not info.is_main)
    spikes = SpikeGuard(solver.spike_factor)
    for samples in one_line_worker_errors(loader):
        lr = state.optimizer.param_groups[0]["lr"]
        losses = _step(state, samples, solver, dev, seed, info)
        state.step += 1
        if solver.spike_factor is not None:
            spikes.check(state.step, _mean_over_ranks(sum(losses.values()), dev, info))
        bar.update()
        if info.is_main and (state.step % cfg.log_period == 0 or state.step == solver.iterations):
            append_loss_row(run.loss_log, state.step, lr, losses)
            bar.set_postfix(loss=f"{sum(losses.values()):.3f}")
        if state.step % cfg.checkpoint_period == 0 or state.step == solver.iterations:
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


def _mean_over_ranks(value: float, dev: torch.device, info: DistInfo) -> float:
    """``value`` averaged over the ranks (every rank then takes the same decision on it)."""
    if info.world_size == 1:
        return value
    import torch.distributed as dist

    total = torch.tensor([value], dtype=torch.float64, device=dev)
    dist.all_reduce(total)
    return float(total.item()) / info.world_size


def clip_gradients(parameters: Iterable[torch.Tensor], limit: float, by: Literal["value", "norm"]) -> None:
    """Clip gradients in place: each element to +-``limit``, or (``norm``) their joint norm to ``limit``."""
    if by == "norm":
        torch.nn.utils.clip_grad_norm_(parameters, limit)
    else:
        torch.nn.utils.clip_grad_value_(parameters, limit)


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
            f" {DIVERGED_ADVICE}"
        )
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if solver.grad_clip:
        state.scaler.unscale_(state.optimizer)
        clip_gradients(state.model.parameters(), solver.grad_clip, solver.grad_clip_type)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update_parameters(unwrap_ddp(state.model))
    return {k: float(v.detach()) for k, v in loss_dict.items()}
