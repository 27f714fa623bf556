"""The ``fast`` LVIS backend: faster-coco-eval's LVIS mode, run on shards of categories in worker processes.

LVIS AP is a mean over categories, and a category's precision and recall depend only on its own ground truth, its
own detections and the images where it is positive or negative. So the categories are cut into tasks; each task is
evaluated by faster-coco-eval on its categories and those images only; the per-category precision and recall
arrays are put back together and summarised as the lvis-api summarises them (``mean`` of the entries above -1).
The numbers are those of one call (tested against the lvis-api to 1e-9 for every shard count and worker count),
and the work avoided is large: one faster-coco-eval call builds a dict over every (image, category) pair, 24
million at LVIS val size, which is most of its time and memory.

Before the library sees them, detections are cut to each image's top 300 by score (the lvis-api's rule;
faster-coco-eval's cap is per image *and* category) and those LVIS does not evaluate are dropped: a detection whose
category is neither annotated in its image nor among the image's ``neg_category_ids`` (the lvis-api's
``LVISEval._prepare`` ignores them). faster-coco-eval 1.8.0 drops those too, but only after asking for their
image's size, which it records only for images with a kept detection or a ground-truth instance; an image holding
nothing but ignored detections then raises ``IndexError: unordered_map::at`` in ``calculateRleForAllAnnotations``
(segm only). Minimal reproduction: ground truth with one image ``{"id": 1, "neg_category_ids": [], ...}`` and no
annotation in it, one segm detection on image 1 of any category, ``COCOeval_faster(gt, gt.loadRes(dets),
"segm", lvis_style=True).evaluate()``. Dropping them first gives the same metric and avoids the lookup.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formats import MAX_DETS
from ..formats.detections import Detections, gc_paused
from ..progress import progress
from .parallel import process_pool

log = logging.getLogger(__name__)

SHARD_SIZE = 400_000  # detections + ground-truth instances per task: bounds a worker's memory
MAX_PAIRS = 2_000  # (category, image) pairs per task: the library's cost grows with their product
TASKS_PER_WORKER = 4  # with several workers, at least this many tasks each, so that they finish together
FREQUENCIES = ("r", "c", "f")


@dataclass(frozen=True)
class _Task:
    """Everything one faster-coco-eval call needs for some categories (picklable, sent to a worker)."""

    iou_type: str
    categories: list[dict[str, Any]]
    images: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    detections: Detections


@dataclass(frozen=True)
class _Shard:
    """A task's per-category arrays: precision ``T×R×k×A`` and recall ``T×k×A`` (area ``all`` first)."""

    category_ids: list[int]
    precision: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class ShardedEvaluation:
    """Every category's precision and recall arrays (categories in id order) and how the work was split."""

    category_ids: list[int]
    precision: np.ndarray
    recall: np.ndarray
    iou_thresholds: np.ndarray
    area_labels: list[str]
    tasks: int


def _evaluate_task(task: _Task) -> _Shard:
    with gc_paused():  # the library makes a dict per detection and instance, and no cycles
        return _evaluate_with_library(task)


def _evaluate_with_library(task: _Task) -> _Shard:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO({"images": task.images, "annotations": task.annotations, "categories": task.categories})
    dets = gt.loadRes(task.detections.to_results(task.iou_type == "segm"))
    evaluator = COCOeval_faster(
        gt, dets, task.iou_type, lvis_style=True, print_function=log.debug, rle_iou_max_workers=1
    )  # one thread: the parallelism is in the processes
    params = evaluator.params
    params.maxDets = [MAX_DETS]
    params.catIds = sorted(c["id"] for c in task.categories)
    params.imgIds = sorted(img["id"] for img in task.images)
    evaluator.evaluate()
    evaluator.accumulate()
    return _Shard(list(params.catIds), evaluator.eval["precision"][..., -1], evaluator.eval["recall"][..., -1])


class _Planner:
    """Cuts the categories with ground truth into tasks of about ``shard_size`` detections + instances each (a
    category without ground truth has no precision to compute: -1, as in both APIs)."""

    def __init__(self, dataset: dict[str, Any], dets: Detections, iou_type: str) -> None:
        self.iou_type = iou_type
        self.annotations: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.images_of: dict[int, set[int]] = defaultdict(set)
        for ann in dataset["annotations"]:
            self.annotations[ann["category_id"]].append(ann)
            self.images_of[ann["category_id"]].add(ann["image_id"])
        for img in dataset["images"]:
            for cid in img.get("neg_category_ids", ()):
                self.images_of[cid].add(img["id"])
        self.categories = sorted((c for c in dataset["categories"] if self.annotations[c["id"]]), key=lambda c: c["id"])
        self.image_by_id = {img["id"]: img for img in dataset["images"]}
        ids = np.array([c["id"] for c in self.categories], np.int64)
        if iou_type != "segm":
            dets = dets.without_masks()
        keep = self._evaluated(dets, dets.top_per_image(MAX_DETS))
        self.dets = dets.take(keep[np.argsort(dets.category_id[keep], kind="stable")])
        self.starts = np.searchsorted(self.dets.category_id, ids, "left")
        self.ends = np.searchsorted(self.dets.category_id, ids, "right")
        self.weights = (self.ends - self.starts) + np.array([len(self.annotations[i]) for i in ids.tolist()]) + 1

    def _evaluated(self, dets: Detections, top: np.ndarray) -> np.ndarray:
        """Those of ``top`` (each image's 300 best) that LVIS evaluates and that have a precision to compute: the
        category has ground truth and is annotated in the detection's image or among its ``neg_category_ids``."""
        pairs = [(i, c["id"]) for c in self.categories for i in self.images_of[c["id"]]]
        if not pairs or not len(top):
            return top[:0]
        stride = max(int(dets.category_id.max(initial=0)), self.categories[-1]["id"]) + 1
        known = np.fromiter((i * stride + c for i, c in pairs), np.int64, len(pairs))
        return top[np.isin(dets.image_id[top] * stride + dets.category_id[top], known)]

    def groups(self, workers: int, shard_size: int) -> list[range]:
        """Consecutive runs of category positions of about the same weight (at least :data:`TASKS_PER_WORKER` per
        worker), none heavier than ``shard_size`` or spanning more than :data:`MAX_PAIRS` (category, image) pairs
        unless it is a single category."""
        total = int(self.weights.sum())
        count = max(math.ceil(total / shard_size), TASKS_PER_WORKER * workers if workers > 1 else 1)
        target = total / min(count, len(self.categories) or 1)
        groups, start, load, images = [], 0, 0, set()
        for k, category in enumerate(self.categories):
            merged = images | self.images_of[category["id"]]
            weight = int(self.weights[k])
            too_big = load + weight > shard_size or (k - start + 1) * len(merged) > MAX_PAIRS
            if k > start and (load >= target or too_big):
                groups.append(range(start, k))
                start, load, merged = k, 0, set(self.images_of[category["id"]])
            images, load = merged, load + weight
        groups.append(range(start, len(self.categories)))
        return [g for g in groups if len(g)]

    def task(self, positions: range) -> _Task:
        categories = [self.categories[k] for k in positions]
        ids = [c["id"] for c in categories]
        image_ids = sorted(set().union(*(self.images_of[i] for i in ids)))
        annotations = [dict(a) for i in ids for a in self.annotations[i]]  # the library adds keys to each
        window = self.dets.window(int(self.starts[positions.start]), int(self.ends[positions.stop - 1]))
        images = [self.image_by_id[i] for i in image_ids]
        return _Task(self.iou_type, categories, images, annotations, window)


def _run(tasks: Iterator[_Task], workers: int) -> Iterator[_Shard]:
    """Each task's shard, in the order they finish; ``workers`` > 1 evaluates them in that many processes."""
    if workers <= 1:
        yield from map(_evaluate_task, tasks)
        return
    with process_pool(workers) as pool:
        pending: set[Future[_Shard]] = set()
        for task in tasks:  # at most two tasks per worker wait, so the parent never holds every shard at once
            pending.add(pool.submit(_evaluate_task, task))
            while len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        for future in list(pending):
            yield future.result()


def evaluate_shards(dataset: dict[str, Any], dets: Detections, iou_type: str, workers: int = 1) -> ShardedEvaluation:
    """Every category's LVIS precision (``T×R×K×A``) and recall (``T×K×A``) arrays, -1 where it has no ground
    truth, evaluated in ``workers`` processes (1: in this one) on tasks of about :data:`SHARD_SIZE` detections +
    instances; ``dets`` already checked against ``dataset``."""
    from faster_coco_eval.core.cocoeval import Params

    params = Params(iou_type)
    planner = _Planner(dataset, dets, iou_type)
    groups = planner.groups(workers, SHARD_SIZE)
    position = {cid: k for k, cid in enumerate(sorted(c["id"] for c in dataset["categories"]))}
    t, r, a = len(params.iouThrs), len(params.recThrs), len(params.areaRng)
    precision, recall = np.full((t, r, len(position), a), -1.0), np.full((t, len(position), a), -1.0)
    shards = _run((planner.task(g) for g in groups), min(workers, len(groups)))
    for shard in progress(shards, total=len(groups), desc=f"LVIS {iou_type} (category shards)", leave=False):
        index = [position[c] for c in shard.category_ids]
        precision[:, :, index] = shard.precision
        recall[:, index] = shard.recall
    thresholds, labels = np.asarray(params.iouThrs), list(params.areaRngLbl)
    return ShardedEvaluation(list(position), precision, recall, thresholds, labels, len(groups))


def summarize(evaluation: ShardedEvaluation, frequencies: dict[int, str]) -> dict[str, float]:
    """AP, AP50, AP75, APs/m/l and APr/c/f of merged arrays, as the lvis-api's ``summarize`` computes them."""

    def mean(values: np.ndarray) -> float:
        kept = values[values > -1]
        return float(np.mean(kept)) if kept.size else -1.0

    p, labels, thresholds = evaluation.precision, evaluation.area_labels, evaluation.iou_thresholds
    area = {label: labels.index(label) for label in labels}
    metrics = {
        "AP": mean(p[:, :, :, area["all"]]),
        "AP50": mean(p[np.flatnonzero(thresholds == 0.5)][:, :, :, area["all"]]),
        "AP75": mean(p[np.flatnonzero(thresholds == 0.75)][:, :, :, area["all"]]),
        "APs": mean(p[:, :, :, area["small"]]),
        "APm": mean(p[:, :, :, area["medium"]]),
        "APl": mean(p[:, :, :, area["large"]]),
    }
    for freq in FREQUENCIES:
        group = [k for k, cid in enumerate(evaluation.category_ids) if frequencies.get(cid) == freq]
        metrics[f"AP{freq}"] = mean(p[:, :, group, area["all"]])
    return metrics
