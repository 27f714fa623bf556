"""An LVIS training json as detectron2 dataset records, its per-class image counts (federated loss), and their
registration in detectron2's catalogs."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ...formats import image_file
from ..classes import ClassMap


def dataset_records(train: dict[str, Any], image_root: str | Path, classes: ClassMap) -> list[dict[str, Any]]:
    """detectron2 dataset dicts of an LVIS json: ``category_id`` and the LVIS per-image category lists as class
    indices, boxes ``XYWH_ABS``, segmentations and ``iscrowd`` as given (crowd regions: ignore regions)."""
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
                    "iscrowd": ann.get("iscrowd", 0),
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


def register_dataset(name: str, records: list[dict[str, Any]], classes: ClassMap, counts: list[dict]) -> None:
    """(Re-)register the run's training set and its metadata (class names, federated-loss image counts)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(thing_classes=list(classes.names), class_image_count=counts)
