"""CLIP embeddings of real instance crops and of generated sets, cached by the settings that made them.

Under ``torchrun`` each rank embeds a contiguous block of a set's items (real instances in annotation order, where an
image read serves the consecutive instances on it; generated requests in plan order) and saves it as a part file
beside the cache; once every rank's part is there (a file barrier,
:func:`~divergen_lib.distributed.wait_for_ranks`: no process-group timeout), rank 0 merges the parts in item order
into the cache file. A part already on disk is reused, so a rerun after a crash redoes only the ranks that had not
finished. Real crops are made and embedded ``CHUNK`` at a time: memory holds one chunk of crops, never a whole
split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..clip_models import ClipModel
from ..config import settings_digest
from ..crops import annotation_crops
from ..distributed import dist_info, run_token, wait_for_ranks
from ..formats import atomic_open, read_lvis
from ..generation.base import build_generator
from ..generation.plan import build_prompts, plan_requests, resolve_categories
from .config import AnalysisConfig, GeneratedSet


@dataclass
class EmbeddedSet:
    """Embeddings (N, D) of one set and the category id of each row."""

    name: str
    embeddings: np.ndarray = field(repr=False)
    category_ids: np.ndarray = field(repr=False)


CHUNK = 2048
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Embeddings (N, D), category ids (N,) and the item index (N,) of each row: an item may give no row."""


def cached(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(embeddings, category_ids)`` of the cache file ``path``; None when it is not there."""
    if not path.is_file():
        return None
    with np.load(path) as data:
        return data["embeddings"], data["category_ids"]


def _load_part(path: Path) -> Arrays:
    with np.load(path) as data:
        return data["embeddings"], data["category_ids"], data["index"]


def _save(path: Path, arrays: Arrays) -> None:
    with atomic_open(path, "wb") as fh:
        np.savez(fh, embeddings=arrays[0], category_ids=arrays[1], index=arrays[2])


def rank_block(n: int, rank: int, world_size: int) -> range:
    """The contiguous block of ``range(n)`` that ``rank`` of ``world_size`` embeds (sizes differ by at most 1)."""
    return range(rank * n // world_size, (rank + 1) * n // world_size)


def sharded_embeddings(path: Path, n: int, make: Callable[[range], Arrays]) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings, category_ids)`` of ``n`` items made by ``make(block)`` on each rank's block, merged in item
    order and saved to ``path`` by rank 0 (see the module docstring); the other ranks get their block's."""
    info = dist_info()

    def part(rank: int) -> Path:
        return path.with_name(f"{path.stem}.rank{rank:03d}-of-{info.world_size:03d}.npz")

    token = run_token(info)
    if part(info.rank).is_file():
        arrays = _load_part(part(info.rank))
    else:
        arrays = make(rank_block(n, info.rank, info.world_size))
        if info.world_size > 1:
            _save(part(info.rank), arrays)
    if token is not None:  # a file barrier: ranks may finish hours apart
        wait_for_ranks(path.parent, path.stem, info, token)
    if info.world_size > 1 and info.is_main:
        parts = [_load_part(part(rank)) for rank in range(info.world_size)]
        order = np.argsort(np.concatenate([p[2] for p in parts]), kind="stable")
        arrays = tuple(np.concatenate([p[k] for p in parts])[order] for k in range(3))  # type: ignore[assignment]
    if info.is_main:
        _save(path, arrays)
        for rank in range(info.world_size) if info.world_size > 1 else ():
            part(rank).unlink()
    return arrays[0], arrays[1]


def real_set(
    name: str,
    annotations: Path,
    image_root: Path,
    clip: ClipModel,
    cache: Path,
    seed: int,
    crop_padding: int,
    max_real: int | None,
) -> EmbeddedSet:
    """Real instances of a split, cropped with DiverGen's recipe (at most ``max_real``, a seeded sample)."""
    stat = annotations.stat()
    key = settings_digest(
        name, str(annotations), stat.st_size, stat.st_mtime_ns, crop_padding, max_real, seed, clip.name, clip.pretrained
    )
    path = cache / f"{name}-{key}.npz"
    done = cached(path)
    if done is not None:
        return EmbeddedSet(name, *done)
    data = read_lvis(annotations)
    images = {img["id"]: img for img in data["images"]}
    anns = sorted(data["annotations"], key=lambda a: a["id"])
    if max_real is not None and len(anns) > max_real:
        keep = np.random.default_rng(seed).choice(len(anns), max_real, replace=False)
        anns = [anns[i] for i in sorted(keep)]
    position = {a["id"]: i for i, a in enumerate(anns)}

    def make(block: range) -> Arrays:
        embeddings, ids, index = [], [], []
        for start in range(block.start, block.stop, CHUNK):
            crops, used = annotation_crops(
                images, anns[start : min(start + CHUNK, block.stop)], image_root, crop_padding
            )
            embeddings.append(clip.encode_images(crops))
            ids += [a["category_id"] for a in used]
            index += [position[a["id"]] for a in used]
        return _arrays(clip, embeddings, ids, index)

    return EmbeddedSet(name, *sharded_embeddings(path, len(anns), make))


def _arrays(clip: ClipModel, embeddings: list[np.ndarray], ids: list[int], index: list[int]) -> Arrays:
    stacked = np.concatenate(embeddings) if embeddings else np.zeros((0, clip.embed_dim), np.float32)
    return stacked, np.asarray(ids, dtype=np.int64), np.asarray(index, dtype=np.int64)


def generated_set(
    spec: GeneratedSet, cfg: AnalysisConfig, clip: ClipModel, cache: Path, seed: int, device: str
) -> EmbeddedSet:
    """Generate the set in memory (whole images, no files) and embed it; each rank generates its block."""
    selection = replace(cfg.categories, include_extra=spec.include_extra)
    if not spec.include_extra:
        selection = replace(selection, imagenet_extras=0)
    key = settings_digest(spec, selection, seed, clip.name, clip.pretrained)
    path = cache / f"generated-{spec.name.replace(' ', '_')}-{key}.npz"
    done = cached(path)
    if done is not None:
        return EmbeddedSet(spec.name, *done)
    categories = resolve_categories(selection)
    prompts = build_prompts(categories, spec.prompts, seed, device)
    planned = [
        (model, request)
        for model in spec.models
        for request in plan_requests(categories, prompts, model, spec.images_per_category, seed)
    ]

    def make(block: range) -> Arrays:
        embeddings, ids = [], []
        for model in spec.models:
            mine = [request for i, (m, request) in enumerate(planned) if m is model and i in block]
            if not mine:
                continue
            generator = build_generator(model, device)
            for start in range(0, len(mine), spec.batch_size):
                batch = mine[start : start + spec.batch_size]
                embeddings.append(clip.encode_images([g.image for g in generator.generate(batch)]))
                ids += [r.category_id for r in batch]
        return _arrays(clip, embeddings, ids, list(block))

    return EmbeddedSet(spec.name, *sharded_embeddings(path, len(planned), make))
