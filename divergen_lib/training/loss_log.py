"""``loss.jsonl``, the loss log both engines write: one row per logged step with ``step`` (1-based), ``lr`` (the
rate used in that step), ``time``, each loss term and the total ``loss``. Every row is forced to disk; a resumed
run first drops the rows after its checkpoint, so the log never repeats a step."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import deque
from pathlib import Path

from ..formats import append_row, appending


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or spiked far above its recent level."""


DIVERGED_ADVICE = "lower solver.lr, raise solver.warmup_iterations or clip gradients by norm (solver.grad_clip_type)"


class SpikeGuard:
    """Stops a run whose total loss jumps above ``factor`` times the median of its last ``window`` steps (a
    spike a from-scratch run rarely recovers from: it ends at AP 0), once ``window`` steps are seen; ``factor``
    None: never."""

    def __init__(self, factor: float | None, window: int = 50) -> None:
        self.factor, self.recent = factor, deque(maxlen=window)

    def check(self, step: int, total: float) -> None:
        """Record the loss of ``step``; raise :class:`TrainingDiverged` with advice on a spike."""
        if self.factor is not None and len(self.recent) == self.recent.maxlen:
            median = statistics.median(self.recent)
            if total > self.factor * median:
                raise TrainingDiverged(
                    f"loss {total:.4g} at step {step} is {total / median:.0f}x the median of the last "
                    f"{len(self.recent)} steps ({median:.4g}; solver.spike_factor {self.factor}); {DIVERGED_ADVICE}"
                )
        self.recent.append(total)


def append_loss_row(path: Path, step: int, lr: float, losses: dict[str, float], total: float | None = None) -> None:
    """Append the row of ``step``; ``total`` defaults to the sum of ``losses``."""
    row = {"step": step, "lr": lr, "time": time.time(), **losses}
    row["loss"] = sum(losses.values()) if total is None else total
    with appending(path) as fh:
        append_row(fh, row)


def drop_rows_after(path: Path, step: int) -> None:
    """Keep only rows up to ``step`` (a resumed run redoes the steps after its checkpoint); a torn last line goes."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if line.strip() and json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError):
            break
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def read_loss_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a ``loss.jsonl`` (none when it does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
