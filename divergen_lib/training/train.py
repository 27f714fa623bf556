"""One training run, whichever engine trains it: its description written first, then trained (or resumed, or
found finished) by the engine ``training.engine`` names, then truncated when it trained extra categories."""

from __future__ import annotations

from ..config import method_values
from ..distributed import dist_info
from ..formats import write_json
from .classes import write_class_map
from .config import RunSpec, TrainingConfig
from .engines import ENGINES
from .layout import RunLayout
from .run import RunOutput
from .sources import run_inputs
from .truncation import truncate_checkpoint_file


def train_run(cfg: TrainingConfig, spec: RunSpec, run: RunLayout, profile_seed: int, device: str) -> RunOutput:
    """Train one run (resuming if interrupted) and truncate it when it has extra categories."""
    inputs = run_inputs(cfg, spec, profile_seed)
    if dist_info().is_main:
        write_class_map(inputs.classes, run.classes)
        run_json = {"run": spec.name, "pool": spec.pool, "seed": inputs.seed, "training": cfg}
        write_json(method_values(run_json), run.run_json)
    final = ENGINES.get(cfg.engine).train(cfg, inputs, run, device)
    output = RunOutput(spec.name, run.root, inputs.classes, final, cfg, spec.pool)
    if inputs.classes.has_extras and dist_info().is_main and not output.eval_checkpoint.is_file():
        truncate_checkpoint_file(final, output.eval_checkpoint, inputs.classes, cfg.engine)
    return output
