"""Training samples: an LVIS image, optionally flipped, with generated instances pasted onto it.

Engine-agnostic: :func:`training_sample` returns the image (H×W×3 uint8), boolean masks, tight boxes and
class indices; the torchvision Dataset below and the detectron2 mapper both build on it. The randomness of
a sample comes from ``(seed, stream position)`` only, so it does not depend on the number of processes or
data workers, and a resumed run sees the samples an uninterrupted one would have.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..filtration.pool import rgba_crop
from ..formats import AreaPrior, PoolEntry, annotation_mask, check_same_size, image_file, mask_bbox, read_image
from ..formats.images import read_image_and_alpha
from ..paste import PasteConfig, paste_instances
from .classes import ClassMap
from .sampling import RepeatFactorStream


@dataclass
class Sample:
    """A training sample: ``masks`` N×H×W bool, ``boxes`` N×4 ``x0, y0, x1, y1``, ``classes`` N class indices,
    ``pasted`` N bool (generated instances); ``crowd`` C×4 ``x0, y0, x1, y1`` of the image's crowd regions."""

    image_id: int
    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    pasted: np.ndarray
    crowd: np.ndarray


POOL_CROP_MAX_PIXELS = 4096 * 4096
"""The most pixels of a pool image or mask: a crop holds one instance, and a larger one makes every paste of it slow
(raise ``divergen_lib.training.data.POOL_CROP_MAX_PIXELS`` to allow larger ones)."""
OBJECT_THRESHOLD = 128
"""A pair's mask or a raw file's alpha marks the object above this value (DiverGen's and X-Paste's ``_load_RGBA``)."""


class PoolCrops(Sequence[np.ndarray]):
    """A category's pool entries, read from disk when drawn (as DiverGen's pool does, :func:`read_pool_crop`);
    ``where`` (the pool and category) starts the message of an entry that cannot be used."""

    def __init__(self, entries: list[PoolEntry], where: str = "instance pool") -> None:
        self.entries, self.where = entries, where

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i):  # type: ignore[override]
        try:
            return read_pool_crop(self.entries[i])
        except InputError as err:
            raise InputError(f"{self.where}: {err}") from None


def read_pool_crop(entry: PoolEntry) -> np.ndarray:
    """An entry's RGBA crop: a ``*`` crop as it is, an ``image|mask`` pair or a raw RGBA file binarised at
    :data:`OBJECT_THRESHOLD` and cut to the largest component's tight box. A file over :data:`POOL_CROP_MAX_PIXELS`,
    a mask of another size than its image, a ``*`` or raw file without alpha (it would be pasted as a rectangle) or
    without an opaque pixel raise InputError."""
    if entry.mask_path is not None:
        image = read_image(entry.path, max_pixels=POOL_CROP_MAX_PIXELS)
        mask = read_image(entry.mask_path, "L", max_pixels=POOL_CROP_MAX_PIXELS)
        check_same_size(mask, image, f"mask {entry.mask_path}", f"image {entry.path}")
        return rgba_crop(image, mask > OBJECT_THRESHOLD, entry.mask_path)
    rgba, has_alpha = read_image_and_alpha(entry.path, "RGBA", max_pixels=POOL_CROP_MAX_PIXELS)
    if not has_alpha:
        raise InputError(
            f"{entry.path}: no alpha channel, so it would be pasted as a rectangle (give an RGBA cut-out, or an "
            "'image|mask' pair)"
        )
    if not entry.preprocessed:
        return rgba_crop(rgba[..., :3], rgba[..., 3] > OBJECT_THRESHOLD, entry.path)
    if not rgba[..., 3].any():
        raise InputError(f"{entry.path}: fully transparent (alpha 0 everywhere): nothing to paste")
    return rgba


@dataclass(frozen=True)
class PasteSource:
    """What a run pastes: RGBA crops per category id, the area prior, and the paste settings."""

    crops: Mapping[int, Sequence[np.ndarray]]
    prior: AreaPrior
    config: PasteConfig


class CanvasTransform(Protocol):
    """A geometric transform of the canvas (a detectron2 ``Transform`` is one): image and masks alike."""

    def apply_image(self, img: np.ndarray) -> np.ndarray: ...

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray: ...


Canvas = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, CanvasTransform]]
"""Image and the sample's RNG -> the augmented image and the transform that made it (resize, crop)."""


def training_sample(
    image_info: dict[str, Any],
    annotations: list[dict[str, Any]],
    image_root: str | os.PathLike,
    classes: dict[int, int],
    paste: PasteSource | None,
    flip: bool,
    rng: np.random.Generator,
    canvas: Canvas | None = None,
) -> Sample:
    """Read an image, flip it with probability 0.5 when ``flip``, augment it by ``canvas`` (a resize or
    scale-and-crop, applied to the image, its masks and crowd regions), then paste instances into the augmented
    canvas when ``paste`` is given, as the originals do: pasted sizes follow the area prior relative to what the
    model sees. Annotations cropped away are dropped. A COCO ``iscrowd: 1`` annotation (a region of many objects)
    is not an instance (detectron2's ``DatasetMapper`` leaves it out too); its box goes to ``crowd``, an ignore
    region for both engines' background examples."""
    image = read_image(image_file(image_info, image_root))
    h, w = image.shape[:2]
    anns = [a for a in annotations if a["category_id"] in classes and not a.get("iscrowd", 0)]
    crowds = [annotation_mask(a, h, w) for a in annotations if a.get("iscrowd", 0)]
    flipped = flip and rng.random() < 0.5
    moved = flipped or canvas is not None  # the annotations' masks and boxes change
    if moved:
        anns = [{**a, "mask": annotation_mask(a, h, w)} for a in anns]
    if flipped:
        image = np.ascontiguousarray(image[:, ::-1])
        anns = [{**a, "mask": a["mask"][:, ::-1]} for a in anns]
        crowds = [m[:, ::-1] for m in crowds]
    if canvas is not None:
        image, transform = canvas(image, rng)
        h, w = image.shape[:2]
        anns = [{**a, "mask": transform.apply_segmentation(a["mask"].astype(np.uint8)) > 0} for a in anns]
        crowds = [transform.apply_segmentation(m.astype(np.uint8)) > 0 for m in crowds]
        anns = [a for a in anns if a["mask"].any()]
    if moved:
        anns = [{**a, "bbox": mask_bbox(a["mask"])} for a in anns]
    crowd = np.array([mask_bbox(m) for m in crowds if m.any()], dtype=np.float32).reshape(-1, 4)
    crowd[:, 2:] += crowd[:, :2]
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
        crowd=crowd,
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
    background; ``crowd_boxes`` for :mod:`.torchvision_engine.crowd`)."""
    image = torch.tensor(sample.image).permute(2, 0, 1).to(device, non_blocking=True).float().div_(255)
    h, w = sample.image.shape[:2]
    crowd = sample.crowd / np.array([w, h, w, h], np.float32)  # fractions: torchvision resizes only "boxes"
    target = {
        "crowd_boxes": torch.from_numpy(crowd).to(device),
        "boxes": torch.from_numpy(sample.boxes).to(device),
        "labels": torch.from_numpy(sample.classes + 1).to(device),
        "masks": torch.from_numpy(sample.masks.astype(np.uint8)).to(device),
    }
    return image, target
