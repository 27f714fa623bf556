"""Repeat-factor sampling (LVIS, Gupta et al. 2019; detectron2's ``RepeatFactorTrainingSampler``).

Category repeat factor ``r(c) = max(1, sqrt(t / f(c)))`` with ``f(c)`` the fraction of training images that
contain ``c``; an image's factor is the largest over its categories. Each epoch an image appears
``floor(r)`` times plus once more with probability ``r - floor(r)`` (stochastic rounding).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import Sampler


def repeat_factors(dataset: dict[str, Any], threshold: float) -> np.ndarray:
    """Per image of ``dataset["images"]`` (in order): its repeat factor for threshold ``t``."""
    n_images = len(dataset["images"])
    cats_of: dict[int, set[int]] = defaultdict(set)
    for ann in dataset["annotations"]:
        cats_of[ann["image_id"]].add(ann["category_id"])
    image_count: dict[int, int] = defaultdict(int)
    for cats in cats_of.values():
        for c in cats:
            image_count[c] += 1
    cat_factor = {c: max(1.0, math.sqrt(threshold / (n / n_images))) for c, n in image_count.items()}
    return np.array([max((cat_factor[c] for c in cats_of[img["id"]]), default=1.0) for img in dataset["images"]])


class RepeatFactorStream:
    """The training stream: position ``p`` (0, 1, 2, ... over the whole run) -> dataset index. Epoch ``e`` is
    the repeat-factor-expanded index list shuffled with ``(seed, e)``, so any position can be found again
    after a restart and the stream does not depend on the number of processes or data workers."""

    def __init__(self, factors: np.ndarray, seed: int, repeat: bool = True) -> None:
        self.factors = np.asarray(factors, dtype=np.float64)
        self.seed, self.repeat = seed, repeat
        self._epochs: list[np.ndarray] = []
        self._ends: list[int] = []

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Dataset indices of one epoch, shuffled."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.repeat:
            whole = np.floor(self.factors)
            counts = whole + (rng.random(len(self.factors)) < self.factors - whole)
            indices = np.repeat(np.arange(len(self.factors)), counts.astype(np.int64))
        else:
            indices = np.arange(len(self.factors))
        return indices[rng.permutation(len(indices))]

    def __getitem__(self, position: int) -> int:
        while not self._ends or self._ends[-1] <= position:
            self._epochs.append(self.epoch_indices(len(self._epochs)))
            self._ends.append((self._ends[-1] if self._ends else 0) + len(self._epochs[-1]))
        epoch = int(np.searchsorted(self._ends, position, side="right"))
        start = self._ends[epoch - 1] if epoch else 0
        return int(self._epochs[epoch][position - start])


class StepPositions(Sampler[int]):
    """Stream positions of one rank from step ``start_step`` on: at step ``s`` rank ``r`` of ``W`` takes
    positions ``s*B + r*b ... s*B + r*b + b - 1`` with ``b = B / W`` its share of the global batch ``B``."""

    def __init__(self, global_batch: int, rank: int, world_size: int, start_step: int, steps: int) -> None:
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by {world_size} processes")
        self.b = global_batch // world_size
        self.global_batch, self.rank, self.start, self.steps = global_batch, rank, start_step, steps

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.steps):
            first = step * self.global_batch + self.rank * self.b
            yield from range(first, first + self.b)

    def __len__(self) -> int:
        return max(0, self.steps - self.start) * self.b


def step_seed(base_seed: int, rank: int, step: int) -> int:
    """The torch seed of one training step of one rank (RPN/ROI sampling), so a resumed run repeats it."""
    return int(np.random.SeedSequence([base_seed, rank, step]).generate_state(1)[0])
