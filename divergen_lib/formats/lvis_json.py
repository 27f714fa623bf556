"""LVIS v1 / COCO instance json: read, write, validate, and LVIS's frequency rule."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import read_json, write_json
from .errors import FormatError
from .masks import rle_to_mask, segmentation_to_rle

IMAGE_KEYS = ("id", "width", "height")
ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox", "area", "segmentation")
CATEGORY_KEYS = ("id", "name")
FREQUENCIES = ("r", "c", "f")
MAX_PROBLEMS_SHOWN = 10


def frequency_thresholds(n_images: int) -> tuple[int, int]:
    """LVIS's rare/common bounds scaled to a dataset of ``n_images`` training images.

    LVIS v1 (≈1e5 train images) calls a category rare at ≤10 images and common at ≤100, i.e.
    ``N**0.2`` and ``N**0.4``; the same exponents give the bounds for a dataset of any size.
    """
    if n_images < 1:
        raise ValueError("a dataset needs at least one image")
    return max(1, round(n_images**0.2)), max(2, round(n_images**0.4))


def frequency_of(image_count: int, rare_max: int, common_max: int) -> str:
    """LVIS frequency group from a category's training image count."""
    return "r" if image_count <= rare_max else "c" if image_count <= common_max else "f"


def assign_frequencies(data: dict[str, Any], thresholds: tuple[int, int] | None = None) -> dict[str, Any]:
    """Set ``image_count``, ``instance_count`` and ``frequency`` of every category from the annotations."""
    images_of: dict[int, set[int]] = defaultdict(set)
    instances_of: dict[int, int] = defaultdict(int)
    for ann in data["annotations"]:
        images_of[ann["category_id"]].add(ann["image_id"])
        instances_of[ann["category_id"]] += 1
    rare_max, common_max = thresholds or frequency_thresholds(len(data["images"]))
    for cat in data["categories"]:
        cat["image_count"] = len(images_of[cat["id"]])
        cat["instance_count"] = instances_of[cat["id"]]
        cat["frequency"] = frequency_of(cat["image_count"], rare_max, common_max)
    return data


def _problems(data: Any) -> Iterable[str]:
    if not isinstance(data, dict):
        yield f"top level must be an object, got {type(data).__name__}"
        return
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            yield f"'{key}' must be a list"
    if any(not isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        return

    def ids(kind: str, rows: list, required: tuple[str, ...]) -> set[int]:
        seen: set[int] = set()
        for i, row in enumerate(rows):
            missing = [k for k in required if not isinstance(row, dict) or k not in row]
            if missing:
                problems.append(f"{kind}[{i}] lacks {', '.join(missing)}")
                continue
            if not isinstance(row["id"], int) or isinstance(row["id"], bool):
                problems.append(f"{kind}[{i}] id must be an integer, got {row['id']!r}")
            elif row["id"] in seen:
                problems.append(f"{kind} id {row['id']} appears twice")
            seen.add(row["id"])
        return seen

    problems: list[str] = []
    cat_ids = ids("categories", data["categories"], CATEGORY_KEYS)
    img_ids = ids("images", data["images"], IMAGE_KEYS)
    ids("annotations", data["annotations"], ANNOTATION_KEYS)
    yield from problems
    for cat in data["categories"]:
        if isinstance(cat, dict) and "frequency" in cat and cat["frequency"] not in FREQUENCIES:
            yield f"category {cat.get('id')} has frequency {cat['frequency']!r}, expected one of r, c, f"
    present: dict[int, set[int]] = defaultdict(set)
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or any(k not in ann for k in ANNOTATION_KEYS):
            continue
        if ann["image_id"] not in img_ids:
            yield f"annotation {ann['id']} refers to unknown image id {ann['image_id']}"
        if ann["category_id"] not in cat_ids:
            yield f"annotation {ann['id']} refers to unknown category id {ann['category_id']}"
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            yield f"annotation {ann['id']} bbox must be [x, y, w, h], got {bbox!r}"
        elif bbox[2] < 0 or bbox[3] < 0:
            yield f"annotation {ann['id']} bbox has a negative size: {bbox!r}"
        present[ann["image_id"]].add(ann["category_id"])
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img:
            continue
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            listed = img.get(key, [])
            if not isinstance(listed, list):
                yield f"image {img['id']} {key} must be a list"
                continue
            for cid in listed:
                if cid not in cat_ids:
                    yield f"image {img['id']} {key} refers to unknown category id {cid}"
        clash = set(img.get("neg_category_ids", [])) & present[img["id"]]
        if clash:
            yield f"image {img['id']} lists annotated categories {sorted(clash)} as negative"


def validate_lvis(data: Any, source: str | os.PathLike = "<lvis json>") -> None:
    """Check ids, image/category references and the LVIS per-image category lists.

    Raises :class:`FormatError` naming ``source`` and the first problems found.
    """
    problems = list(_problems(data))
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise FormatError(f"{source}: {shown}{more}")


def read_lvis(path: str | os.PathLike, validate: bool = True) -> dict[str, Any]:
    """Read an LVIS/COCO json, validated unless ``validate`` is false."""
    data = read_json(path)
    if validate:
        validate_lvis(data, path)
    return data


def write_lvis(data: dict[str, Any], path: str | os.PathLike, validate: bool = True) -> None:
    """Validate (by default) and write an LVIS/COCO json atomically."""
    if validate:
        validate_lvis(data, path)
    write_json(data, path)


def category_index(categories: list[dict[str, Any]]) -> dict[int, int]:
    """Map 1-based category ids to 0-based contiguous indices in id order (the pool and classifier order)."""
    return {cid: i for i, cid in enumerate(sorted(c["id"] for c in categories))}


def image_file(image: dict[str, Any], root: str | os.PathLike) -> Path:
    """Where an LVIS/COCO image is: ``file_name`` under ``root``, else the last two parts of ``coco_url``
    (LVIS v1 has no ``file_name``; its ``coco_url`` ends in ``train2017/<id>.jpg``)."""
    if "file_name" in image:
        return Path(root) / image["file_name"]
    return Path(root).joinpath(*image["coco_url"].split("/")[-2:])


def annotation_mask(annotation: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The boolean mask of an annotation, whatever its segmentation format."""
    return rle_to_mask(segmentation_to_rle(annotation["segmentation"], height, width))
