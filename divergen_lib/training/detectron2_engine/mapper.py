"""Training inputs: stream position -> the image read, flipped, pasted and resized, as detectron2 consumes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data.detection_utils import convert_PIL_to_numpy
from detectron2.data.transforms import ResizeShortestEdge
from detectron2.structures import BitMasks, Instances
from PIL import Image

from ...errors import InputError
from ..classes import ClassMap
from ..data import PasteSource, training_sample
from ..sampling import RepeatFactorStream, repeat_factors
from .crowd import CROWD_KEY


class PasteMapper:
    """Dataset dict with a stream ``position`` -> detectron2 training input: the image read, flipped and pasted
    by :func:`~.data.training_sample`, resized by ``ResizeShortestEdge`` (``INPUT.MIN_SIZE_TRAIN``,
    ``MAX_SIZE_TRAIN``, ``MIN_SIZE_TRAIN_SAMPLING``) and converted to ``INPUT.FORMAT``, with ``Instances`` whose
    boxes are the tight boxes of the resized masks, and the crowd regions' boxes under ``crowd_boxes``
    (:mod:`.crowd`). All randomness comes from ``(seed, position)``.

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
            CROWD_KEY: torch.from_numpy(resize.apply_box(sample.crowd).astype(np.float32)),
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
