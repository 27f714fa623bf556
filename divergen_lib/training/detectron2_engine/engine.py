"""The detectron2 engine as a plug-in of :data:`~divergen_lib.training.engines.ENGINES` (imports no detectron2 or
torch until it trains, predicts or checks its config)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import InputError
from ...preflight import Check, package_checks, path_checks
from ..engine import ClassLayer, Detector

if TYPE_CHECKING:
    from ..config import TrainingConfig
    from ..layout import RunLayout
    from ..run import RunInputs, RunOutput

INSTALL = "./run_all.sh --setup-only --detectron2 [PATH to a local checkout; GitHub without one]"


def require_detectron2() -> None:
    """One clear line when detectron2 is not installed."""
    try:
        importlib.import_module("detectron2")
    except ImportError as err:
        raise InputError(
            f"training.engine: detectron2 needs detectron2, which cannot be imported ({err}). Build it into .venv: "
            f"{INSTALL} (see detectron2's INSTALL.md), or use engine: torchvision"
        ) from None


class Detectron2Engine:
    """detectron2 R-CNNs: background as the last class row, per-class box deltas and mask logits unless configured
    class-agnostic, and a federated-loss weight per class (``fed_loss_cls_weights``, Detic/DiverGen: ``freq_weight``);
    cascades (CenterNet2) have one box predictor per stage."""

    name = "detectron2"
    background_first = False
    class_layers = (
        ClassLayer(re.compile(r"roi_heads\.box_predictor(\.\d+)?\.cls_score\.(weight|bias)$"), 1, True),
        ClassLayer(re.compile(r"roi_heads\.box_predictor(\.\d+)?\.bbox_pred\.(weight|bias)$"), 4, False),
        ClassLayer(re.compile(r"roi_heads\.mask_head\.predictor\.(weight|bias)$"), 1, False),
        ClassLayer(re.compile(r"roi_heads\.box_predictor(\.\d+)?\.(fed_loss_cls_weights|freq_weight)$"), 1, False),
    )

    def describe(self, cfg: TrainingConfig) -> str:
        return f"{Path(cfg.detectron2.config_file).stem} (detectron2)"

    def validate(self, cfg: TrainingConfig) -> None:
        """Every setting is checked when detectron2 builds the config (preflight and training); the spike check
        is the torchvision engine's (detectron2 stops on a non-finite loss itself)."""
        if cfg.solver.spike_factor is not None:
            raise ValueError("solver.spike_factor: the torchvision engine's check; detectron2's trainer has none")

    def required_inputs(self, cfg: TrainingConfig) -> Iterator[Check]:
        yield from package_checks("detectron2", "detectron2", INSTALL)
        settings = cfg.detectron2
        for folder in settings.project_paths:
            how = "a checkout of the project (e.g. git clone https://github.com/xingyizhou/CenterNet2)"
            yield from path_checks(folder, "detectron2 project checkout", how, folder=True)
        sys.path[:0] = [str(p) for p in settings.project_paths if p.is_dir() and str(p) not in sys.path]
        for module in [*settings.project_modules, *[settings.augmentations or ""]]:
            if name := module.partition(":")[0]:
                how = "put the project's folder in training.detectron2.project_paths (or on PYTHONPATH)"
                yield from package_checks(name, f"detectron2 project module {name}", how)
        if importlib.util.find_spec("detectron2") is None:
            return
        from .d2config import build_config

        try:
            weights = build_config(cfg, 1, "cpu").MODEL.WEIGHTS
        except InputError as err:
            yield Check("detectron2 config", cfg.detectron2.config_file, str(err), False)
            return
        yield from _weights_checks(weights, cfg.detectron2.allow_download)

    def train(self, cfg: TrainingConfig, inputs: RunInputs, run: RunLayout, device: str) -> Path:
        require_detectron2()
        from .trainer import train

        return train(cfg, inputs, run, device)

    def load_detector(self, run: RunOutput, device: str) -> Detector:
        require_detectron2()
        from .inference import Detectron2Detector

        return Detectron2Detector.of_run(run, device)


def _weights_checks(weights: str, allow_download: bool) -> Iterator[Check]:
    """``MODEL.WEIGHTS``: a local file, or a URL that training may fetch only with ``allow_download``."""
    if "://" not in weights:
        yield from path_checks(weights or None, "detectron2 MODEL.WEIGHTS", "a local .pkl/.pth checkpoint")
        return
    how = "set training.detectron2.allow_download: true, or download it and set opts: [MODEL.WEIGHTS, /local/file]"
    yield Check("detectron2 MODEL.WEIGHTS (a download)", weights, how, allow_download)


ENGINE = Detectron2Engine()
