"""The ``train`` stage: every run of the ``training`` section, each in ``<output_dir>/training/<run>/``.

A run writes ``run.json`` (its settings, all later stages need to use it), ``classes.json`` (its classifier's
categories), ``loss.jsonl``, ``last.pth`` (resumable), ``model_final.pth`` and, when it trained extra
categories, ``model_final_truncated.pth`` with the target rows only. Finished runs are skipped, interrupted
ones resume; :func:`find_runs` lists the finished runs of a profile, whichever params file trained them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..categories import read_category_metadata
from ..config import Config, DatasetSplit, parse_options, plain_values
from ..distributed import dist_info
from ..errors import InputError
from ..formats import (
    PoolEntry,
    image_file,
    read_instance_pool,
    read_json,
    read_lvis,
    resolve_pool_paths,
    write_json,
)
from ..paste import area_prior
from .classes import ClassMap, build_class_map, pool_by_category, read_class_map, write_class_map
from .config import RUN_FILES, RunSpec, TrainingConfig, run_dir
from .data import PasteSource, PoolCrops, TrainingStream
from .sampling import RepeatFactorStream, repeat_factors
from .truncation import truncate_checkpoint_file

log = logging.getLogger(__name__)


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
    def eval_checkpoint(self) -> Path:
        """The checkpoint to evaluate: the truncated one when extra categories were trained."""
        return self.out_dir / RUN_FILES["truncated"] if self.classes.has_extras else self.checkpoint


@dataclass(frozen=True)
class RunInputs:
    """A run's data, classes and paste source, as both engines consume them."""

    train: dict[str, Any]
    classes: ClassMap
    paste: PasteSource | None
    seed: int


def run_inputs(cfg: TrainingConfig, spec: RunSpec, profile_seed: int) -> RunInputs:
    """Read the training json and the run's pool; decide its classes. A missing training image or pool file is an
    error here, before anything is written or trained (images and crops are read only when drawn)."""
    train = read_lvis(cfg.train.annotations)
    _check_images_exist(train, cfg.train)
    metadata = read_category_metadata(cfg.categories) if cfg.categories else None
    pool = resolve_pool_paths(read_instance_pool(spec.pool), spec.pool.parent) if spec.pool else None
    pool_name = f"instance pool {spec.pool}"
    classes = build_class_map(train["categories"], metadata, pool, spec.extra_categories, pool_name)
    paste = None
    if pool is not None:
        by_category = pool_by_category(pool, metadata or train["categories"], classes, pool_name)
        _check_pool_files_exist(by_category, pool_name)
        crops = {cid: PoolCrops(entries) for cid, entries in by_category.items()}
        paste = PasteSource(crops, area_prior(train), cfg.paste)
    return RunInputs(train, classes, paste, spec.seed if spec.seed is not None else profile_seed)


def _check_images_exist(train: dict[str, Any], split: DatasetSplit) -> None:
    missing = [path for path in (image_file(img, split.image_root) for img in train["images"]) if not path.is_file()]
    if missing:
        raise InputError(
            f"{split.annotations}: {len(missing)} of its {len(train['images'])} images are not under "
            f"training.train.image_root {split.image_root} (first: {missing[0]})"
        )


def _check_pool_files_exist(by_category: dict[int, list[PoolEntry]], pool_name: str) -> None:
    for cid, entries in by_category.items():
        for entry in entries:
            for path in (entry.path, entry.mask_path):
                if path is not None and not os.path.isfile(path):
                    raise InputError(f"{pool_name}: file of an entry of category {cid} not found: {path}")


def training_stream(cfg: TrainingConfig, inputs: RunInputs) -> TrainingStream:
    """The torchvision Dataset of a run (repeat-factor stream, flip, paste)."""
    threshold = cfg.repeat_factor_threshold
    factors = repeat_factors(inputs.train, threshold) if threshold else np.ones(len(inputs.train["images"]))
    stream = RepeatFactorStream(factors, inputs.seed)
    return TrainingStream(
        inputs.train, cfg.train.image_root, inputs.classes, stream, inputs.paste, cfg.horizontal_flip, inputs.seed
    )


def train_run(cfg: TrainingConfig, spec: RunSpec, out_dir: Path, profile_seed: int, device: str) -> RunOutput:
    """Train one run (resuming if interrupted) and truncate it when it has extra categories."""
    inputs = run_inputs(cfg, spec, profile_seed)
    if dist_info().is_main:
        write_class_map(inputs.classes, out_dir / RUN_FILES["classes"])
        run_json = {"run": spec.name, "pool": spec.pool, "seed": inputs.seed, "training": cfg}
        write_json(plain_values(run_json), out_dir / RUN_FILES["run"])
    if cfg.engine == "detectron2":
        from . import detectron2_engine

        final = detectron2_engine.train(cfg, inputs, out_dir, device)
    else:
        from . import torchvision_engine

        final = torchvision_engine.train(
            training_stream(cfg, inputs),
            inputs.classes,
            cfg.model,
            cfg.solver,
            out_dir,
            seed=inputs.seed,
            device=device,
            num_workers=cfg.num_workers,
            checkpoint_period=cfg.checkpoint_period,
            log_period=cfg.log_period,
        )
    output = RunOutput(spec.name, out_dir, inputs.classes, final, cfg, spec.pool)
    if inputs.classes.has_extras and dist_info().is_main and not output.eval_checkpoint.is_file():
        truncate_checkpoint_file(final, output.eval_checkpoint, inputs.classes, cfg.engine)
    return output


def run(config: Config) -> list[RunOutput]:
    """Train every run of the ``training`` section in order."""
    cfg: TrainingConfig = config.section("training")
    if not cfg.runs:
        raise InputError(f"{config.path}: training.runs is empty; name at least one run")
    stage_dir = config.stage_dir("training")
    return [
        train_run(cfg, spec, run_dir(stage_dir, spec.name), config.common.seed, config.common.device)
        for spec in cfg.runs
    ]


def find_runs(stage_dir: str | os.PathLike) -> list[RunOutput]:
    """The finished runs under ``stage_dir`` (``<output_dir>/training``), in name order."""
    runs = []
    for run_json in sorted(Path(stage_dir).glob(f"*/{RUN_FILES['run']}")):
        out_dir = run_json.parent
        final = out_dir / RUN_FILES["final"]
        if not final.is_file():
            log.info("%s: not finished, skipped", out_dir)
            continue
        data = read_json(run_json)
        try:
            cfg = parse_options(TrainingConfig, data["training"], str(run_json))
        except KeyError:
            raise InputError(f"{run_json}: not a run description of this project") from None
        classes = read_class_map(out_dir / RUN_FILES["classes"])
        pool = Path(data["pool"]) if data.get("pool") else None
        runs.append(RunOutput(data["run"], out_dir, classes, final, cfg, pool))
    return runs


def summarize(runs: list[RunOutput]) -> list[dict[str, Any]]:
    """One row per run: its pool, classes (target + extra), steps, last logged loss, evaluation checkpoint."""
    from .loss_log import read_loss_log

    rows = []
    for r in runs:
        log_rows = read_loss_log(r.out_dir / RUN_FILES["log"])
        rows.append(
            {
                "run": r.name,
                "engine": r.config.engine,
                "pool": str(r.pool) if r.pool else None,
                "target classes": len(r.classes.targets),
                "extra classes": r.classes.num_classes - len(r.classes.targets),
                "steps": log_rows[-1]["step"] if log_rows else None,
                "last loss": round(log_rows[-1]["loss"], 3) if log_rows else None,
                "evaluated checkpoint": r.eval_checkpoint.name,
            }
        )
    return rows


def save_paste_examples(config: Config) -> Path | None:
    """The first training samples of the first run with a pool, pasted instances outlined (None without a pool)."""
    from ..viz import save_figure
    from .figures import plot_paste_examples

    cfg: TrainingConfig = config.section("training")
    spec = next((s for s in cfg.runs if s.pool is not None), None)
    if spec is None or not cfg.paste_examples:
        return None
    inputs = run_inputs(cfg, spec, config.common.seed)
    stream = training_stream(cfg, inputs)
    samples = [stream[position] for position in range(cfg.paste_examples)]
    title = f"run {spec.name}: training samples as the model sees them, pasted instances outlined in white"
    fig = plot_paste_examples(samples, inputs.classes.names, title)
    return save_figure(fig, config.common.output_dir / "figures" / "training_paste_examples.png")


def save_loss_curves(runs: list[RunOutput], config: Config) -> Path:
    """Loss curves of ``runs``, one line per run."""
    from ..viz import save_figure
    from .figures import plot_loss_curves
    from .loss_log import read_loss_log

    logs = {r.name: read_loss_log(r.out_dir / RUN_FILES["log"]) for r in runs}
    return save_figure(plot_loss_curves(logs), config.common.output_dir / "figures" / "training_loss.png")
