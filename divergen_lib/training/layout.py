"""The files of a training stage folder: one folder per run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_JSON = "run.json"  # a run's settings: the file that makes a folder a run


@dataclass(frozen=True)
class RunLayout:
    """One run's folder: ``run.json`` (its settings; later stages read the run from it), ``classes.json`` (its
    classifier's categories), ``area_prior.json`` (what a run with pastes sized them by, in the originals' layout),
    ``loss.jsonl``, ``last.pth`` (resumable), ``model_final.pth`` and, when it trained
    extra categories, ``model_final_truncated.pth`` with the target rows only. An engine may keep its own state in
    a subfolder (:meth:`engine_dir`)."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON

    @property
    def classes(self) -> Path:
        return self.root / "classes.json"

    @property
    def area_prior(self) -> Path:
        return self.root / "area_prior.json"

    @property
    def loss_log(self) -> Path:
        return self.root / "loss.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "last.pth"

    @property
    def final(self) -> Path:
        return self.root / "model_final.pth"

    @property
    def truncated(self) -> Path:
        return self.root / "model_final_truncated.pth"

    def engine_dir(self, engine: str) -> Path:
        """Where an engine keeps state of its own (its checkpoints, configs, event logs)."""
        return self.root / engine


@dataclass(frozen=True)
class TrainingLayout:
    """``<run>/`` per training run (:class:`RunLayout`)."""

    root: Path

    def run(self, name: str) -> RunLayout:
        return RunLayout(self.root / name)

    def run_jsons(self) -> list[Path]:
        """The ``run.json`` of every run folder, in name order."""
        return sorted(self.root.glob(f"*/{RUN_JSON}"))
