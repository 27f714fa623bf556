"""Training samples: an LVIS image, optionally flipped, with generated instances pasted onto it.

Engine-agnostic: :func:`training_sample` returns the image (H×W×3 uint8), boolean masks, tight boxes and
class indices; the torchvision Dataset below and the detectron2 mapper both build on it. The randomness of
a sample comes from ``(seed, stream position)`` only, so it does not depend on the number of processes or
data workers, and a resumed run sees the samples an uninterrupted one would have.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..filtration.pool import rgba_crop
from ..formats import PoolEntry, annotation_mask, image_file, mask_bbox, read_image
from ..paste import PasteConfig, paste_instances
from .classes import ClassMap
from .sampling import RepeatFactorStream


@dataclass
class Sample:
    """A training sample: ``masks`` N×H×W bool, ``boxes`` N×4 ``x0, y0, x1, y1``, ``classes`` N class indices,
    ``pasted`` N bool (generated instances)."""

    image_id: int
    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    pasted: np.ndarray


class PoolCrops(Sequence[np.ndarray]):
    """A category's pool entries, read from disk when drawn (as DiverGen's pool does): ``*`` crops as they are,
    ``image|mask`` pairs and raw RGBA files cut to the largest component's tight box."""

    def __init__(self, entries: list[PoolEntry]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i):  # type: ignore[override]
        entry = self.entries[i]
        if entry.mask_path is not None:
            return rgba_crop(read_image(entry.path), read_image(entry.mask_path, "L") > 0)
        rgba = read_image(entry.path, "RGBA")
        return rgba if entry.preprocessed else rgba_crop(rgba[..., :3], rgba[..., 3] > 0)


@dataclass(frozen=True)
class PasteSource:
    """What a run pastes: RGBA crops per category id, the area prior, and the paste settings."""

    crops: Mapping[int, Sequence[np.ndarray]]
    prior: dict[int, tuple[float, float]]
    config: PasteConfig


def training_sample(
    image_info: dict[str, Any],
    annotations: list[dict[str, Any]],
    image_root: str | os.PathLike,
    classes: dict[int, int],
    paste: PasteSource | None,
    flip: bool,
    rng: np.random.Generator,
) -> Sample:
    """Read an image, flip it with probability 0.5 when ``flip``, paste instances when ``paste`` is given."""
    image = read_image(image_file(image_info, image_root))
    h, w = image.shape[:2]
    anns = [a for a in annotations if a["category_id"] in classes]
    if flip and rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
        anns = [{**a, "mask": annotation_mask(a, h, w)[:, ::-1]} for a in anns]
        anns = [{**a, "bbox": mask_bbox(a["mask"])} for a in anns]
    if paste is not None:
        image, anns = paste_instances(image, anns, paste.crops, paste.prior, paste.config, rng)
    masks = [a["mask"] if "mask" in a else annotation_mask(a, h, w) for a in anns]
    keep = [i for i, m in enumerate(masks) if m.any()]
    boxes = np.array([mask_bbox(masks[i]) for i in keep], dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return Sample(
        image_id=int(image_info["id"]),
        image=image,
        masks=np.stack([masks[i] for i in keep]) if keep else np.zeros((0, h, w), bool),
        boxes=boxes,
        classes=np.array([classes[anns[i]["category_id"]] for i in keep], dtype=np.int64),
        pasted=np.array([bool(anns[i].get("pasted", False)) for i in keep]),
    )


class TrainingStream(Dataset):
    """Map-style dataset indexed by stream position (see :class:`RepeatFactorStream`)."""

    def __init__(
        self,
        dataset: dict[str, Any],
        image_root: str | Path,
        classes: ClassMap,
        stream: RepeatFactorStream,
        paste: PasteSource | None,
        flip: bool,
        seed: int,
    ) -> None:
        self.images = dataset["images"]
        self.by_image: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in self.images}
        for ann in dataset["annotations"]:
            self.by_image[ann["image_id"]].append(ann)
        self.image_root, self.classes, self.stream = Path(image_root), classes.index(), stream
        self.paste, self.flip, self.seed = paste, flip, seed

    def __len__(self) -> int:  # positions are unbounded; the sampler decides how many are drawn
        return 2**62

    def __getitem__(self, position: int) -> Sample:
        info = self.images[self.stream[position]]
        rng = np.random.default_rng([self.seed, position])
        return training_sample(
            info, self.by_image[info["id"]], self.image_root, self.classes, self.paste, self.flip, rng
        )


def one_line_worker_errors(loader: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``loader``. An :class:`InputError` raised in a data-loader worker process reaches the main process
    with the worker's traceback as its message; it is raised again with its own one-line message."""
    try:
        yield from loader
    except InputError as err:
        lines = str(err).rstrip().splitlines()
        own = f"{type(err).__module__}.{type(err).__qualname__}: "
        if len(lines) > 1 and lines[-1].startswith(own):
            raise type(err)(lines[-1][len(own) :]) from None
        raise


def collate(samples: list[Sample]) -> list[Sample]:
    """Keep samples as a list (images differ in size)."""
    return samples


def to_torchvision(sample: Sample, device: torch.device | str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Image as a float C×H×W tensor in [0, 1] and torchvision's target dict (labels shifted by 1: 0 is
    background)."""
    image = torch.tensor(sample.image).permute(2, 0, 1).to(device, non_blocking=True).float().div_(255)
    target = {
        "boxes": torch.from_numpy(sample.boxes).to(device),
        "labels": torch.from_numpy(sample.classes + 1).to(device),
        "masks": torch.from_numpy(sample.masks.astype(np.uint8)).to(device),
    }
    return image, target
