"""Parameters of the training stage (the ``training`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from ..config import DatasetSplit, InputPath, check_name, check_named_list
from ..paste import PasteConfig
from ..registry import Choice
from .engines import ENGINES


@dataclass(frozen=True)
class TorchvisionModel:
    """torchvision Mask R-CNN. From scratch (``backbone_weights: null``) BatchNorm must be trainable (frozen BN
    with random statistics diverges to NaN) and ``min_size``/``max_size`` must be set, or images are upscaled
    to 800 px. ``backbone_weights``: a local ImageNet state dict (.pth/.safetensors) of the ResNet.
    ``fpn_channels``, ``mask_head_channels`` (its four convolutions), ``rpn_proposals_train`` (kept before and
    after NMS) and ``roi_batch_size`` (sampled RoIs per image) default to torchvision's values; smaller ones make
    small-image CPU runs many times faster (the mask head dominates inference with 300 detections per image)."""

    backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet50"
    backbone_weights: InputPath | None = None
    frozen_batchnorm: bool = False
    trainable_layers: int = 5
    min_size: int = 800
    max_size: int = 1333
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    fpn_channels: int = 256
    mask_head_channels: int = 256
    rpn_proposals_train: int = 2000
    roi_batch_size: int = 512

    def __post_init__(self) -> None:
        if min(self.fpn_channels, self.mask_head_channels, self.rpn_proposals_train, self.roi_batch_size) < 1:
            raise ValueError("fpn_channels, mask_head_channels, rpn_proposals_train and roi_batch_size must be >= 1")
        if len(self.anchor_sizes) != 5:
            raise ValueError("anchor_sizes needs one size per FPN level (5)")
        if not 0 <= self.trainable_layers <= 5:
            raise ValueError("trainable_layers must be within 0..5")
        if self.min_size < 32 or self.max_size < self.min_size:
            raise ValueError("min_size must be >= 32 and max_size >= min_size")


@dataclass(frozen=True)
class Solver:
    """Optimisation: ``iterations`` steps of ``batch_size`` images (over all processes), linear warm-up, then
    a cosine or step decay; gradient clipping when ``grad_clip`` is set, each element to +-grad_clip
    (``grad_clip_type: value``, detectron2's default) or the whole gradient to norm grad_clip (``norm``);
    ``spike_factor`` (torchvision engine) stops a run whose loss jumps above that many times its recent median."""

    iterations: int = 90000
    batch_size: int = 16
    lr: float = 0.02
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iterations: int = 1000
    warmup_factor: float = 1e-3
    schedule: Literal["cosine", "step"] = "cosine"
    steps: tuple[float, ...] = (0.67, 0.89)
    grad_clip: float | None = None
    grad_clip_type: Literal["value", "norm"] = "value"
    spike_factor: float | None = None
    amp: bool = True
    ema: float = 0.0

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError("iterations and batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError("ema must be in [0, 1)")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError("grad_clip must be > 0 (or null: no clipping)")
        if self.spike_factor is not None and self.spike_factor <= 1:
            raise ValueError("spike_factor must be > 1 (or null: no spike check)")


@dataclass(frozen=True)
class TestSettings:
    """Inference: LVIS keeps at most 300 detections per image; detectron2's LVIS configs use score 1e-4."""

    score_threshold: float = 1e-4
    max_detections: int = 300
    mask_threshold: float = 0.5
    batch_size: int = 4


@dataclass(frozen=True)
class Detectron2Settings:
    """detectron2 engine: ``config_file`` is a detectron2 yaml (default: the model zoo's LVIS v1 Mask R-CNN
    R50-FPN); ``opts`` are extra ``KEY VALUE`` overrides; ``project_modules`` are modules of a detectron2 project
    to import first (``module`` registers its architectures, ``module:function`` is also called on the config,
    e.g. ``centernet.config:add_centernet_config`` for CenterNet2), found on PYTHONPATH or in ``project_paths``
    (folders put first on ``sys.path``: a user's CenterNet2 and DiverGen or X-Paste checkouts);
    ``augmentations`` is a project's ``module:function(cfg, is_train)`` building the resize/crop augmentations
    (default: CenterNet2's builder when the config sets ``INPUT.CUSTOM_AUG``, else ``ResizeShortestEdge``);
    ``num_gpus``/``num_machines``/``machine_rank``/``dist_url`` go to detectron2's ``launch``. Training starts from
    ``MODEL.WEIGHTS``; a URL there (the model zoo configs name detectron2's ImageNet weights) is fetched only with
    ``allow_download``, otherwise give a local file in ``opts``."""

    config_file: str = "LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"
    opts: list[str] = field(default_factory=list)
    project_modules: list[str] = field(default_factory=list)
    project_paths: list[Path] = field(default_factory=list)
    augmentations: str | None = None
    allow_download: bool = False
    federated_loss: bool = True
    num_gpus: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    dist_url: str = "auto"


@dataclass(frozen=True)
class RunSpec:
    """One training run: without ``pool`` a baseline; ``extra_categories`` trains the pool's categories beyond
    the target set too (then truncates them away); ``seed`` defaults to the profile seed."""

    name: str
    pool: Path | None = None
    extra_categories: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        check_name("run", self.name)


@dataclass(frozen=True)
class TrainingReport:
    """Figures only: training samples shown with their pasted instances outlined."""

    paste_examples: int = 6


@dataclass(frozen=True)
class TrainingConfig:
    """The ``training`` section. ``categories``: the category metadata the pools' indices refer to (targets and
    extras, e.g. ``generation/categories.json``); without it the training json's categories. ``area_prior``: the
    originals' ``area_mean_std2.json`` (:mod:`..formats.area_prior`) to size pasted instances by; without it the prior
    is computed from the training json."""

    train: DatasetSplit
    val: DatasetSplit
    runs: list[RunSpec] = field(default_factory=list)
    engine: Annotated[str, Choice(ENGINES)] = "torchvision"
    categories: Path | None = None
    area_prior: Path | None = None
    model: TorchvisionModel = field(default_factory=TorchvisionModel)
    solver: Solver = field(default_factory=Solver)
    paste: PasteConfig = field(default_factory=PasteConfig)
    test: TestSettings = field(default_factory=TestSettings)
    detectron2: Detectron2Settings = field(default_factory=Detectron2Settings)
    repeat_factor_threshold: float | None = 0.001
    horizontal_flip: bool = True
    num_workers: int = 2
    checkpoint_period: int = 1000
    log_period: int = 20
    report: TrainingReport = field(default_factory=TrainingReport)

    def __post_init__(self) -> None:
        if self.runs:  # empty when another stage names the runs (the ablation); the train stage refuses it
            check_named_list("training.runs", self.runs)
        ENGINES.get(self.engine).validate(self)
        if self.checkpoint_period < 1 or self.log_period < 1:
            raise ValueError("checkpoint_period and log_period must be >= 1")

    def run(self, name: str) -> RunSpec:
        """The run called ``name``."""
        for spec in self.runs:
            if spec.name == name:
                return spec
        raise KeyError(f"no run {name!r} (runs: {', '.join(r.name for r in self.runs)})")
