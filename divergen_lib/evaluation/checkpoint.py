"""LVIS metrics of a detectron2 checkpoint file in either layout (this project's, or DiverGen's and X-Paste's
released ones: :mod:`~divergen_lib.training.detectron2_engine.original_checkpoints`), predicted by the detectron2
engine's inference and evaluated as ``evaluate-results`` does: ``python -m divergen_lib evaluate-checkpoint``.

The classes are the checkpoint's own when it stores a class map (this project's), else the ground truth's
categories by id (LVIS v1: 1..1203); ``truncate_to`` keeps the first classes first (DiverGen: 1453 -> 1203).
:func:`checkpoint_detector` is also the detector of ``predict --weights``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DatasetSplit
from ..errors import InputError
from ..formats import read_lvis, write_json, write_results
from ..training.classes import build_class_map
from ..training.config import Detectron2Settings, TrainingConfig
from ..training.detectron2_engine.engine import require_detectron2
from ..training.detectron2_engine.original_checkpoints import WeightsKey, read_detector_weights
from .metrics_file import IouType, metrics_record

if TYPE_CHECKING:
    from ..training.detectron2_engine.inference import Detectron2Detector

# Published LVIS v1 val AP (percent) of released checkpoints, by file name: DiverGen_swinL.pth from the DiverGen
# paper (Table 1, also its README), Xpaste_swinL_final.pth (the name its README's demo uses) from the X-Paste README.
# These are the papers' numbers, not results of this repository.
PUBLISHED: dict[str, dict[str, Any]] = {
    "divergen_swinl.pth": {"source": "DiverGen paper", "bbox": 51.2, "segm": 45.5},
    "xpaste_swinl_final.pth": {"source": "X-Paste README", "bbox": 50.9, "segm": 45.4},
}


def published(weights: str | os.PathLike) -> dict[str, Any] | None:
    """The published AP of a released checkpoint of that file name (any case), else None."""
    return PUBLISHED.get(Path(weights).name.lower())


def published_comparison(record: dict[str, Any]) -> str:
    """Our box and mask AP of a record and, below, the published ones of its released checkpoint (labelled)."""
    entry = record["published"]
    ours = {k: f"{100 * record[k]['AP']:.1f}" if k in record else "-" for k in ("bbox", "segm")}
    return (
        f"{'ours':<26} box AP {ours['bbox']:>5}, mask AP {ours['segm']:>5}\n"
        f"{'published (' + entry['source'] + ')':<26} box AP {entry['bbox']:>5.1f}, mask AP {entry['segm']:>5.1f}"
    )


def checkpoint_detector(
    weights: str | os.PathLike,
    settings: Detectron2Settings,
    categories: list[dict[str, Any]] | None,
    categories_from: str | os.PathLike | None,
    ema: bool | None = None,
    truncate_to: int | None = None,
    device: str = "auto",
) -> tuple[Detectron2Detector, WeightsKey]:
    """A detectron2 checkpoint in either layout (:func:`read_detector_weights`: ``ema`` chooses the weights, first
    ``truncate_to`` classes when given) as a detector, and which weights it has: of the checkpoint's class map, else
    of ``categories`` by id (read from ``categories_from``, which errors name); one line without either."""
    require_detectron2()
    from ..training.detectron2_engine.inference import Detectron2Detector, load_model

    found = read_detector_weights(weights, ema)
    if truncate_to is not None:
        found = found.truncated(truncate_to)
    if found.classes is not None:
        classes = found.classes
    elif categories is None:
        raise InputError(
            f"{weights}: stores no class names; give the categories it was trained for (e.g. --categories "
            "lvis_v1_val.json)"
        )
    else:
        classes = build_class_map(categories, None, None, False)
        if (found.num_classes or 0) > classes.num_classes:
            raise InputError(
                f"{weights}: {found.num_classes} classes, {classes.num_classes} categories in {categories_from}; "
                f"--truncate-to {classes.num_classes} keeps the first {classes.num_classes}"
            )
    split = DatasetSplit(Path(weights), Path(weights).parent)  # read by training only
    cfg = TrainingConfig(train=split, val=split, engine="detectron2", detectron2=settings)
    model, d2 = load_model(found, cfg, classes, device)
    return Detectron2Detector(model, d2, classes, cfg.test), found.key


def evaluate_checkpoint(
    weights: str | os.PathLike,
    settings: Detectron2Settings,
    gt_json_path: str | os.PathLike,
    image_root: str | os.PathLike,
    ema: bool | None = None,
    truncate_to: int | None = None,
    device: str = "auto",
    max_images: int | None = None,
    workers: int = 1,
    results_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The metrics record (:func:`~.metrics_file.metrics_record`, ``bbox`` and, with a mask head, ``segm``) of the
    checkpoint (:func:`checkpoint_detector`, classes by default the ground truth's) on the first ``max_images``
    (default: all) images of the LVIS ground truth, with where it came from and, for a released checkpoint, its
    published AP; the LVIS results also go to ``results_path`` when given."""
    gt = read_lvis(gt_json_path)
    detector, key = checkpoint_detector(weights, settings, gt["categories"], gt_json_path, ema, truncate_to, device)
    images = gt["images"][:max_images]
    results = detector.predict(images, image_root)
    if results_path is not None:
        write_results(results, results_path, detector.test.max_detections)
    iou_types: list[IouType] = ["bbox", "segm"] if detector.d2.MODEL.MASK_ON else ["bbox"]
    record: dict[str, Any] = {"checkpoint": str(weights), "weights": key, "ground_truth": str(gt_json_path)}
    record |= {"images": len(images), "classes": detector.classes.num_classes}
    with tempfile.TemporaryDirectory() as tmp:
        evaluated = gt_json_path
        if len(images) < len(gt["images"]):  # the ground truth of the predicted images only
            ids = {img["id"] for img in images}
            evaluated = Path(tmp) / "ground_truth.json"
            annotations = [a for a in gt["annotations"] if a["image_id"] in ids]
            write_json({**gt, "images": images, "annotations": annotations}, evaluated)
        record |= metrics_record(evaluated, results, iou_types, "fast", "lvis", workers)
    if entry := published(weights):
        record["published"] = entry
    return record
