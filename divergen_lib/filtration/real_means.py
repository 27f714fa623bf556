"""DiverGen's real-instance category means, streamed over chunks of real images.

The selected training instances (per category, its annotations in id order, capped by
``inter_similarity.max_real_per_category``) are grouped by image; the images holding any are cut, in image-id order,
into chunks of :data:`CHUNK_IMAGES`, and chunk ``k`` goes to rank ``k % world_size``. A DataLoader's workers read each
image once, crop its instances (DiverGen's recipe, :func:`..crops.annotation_crops`) and apply CLIP's preprocessing;
the main process encodes a chunk's crops in CLIP batches cut from that chunk alone and adds the normalised embeddings
to per-category float64 sums and counts, saved as the chunk's part file (named by the settings digest), so a rerun
redoes only missing chunks. Once every rank is done, rank 0 adds the parts in chunk order (the same bytes for any
number of processes) and writes ``real_means.jsonl``, which every rank reads back.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..clip_models import ClipModel, preprocessed
from ..crops import annotation_crops
from ..distributed import DistInfo, barrier, run_token, shard, wait_for_ranks
from ..formats import atomic_open, read_lvis, read_manifest, write_manifest
from ..progress import progress
from .config import FiltrationConfig
from .layout import FiltrationLayout
from .rules import normalise

CHUNK_IMAGES = 64  # real images per chunk: one part file, the unit of work a rerun redoes

RealImage = tuple[dict[str, Any], list[dict[str, Any]]]
"""An LVIS image info and its selected annotations (in id order)."""


def real_chunks(cfg: FiltrationConfig) -> list[list[RealImage]]:
    """The selected real instances of every category grouped by image, in image-id order, cut into chunks."""
    data = read_lvis(cfg.real.annotations)
    by_category: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        by_category[ann["category_id"]].append(ann)
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for anns in by_category.values():
        for ann in anns[: cfg.inter_similarity.max_real_per_category or None]:
            by_image[ann["image_id"]].append(ann)
    images = {img["id"]: img for img in data["images"]}
    held = [(images[i], sorted(by_image[i], key=lambda a: a["id"])) for i in sorted(by_image)]
    return [held[k : k + CHUNK_IMAGES] for k in range(0, len(held), CHUNK_IMAGES)]


class _RealImages(Dataset[tuple[int, list[int], torch.Tensor]]):
    """Item ``i``: (chunk index, category id of each instance cropped, their preprocessed crops (n, 3, H, W)); an
    unreadable image or empty mask is skipped with a warning, as :func:`..crops.annotation_crops` does."""

    def __init__(
        self,
        images: Sequence[tuple[int, RealImage]],
        preprocess: Callable[[Image.Image], torch.Tensor],
        cfg: FiltrationConfig,
    ) -> None:
        self.images, self.preprocess, self.cfg = images, preprocess, cfg

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[int, list[int], torch.Tensor]:
        chunk, (info, anns) = self.images[i]
        sim = self.cfg.inter_similarity
        crops, used = annotation_crops(
            {info["id"]: info}, anns, self.cfg.real.image_root, sim.crop_padding, sim.blur_kernel
        )
        pixels = preprocessed(self.preprocess, crops) if crops else torch.empty(0)
        return chunk, [a["category_id"] for a in used], pixels


class _ChunkSums:
    """Per-category float64 sums and counts of one chunk's normalised embeddings. Crops arrive an image at a time and
    are encoded in batches of ``clip.batch_size`` cut from the chunk's crop stream (the last one shorter)."""

    def __init__(self, clip: ClipModel) -> None:
        self.clip = clip
        self.sums: defaultdict[int, np.ndarray] = defaultdict(lambda: np.zeros(clip.embed_dim))
        self.counts: Counter[int] = Counter()
        self.categories: list[int] = []
        self.pending: list[torch.Tensor] = []

    def add(self, categories: list[int], pixels: torch.Tensor) -> None:
        """Queue one image's crops; encode every full batch."""
        self.categories += categories
        self.pending.append(pixels)
        size = self.clip.batch_size
        if len(self.categories) >= size:
            stream = torch.cat(self.pending)
            full = len(self.categories) // size * size
            for k in range(0, full, size):
                self._encode(self.categories[k : k + size], stream[k : k + size])
            self.categories, self.pending = self.categories[full:], [stream[full:].clone()]

    def save(self, path: Path) -> None:
        """After the last image: encode what is left and write ``category_ids`` (K,) int64 in id order, their
        ``sums`` (K, D) float64 and ``counts`` (K,) int64 to the npz ``path``."""
        if self.categories:
            self._encode(self.categories, torch.cat(self.pending))
        ids = sorted(self.sums)
        sums = np.stack([self.sums[c] for c in ids]) if ids else np.zeros((0, self.clip.embed_dim))
        counts = np.asarray([self.counts[c] for c in ids], np.int64)
        with atomic_open(path, "wb", encoding=None) as fh:
            np.savez(fh, category_ids=np.asarray(ids, np.int64), sums=sums, counts=counts)

    def _encode(self, categories: list[int], pixels: torch.Tensor) -> None:
        for c, emb in zip(categories, normalise(self.clip.encode_pixels(pixels)), strict=True):
            self.sums[c] += emb
            self.counts[c] += 1


def _embed_chunks(
    clip: ClipModel,
    cfg: FiltrationConfig,
    chunks: list[list[RealImage]],
    todo: list[int],
    parts: list[Path],
    show_progress: bool,
) -> None:
    """Sum chunks ``todo`` through a DataLoader of their images and save each one's part file."""
    if not todo:
        return
    images = [(k, image) for k in todo for image in chunks[k]]
    loader = DataLoader(_RealImages(images, clip.preprocess, cfg), batch_size=None, num_workers=cfg.num_workers)
    shown = progress(total=len(todo), desc="real means", disable=not show_progress, leave=False)
    for k, items in groupby(loader, key=lambda item: item[0]):
        sums = _ChunkSums(clip)
        for _, categories, pixels in items:
            sums.add(categories, pixels)
        sums.save(parts[k])
        shown.update()
    shown.close()


def _mean_rows(parts: list[Path], category_ids: list[int], dim: int) -> list[dict[str, Any]]:
    """One row per category: ``n_real`` and the mean of its normalised embeddings (:func:`.rules.category_mean`:
    sum / count, not re-normalised), the parts added in chunk order."""
    sums: defaultdict[int, np.ndarray] = defaultdict(lambda: np.zeros(dim))
    counts: Counter[int] = Counter()
    for path in parts:
        with np.load(path) as part:
            for c, total, n in zip(part["category_ids"].tolist(), part["sums"], part["counts"].tolist(), strict=True):
                sums[c] += total
                counts[c] += n
    return [
        {
            "id": f"{c:05d}",
            "category_id": c,
            "n_real": counts[c],
            "mean": [round(float(v), 7) for v in sums[c] / counts[c]] if counts[c] else None,
        }
        for c in category_ids
    ]


def category_means(
    clip: ClipModel, cfg: FiltrationConfig, category_ids: list[int], out_dir: Path, digest: str, info: DistInfo
) -> dict[int, np.ndarray]:
    """Category id -> the mean of its real instances' normalised CLIP embeddings, for the ``category_ids`` that have
    any (see the module docstring); ``digest`` names the settings that decide the means."""
    layout = FiltrationLayout(out_dir)
    chunks = real_chunks(cfg)
    parts = [layout.real_means_part(digest, CHUNK_IMAGES, k) for k in range(len(chunks))]
    token = run_token(info)
    todo = [k for k in shard(range(len(chunks)), info.rank, info.world_size) if not parts[k].is_file()]
    _embed_chunks(clip, cfg, chunks, todo, parts, info.is_main)
    if token is not None:
        wait_for_ranks(out_dir, "real_means", info, token)
    if info.is_main:
        write_manifest(_mean_rows(parts, category_ids, clip.embed_dim), layout.real_means)
    barrier()  # rank 0 has written the means
    rows = read_manifest(layout.real_means)
    return {r["category_id"]: np.asarray(r["mean"]) for r in rows if r["mean"] is not None}
