"""CLIP embeddings of real instance crops and of generated sets, cached by the settings that made them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..clip_models import ClipModel
from ..config import settings_digest
from ..crops import annotation_crops
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


def cached_embeddings(path: Path, make: Any) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(embeddings, category_ids)`` from ``path`` or compute them with ``make()`` and save atomically."""
    if path.is_file():
        with np.load(path) as data:
            return data["embeddings"], data["category_ids"]
    embeddings, ids = make()
    with atomic_open(path, "wb") as fh:
        np.savez(fh, embeddings=embeddings, category_ids=ids)
    return embeddings, ids


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

    def make() -> tuple[np.ndarray, np.ndarray]:
        data = read_lvis(annotations)
        images = {img["id"]: img for img in data["images"]}
        anns = sorted(data["annotations"], key=lambda a: a["id"])
        if max_real is not None and len(anns) > max_real:
            keep = np.random.default_rng(seed).choice(len(anns), max_real, replace=False)
            anns = [anns[i] for i in sorted(keep)]
        crops, used = annotation_crops(images, anns, image_root, padding=crop_padding)
        ids = [a["category_id"] for a in used]
        return clip.encode_images(crops), np.asarray(ids)

    return EmbeddedSet(name, *cached_embeddings(cache / f"{name}-{key}.npz", make))


def generated_set(
    spec: GeneratedSet, cfg: AnalysisConfig, clip: ClipModel, cache: Path, seed: int, device: str
) -> EmbeddedSet:
    """Generate the set in memory (whole images, no files) and embed it."""
    selection = replace(cfg.categories, include_extra=spec.include_extra)
    if not spec.include_extra:
        selection = replace(selection, imagenet_extras=0)
    key = settings_digest(spec, selection, seed, clip.name, clip.pretrained)

    def make() -> tuple[np.ndarray, np.ndarray]:
        categories = resolve_categories(selection)
        prompts = build_prompts(categories, spec.prompts, seed, device)
        embeddings, ids = [], []
        for model in spec.models:
            generator = build_generator(model, device)
            requests = plan_requests(categories, prompts, model, spec.images_per_category, seed)
            for start in range(0, len(requests), spec.batch_size):
                batch = requests[start : start + spec.batch_size]
                embeddings.append(clip.encode_images([g.image for g in generator.generate(batch)]))
                ids += [r.category_id for r in batch]
        return np.concatenate(embeddings), np.asarray(ids)

    path = cache / f"generated-{spec.name.replace(' ', '_')}-{key}.npz"
    return EmbeddedSet(spec.name, *cached_embeddings(path, make))
