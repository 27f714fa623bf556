"""Detections as columns: what a results json holds (:mod:`.results`), in numpy arrays and one byte buffer of RLE
counts instead of one Python dict per detection (a twentieth of the memory at LVIS val size, and cheap to cut into
shards and send to worker processes).

Read from a results file entry by entry (:func:`read_detections`, the file is never held whole) or from results
dicts (:meth:`Detections.from_results`); both check every entry as :func:`.results.check_results` does and name
the first bad one by its index.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from .errors import FormatError
from .json_stream import iter_json_list
from .results import MAX_DETS, entry_problem, unknown_id_problem


@dataclass(frozen=True)
class Detections:
    """``N`` detections: ``image_id``, ``category_id`` (int64), ``score`` (float64), ``bbox`` (``N×4``
    ``x, y, w, h``) and, when masks were read, each compressed RLE's ``counts`` as
    ``rle_counts[rle_offsets[i]:rle_offsets[i + 1]]`` with its ``rle_size`` (``N×2`` height, width)."""

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray
    rle_counts: bytes | None = None
    rle_offsets: np.ndarray | None = None
    rle_size: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)

    @property
    def has_masks(self) -> bool:
        return self.rle_counts is not None

    @classmethod
    def from_results(cls, results: Iterable[Any], with_masks: bool, source: str = "results") -> Detections:
        """The detections of results dicts (checked; with ``with_masks`` each needs an RLE ``segmentation``)."""
        columns = _Columns(with_masks)
        for index, det in enumerate(results):
            columns.add(index, det, source)
        return columns.finish()

    def take(self, indices: np.ndarray) -> Detections:
        """The detections at ``indices``, in that order."""
        base = (self.image_id[indices], self.category_id[indices], self.score[indices], self.bbox[indices])
        if self.rle_counts is None or self.rle_offsets is None or self.rle_size is None:
            return Detections(*base)
        starts, ends = self.rle_offsets[indices], self.rle_offsets[np.asarray(indices) + 1]
        buffer = self.rle_counts
        counts = b"".join(buffer[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True))
        offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        return Detections(*base, counts, offsets, self.rle_size[indices])

    def to_results(self, with_masks: bool) -> list[dict[str, Any]]:
        """Results dicts (compressed RLE ``counts`` as bytes, as pycocotools makes them) for an evaluation API."""
        columns = zip(
            self.image_id.tolist(), self.category_id.tolist(), self.score.tolist(), self.bbox.tolist(), strict=True
        )
        dets = [{"image_id": i, "category_id": c, "score": s, "bbox": b} for i, c, s, b in columns]
        if with_masks and self.rle_counts is not None and self.rle_offsets is not None and self.rle_size is not None:
            buffer, offsets = self.rle_counts, self.rle_offsets.tolist()
            for k, (det, size) in enumerate(zip(dets, self.rle_size.tolist(), strict=True)):
                det["segmentation"] = {"size": size, "counts": buffer[offsets[k] : offsets[k + 1]]}
        return dets

    def top_per_image(self, max_per_image: int = MAX_DETS) -> np.ndarray:
        """Indices of each image's ``max_per_image`` highest-scoring detections, by image id, then score
        (highest first), then position (the rule of :func:`.results.top_detections` and the lvis-api)."""
        order = np.lexsort((np.arange(len(self)), -self.score, self.image_id))
        images = self.image_id[order]
        starts = np.flatnonzero(np.r_[True, images[1:] != images[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        return order[rank < max_per_image]

    def check_ids(self, images: Iterable[int], categories: Iterable[int], source: str = "results") -> None:
        """Raise FormatError naming the first detection whose image or category is not in the ground truth."""
        first: tuple[int, str] | None = None
        for key, values, known, what in (
            ("image_id", self.image_id, images, "an image"),
            ("category_id", self.category_id, categories, "a category"),
        ):
            unknown = ~np.isin(values, np.fromiter(known, np.int64))
            index = int(np.argmax(unknown))
            if unknown.any() and (first is None or index < first[0]):
                first = (index, unknown_id_problem(key, int(values[index]), what))
        if first is not None:
            raise FormatError(f"{source}[{first[0]}]: {first[1]}")


class _Columns:
    """Growing columns of checked detections."""

    def __init__(self, with_masks: bool) -> None:
        self.with_masks = with_masks
        self.ids, self.cats = array("q"), array("q")
        self.scores, self.boxes = array("d"), array("d")
        self.counts, self.offsets, self.sizes = bytearray(), array("q", [0]), array("q")

    def add(self, index: int, det: Any, source: str) -> None:
        problem = entry_problem(det, None, None, self.with_masks)
        if problem is not None:
            raise FormatError(f"{source}[{index}]: {problem}")
        try:
            self.ids.append(det["image_id"])
            self.cats.append(det["category_id"])
        except OverflowError:
            raise FormatError(f"{source}[{index}]: an id beyond the 64-bit range") from None
        self.scores.append(det["score"])
        self.boxes.extend(det["bbox"])
        if self.with_masks:
            rle = det["segmentation"]
            h, w = rle["size"]
            counts = rle["counts"]
            if isinstance(counts, list):  # uncompressed RLE
                counts = mask_utils.frPyObjects(rle, h, w)["counts"]
            self.counts += counts.encode() if isinstance(counts, str) else counts
            self.offsets.append(len(self.counts))
            self.sizes.extend((h, w))

    def finish(self) -> Detections:
        def column(values: array, dtype: Any) -> np.ndarray:
            return np.frombuffer(values, dtype=dtype).copy() if len(values) else np.zeros(0, dtype)

        boxes = column(self.boxes, np.float64).reshape(-1, 4)
        base = (column(self.ids, np.int64), column(self.cats, np.int64), column(self.scores, np.float64), boxes)
        if not self.with_masks:
            return Detections(*base)
        sizes = column(self.sizes, np.int64).reshape(-1, 2)
        return Detections(*base, bytes(self.counts), column(self.offsets, np.int64), sizes)


def read_detections(path: str | os.PathLike, with_masks: bool) -> Detections:
    """The detections of a results json, read entry by entry (see :func:`iter_json_list`) and each checked."""
    columns = _Columns(with_masks)
    for index, det in iter_json_list(path, "a list of detections"):
        columns.add(index, det, "results")
    return columns.finish()
