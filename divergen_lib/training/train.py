"""One training run, whichever engine trains it: its description written first, then trained (or resumed, or
found finished) by the engine ``training.engine`` names, then truncated when it trained extra categories."""

from __future__ import annotations

import contextlib
from typing import Any

from ..config import method_values
from ..distributed import dist_info
from ..errors import InputError
from ..folder_lock import folder_lock
from ..formats import read_json, write_area_prior, write_json
from .classes import write_class_map
from .config import RunSpec, TrainingConfig
from .engines import ENGINES
from .layout import RunLayout
from .run import RunOutput
from .sources import run_inputs
from .truncation import truncate_checkpoint_file

RETRAIN = "give the run a new name, or delete its folder to retrain it"


def train_run(cfg: TrainingConfig, spec: RunSpec, run: RunLayout, profile_seed: int, device: str) -> RunOutput:
    """Train one run (resuming if interrupted) and truncate it when it has extra categories, holding the run
    folder's writer lock (rank 0; :mod:`..folder_lock`): a second process training the same run is refused."""
    with folder_lock(run.root) if dist_info().is_main else contextlib.nullcontext():
        return _train_run(cfg, spec, run, profile_seed, device)


def _train_run(cfg: TrainingConfig, spec: RunSpec, run: RunLayout, profile_seed: int, device: str) -> RunOutput:
    inputs = run_inputs(cfg, spec, profile_seed)
    run_json = method_values({"run": spec.name, "pool": spec.pool, "seed": inputs.seed, "training": cfg})
    _refuse_other_settings(run, run_json, inputs.classes.to_json())
    if dist_info().is_main:
        write_class_map(inputs.classes, run.classes)
        write_json(run_json, run.run_json)
        if inputs.paste is not None:
            write_area_prior(inputs.paste.prior, run.area_prior)
    final = ENGINES.get(cfg.engine).train(cfg, inputs, run, device)
    output = RunOutput(spec.name, run.root, inputs.classes, final, cfg, spec.pool)
    if inputs.classes.has_extras and dist_info().is_main and not output.eval_checkpoint.is_file():
        truncate_checkpoint_file(final, output.eval_checkpoint, inputs.classes, cfg.engine)
    return output


def _refuse_other_settings(run: RunLayout, wanted: dict[str, Any], classes: dict[str, Any]) -> None:
    """A run folder that holds a model keeps the settings and classes it was trained with: training it again with
    others (other than the list of runs) would describe the old model by the new settings, or resume a model of
    other shapes. A model without the ``run.json`` that says how it was made is refused too."""
    if not (run.checkpoint.is_file() or run.final.is_file()):
        return
    if not run.run_json.is_file():
        raise InputError(
            f"run {run.name} in {run.root} holds a model but no {run.run_json.name} saying how it was made; {RETRAIN}"
        )
    changed = _differences(read_json(run.run_json), wanted)
    changed += ["classes"] if run.classes.is_file() and read_json(run.classes) != classes else []
    if changed:
        raise InputError(
            f"run {run.name} in {run.root} was trained with other settings ({', '.join(sorted(changed)[:5])}); "
            + RETRAIN
        )


def _differences(recorded: Any, wanted: Any, key: str = "") -> list[str]:
    """The keys whose values differ (``training.runs`` left out: adding a run changes no trained one)."""
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        keys = (recorded.keys() | wanted.keys()) - {"runs"}
        return [d for k in keys for d in _differences(recorded.get(k), wanted.get(k), f"{key}.{k}".lstrip("."))]
    return [] if recorded == wanted else [key]
