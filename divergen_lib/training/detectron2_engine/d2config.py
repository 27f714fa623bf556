"""The detectron2 config of a run: a detectron2 yaml (file or model-zoo name), then our settings, then
``training.detectron2.opts``; and the imports of a detectron2 project (e.g. CenterNet2)."""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import detectron2
import yaml
from detectron2.config import CfgNode, get_cfg

from ...errors import InputError
from ...paths import from_root
from ..config import Detectron2Settings, TrainingConfig

ENGINE = "detectron2"  # the ``engine`` entry of its checkpoints, and its state folder in a run (RunLayout.engine_dir)
CLASS_COUNTS_FILE = "class_image_count.json"
BUILDER_KEY = "AUGMENTATIONS_BUILDER"  # the augmentations builder a run resolved to (.augmentations)
CENTERNET_BUILDER = "centernet.data.custom_build_augmentation:build_custom_augmentation"
log = logging.getLogger(__name__)
# Classifier size, test score threshold: set in every config section that has the key.
NUM_CLASSES_KEYS = ("MODEL.ROI_HEADS.NUM_CLASSES", "MODEL.RETINANET.NUM_CLASSES", "MODEL.CENTERNET.NUM_CLASSES")
SCORE_KEYS = ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "MODEL.RETINANET.SCORE_THRESH_TEST")


def _set_if_present(cfg: CfgNode, key: str, value: Any) -> bool:
    """Set the dotted ``key`` when the config has it; whether it did."""
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node.get(part)
        if not isinstance(node, CfgNode):
            return False
    if leaf not in node:
        return False
    node[leaf] = value
    return True


def _config_file(name: str) -> Path:
    """A detectron2 yaml: a file path (relative ones from the repository root), else a model-zoo name (looked up
    in the installed package; detectron2's ``model_zoo.get_config_file`` needs ``pkg_resources``)."""
    if from_root(name).is_file():
        return from_root(name)
    zoo = Path(detectron2.__file__).parent / "model_zoo" / "configs" / name
    if zoo.is_file():
        return zoo
    raise InputError(f"training.detectron2.config_file: {name!r} is neither a file nor a detectron2 model-zoo config")


def _on_sys_path(folders: list[Path]) -> None:
    """Put project checkouts first on ``sys.path`` (once each), as their own ``train_net.py`` does."""
    for folder in reversed(folders):
        if not folder.is_dir():
            raise InputError(f"training.detectron2.project_paths: {folder} is not a folder (a project checkout)")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def project_function(entry: str, key: str) -> Any:
    """The function of a ``module:function`` entry, imported; one line when it cannot be."""
    name, _, function = entry.partition(":")
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        hint = "pip install clip-anytorch" if err.name == "clip" else "put the project's folder in project_paths"
        raise InputError(f"training.detectron2.{key}: cannot import {name!r} ({err}); {hint}") from None
    if function and not callable(getattr(module, function, None)):
        raise InputError(f"training.detectron2.{key}: {name} has no function {function!r}")
    return getattr(module, function) if function else None


def import_project(settings: Detectron2Settings, d2: CfgNode | None = None) -> None:
    """Import ``settings.project_modules`` (registering a project's architectures, e.g. CenterNet2's) from
    PYTHONPATH or ``project_paths`` and, given a config, call their ``module:function`` entries on it (e.g.
    ``centernet.config:add_centernet_config``)."""
    _on_sys_path(settings.project_paths)
    for entry in settings.project_modules:
        function = project_function(entry, "project_modules")
        if function is not None and d2 is not None:
            function(d2)


def _project_file(name: str, projects: list[Path]) -> str:
    """A relative file named by a project's config (``models/swin_large_patch4_window12_384_22k.pkl``) is
    relative to the project's checkout, where its ``train_net.py`` runs: the first of ``projects`` holding it, else
    the last (where preflight says it is missing); absolute, empty or found from here, it stays as it is."""
    if not name or Path(name).is_absolute() or Path(name).exists() or not projects:
        return name
    return str(next((p / name for p in projects if (p / name).exists()), projects[-1] / name))


def builder_entry(d2: CfgNode, augmentations: str | None) -> str:
    """The ``module:function`` building a config's augmentations: the setting, else CenterNet2's builder when
    the config sets ``INPUT.CUSTOM_AUG``, else "" (detectron2's own)."""
    return augmentations or (CENTERNET_BUILDER if d2.INPUT.get("CUSTOM_AUG") else "")


@dataclass(frozen=True)
class TrainSetup:
    """What only training sets: the registered dataset, where detectron2 writes, the seed."""

    dataset: str
    state_dir: Path
    seed: int


def build_config(cfg: TrainingConfig, num_classes: int, device: str, train: TrainSetup | None = None) -> CfgNode:
    """The detectron2 config of a run: the config file (extra keys allowed), then our settings, then
    ``training.detectron2.opts``, which win. Without ``train``, an inference config (no federated loss)."""
    d2 = get_cfg()
    import_project(cfg.detectron2, d2)
    d2.set_new_allowed(True)
    try:  # detectron2 would fall back to yaml.unsafe_load, which runs python tags
        d2.merge_from_file(str(_config_file(cfg.detectron2.config_file)), allow_unsafe=False)
    except (OSError, KeyError, ValueError, AssertionError, yaml.YAMLError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"training.detectron2.config_file {cfg.detectron2.config_file}: {reason}") from None
    for key in NUM_CLASSES_KEYS:
        _set_if_present(d2, key, num_classes)
    for key in SCORE_KEYS:
        _set_if_present(d2, key, cfg.test.score_threshold)
    d2.TEST.DETECTIONS_PER_IMAGE = cfg.test.max_detections
    d2.MODEL.DEVICE = device
    if train is not None:
        _set_training(d2, cfg, train)
    try:
        d2.merge_from_list(list(cfg.detectron2.opts))
    except (KeyError, ValueError, AssertionError) as err:
        raise InputError(f"training.detectron2.opts: {err}") from None
    _set_precision(d2, device)
    d2[BUILDER_KEY] = builder_entry(d2, cfg.detectron2.augmentations)
    if "://" not in d2.MODEL.WEIGHTS:
        d2.MODEL.WEIGHTS = _project_file(d2.MODEL.WEIGHTS, cfg.detectron2.project_paths)
    if train is None:
        _set_if_present(d2, "MODEL.ROI_BOX_HEAD.USE_FED_LOSS", False)
    elif "://" in d2.MODEL.WEIGHTS and not cfg.detectron2.allow_download:
        raise InputError(
            f"training.detectron2: MODEL.WEIGHTS {d2.MODEL.WEIGHTS} would be downloaded and downloads are off; set "
            "training.detectron2.allow_download: true, or give a local file: opts: [MODEL.WEIGHTS, /path/to/file]"
        )
    d2.freeze()
    return d2


def _set_precision(d2: CfgNode, device: str) -> None:
    """The originals' ``FP16`` (half-precision backbone, gradient scaling): detectron2's AMP on CUDA, which
    scales the gradients; off on CPU, where half-precision convolutions do not run."""
    if not d2.get("FP16", False):
        return
    if device.startswith("cuda"):
        d2.SOLVER.AMP.ENABLED = True
        log.info("FP16: mixed precision with detectron2's AMP (gradient scaling)")
    else:
        d2.FP16 = False
        log.info("FP16 of the config is off on %s (half precision needs CUDA)", device)


def _set_training(d2: CfgNode, cfg: TrainingConfig, train: TrainSetup) -> None:
    solver = cfg.solver
    d2.SOLVER.IMS_PER_BATCH = solver.batch_size
    d2.SOLVER.BASE_LR = solver.lr
    d2.SOLVER.MAX_ITER = solver.iterations
    d2.SOLVER.WARMUP_ITERS = solver.warmup_iterations
    d2.SOLVER.WARMUP_FACTOR = solver.warmup_factor
    d2.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR" if solver.schedule == "cosine" else "WarmupMultiStepLR"
    d2.SOLVER.STEPS = tuple(int(f * solver.iterations) for f in solver.steps)
    d2.SOLVER.OPTIMIZER = solver.optimizer.upper()  # Detic/CenterNet2's key; read by Trainer.build_optimizer
    d2.SOLVER.MOMENTUM = solver.momentum
    d2.SOLVER.WEIGHT_DECAY = solver.weight_decay
    d2.SOLVER.CLIP_GRADIENTS.ENABLED = bool(solver.grad_clip)
    if solver.grad_clip:
        d2.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = solver.grad_clip_type
        d2.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = solver.grad_clip
    d2.SOLVER.AMP.ENABLED = solver.amp and d2.MODEL.DEVICE.startswith("cuda")
    d2.SOLVER.CHECKPOINT_PERIOD = cfg.checkpoint_period
    threshold = cfg.repeat_factor_threshold
    d2.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler" if threshold else "TrainingSampler"
    d2.DATALOADER.REPEAT_THRESHOLD = threshold or 0.0
    d2.DATALOADER.NUM_WORKERS = cfg.num_workers
    d2.DATASETS.TRAIN = (train.dataset,)
    d2.DATASETS.TEST = ()  # evaluation is the evaluation stage's job
    d2.TEST.EVAL_PERIOD = 0
    federated = cfg.detectron2.federated_loss
    if _set_if_present(d2, "MODEL.ROI_BOX_HEAD.USE_FED_LOSS", federated) and federated:
        _set_if_present(d2, "MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE", True)  # detectron2's federated loss needs it
        _set_if_present(d2, "MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH", str(train.state_dir / CLASS_COUNTS_FILE))  # Detic
    d2.OUTPUT_DIR = str(train.state_dir)
    d2.SEED = train.seed
