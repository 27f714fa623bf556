"""The ``evaluate`` stage: every finished training run of a profile, evaluated on its val split
(:mod:`.evaluate`), into each run's folder (:class:`~.layout.EvaluationLayout`); tables and figures of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config
from ..distributed import require_single_process
from ..formats import read_lvis, read_results
from ..stages import ResultList
from ..training.engines import ENGINES
from .config import EvaluationConfig
from .evaluate import RunEvaluation, evaluate_run, selected_runs
from .layout import EvaluationLayout
from .lvis_metrics import METRICS


def run(config: Config) -> ResultList[RunEvaluation]:
    """Evaluate every selected run (``out_dir``: the training stage folder, whose run folders get the files)."""
    require_single_process("the evaluate stage")
    cfg: EvaluationConfig = config.section("evaluation")
    runs = selected_runs(config)
    evaluations = [evaluate_run(r, cfg, config.common.device, config.common.seed) for r in runs]
    return ResultList(evaluations, config.stage_dir("training"))


def summarize(evaluations: list[RunEvaluation]) -> list[dict[str, Any]]:
    """One row per run and IoU type: the detector, the LVIS metrics in percent."""
    rows = []
    for ev in evaluations:
        detector = ENGINES.get(ev.run.config.engine).describe(ev.run.config)
        for iou_type, metrics in ev.metrics.items():
            row = {"run": ev.run.name, "detector": detector, "iou": iou_type}
            row.update({k: round(100 * metrics[k], 2) if metrics[k] >= 0 else None for k in METRICS})
            rows.append(row)
    return rows


def energy_gaps(evaluations: list[RunEvaluation]) -> list[dict[str, Any]]:
    """The train-val gap rows of every run with energies."""
    return [{"run": ev.run.name, **row} for ev in evaluations if ev.energy for row in ev.energy["gap"]]


def save_figures(evaluations: list[RunEvaluation], config: Config) -> dict[str, Path]:
    """Metric bars, per-category AP against training images, qualitative predictions and energy histograms."""
    from ..viz import save_figure
    from .figures import plot_ap_vs_images, plot_energy, plot_metric_bars, plot_predictions

    cfg: EvaluationConfig = config.section("evaluation")
    figures = config.figures_dir
    first = evaluations[0].run.config
    train_categories = read_lvis(first.train.annotations)["categories"]
    iou = "segm" if "segm" in cfg.iou_types else cfg.iou_types[0]
    per_category = {ev.run.name: ev.per_category[iou] for ev in evaluations}
    paths = {
        "metrics": save_figure(plot_metric_bars(summarize(evaluations)), figures / "evaluation_metrics.png"),
        "ap_vs_images": save_figure(
            plot_ap_vs_images(per_category, train_categories, iou), figures / "evaluation_ap_vs_images.png"
        ),
    }
    if cfg.report.examples:
        val = read_lvis(first.val.annotations)
        results = {ev.run.name: read_results(EvaluationLayout(ev.run.out_dir).results) for ev in evaluations}
        names = {c["id"]: c["name"] for c in val["categories"]}
        fig = plot_predictions(results, val["images"][: cfg.report.examples], first.val.image_root, names)
        paths["predictions"] = save_figure(fig, figures / "evaluation_predictions.png")
    energies = {ev.run.name: ev.energy for ev in evaluations if ev.energy}
    if energies:
        paths["energy"] = save_figure(plot_energy(energies), figures / "evaluation_energy.png")
    return paths
