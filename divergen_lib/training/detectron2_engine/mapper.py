"""Training inputs: stream position -> the image read, flipped, resized (or scaled and cropped) and pasted, as
detectron2 consumes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data.detection_utils import convert_PIL_to_numpy
from detectron2.structures import BitMasks, Instances
from PIL import Image

from ...errors import InputError
from ..classes import ClassMap
from ..data import PasteSource, training_sample
from ..sampling import RepeatFactorStream, repeat_factors
from .augmentations import augment, build_augmentations
from .crowd import CROWD_KEY


class PasteMapper:
    """Dataset dict with a stream ``position`` -> detectron2 training input: the image read and flipped by
    :func:`~.data.training_sample`, augmented by the config's resize/crop (:mod:`.augmentations`), pasted into
    the augmented canvas as the originals do, and converted to ``INPUT.FORMAT``; ``Instances`` whose boxes are
    the tight boxes of their masks, and the crowd regions' boxes under ``crowd_boxes`` (:mod:`.crowd`). All
    randomness comes from ``(seed, position)``.

    Not detectron2's ``DatasetMapper``: that draws its augmentations from the global numpy RNG and flips again."""

    def __init__(self, cfg: CfgNode, classes: ClassMap, paste: PasteSource | None, flip: bool, seed: int) -> None:
        self.category_ids, self.index = classes.category_ids, classes.index()
        self.paste, self.flip, self.seed = paste, flip, seed
        self.augmentations = build_augmentations(cfg, is_train=True)
        self.image_format = cfg.INPUT.FORMAT

    def canvas(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        """The image augmented (resize, or scale and crop) with the sample's RNG, and the transform."""
        return augment(self.augmentations, image, rng)

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, record["position"]])
        anns = [{**a, "category_id": self.category_ids[a["category_id"]]} for a in record["annotations"]]
        info = {"id": record["image_id"], "file_name": record["file_name"]}  # file_name is already the full path
        sample = training_sample(info, anns, "", self.index, self.paste, self.flip, rng, self.canvas)
        image = convert_PIL_to_numpy(Image.fromarray(sample.image), self.image_format)
        bitmasks = BitMasks(torch.from_numpy(sample.masks))
        instances = Instances(image.shape[:2])
        instances.gt_boxes = bitmasks.get_bounding_boxes()
        instances.gt_classes = torch.from_numpy(sample.classes)
        instances.gt_masks = bitmasks
        return {
            "file_name": record["file_name"],
            "image_id": record["image_id"],
            "height": record["height"],
            "width": record["width"],
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "instances": instances,
            CROWD_KEY: torch.from_numpy(sample.crowd),
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
