"""Build the toy world: a deterministic, long-tailed dataset in LVIS v1 format (train.json, val.json, PNGs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import method_values, settings_digest
from ..formats import (
    assign_frequencies,
    frequency_thresholds,
    mask_bbox,
    mask_to_rle,
    read_json,
    write_json,
    write_lvis,
    write_png,
)
from ..progress import progress
from .catalog import CategorySpec, make_catalog, spec_from_dict, spec_to_dict
from .config import ToyWorldConfig
from .layout import SPLITS, ToyWorldLayout
from .render import render_background, render_object

log = logging.getLogger(__name__)

TOY_LABEL = "TOY WORLD: a procedural stand-in for LVIS v1, not real data"
PLACEMENT_TRIES = 12
MIN_VISIBLE_PIXELS = 24


@dataclass(frozen=True)
class ToyWorld:
    """Paths and catalogue of a built toy world."""

    root: Path
    categories: list[CategorySpec]
    extra_categories: list[CategorySpec]
    thresholds: tuple[int, int]

    @property
    def layout(self) -> ToyWorldLayout:
        return ToyWorldLayout(self.root)

    @property
    def out_dir(self) -> Path:
        return self.root

    def json_path(self, split: str) -> Path:
        return self.layout.annotations(split)

    def image_path(self, file_name: str) -> Path:
        return self.root / file_name

    @property
    def extra_categories_path(self) -> Path:
        return self.layout.extra_categories


def _seed_sequence(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _target_image_counts(cfg: ToyWorldConfig, rng: np.random.Generator, thresholds: tuple[int, int]) -> np.ndarray:
    """Per-category number of train images, drawn inside LVIS's r/c/f bands (scaled) for a long tail."""
    rare_max, common_max = thresholds
    n_r = max(1, round(cfg.frequency_split[0] * cfg.n_categories))
    n_f = max(1, round(cfg.frequency_split[2] * cfg.n_categories))
    n_c = cfg.n_categories - n_r - n_f
    f_max = max(common_max + 2, int(cfg.max_frequent_fraction * cfg.n_train_images))
    counts = np.concatenate(
        [
            rng.integers(1, rare_max + 1, n_r),
            rng.integers(rare_max + 1, common_max + 1, n_c),
            np.exp(rng.uniform(np.log(common_max + 1), np.log(f_max), n_f)).astype(int),
        ]
    )
    return rng.permutation(counts)


def _allocate(counts: np.ndarray, n_images: int, cap: int, rng: np.random.Generator) -> list[list[int]]:
    """Give each category (index i) ``counts[i]`` distinct images, preferring the emptiest images."""
    contents: list[list[int]] = [[] for _ in range(n_images)]
    load = np.zeros(n_images)
    for cat in np.argsort(-counts, kind="stable"):
        k = min(int(counts[cat]), n_images)
        weights = np.where(load < cap, 1.0 / (1.0 + load) ** 3, 1e-9)
        chosen = rng.choice(n_images, size=k, replace=False, p=weights / weights.sum())
        for img in chosen:
            contents[img].append(int(cat))
            load[img] += 1
    frequent = np.argsort(-counts, kind="stable")[: max(1, len(counts) // 4)]
    for img in np.flatnonzero(load == 0):
        contents[img].append(int(rng.choice(frequent)))
    return contents


def _compose(
    spec_of: list[CategorySpec],
    cats: list[int],
    cfg: ToyWorldConfig,
    rng: np.random.Generator,
    narrow: set[int],
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Render one scene: background, then objects in painter's order; returns image and visible masks."""
    size = cfg.image_size
    image = render_background(rng, size, cfg.clutter_strokes).astype(np.float64)
    objects: list[tuple[int, np.ndarray]] = []
    instances = []
    for cat in cats:
        extra = int(rng.integers(1, 3)) if rng.random() < cfg.multi_instance_prob else 0
        instances += [cat] * (1 + extra)
    for cat in instances[: cfg.max_objects_per_image]:
        spec = spec_of[cat]
        for _ in range(PLACEMENT_TRIES):
            look = spec.sample(rng, cfg.rare_train_slice if cat in narrow else None)
            center = tuple(rng.uniform(0.15 * size, 0.85 * size, 2))
            rgb, mask = render_object(spec.shape, spec.pattern, look, size, center)
            if mask.sum() < MIN_VISIBLE_PIXELS:
                continue
            # the new object occludes earlier ones; keep it only if nobody becomes (nearly) invisible
            visible = [(c, m & ~mask) for c, m in objects]
            if all(
                v.sum() >= max(MIN_VISIBLE_PIXELS, cfg.min_visible_fraction * m.sum())
                for (_, v), (_, m) in zip(visible, objects, strict=True)
            ):
                objects = [*visible, (cat, mask)]
                image = np.where(mask[..., None], rgb + rng.normal(0, 3, rgb.shape), image)
                break
    return np.clip(image, 0, 255).astype(np.uint8), objects


def _split_dataset(
    split: str,
    cfg: ToyWorldConfig,
    seed: int,
    specs: list[CategorySpec],
    contents: list[list[int]],
    narrow: set[int],
    root: Path,
) -> dict[str, Any]:
    """Render and annotate every image of one split."""
    split_code = SPLITS.index(split)
    images, annotations = [], []
    all_cat_ids = [s.id for s in specs]
    for index, cats in enumerate(progress(contents, desc=f"toy world {split}", leave=False)):
        image_id = split_code * 1_000_000 + index + 1
        rng = _seed_sequence(seed, split_code, index)
        pixels, objects = _compose(specs, cats, cfg, rng, narrow)
        file_name = f"{split}/{image_id:012d}.png"
        write_png(pixels, root / file_name)
        anns = []
        for cat, mask in objects:
            anns.append(
                {
                    "image_id": image_id,
                    "category_id": specs[cat].id,
                    "segmentation": mask_to_rle(mask),
                    "area": int(mask.sum()),
                    "bbox": mask_bbox(mask),
                }
            )
        present = sorted({a["category_id"] for a in anns})
        not_exhaustive = []
        for cid in present:  # LVIS marks categories whose instances were not all annotated
            same = [a for a in anns if a["category_id"] == cid]
            if len(same) > 1 and rng.random() < cfg.not_exhaustive_prob:
                anns.remove(same[-1])
                not_exhaustive.append(cid)
        absent = [c for c in all_cat_ids if c not in present]
        n_neg = min(cfg.neg_categories_per_image, len(absent))
        negatives = sorted(int(c) for c in rng.choice(absent, size=n_neg, replace=False)) if n_neg else []
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "coco_url": file_name,
                "width": cfg.image_size,
                "height": cfg.image_size,
                "neg_category_ids": negatives,
                "not_exhaustive_category_ids": not_exhaustive,
            }
        )
        annotations += anns
    for ann_id, ann in enumerate(annotations, start=split_code * 10_000_000 + 1):
        ann["id"] = ann_id
    return {
        "info": {"description": f"{TOY_LABEL} ({split} split)", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": [{"id": a.pop("id"), **a} for a in annotations],
        "categories": [s.to_lvis_category() for s in specs],
    }


def _fingerprint(cfg: ToyWorldConfig, seed: int) -> str:
    return settings_digest(replace(cfg, force=False), seed)


def load_toyworld(root: str | Path) -> ToyWorld:
    """Open a built toy world from its folder."""
    root = Path(root)
    meta = read_json(ToyWorldLayout(root).world)
    return ToyWorld(
        root=root,
        categories=[spec_from_dict(d) for d in meta["categories"]],
        extra_categories=[spec_from_dict(d) for d in meta["extra_categories"]],
        thresholds=tuple(meta["frequency_thresholds"]),
    )


def build_toyworld(cfg: ToyWorldConfig, root: str | Path, seed: int = 0) -> ToyWorld:
    """Build (or reuse, if already built with the same parameters) the toy world under ``root``.

    Writes ``train.json`` and ``val.json`` (LVIS v1 format, RLE masks), ``train/`` and ``val/`` PNGs,
    ``extra_categories.json`` (kinds never seen in the dataset, for category diversity) and ``world.json``
    (the catalogue the toy generator renders from). ``world.json`` is written last and marks completion.
    """
    root = Path(root)
    fingerprint = _fingerprint(cfg, seed)
    layout = ToyWorldLayout(root)
    world_file = layout.world
    if world_file.exists() and not cfg.force and read_json(world_file).get("fingerprint") == fingerprint:
        log.info("toy world at %s is up to date", root)
        return load_toyworld(root)
    world_file.unlink(missing_ok=True)

    rng = _seed_sequence(seed, 99)
    universe = make_catalog(cfg.n_categories + cfg.n_extra_categories, rng, cfg.rare_train_slice)
    specs, extras = universe[: cfg.n_categories], universe[cfg.n_categories :]
    thresholds = frequency_thresholds(cfg.n_train_images)
    counts = _target_image_counts(cfg, rng, thresholds)
    narrow = {i for i, n in enumerate(counts) if n <= thresholds[0]}
    train_contents = _allocate(counts, cfg.n_train_images, cfg.max_objects_per_image, rng)
    val_counts = np.maximum(cfg.min_val_images_per_category, np.round(counts * cfg.n_val_images / cfg.n_train_images))
    val_contents = _allocate(val_counts.astype(int), cfg.n_val_images, cfg.max_objects_per_image, rng)

    train = assign_frequencies(_split_dataset("train", cfg, seed, specs, train_contents, narrow, root), thresholds)
    val = _split_dataset("val", cfg, seed, specs, val_contents, set(), root)
    for cat_val, cat_train in zip(val["categories"], train["categories"], strict=True):
        cat_val.update({k: cat_train[k] for k in ("image_count", "instance_count", "frequency")})
    write_lvis(train, layout.annotations("train"))
    write_lvis(val, layout.annotations("val"))
    write_json([s.to_lvis_category() for s in extras], layout.extra_categories)
    write_json(
        {
            "label": TOY_LABEL,
            "fingerprint": fingerprint,
            "seed": seed,
            "config": method_values(cfg),
            "frequency_thresholds": list(thresholds),
            "rare_in_train_slice": sorted(specs[i].id for i in narrow),
            "categories": [spec_to_dict(s) for s in specs],
            "extra_categories": [spec_to_dict(s) for s in extras],
        },
        world_file,
        indent=1,
    )
    return load_toyworld(root)
