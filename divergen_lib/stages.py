"""The stage registry: one record per stage, read by the CLI, the params loader, preflight and the notebook runner.

Every target is a ``"module:attribute"`` string, imported only when used, so that loading params or listing
stages imports no torch. Adding a stage means writing its package (config, layout, ``run``, figures, the inputs
preflight checks) and adding one :class:`Stage` line to :data:`STAGES`.

Contract of a stage's targets:

* ``config``: a frozen dataclass, the params section; it imports no torch. Settings that only shape figures and
  tables sit in its ``report`` block, which never reaches a cache key or a settings digest.
* ``run(config: Config) -> StageResult``: does the work (resumable where the stage is long) and returns an object
  with ``out_dir``, the folder it wrote; a stage that works item by item returns a :class:`ManifestResult`, whose
  ``error`` rows are the items that failed (the command line then exits 1; a rerun retries them).
* ``figures(result, config: Config) -> dict[str, Path]``: saves the stage's figures under
  ``<output_dir>/figures/`` (what the notebook shows; ``--figures`` on the command line).
* ``inputs(section) -> Iterator[preflight.Check]``: the datasets, weights and packages the section needs that no
  earlier stage writes (``None`` when it needs none).
* ``layout``: a frozen dataclass built from the stage folder that names every file the stage writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from .registry import Registry

T = TypeVar("T")


class StageResult(Protocol):
    """What every stage's ``run`` returns: at least the folder it wrote."""

    @property
    def out_dir(self) -> Path: ...


@runtime_checkable
class ManifestResult(Protocol):
    """A stage result with one manifest row per item (rank 0; ``None`` on the other torchrun ranks)."""

    @property
    def out_dir(self) -> Path: ...

    @property
    def manifest_path(self) -> Path: ...

    rows: list[dict[str, Any]] | None


def failed_rows(result: StageResult) -> list[dict[str, Any]]:
    """The manifest rows of ``result`` whose item failed (``status: error``); none for other results."""
    if not isinstance(result, ManifestResult):
        return []
    return [row for row in result.rows or [] if row.get("status") == "error"]


class ResultList(list[T]):
    """A stage result that is a list (the training runs, their evaluations) with the folder they are under."""

    def __init__(self, items: Iterable[T], out_dir: Path) -> None:
        super().__init__(items)
        self.out_dir = out_dir


@dataclass(frozen=True)
class Stage:
    """One stage: its CLI verb, params section and where its parts live (``"module:attribute"``)."""

    verb: str
    section: str
    notebook: str
    config: str
    run: str
    figures: str
    layout: str
    inputs: str | None = None


def _stage(verb: str, section: str, notebook: str, prefix: str, inputs: bool) -> Stage:
    """The record of a stage whose package is ``divergen_lib.<section>``, with ``<prefix>Config`` in its
    ``config`` module and ``<prefix>Layout`` in its ``layout`` module."""
    package = f"divergen_lib.{section}"
    return Stage(
        verb=verb,
        section=section,
        notebook=notebook,
        config=f"{package}.config:{prefix}Config",
        run=f"{package}.stage:run",
        figures=f"{package}.stage:save_figures",
        layout=f"{package}.layout:{prefix}Layout",
        inputs=f"{package}.inputs:required_inputs" if inputs else None,
    )


STAGES: Registry[Stage] = Registry(
    "stage",
    {
        s.verb: s
        for s in (
            _stage("toyworld", "toyworld", "00_toyworld", "ToyWorld", inputs=False),
            _stage("analyze", "analysis", "01_distribution_analysis", "Analysis", inputs=True),
            _stage("generate", "generation", "02_generation", "Generation", inputs=True),
            _stage("annotate", "annotation", "03_annotation", "Annotation", inputs=True),
            _stage("filter", "filtration", "04_filtration", "Filtration", inputs=True),
            _stage("train", "training", "05_training", "Training", inputs=True),
            _stage("evaluate", "evaluation", "06_evaluation", "Evaluation", inputs=False),
            _stage("ablate", "ablation", "07_ablations", "Ablation", inputs=False),
        )
    },
)

# params section -> its config dataclass, for the params loader
SECTIONS: Registry[type] = Registry("params section", {STAGES.get(v).section: STAGES.get(v).config for v in STAGES})


def stage_of_section(section: str) -> Stage:
    """The stage whose params section is ``section``."""
    stage = next((s for s in map(STAGES.get, STAGES) if s.section == section), None)
    if stage is None:
        raise KeyError(f"no stage has the params section {section!r}")
    return stage


def stage_of_notebook(stem: str) -> Stage | None:
    """The stage notebook ``stem`` (e.g. ``02_generation``) runs, if it is a registered one."""
    return next((s for s in map(STAGES.get, STAGES) if s.notebook == stem), None)
