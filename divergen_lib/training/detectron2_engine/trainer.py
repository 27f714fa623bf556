"""Training: detectron2's ``DefaultTrainer`` with our loader, optimizer choice, hooks and checkpoint format,
in one process or several through detectron2's ``launch``."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, build_detection_train_loader
from detectron2.engine import DefaultTrainer, HookBase, hooks, launch
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from ...categories import read_category_metadata
from ...distributed import require_single_process, resolve_device, unwrap_ddp
from ...errors import InputError, disk_full, no_space_left
from ...formats import atomic_write_text, write_json
from ..checkpoints import save_checkpoint
from ..config import TrainingConfig
from ..layout import RunLayout
from ..loss_log import DIVERGED_ADVICE, TrainingDiverged, drop_rows_after
from ..run import RunInputs
from ..sampling import RepeatFactorStream, StepPositions
from .crowd import ignore_crowds
from .d2config import CLASS_COUNTS_FILE, ENGINE, TrainSetup, build_config, import_project
from .hooks import EMA, LossLog
from .mapper import PasteMapper, StreamDataset, _image_factors
from .records import class_image_counts, dataset_records, register_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Everything a training process needs (picklable, for detectron2's ``launch``)."""

    d2: CfgNode
    cfg: TrainingConfig
    inputs: RunInputs
    run: RunLayout
    class_counts: list[dict[str, int]]


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with our data loader (positions from the resumed step on), crowd regions as ignore
    regions (:mod:`.crowd`), AdamW when ``SOLVER.OPTIMIZER`` says so, the last checkpoint only, optional EMA,
    and the loss log."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.ema: EMA | None = None
        inputs, d2 = job.inputs, job.d2
        mapper = PasteMapper(d2, inputs.classes, inputs.paste, job.cfg.horizontal_flip, d2.SEED)
        stream = RepeatFactorStream(_image_factors(d2, inputs.train), d2.SEED)
        self.dataset = StreamDataset(DatasetCatalog.get(d2.DATASETS.TRAIN[0]), stream, mapper)
        super().__init__(d2)
        _check_federated_loss(self.model, job.class_counts)

    def build_train_loader(self, cfg: CfgNode, start_step: int = 0):  # type: ignore[override]
        batch = cfg.SOLVER.IMS_PER_BATCH
        if batch % comm.get_world_size():
            raise InputError(f"solver.batch_size {batch} is not divisible by {comm.get_world_size()} processes")
        # Without end: aspect-ratio grouping holds samples back, so a loader of MAX_ITER batches could run dry.
        positions = StepPositions(batch, comm.get_rank(), comm.get_world_size(), start_step, sys.maxsize // batch)
        return build_detection_train_loader(
            self.dataset,
            mapper=None,
            sampler=positions,
            total_batch_size=batch,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_model(cls, cfg: CfgNode) -> torch.nn.Module:
        return ignore_crowds(super().build_model(cfg))

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        if str(cfg.SOLVER.get("OPTIMIZER", "SGD")).upper() != "ADAMW":
            return super().build_optimizer(cfg, model)
        params = get_default_optimizer_params(
            model, base_lr=cfg.SOLVER.BASE_LR, weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM
        )
        optimizer = torch.optim.AdamW(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        return maybe_add_gradient_clipping(cfg, optimizer)

    def build_hooks(self) -> list[HookBase]:
        built = [
            hooks.PeriodicCheckpointer(self.checkpointer, self.cfg.SOLVER.CHECKPOINT_PERIOD, max_to_keep=1)
            if isinstance(hook, hooks.PeriodicCheckpointer)
            else hook
            for hook in super().build_hooks()
        ]
        ours: list[HookBase] = []
        if self.job.cfg.solver.ema > 0:
            self.ema = EMA(unwrap_ddp(self.model), self.job.cfg.solver.ema)
            self.checkpointer.add_checkpointable("model_ema", self.ema)
            ours.append(self.ema)
        if comm.is_main_process():
            ours.append(LossLog(self.job.run.loss_log, self.job.cfg.log_period))
        after_lr = next(i for i, hook in enumerate(built) if isinstance(hook, hooks.LRScheduler)) + 1
        return built[:after_lr] + ours + built[after_lr:]  # EMA before the checkpointer saves it

    def resume_or_load(self, resume: bool = True) -> None:
        super().resume_or_load(resume=resume)
        self._trainer.data_loader = self.build_train_loader(self.cfg, start_step=self.start_iter)

    def final_checkpoint(self) -> dict[str, Any]:
        """Our checkpoint format (as the torchvision engine's ``model_final.pth``)."""
        ckpt = {
            "engine": ENGINE,
            "model": unwrap_ddp(self.model).state_dict(),
            "step": self.iter,
            "classes": self.job.inputs.classes.to_json(),
        }
        if self.ema is not None:
            ckpt["model_ema"] = self.ema.weights
        return ckpt


def _train_process(job: Job) -> None:
    """One training process: register the data, resume or start, train, write ``model_final.pth``."""
    import_project(job.cfg.detectron2)  # a process started by ``launch`` registers the project's modules too
    records = dataset_records(job.inputs.train, job.cfg.train.image_root, job.inputs.classes)
    register_dataset(job.d2.DATASETS.TRAIN[0], records, job.inputs.classes, job.class_counts)
    seed_all_rng(job.d2.SEED + comm.get_rank())
    trainer = Trainer(job)
    trainer.resume_or_load(resume=True)
    if comm.is_main_process():
        drop_rows_after(job.run.loss_log, trainer.start_iter)
    try:
        trainer.train()
    except FloatingPointError as err:
        raise TrainingDiverged(f"{str(err).splitlines()[0]} {DIVERGED_ADVICE}") from None
    except Exception as err:
        if no_space_left(err):  # detectron2's checkpointer writes in place; its last complete checkpoint is kept
            raise disk_full(job.run.root) from None
        raise
    if comm.is_main_process():
        save_checkpoint(trainer.final_checkpoint(), job.run.final)
    comm.synchronize()


def _check_federated_loss(model: torch.nn.Module, counts: list[dict[str, int]]) -> None:
    """A federated loss draws its classes among those with training images: at most that many. The built box
    predictors say which key they read: Detic's (DiverGen, X-Paste) ``FED_LOSS_NUM_CAT`` (they derive from
    detectron2's, so they also carry its unused ``FED_LOSS_NUM_CLASSES``), else detectron2's."""
    weighted = sum(c["image_count"] > 0 for c in counts)
    for module in model.modules():
        if not getattr(module, "use_fed_loss", False):
            continue
        if hasattr(module, "fed_loss_num_cat"):
            key, n = "FED_LOSS_NUM_CAT", module.fed_loss_num_cat
        else:
            key, n = "FED_LOSS_NUM_CLASSES", getattr(module, "fed_loss_num_classes", 0)
        if n > weighted:
            raise InputError(
                f"MODEL.ROI_BOX_HEAD.{key} is {n} but only {weighted} classes have training images: lower it in "
                "training.detectron2.opts or set training.detectron2.federated_loss: false"
            )


def _device(device: str) -> str:
    """detectron2's ``MODEL.DEVICE``: ``cuda`` (each launched process uses its own GPU) or ``cpu``."""
    resolved = resolve_device(device)
    return "cuda" if resolved.startswith("cuda") else resolved


def train(cfg: TrainingConfig, inputs: RunInputs, run: RunLayout, device: str) -> Path:
    """Train (or resume) a run in ``run``; returns ``model_final.pth``. Several GPUs (``training.detectron2.
    num_gpus`` × ``num_machines``) go through detectron2's ``launch``, one process per GPU."""
    final = run.final
    if final.is_file():
        log.info("%s exists; training is complete", final)
        return final
    settings = cfg.detectron2
    world = settings.num_gpus * settings.num_machines
    require_single_process("engine detectron2 (it starts its own processes: training.detectron2.num_gpus)")
    d2_device = _device(device)
    if world > 1 and d2_device != "cuda":
        raise InputError(f"training.detectron2.num_gpus × num_machines = {world} needs CUDA GPUs")
    state_dir = run.engine_dir(ENGINE)
    setup = TrainSetup(f"divergen_train:{run.root.resolve()}", state_dir, inputs.seed)
    d2 = build_config(cfg, inputs.classes.num_classes, d2_device, setup)
    metadata = read_category_metadata(cfg.categories) if cfg.categories else None
    counts = class_image_counts(inputs.train, inputs.classes, metadata)
    write_json(counts, state_dir / CLASS_COUNTS_FILE)
    atomic_write_text(state_dir / "config.yaml", d2.dump())
    job = Job(d2, cfg, inputs, run, counts)
    if world > 1:
        launch(
            _train_process,
            settings.num_gpus,
            num_machines=settings.num_machines,
            machine_rank=settings.machine_rank,
            dist_url=settings.dist_url,
            args=(job,),
        )
    else:
        _train_process(job)
    return final
