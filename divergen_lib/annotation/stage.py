"""The annotation stage: an object mask for every generated image, by each configured method.

Masks are cleaned by the shared post-processing and stored as COCO RLE in ``annotation/manifest.jsonl``
(one row per image and method: method, RLE, area fraction, status ``ok`` / ``dropped`` / ``error`` with a
reason). Where the generator knows the true mask (the toy generator), each row also carries the mask's IoU
and boundary F-score against it, so annotation quality can be measured per method and per generator. Each row
records the digest of what made it (the generation row, the method's settings, the post-processing), so a rerun
after changing any of them, or after the image was remade, redoes exactly those masks.

A method with ``sample`` annotates only that many images, chosen by a seeded hash of each generation id (so the same
images on every rerun, whatever the order of the manifest); an ``optional`` method whose weights are missing is
skipped with one warning.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, output_settings, settings_digest
from ..distributed import has_pending, resolve_device, resumable_map, stage_session
from ..errors import InputError
from ..formats import check_same_size, mask_to_rle, read_image, write_manifest
from ..generation.layout import GenerationLayout
from .base import Annotator, build_annotator
from .config import AnnotationConfig
from .layout import AnnotationLayout
from .postprocess import PostprocessConfig, postprocess
from .quality import boundary_f_score, mask_iou

log = logging.getLogger(__name__)

CARRIED = ("category_id", "category_name", "model", "prompt_source", "path", "mask_path")
# method settings that choose which images a method annotates, not their masks: left out of each mask's digest
SELECTION_ONLY = ("sample", "optional")


@dataclass
class AnnotationRun:
    """The stage's output folder and merged manifest rows (rank 0)."""

    out_dir: Path
    generation_dir: Path
    rows: list[dict[str, Any]] | None = field(repr=False)

    @property
    def manifest_path(self) -> Path:
        return AnnotationLayout(self.out_dir).manifest


class _BatchAnnotator:
    """Reads a batch of generated images, annotates the readable ones, and returns one manifest row each.
    Without an annotator (method ``true_mask``) the generator's recorded masks are the annotation."""

    def __init__(self, annotator: Annotator | None, method: str, cfg: PostprocessConfig, gen_dir: Path) -> None:
        self.annotator, self.method, self.cfg, self.gen_dir = annotator, method, cfg, gen_dir

    def _raw_masks(self, batch: list[dict[str, Any]], images: dict[int, np.ndarray]) -> Sequence[np.ndarray | None]:
        if self.annotator is not None:
            return self.annotator.raw_masks(list(images.values()), [batch[k]["category_name"] for k in images])
        return [self._true_mask(batch[k], image) for k, image in images.items()]

    def _true_mask(self, row: dict[str, Any], image: np.ndarray) -> np.ndarray | None:
        """The generator's true mask, if it recorded one, readable and of its image's size (else quality is not
        scored)."""
        path = row.get("mask_path")
        if not path:
            return None
        try:
            mask = read_image(self.gen_dir / path, "L") > 127
            check_same_size(mask, image, f"true mask {path}", f"image {row['path']}")
            return mask
        except InputError as err:
            log.warning("%s: true mask unusable, quality not scored (%s)", row["id"], err)
            return None

    def __call__(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        images: dict[int, np.ndarray] = {}
        rows: list[dict[str, Any]] = []
        for k, gen in enumerate(batch):
            rows.append({"generation_id": gen["id"], "method": self.method, **{c: gen.get(c) for c in CARRIED}})
            try:
                images[k] = read_image(self.gen_dir / gen["path"])
            except InputError as err:
                rows[k].update(status="error", reason=str(err), rle=None, area_fraction=None)
        raw = self._raw_masks(batch, images) if images else []
        for k, mask in zip(images, raw, strict=True):
            if mask is None:
                reason = "the generator recorded no true mask (true_mask is for the toy generator)"
                rows[k].update(status="error", reason=reason, rle=None, area_fraction=None)
                continue
            cleaned, reason = postprocess(mask, self.cfg)
            rows[k].update(
                status="dropped" if reason else "ok",
                reason=reason,
                rle=None if reason else mask_to_rle(cleaned),
                area_fraction=round(float(cleaned.mean()), 6),
            )
            true = self._true_mask(batch[k], images[k])
            if true is not None:
                rows[k].update(
                    iou=round(mask_iou(cleaned, true), 6), boundary_f=round(boundary_f_score(cleaned, true), 6)
                )
        return rows


def subsample(rows: Sequence[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """``n`` of the generation ``rows`` (all when ``n`` is None), those whose id has the smallest seeded hash, in
    their manifest order: the same rows whatever that order, and mostly the same when rows are added."""
    if n is None or n >= len(rows):
        return list(rows)

    def rank(row: dict[str, Any]) -> str:
        return hashlib.sha256(f"{seed}|{row['id']}".encode()).hexdigest()

    chosen = {row["id"] for row in sorted(rows, key=rank)[:n]}
    return [row for row in rows if row["id"] in chosen]


def run(config: Config) -> AnnotationRun:
    """Annotate every generated image (or a method's ``sample`` of them) with every method; write
    ``annotation/manifest.jsonl`` (rank 0)."""
    cfg: AnnotationConfig = config.section("annotation")
    out_dir = config.stage_dir("annotation")
    gen_dir = cfg.generation_dir or config.stage_dir("generation")
    with stage_session(out_dir) as info:
        device = resolve_device(config.common.device, info)
        generated = GenerationLayout(gen_dir).ok_rows()
        rows: list[dict[str, Any]] = []
        for method in cfg.methods:
            if method.optional and method.missing_weights:
                log.warning("annotation method %s skipped: its weights %s are missing", method.name, method.checkpoint)
                continue
            name = f"masks.{method.name}"
            items = subsample(generated, method.sample, config.common.seed)

            def id_of(row: dict[str, Any], prefix: str = method.name) -> str:
                return f"{prefix}-{row['id']}"

            mask_settings = {k: v for k, v in output_settings(method).items() if k not in SELECTION_ONLY}
            made_by = (mask_settings, cfg.postprocess)
            settings = {id_of(r): settings_digest(r, *made_by) for r in items}
            # a method that cannot load is one clear error here, before anything of it is written
            annotator = build_annotator(method, device) if has_pending(out_dir, name, settings) else None
            merged = resumable_map(
                items,
                _BatchAnnotator(annotator, method.name, cfg.postprocess, gen_dir),
                out_dir,
                name,
                id_of=id_of,
                info=info,
                desc=f"annotate {method.name}",
                batch_size=method.batch_size,
                settings=settings,
            )
            rows += merged or []
        if not info.is_main:
            return AnnotationRun(out_dir, gen_dir, None)
        write_manifest(rows, AnnotationLayout(out_dir).manifest)
        return AnnotationRun(out_dir, gen_dir, rows)


def quality_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and generator: images, kept/dropped/error counts, and (where true masks exist) mIoU,
    mean boundary F-score and the share of masks with IoU >= 0.9."""
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["method"] == method and r["model"] == model]
            if not mine:
                continue
            scored = [r for r in mine if r.get("iou") is not None]
            entry = {
                "method": method,
                "generator": model,
                "images": len(mine),
                "kept": sum(r["status"] == "ok" for r in mine),
                "dropped": sum(r["status"] == "dropped" for r in mine),
                "errors": sum(r["status"] == "error" for r in mine),
            }
            if scored:
                ious = np.array([r["iou"] for r in scored])
                entry |= {
                    "mIoU": round(float(ious.mean()), 4),
                    "boundary F": round(float(np.mean([r["boundary_f"] for r in scored])), 4),
                    "IoU >= 0.9": round(float((ious >= 0.9).mean()), 4),
                }
            table.append(entry)
    return table


def save_figures(run_: AnnotationRun, config: Config) -> dict[str, Path]:
    """Overlays of a sample, the IoU distribution and the worst cases (the last two need true masks)."""
    from ..viz import save_figure
    from .figures import plot_iou_distribution, plot_overlays, plot_worst_cases

    cfg: AnnotationConfig = config.section("annotation")
    figures = config.figures_dir
    rows = run_.rows or []
    paths = {
        "overlays": save_figure(
            plot_overlays(rows, run_.generation_dir, cfg.report.overlay_samples, config.common.seed),
            figures / "annotation_overlays.png",
        )
    }
    if any(r.get("iou") is not None for r in rows):
        paths["iou"] = save_figure(plot_iou_distribution(rows), figures / "annotation_iou.png")
        paths["worst"] = save_figure(
            plot_worst_cases(rows, run_.generation_dir, cfg.report.worst_cases), figures / "annotation_worst.png"
        )
    return paths
