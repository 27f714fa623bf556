"""Evaluating one finished training run: its LVIS results on its val split, the LVIS metrics, and the free
energies of its classifier on ground-truth boxes (:class:`~.layout.EvaluationLayout` names the files).

A file is recomputed only when the checkpoint is newer or the settings it was made with changed, so a rerun after
an interruption or after a new run was trained evaluates only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..distributed import available_cores
from ..errors import InputError
from ..formats import read_json, read_lvis, read_results, write_json, write_results
from ..training.engine import Detector
from ..training.engines import ENGINES
from ..training.run import RunOutput, find_runs
from .config import EvaluationConfig
from .energy import gt_energies, sample_images, train_val_gap
from .layout import EvaluationLayout
from .metrics_file import metrics_record


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
        self.run, self.device = run, device
        self._detector: Detector | None = None

    def get(self) -> Detector:
        if self._detector is None:
            self._detector = ENGINES.get(self.run.config.engine).load_detector(self.run, self.device)
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
    path = EvaluationLayout(run.out_dir).results
    if path.is_file() and path.stat().st_mtime_ns >= run.eval_checkpoint.stat().st_mtime_ns:
        return read_results(path)
    val = read_lvis(run.config.val.annotations)
    results = detector.get().predict(val["images"], run.config.val.image_root)
    write_results(results, path, run.config.test.max_detections)
    return results


def _metrics(run: RunOutput, cfg: EvaluationConfig, detector: _LazyDetector) -> dict[str, Any]:
    path = EvaluationLayout(run.out_dir).metrics
    expected = {**_stamp(run), "backend": cfg.backend, "iou_types": list(cfg.iou_types)}
    data = _fresh(path, expected)
    if data is None:
        results = _results(run, detector)
        workers = cfg.workers or available_cores()
        data = expected | metrics_record(
            run.config.val.annotations, results, cfg.iou_types, cfg.backend, workers=workers
        )
        write_json(data, path)
    return data


def _energy(run: RunOutput, cfg: EvaluationConfig, seed: int, detector: _LazyDetector) -> dict[str, Any]:
    path = EvaluationLayout(run.out_dir).energy
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
