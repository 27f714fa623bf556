"""The ``train`` stage: every run of the ``training`` section (:func:`.train.train_run`), each in its folder of
``<output_dir>/training/`` (:class:`~.layout.RunLayout`). Finished runs are skipped, interrupted ones resume;
:func:`.run.find_runs` lists the finished runs of a profile, whichever params file trained them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..stages import ResultList
from .config import TrainingConfig
from .layout import TrainingLayout
from .loss_log import read_loss_log
from .run import RunOutput
from .train import train_run


def run(config: Config) -> ResultList[RunOutput]:
    """Train every run of the ``training`` section in order."""
    cfg: TrainingConfig = config.section("training")
    if not cfg.runs:
        raise InputError(f"{config.path}: training.runs is empty; name at least one run")
    layout = TrainingLayout(config.stage_dir("training"))
    runs = [train_run(cfg, spec, layout.run(spec.name), config.common.seed, config.common.device) for spec in cfg.runs]
    return ResultList(runs, layout.root)


def summarize(runs: list[RunOutput]) -> list[dict[str, Any]]:
    """One row per run: its pool, classes (target + extra), steps, last logged loss, evaluation checkpoint."""
    rows = []
    for r in runs:
        log_rows = read_loss_log(r.layout.loss_log)
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
    from .sources import run_inputs, training_stream

    cfg: TrainingConfig = config.section("training")
    spec = next((s for s in cfg.runs if s.pool is not None), None)
    if spec is None or not cfg.report.paste_examples:
        return None
    inputs = run_inputs(cfg, spec, config.common.seed)
    stream = training_stream(cfg, inputs)
    samples = [stream[position] for position in range(cfg.report.paste_examples)]
    title = f"run {spec.name}: training samples as the model sees them, pasted instances outlined in white"
    fig = plot_paste_examples(samples, inputs.classes.names, title)
    return save_figure(fig, config.figures_dir / "training_paste_examples.png")


def save_loss_curves(runs: list[RunOutput], config: Config) -> Path:
    """Loss curves of ``runs``, one line per run."""
    from ..viz import save_figure
    from .figures import plot_loss_curves

    logs = {r.name: read_loss_log(r.layout.loss_log) for r in runs}
    return save_figure(plot_loss_curves(logs), config.figures_dir / "training_loss.png")


def save_figures(runs: list[RunOutput], config: Config) -> dict[str, Path]:
    """The paste examples (when a run has a pool) and the loss curves."""
    paths = {"loss": save_loss_curves(runs, config)}
    examples = save_paste_examples(config)
    if examples is not None:
        paths["paste_examples"] = examples
    return paths
