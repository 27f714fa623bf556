"""The ``evaluate`` stage: every finished training run of a profile, evaluated on its val split.

Per run (in ``<output_dir>/training/<run>/``): ``results_val.json`` (LVIS results of the evaluation
checkpoint), ``metrics.json`` (LVIS AP per IoU type and per category) and ``energy.json`` (free energies on
ground-truth boxes of train and val images, and the train-val gap). A file is recomputed only when the
checkpoint is newer or the settings it was made with changed, so a rerun after an interruption or after a
new run was trained evaluates only what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..distributed import require_single_process
from ..errors import InputError
from ..formats import read_json, read_lvis, write_json
from ..training.config import RUN_FILES
from ..training.stage import RunOutput, find_runs
from .config import EvaluationConfig
from .detectors import Detector, load_detector
from .energy import gt_energies, sample_images, train_val_gap
from .lvis_metrics import METRICS, evaluate_lvis_detailed
from .results import read_results, write_results

log = logging.getLogger(__name__)


@dataclass
class RunEvaluation:
    """A run's metrics (``iou_type -> metric -> value``), per-category AP and energies."""

    run: RunOutput
    metrics: dict[str, dict[str, float]]
    per_category: dict[str, dict[int, float]]
    energy: dict[str, Any] | None


class _LazyDetector:
    """Loads the run's detector on first use, so fully evaluated runs never load weights."""

    def __init__(self, run: RunOutput, device: str) -> None:
        self.run, self.device, self._detector = run, device, None

    def get(self) -> Detector:
        if self._detector is None:
            self._detector = load_detector(self.run, self.device)
        return self._detector


def _stamp(run: RunOutput) -> dict[str, Any]:
    checkpoint = run.eval_checkpoint
    return {"checkpoint": checkpoint.name, "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns}


def _fresh(path: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The json at ``path`` if it was made with ``expected`` (checkpoint and settings), else None."""
    if not path.is_file():
        return None
    data = read_json(path)
    return data if all(data.get(k) == v for k, v in expected.items()) else None


def _results(run: RunOutput, detector: _LazyDetector) -> list[dict[str, Any]]:
    path = run.out_dir / RUN_FILES["results"]
    if path.is_file() and path.stat().st_mtime_ns >= run.eval_checkpoint.stat().st_mtime_ns:
        return read_results(path)
    val = read_lvis(run.config.val.annotations)
    results = detector.get().predict(val["images"], run.config.val.image_root)
    write_results(results, path, run.config.test.max_detections)
    return results


def _metrics(run: RunOutput, cfg: EvaluationConfig, detector: _LazyDetector) -> dict[str, Any]:
    path = run.out_dir / RUN_FILES["metrics"]
    expected = {**_stamp(run), "backend": cfg.backend, "iou_types": list(cfg.iou_types)}
    data = _fresh(path, expected)
    if data is None:
        results = _results(run, detector)
        data = dict(expected)
        for iou_type in cfg.iou_types:
            evaluation = evaluate_lvis_detailed(run.config.val.annotations, results, iou_type, cfg.backend)
            data[iou_type] = evaluation.metrics
            data[f"{iou_type}_per_category"] = {str(k): v for k, v in evaluation.per_category.items()}
        write_json(data, path)
    return data


def _energy(run: RunOutput, cfg: EvaluationConfig, seed: int, detector: _LazyDetector) -> dict[str, Any]:
    path = run.out_dir / RUN_FILES["energy"]
    settings = cfg.energy
    expected = {**_stamp(run), "tau": settings.tau, "max_images": settings.max_images, "seed": seed}
    data = _fresh(path, expected)
    if data is None:
        data = dict(expected)
        index = {cid: i for i, cid in enumerate(run.classes.truncated().category_ids)}
        for split in ("train", "val"):
            source = getattr(run.config, split)
            dataset = read_lvis(source.annotations)
            images = sample_images(dataset, settings.max_images, seed)
            data[split] = gt_energies(
                detector.get().box_logits, dataset, images, source.image_root, index, settings.tau, f"energy {split}"
            )
        data["gap"] = train_val_gap(data["train"], data["val"])
        write_json(data, path)
    return data


def evaluate_run(run: RunOutput, cfg: EvaluationConfig, device: str, seed: int) -> RunEvaluation:
    """Metrics (and energies when enabled) of one finished run, reusing up-to-date files."""
    detector = _LazyDetector(run, device)
    metrics = _metrics(run, cfg, detector)
    energy = _energy(run, cfg, seed, detector) if cfg.energy.enabled else None
    return RunEvaluation(
        run,
        {t: metrics[t] for t in cfg.iou_types},
        {t: {int(k): v for k, v in metrics[f"{t}_per_category"].items()} for t in cfg.iou_types},
        energy,
    )


def selected_runs(config: Config) -> list[RunOutput]:
    """The finished runs of the profile that the ``evaluation`` section asks for."""
    cfg: EvaluationConfig = config.section("evaluation")
    runs = find_runs(config.stage_dir("training"))
    if cfg.runs is not None:
        by_name = {r.name: r for r in runs}
        missing = [name for name in cfg.runs if name not in by_name]
        if missing:
            raise InputError(
                f"evaluation.runs: no finished run {missing} under {config.stage_dir('training')} "
                f"(finished: {sorted(by_name) or 'none'}); train it first"
            )
        runs = [by_name[name] for name in cfg.runs]
    if not runs:
        raise InputError(f"no finished training run under {config.stage_dir('training')}; run notebook 05 first")
    return runs


def run(config: Config) -> list[RunEvaluation]:
    """Evaluate every selected run."""
    require_single_process("the evaluate stage")
    cfg: EvaluationConfig = config.section("evaluation")
    return [evaluate_run(r, cfg, config.common.device, config.common.seed) for r in selected_runs(config)]


def summarize(evaluations: list[RunEvaluation]) -> list[dict[str, Any]]:
    """One row per run and IoU type: the LVIS metrics in percent."""
    rows = []
    for ev in evaluations:
        for iou_type, metrics in ev.metrics.items():
            row = {"run": ev.run.name, "iou": iou_type}
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
    figures = config.common.output_dir / "figures"
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
    if cfg.examples:
        val = read_lvis(first.val.annotations)
        results = {ev.run.name: read_results(ev.run.out_dir / RUN_FILES["results"]) for ev in evaluations}
        names = {c["id"]: c["name"] for c in val["categories"]}
        fig = plot_predictions(results, val["images"][: cfg.examples], first.val.image_root, names)
        paths["predictions"] = save_figure(fig, figures / "evaluation_predictions.png")
    energies = {ev.run.name: ev.energy for ev in evaluations if ev.energy}
    if energies:
        paths["energy"] = save_figure(plot_energy(energies), figures / "evaluation_energy.png")
    return paths
