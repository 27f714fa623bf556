"""A training run as every engine and later stage sees it: its inputs, and a finished run's files."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import parse_options
from ..errors import InputError
from ..formats import read_json
from ..paths import from_root
from .classes import ClassMap, read_class_map
from .config import TrainingConfig
from .layout import RunLayout, TrainingLayout

if TYPE_CHECKING:
    from .data import PasteSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInputs:
    """A run's data, classes and paste source, as every engine consumes them."""

    train: dict[str, Any]
    classes: ClassMap
    paste: PasteSource | None
    seed: int


@dataclass(frozen=True)
class RunOutput:
    """Where a finished run's files are; ``chosen`` names one of its final checkpoints to use instead of the
    evaluation default (``predict --run <checkpoint>``)."""

    name: str
    out_dir: Path
    classes: ClassMap
    checkpoint: Path
    config: TrainingConfig
    pool: Path | None = None
    chosen: Path | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.out_dir)

    @property
    def eval_checkpoint(self) -> Path:
        """The checkpoint to evaluate: ``chosen`` if given, else the truncated one when extra categories were
        trained, else the final one."""
        if self.chosen is not None:
            return self.chosen
        return self.layout.truncated if self.classes.has_extras else self.checkpoint

    @property
    def eval_classes(self) -> ClassMap:
        """The classes of :attr:`eval_checkpoint`: the target ones when it is the truncated checkpoint."""
        return self.classes.truncated() if self.eval_checkpoint == self.layout.truncated else self.classes


def read_run(run_dir: str | os.PathLike) -> RunOutput:
    """The finished run in ``run_dir`` (its ``run.json``, ``classes.json`` and ``model_final.pth``); one line when
    it is not one."""
    layout = RunLayout(Path(run_dir))
    if not layout.run_json.is_file():
        raise InputError(f"{layout.root}: not a training run (no {layout.run_json.name})")
    if not layout.final.is_file():
        raise InputError(f"{layout.root}: the run is not finished (no {layout.final.name})")
    data = read_json(layout.run_json)
    try:
        cfg = parse_options(TrainingConfig, data["training"], str(layout.run_json))
    except KeyError:
        raise InputError(f"{layout.run_json}: not a run description of this project") from None
    classes = read_class_map(layout.classes)
    pool = from_root(data["pool"]) if data.get("pool") else None
    return RunOutput(data["run"], layout.root, classes, layout.final, cfg, pool)


def find_runs(stage_dir: str | os.PathLike) -> list[RunOutput]:
    """The finished runs under ``stage_dir`` (``<output_dir>/training``), in name order."""
    runs = []
    for run_json in TrainingLayout(Path(stage_dir)).run_jsons():
        if not RunLayout(run_json.parent).final.is_file():
            log.info("%s: not finished, skipped", run_json.parent)
            continue
        runs.append(read_run(run_json.parent))
    return runs
