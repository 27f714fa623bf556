"""Detections as columns: what a results json holds (:mod:`.results`), in numpy arrays and one byte buffer of RLE
counts instead of one Python dict per detection (a twentieth of the memory at LVIS val size, and cheap to cut into
shards and send to worker processes).

Read from a results file entry by entry (:func:`read_detections`, the file is never held whole) or from results
dicts (:meth:`Detections.from_results`); both check every entry as :func:`.results.check_results` does and name
the first bad one by its index.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from ..progress import progress
from .errors import FormatError
from .json_stream import iter_json_batches, iter_json_range
from .masks import as_compressed
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

    @classmethod
    def from_results(cls, results: Iterable[Any], with_masks: bool, source: str = "results") -> Detections:
        """The detections of results dicts (checked; with ``with_masks`` each needs an RLE ``segmentation``)."""
        columns = _Columns(with_masks)
        columns.add_batch(0, list(results), source)
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

    def window(self, start: int, stop: int) -> Detections:
        """Detections ``start`` to ``stop`` (a slice: no per-detection work)."""
        base = (self.image_id[start:stop], self.category_id[start:stop], self.score[start:stop], self.bbox[start:stop])
        if self.rle_counts is None or self.rle_offsets is None or self.rle_size is None:
            return Detections(*base)
        offsets = self.rle_offsets[start : stop + 1]
        counts = self.rle_counts[int(offsets[0]) : int(offsets[-1])]
        return Detections(*base, counts, offsets - offsets[0], self.rle_size[start:stop])

    def without_masks(self) -> Detections:
        return Detections(self.image_id, self.category_id, self.score, self.bbox)

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


_NUMBER = {int, float}


def _bulk_columns(batch: list[Any], with_masks: bool) -> tuple[np.ndarray, ...] | None:
    """The columns of a run of entries checked in bulk (the common case: every one well formed), or None if any
    entry fails a check (then each is checked on its own, which names the first bad one)."""
    try:
        ids = [d["image_id"] for d in batch]
        cats = [d["category_id"] for d in batch]
        scores = [d["score"] for d in batch]
        boxes = [d["bbox"] for d in batch]
        segs = [d["segmentation"] for d in batch] if with_masks else []
        sizes = [s["size"] for s in segs]
        counts = [s["counts"] for s in segs]
    except (KeyError, TypeError):
        return None
    if not set(map(type, boxes)) | set(map(type, sizes)) <= {list}:
        return None
    boxes_flat, sizes_flat = list(chain.from_iterable(boxes)), list(chain.from_iterable(sizes))
    if not (
        set(map(type, ids)) | set(map(type, cats)) | set(map(type, sizes_flat)) <= {int}
        and set(map(type, scores)) | set(map(type, boxes_flat)) <= _NUMBER
        and set(map(len, boxes)) <= {4}
        and set(map(len, sizes)) <= {2}
        and set(map(type, counts)) <= {str}
    ):
        return None
    try:
        id_column, cat_column = np.array(ids, np.int64), np.array(cats, np.int64)
    except OverflowError:
        return None
    score_column, box_column = np.array(scores, np.float64), np.array(boxes_flat, np.float64).reshape(-1, 4)
    finite = np.isfinite(score_column).all() and np.isfinite(box_column).all()
    if not finite or (box_column[:, 2:] < 0).any():
        return None
    if not with_masks:
        return id_column, cat_column, score_column, box_column
    size_column = np.array(sizes_flat, np.int64).reshape(-1, 2)
    text = "".join(counts)
    encoded = text.encode()
    if (size_column < 0).any() or len(encoded) != len(text):
        return None
    lengths = np.fromiter(map(len, counts), np.int64, len(counts))
    return id_column, cat_column, score_column, box_column, np.frombuffer(encoded, np.uint8), lengths, size_column


class _Columns:
    """Growing columns of checked detections, as a list of parts joined at the end."""

    def __init__(self, with_masks: bool) -> None:
        self.with_masks = with_masks
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add_batch(self, first: int, batch: list[Any], source: str) -> None:
        bulk = _bulk_columns(batch, self.with_masks)
        if bulk is None:
            bulk = self._one_by_one(first, batch, source)
        self.parts.append(bulk)

    def _one_by_one(self, first: int, batch: list[Any], source: str) -> tuple[np.ndarray, ...]:
        """Columns of ``batch`` entry by entry, raising FormatError for the first malformed one."""
        rows: list[tuple[np.ndarray, ...]] = []
        for index, det in enumerate(batch, first):
            problem = entry_problem(det, None, None, self.with_masks)
            if problem is None:
                try:
                    rows.append(self._row(det))
                    continue
                except OverflowError:
                    problem = "an id beyond the 64-bit range"
            raise FormatError(f"{source}[{index}]: {problem}")
        return tuple(np.concatenate(column) for column in zip(*rows, strict=True)) if rows else ()

    def _row(self, det: dict[str, Any]) -> tuple[np.ndarray, ...]:
        """The columns of one checked entry (any int/float types; a counts list or bytes made a string)."""
        row = (
            np.array([det["image_id"]], np.int64),
            np.array([det["category_id"]], np.int64),
            np.array([det["score"]], np.float64),
            np.array([det["bbox"]], np.float64),
        )
        if not self.with_masks:
            return row
        rle = det["segmentation"]
        h, w = (int(v) for v in rle["size"])
        encoded: bytes = as_compressed({"size": [h, w], "counts": rle["counts"]})["counts"]
        text = np.frombuffer(encoded, np.uint8)
        return (*row, text, np.array([len(encoded)], np.int64), np.array([[h, w]], np.int64))

    def finish(self) -> Detections:
        parts = [p for p in self.parts if p]
        n_columns = 7 if self.with_masks else 4
        if not parts:
            empty = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4))]
            parts = [(*empty, np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros((0, 2), np.int64))[:n_columns]]
        columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
        ids, cats, scores, boxes = columns[:4]
        if not self.with_masks:
            return Detections(ids, cats, scores, boxes)
        counts, lengths, sizes = columns[4:]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Detections(ids, cats, scores, boxes, counts.tobytes(), offsets, sizes)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of short-lived, acyclic entries are made (each collection would
    walk every object alive, a large ground truth included)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_detections(path: str | os.PathLike, with_masks: bool) -> Detections:
    """The detections of a results json, read a window at a time (see :func:`iter_json_batches`) and checked."""
    columns = _Columns(with_masks)
    size = os.path.getsize(path)
    with gc_paused(), progress(total=size, unit="B", unit_scale=True, desc="read results", leave=False) as bar:
        for first, batch in iter_json_batches(path, "a list of detections", on_read=bar.update):
            columns.add_batch(first, batch, "results")
    return columns.finish()


def read_detections_range(path: str | os.PathLike, start: int, end: int, closed: bool, with_masks: bool) -> Detections:
    """The detections in one byte range of a results json (:func:`~.json_stream.split_json_list`); a bad entry
    is named by its index within the range."""
    columns = _Columns(with_masks)
    with gc_paused():
        for first, batch in iter_json_range(path, start, end, closed):
            columns.add_batch(first, batch, f"results[bytes {start}:{end}]")
    return columns.finish()


def concatenate(parts: list[Detections], with_masks: bool) -> Detections:
    """One set of detections from consecutive parts."""
    columns = _Columns(with_masks)
    for part in parts:
        if len(part):
            base = (part.image_id, part.category_id, part.score, part.bbox)
            if with_masks and part.rle_counts is not None and part.rle_offsets is not None:
                counts = np.frombuffer(part.rle_counts, np.uint8)
                columns.parts.append((*base, counts, np.diff(part.rle_offsets), part.rle_size))  # type: ignore[arg-type]
            else:
                columns.parts.append(base)
    return columns.finish()
