"""Training hooks: the EMA of the weights and the loss log in this project's format."""

from __future__ import annotations

from pathlib import Path

import torch
from detectron2.engine import HookBase

from ..loss_log import append_loss_row


class EMA(HookBase):
    """Exponential moving average of the whole state dict, ``ema = d * ema + (1 - d) * w`` after every step
    (DiverGen's ``ema.py``). A checkpointable: detectron2's checkpoints carry it, so a resumed run continues it."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model, self.decay = model, decay
        self.weights: dict[str, torch.Tensor] = {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.weights

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.weights = state

    def before_train(self) -> None:  # start from the loaded weights unless a checkpoint restored the average
        current = self.model.state_dict()
        source = self.weights or current
        self.weights = {k: source[k].detach().to(v.device, copy=True) for k, v in current.items()}

    @torch.no_grad()
    def after_step(self) -> None:
        for name, value in self.model.state_dict().items():
            average = self.weights[name]
            if average.is_floating_point():
                average.lerp_(value, 1 - self.decay)
            else:
                average.copy_(value)


class LossLog(HookBase):
    """Appends ``{step, lr, time, loss terms, loss}`` rows to ``loss.jsonl`` every ``period`` steps and at the
    last (the torchvision engine's format, see :mod:`.loss_log`)."""

    def __init__(self, path: Path, period: int) -> None:
        self.path, self.period = path, period

    def after_step(self) -> None:
        step = self.trainer.iter + 1
        if step % self.period and step != self.trainer.max_iter:
            return
        latest = self.trainer.storage.latest()
        now = {k: float(v) for k, (v, it) in latest.items() if it == self.trainer.iter}
        losses = {k: v for k, v in now.items() if k.startswith("loss")}
        append_loss_row(self.path, step, now.get("lr"), losses, now["total_loss"])
