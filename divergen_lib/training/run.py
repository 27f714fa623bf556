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
    """Where a finished run's files are."""

    name: str
    out_dir: Path
    classes: ClassMap
    checkpoint: Path
    config: TrainingConfig
    pool: Path | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.out_dir)

    @property
    def eval_checkpoint(self) -> Path:
        """The checkpoint to evaluate: the truncated one when extra categories were trained."""
        return self.layout.truncated if self.classes.has_extras else self.checkpoint


def find_runs(stage_dir: str | os.PathLike) -> list[RunOutput]:
    """The finished runs under ``stage_dir`` (``<output_dir>/training``), in name order."""
    runs = []
    for run_json in TrainingLayout(Path(stage_dir)).run_jsons():
        layout = RunLayout(run_json.parent)
        if not layout.final.is_file():
            log.info("%s: not finished, skipped", layout.root)
            continue
        data = read_json(run_json)
        try:
            cfg = parse_options(TrainingConfig, data["training"], str(run_json))
        except KeyError:
            raise InputError(f"{run_json}: not a run description of this project") from None
        classes = read_class_map(layout.classes)
        pool = Path(data["pool"]) if data.get("pool") else None
        runs.append(RunOutput(data["run"], layout.root, classes, layout.final, cfg, pool))
    return runs
