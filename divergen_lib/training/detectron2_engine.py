"""The detectron2 engine: any detectron2 detector config (default: the model zoo's LVIS v1 Mask R-CNN R50-FPN),
trained with generative copy-paste by our own mapper.

A run's detectron2 state lives in ``<run>/detectron2/`` (its checkpoints for resuming, ``config.yaml``, event
logs); the run folder gets ``loss.jsonl`` and ``model_final.pth`` in the torchvision engine's formats, so
truncation, evaluation and the notebooks treat both engines alike.

Samples follow the torchvision engine: stream position ``p`` (repeat-factor stream of :mod:`.sampling`) is image
``stream[p]``, flipped, pasted and resized with ``np.random.default_rng([seed, p])``. detectron2's samplers are
replaced by the positions of :class:`~.sampling.StepPositions`, so samples do not depend on the number of data
workers, and a resumed run continues the stream where the interrupted one stopped. ``DATALOADER.SAMPLER_TRAIN``
chooses between repeat factors (``RepeatFactorTrainingSampler`` with ``REPEAT_THRESHOLD``) and plain shuffling
(``TrainingSampler``); images without annotations are kept (pasting gives them instances); the flip is
``training.horizontal_flip`` (``INPUT.RANDOM_FLIP`` is not used).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image
from tqdm.auto import tqdm

from ..categories import read_category_metadata
from ..distributed import require_single_process, resolve_device, unwrap_ddp
from ..errors import InputError
from ..evaluation.results import detections_to_results
from ..formats import atomic_write_text, image_file, read_image, write_json
from .checkpoints import load_checkpoint, save_checkpoint
from .classes import ClassMap
from .config import RUN_FILES, Detectron2Settings, TestSettings, TrainingConfig
from .data import PasteSource, training_sample
from .loss_log import TrainingDiverged, append_loss_row, drop_rows_after
from .sampling import RepeatFactorStream, StepPositions, repeat_factors
from .stage import RunInputs, RunOutput

try:
    import detectron2
    from detectron2.config import CfgNode, get_cfg
    from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
    from detectron2.data.detection_utils import convert_PIL_to_numpy
    from detectron2.data.transforms import ResizeShortestEdge
    from detectron2.engine import DefaultTrainer, HookBase, hooks, launch
    from detectron2.modeling import GeneralizedRCNN, build_model
    from detectron2.modeling.postprocessing import detector_postprocess
    from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
    from detectron2.structures import BitMasks, Boxes, BoxMode, Instances
    from detectron2.utils import comm
    from detectron2.utils.env import seed_all_rng
except ImportError as err:
    raise InputError(
        f"training.engine: detectron2 needs detectron2, which cannot be imported ({err}). Install it from source "
        "after torch: pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git' "
        "(see detectron2's INSTALL.md), or use engine: torchvision"
    ) from None

log = logging.getLogger(__name__)

ENGINE = "detectron2"
STATE_DIR = "detectron2"  # detectron2's own checkpoints (for resuming), config and event logs, inside the run
CLASS_COUNTS_FILE = "class_image_count.json"
# Classifier size, test score threshold: set in every config section that has the key.
NUM_CLASSES_KEYS = ("MODEL.ROI_HEADS.NUM_CLASSES", "MODEL.RETINANET.NUM_CLASSES", "MODEL.CENTERNET.NUM_CLASSES")
SCORE_KEYS = ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "MODEL.RETINANET.SCORE_THRESH_TEST")
# Federated-loss class weights (detectron2, Detic/DiverGen): training-only buffers, not needed for inference.
_FED_LOSS_WEIGHTS = re.compile(r"\.(fed_loss_cls_weights|freq_weight)$")


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
    """A detectron2 yaml: a file path, else a model-zoo name (looked up in the installed package; detectron2's
    ``model_zoo.get_config_file`` needs ``pkg_resources``, which recent setuptools no longer ship)."""
    if Path(name).is_file():
        return Path(name)
    zoo = Path(detectron2.__file__).parent / "model_zoo" / "configs" / name
    if zoo.is_file():
        return zoo
    raise InputError(f"training.detectron2.config_file: {name!r} is neither a file nor a detectron2 model-zoo config")


def import_project(settings: Detectron2Settings, d2: CfgNode | None = None) -> None:
    """Import ``settings.project_modules`` (registering a project's architectures, e.g. CenterNet2's) and, given
    a config, call their ``module:function`` entries on it (e.g. ``centernet.config:add_centernet_config``)."""
    for entry in settings.project_modules:
        name, _, function = entry.partition(":")
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise InputError(
                f"training.detectron2.project_modules: cannot import {name!r} ({err}); put the project on PYTHONPATH"
            ) from None
        if function and d2 is not None:
            if not callable(getattr(module, function, None)):
                raise InputError(f"training.detectron2.project_modules: {name} has no function {function!r}")
            getattr(module, function)(d2)


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
    if train is None:
        _set_if_present(d2, "MODEL.ROI_BOX_HEAD.USE_FED_LOSS", False)
    elif "://" in d2.MODEL.WEIGHTS and not cfg.detectron2.allow_download:
        raise InputError(
            f"training.detectron2: MODEL.WEIGHTS {d2.MODEL.WEIGHTS} would be downloaded and downloads are off; set "
            "training.detectron2.allow_download: true, or give a local file: opts: [MODEL.WEIGHTS, /path/to/file]"
        )
    d2.freeze()
    return d2


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
        d2.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
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


def dataset_records(train: dict[str, Any], image_root: str | Path, classes: ClassMap) -> list[dict[str, Any]]:
    """detectron2 dataset dicts of an LVIS json: ``category_id`` and the LVIS per-image category lists as class
    indices, boxes ``XYWH_ABS``, segmentations as given."""
    index = classes.index()
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in train["annotations"]:
        if ann["category_id"] in index:
            by_image[ann["image_id"]].append(
                {
                    "bbox": ann["bbox"],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": index[ann["category_id"]],
                    "segmentation": ann["segmentation"],
                }
            )
    return [
        {
            "file_name": str(image_file(img, image_root)),
            "height": img["height"],
            "width": img["width"],
            "image_id": img["id"],
            "annotations": by_image[img["id"]],
            "not_exhaustive_category_ids": [index[c] for c in img.get("not_exhaustive_category_ids", [])],
            "neg_category_ids": [index[c] for c in img.get("neg_category_ids", [])],
        }
        for img in train["images"]
    ]


def class_image_counts(
    train: dict[str, Any], classes: ClassMap, metadata: list[dict[str, Any]] | None
) -> list[dict[str, int]]:
    """Per class (``id`` = index + 1): training images containing it, for the federated loss's sampling weights.
    Extra classes have no training images and take their metadata's ``image_count`` (DiverGen: a placeholder)."""
    images_of: dict[int, set[int]] = defaultdict(set)
    for ann in train["annotations"]:
        images_of[ann["category_id"]].add(ann["image_id"])
    placeholder = {c["id"]: c["image_count"] for c in metadata or []}
    targets = {classes.category_ids[i] for i in classes.targets}
    return [
        {"id": i + 1, "image_count": len(images_of[cid]) if cid in targets else placeholder.get(cid, 0)}
        for i, cid in enumerate(classes.category_ids)
    ]


class PasteMapper:
    """Dataset dict with a stream ``position`` -> detectron2 training input: the image read, flipped and pasted
    by :func:`~.data.training_sample`, resized by ``ResizeShortestEdge`` (``INPUT.MIN_SIZE_TRAIN``,
    ``MAX_SIZE_TRAIN``, ``MIN_SIZE_TRAIN_SAMPLING``) and converted to ``INPUT.FORMAT``, with ``Instances`` whose
    boxes are the tight boxes of the resized masks. All randomness comes from ``(seed, position)``.

    Not detectron2's ``DatasetMapper``: that draws its augmentations from the global numpy RNG and flips again."""

    def __init__(self, cfg: CfgNode, classes: ClassMap, paste: PasteSource | None, flip: bool, seed: int) -> None:
        self.category_ids, self.index = classes.category_ids, classes.index()
        self.paste, self.flip, self.seed = paste, flip, seed
        self.min_sizes = tuple(cfg.INPUT.MIN_SIZE_TRAIN)
        self.max_size = cfg.INPUT.MAX_SIZE_TRAIN
        self.sampling = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        self.image_format = cfg.INPUT.FORMAT
        if self.sampling not in ("choice", "range") or (self.sampling == "range" and len(self.min_sizes) != 2):
            raise InputError("INPUT.MIN_SIZE_TRAIN_SAMPLING must be 'choice', or 'range' with two MIN_SIZE_TRAIN")

    def _short_edge(self, rng: np.random.Generator) -> int:
        if self.sampling == "range":
            return int(rng.integers(self.min_sizes[0], self.min_sizes[1] + 1))
        return int(rng.choice(self.min_sizes))

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, record["position"]])
        anns = [{**a, "category_id": self.category_ids[a["category_id"]]} for a in record["annotations"]]
        info = {"id": record["image_id"], "file_name": record["file_name"]}  # file_name is already the full path
        sample = training_sample(info, anns, "", self.index, self.paste, self.flip, rng)
        resize = ResizeShortestEdge(self._short_edge(rng), self.max_size).get_transform(sample.image)
        image = convert_PIL_to_numpy(Image.fromarray(resize.apply_image(sample.image)), self.image_format)
        masks = np.zeros((0, *image.shape[:2]), bool)
        if len(sample.masks):
            masks = np.stack([resize.apply_segmentation(m.astype(np.uint8)) > 0 for m in sample.masks])
        keep = masks.reshape(len(masks), -1).any(axis=1)
        bitmasks = BitMasks(torch.from_numpy(masks[keep]))
        instances = Instances(image.shape[:2])
        instances.gt_boxes = bitmasks.get_bounding_boxes()
        instances.gt_classes = torch.from_numpy(sample.classes[keep])
        instances.gt_masks = bitmasks
        return {
            "file_name": record["file_name"],
            "image_id": record["image_id"],
            "height": sample.image.shape[0],
            "width": sample.image.shape[1],
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "instances": instances,
        }


class StreamDataset(torch.utils.data.Dataset):
    """Stream position -> mapped training input (map-style, indexed by the positions sampler)."""

    def __init__(self, records: list[dict[str, Any]], stream: RepeatFactorStream, mapper: PasteMapper) -> None:
        self.records, self.stream, self.mapper = records, stream, mapper

    def __getitem__(self, position: int) -> dict[str, Any]:
        return self.mapper({**self.records[self.stream[position]], "position": position})


def _image_factors(cfg: CfgNode, train: dict[str, Any]) -> np.ndarray:
    sampler = cfg.DATALOADER.SAMPLER_TRAIN
    if sampler == "RepeatFactorTrainingSampler":
        return repeat_factors(train, cfg.DATALOADER.REPEAT_THRESHOLD)
    if sampler == "TrainingSampler":
        return np.ones(len(train["images"]))
    raise InputError(f"DATALOADER.SAMPLER_TRAIN {sampler!r}: use TrainingSampler or RepeatFactorTrainingSampler")


class EMA(HookBase):
    """Exponential moving average of the whole state dict, ``ema = d * ema + (1 - d) * w`` after every step
    (DiverGen's ``ema.py``). A checkpointable: detectron2's checkpoints carry it, so a resumed run continues it."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model, self.decay = model, decay
        self.weights: dict[str, torch.Tensor] = {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.weights

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.weights = state

    def before_train(self) -> None:  # start from the loaded weights unless a checkpoint restored the average
        current = self.model.state_dict()
        source = self.weights or current
        self.weights = {k: source[k].detach().to(v.device, copy=True) for k, v in current.items()}

    @torch.no_grad()
    def after_step(self) -> None:
        for name, value in self.model.state_dict().items():
            average = self.weights[name]
            if average.is_floating_point():
                average.lerp_(value, 1 - self.decay)
            else:
                average.copy_(value)


class LossLog(HookBase):
    """Appends ``{step, lr, time, loss terms, loss}`` rows to ``loss.jsonl`` every ``period`` steps and at the
    last (the torchvision engine's format, see :mod:`.loss_log`)."""

    def __init__(self, path: Path, period: int) -> None:
        self.path, self.period = path, period

    def after_step(self) -> None:
        step = self.trainer.iter + 1
        if step % self.period and step != self.trainer.max_iter:
            return
        latest = self.trainer.storage.latest()
        now = {k: float(v) for k, (v, it) in latest.items() if it == self.trainer.iter}
        losses = {k: v for k, v in now.items() if k.startswith("loss")}
        append_loss_row(self.path, step, now.get("lr"), losses, now["total_loss"])


@dataclass(frozen=True)
class Job:
    """Everything a training process needs (picklable, for detectron2's ``launch``)."""

    d2: CfgNode
    cfg: TrainingConfig
    inputs: RunInputs
    out_dir: Path
    class_counts: list[dict[str, int]]


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with our data loader (positions from the resumed step on), AdamW when
    ``SOLVER.OPTIMIZER`` says so, the last checkpoint only, optional EMA, and the loss log."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.ema: EMA | None = None
        inputs, d2 = job.inputs, job.d2
        mapper = PasteMapper(d2, inputs.classes, inputs.paste, job.cfg.horizontal_flip, d2.SEED)
        stream = RepeatFactorStream(_image_factors(d2, inputs.train), d2.SEED)
        self.dataset = StreamDataset(DatasetCatalog.get(d2.DATASETS.TRAIN[0]), stream, mapper)
        super().__init__(d2)

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
            ours.append(LossLog(self.job.out_dir / RUN_FILES["log"], self.job.cfg.log_period))
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


def register_dataset(name: str, records: list[dict[str, Any]], classes: ClassMap, counts: list[dict]) -> None:
    """(Re-)register the run's training set and its metadata (class names, federated-loss image counts)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(thing_classes=list(classes.names), class_image_count=counts)


def _train_process(job: Job) -> None:
    """One training process: register the data, resume or start, train, write ``model_final.pth``."""
    import_project(job.cfg.detectron2)  # a process started by ``launch`` registers the project's modules too
    records = dataset_records(job.inputs.train, job.cfg.train.image_root, job.inputs.classes)
    register_dataset(job.d2.DATASETS.TRAIN[0], records, job.inputs.classes, job.class_counts)
    seed_all_rng(job.d2.SEED + comm.get_rank())
    trainer = Trainer(job)
    trainer.resume_or_load(resume=True)
    if comm.is_main_process():
        drop_rows_after(job.out_dir / RUN_FILES["log"], trainer.start_iter)
    try:
        trainer.train()
    except FloatingPointError as err:
        raise TrainingDiverged(
            f"{str(err).splitlines()[0]} lower solver.lr, raise solver.warmup_iterations or set solver.grad_clip"
        ) from None
    if comm.is_main_process():
        save_checkpoint(trainer.final_checkpoint(), job.out_dir / RUN_FILES["final"])
    comm.synchronize()


def _check_federated_loss(d2: CfgNode, counts: list[dict[str, int]]) -> None:
    """detectron2's federated loss draws ``FED_LOSS_NUM_CLASSES`` classes among those with training images."""
    head = d2.MODEL.ROI_BOX_HEAD
    weighted = sum(c["image_count"] > 0 for c in counts)
    if head.get("USE_FED_LOSS") and head.get("FED_LOSS_NUM_CLASSES", 0) > weighted:
        raise InputError(
            f"MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES is {head.FED_LOSS_NUM_CLASSES} but only {weighted} classes have "
            "training images: lower it in training.detectron2.opts or set training.detectron2.federated_loss: false"
        )


def _device(device: str) -> str:
    """detectron2's ``MODEL.DEVICE``: ``cuda`` (each launched process uses its own GPU) or ``cpu``."""
    resolved = resolve_device(device)
    return "cuda" if resolved.startswith("cuda") else resolved


def train(cfg: TrainingConfig, inputs: RunInputs, out_dir: Path, device: str) -> Path:
    """Train (or resume) a run in ``out_dir``; returns ``model_final.pth``. Several GPUs (``training.detectron2.
    num_gpus`` × ``num_machines``) go through detectron2's ``launch``, one process per GPU."""
    final = out_dir / RUN_FILES["final"]
    if final.is_file():
        log.info("%s exists; training is complete", final)
        return final
    settings = cfg.detectron2
    world = settings.num_gpus * settings.num_machines
    require_single_process("engine detectron2 (it starts its own processes: training.detectron2.num_gpus)")
    d2_device = _device(device)
    if world > 1 and d2_device != "cuda":
        raise InputError(f"training.detectron2.num_gpus × num_machines = {world} needs CUDA GPUs")
    state_dir = out_dir / STATE_DIR
    setup = TrainSetup(f"divergen_train:{out_dir.resolve()}", state_dir, inputs.seed)
    d2 = build_config(cfg, inputs.classes.num_classes, d2_device, setup)
    metadata = read_category_metadata(cfg.categories) if cfg.categories else None
    counts = class_image_counts(inputs.train, inputs.classes, metadata)
    _check_federated_loss(d2, counts)
    write_json(counts, state_dir / CLASS_COUNTS_FILE)
    atomic_write_text(state_dir / "config.yaml", d2.dump())
    job = Job(d2, cfg, inputs, out_dir, counts)
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


def _test_input(image: np.ndarray, d2: CfgNode) -> tuple[dict[str, Any], Any]:
    """An RGB image as the model's test input (resized by ``INPUT.MIN_SIZE_TEST``/``MAX_SIZE_TEST``, in
    ``INPUT.FORMAT``) and the resize transform."""
    resize = ResizeShortestEdge(d2.INPUT.MIN_SIZE_TEST, d2.INPUT.MAX_SIZE_TEST).get_transform(image)
    resized = convert_PIL_to_numpy(Image.fromarray(resize.apply_image(image)), d2.INPUT.FORMAT)
    tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
    return {"image": tensor, "height": image.shape[0], "width": image.shape[1]}, resize


def load_model(
    checkpoint: str | Path, cfg: TrainingConfig, classes: ClassMap, device: str = "auto"
) -> tuple[torch.nn.Module, CfgNode]:
    """A detectron2-engine checkpoint as an eval-mode model for ``classes`` (EMA weights when present; a
    truncated checkpoint needs the truncated class map) and its inference config."""
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("engine") != ENGINE:
        raise InputError(f"{checkpoint}: not a detectron2-engine checkpoint of this project")
    stored = ClassMap.from_json(ckpt["classes"]).category_ids if "classes" in ckpt else classes.category_ids
    if stored != classes.category_ids:
        raise InputError(f"{checkpoint}: trained for {len(stored)} categories, not the {classes.num_classes} given")
    d2 = build_config(cfg, classes.num_classes, resolve_device(device))
    model = build_model(d2)
    if not isinstance(model, GeneralizedRCNN):
        raise InputError(f"training.detectron2.config_file: an R-CNN is needed, not {type(model).__name__}")
    weights = ckpt["model_ema"] if "model_ema" in ckpt else ckpt["model"]
    try:
        model.load_state_dict({k: v for k, v in weights.items() if not _FED_LOSS_WEIGHTS.search(k)})
    except RuntimeError as err:
        raise InputError(
            f"{checkpoint}: weights do not fit the configured model ({str(err).splitlines()[0]})"
        ) from None
    return model.eval(), d2


@torch.no_grad()
def predict_images(
    model: GeneralizedRCNN,
    d2: CfgNode,
    classes: ClassMap,
    images: list[dict[str, Any]],
    image_root: str | Path,
    test: TestSettings,
) -> list[dict[str, Any]]:
    """LVIS results (dataset category ids, boxes, RLE masks, at most ``test.max_detections`` per image)."""
    ids = np.asarray(classes.category_ids)
    results: list[dict[str, Any]] = []
    for start in tqdm(range(0, len(images), test.batch_size), desc="predict", unit="batch"):
        batch = images[start : start + test.batch_size]
        inputs = [_test_input(read_image(image_file(img, image_root)), d2)[0] for img in batch]
        for img, given, out in zip(batch, inputs, model.inference(inputs, do_postprocess=False), strict=True):
            out = detector_postprocess(out, given["height"], given["width"], test.mask_threshold).to("cpu")
            results += detections_to_results(
                img["id"],
                out.pred_boxes.tensor.numpy(),
                out.scores.numpy(),
                ids[out.pred_classes.numpy()],
                out.pred_masks.numpy() if out.has("pred_masks") else None,
                test.max_detections,
            )
    return results


def predict(
    checkpoint: str | Path,
    cfg: TrainingConfig,
    classes: ClassMap,
    images: list[dict[str, Any]],
    image_root: str | Path,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """:func:`predict_images` of a detectron2-engine checkpoint for ``classes``."""
    model, d2 = load_model(checkpoint, cfg, classes, device)
    return predict_images(model, d2, classes, images, image_root, cfg.test)


@torch.no_grad()
def box_logits(model: GeneralizedRCNN, d2: CfgNode, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Foreground class logits (N×C, background dropped) of the box head at given boxes of one RGB image; a
    cascade's stages are averaged."""
    given, resize = _test_input(image, d2)
    features = model.backbone(model.preprocess_image([given]).tensor)
    heads = model.roi_heads
    boxes = Boxes(torch.as_tensor(resize.apply_box(np.asarray(boxes_xyxy, np.float32).reshape(-1, 4))))
    pooled = heads.box_pooler([features[f] for f in heads.box_in_features], [boxes.to(model.device)])
    stages = (
        zip(heads.box_head, heads.box_predictor, strict=True)
        if isinstance(heads.box_head, torch.nn.ModuleList)
        else [(heads.box_head, heads.box_predictor)]
    )
    logits = torch.stack([predictor(head(pooled))[0] for head, predictor in stages]).mean(0)
    return logits[:, :-1].float().cpu().numpy()


class Detectron2Detector:
    """A finished detectron2-engine run as an evaluation detector: its evaluation checkpoint (truncated when it
    had extra classes; EMA weights when present)."""

    def __init__(self, run: RunOutput, device: str) -> None:
        self.classes = run.classes.truncated() if run.classes.has_extras else run.classes
        self.test = run.config.test
        self.model, self.d2 = load_model(run.eval_checkpoint, run.config, self.classes, device)

    def predict(self, images: list[dict[str, Any]], image_root: str | Path) -> list[dict[str, Any]]:
        return predict_images(self.model, self.d2, self.classes, images, image_root, self.test)

    def box_logits(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        return box_logits(self.model, self.d2, image, boxes_xyxy)
