"""Worker processes of the evaluation: their pool, and a results file read by several processes at once (reading is
about half the time of an LVIS-val-size evaluation)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from ..formats import FormatError
from ..formats.detections import Detections, concatenate, read_detections, read_detections_range
from ..formats.json_stream import split_json_list

PARALLEL_READ_BYTES = 1 << 26  # smaller results files are read by one process


def process_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes, forked on Linux (as torch's DataLoader does: a script needs no ``__main__`` guard and
    nothing is imported again; the workers run only json, numpy and the evaluation libraries), spawned elsewhere."""
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context)


def read_results_columns(path: str | os.PathLike, with_masks: bool, workers: int = 1) -> Detections:
    """The detections of a results json (checked), read by ``workers`` processes, each taking a byte range. A
    range that fails to parse (a malformed entry, or a split that was not between entries) makes the whole file be
    read again by one process, whose message names the first bad entry by its index in the file."""
    if workers <= 1 or os.path.getsize(path) < PARALLEL_READ_BYTES:
        return read_detections(path, with_masks)
    ranges = split_json_list(path, workers, "a list of detections")
    try:
        with process_pool(len(ranges)) as pool:
            futures = [pool.submit(read_detections_range, path, s, e, closed, with_masks) for s, e, closed in ranges]
            parts = [f.result() for f in futures]
    except FormatError:
        return read_detections(path, with_masks)
    return concatenate(parts, with_masks)
