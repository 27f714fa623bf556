"""The generation stage: categories x prompts x models -> images and a JSONL manifest.

Requests are planned deterministically (sample ``k`` of a category uses prompt ``k mod n_prompts``), each
with a seed derived from (model, category, prompt index, sample index); each model's requests run through
the resumable, sharded map, so a stage can be interrupted, resumed or spread over ``torchrun`` processes
with the same result. Each row records the digest of what made it (the request: prompt, seed, ...; the model's
backend, weights, dtype and options), so a rerun after changing any of them remakes exactly those images. The
images of ``external`` sources (:mod:`.external`) are brought in after the models' and join the same manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, output_settings, settings_digest
from ..distributed import has_pending, resolve_device, resumable_map, stage_session
from ..formats import write_json, write_manifest, write_png
from ..prompts import Prompt
from .base import GenerationRequest, Generator, ModelConfig, build_generator
from .config import GenerationConfig
from .external import import_images, list_images
from .layout import GenerationLayout
from .plan import build_prompts, check_plan_size, plan_requests, resolve_categories

log = logging.getLogger(__name__)


@dataclass
class GenerationRun:
    """What the stage made: the categories and prompts used, and the merged manifest rows (rank 0)."""

    out_dir: Path
    categories: list[dict[str, Any]] = field(repr=False)
    prompts: dict[int, list[Prompt]] = field(repr=False)
    rows: list[dict[str, Any]] | None = field(repr=False)

    @property
    def layout(self) -> GenerationLayout:
        return GenerationLayout(self.out_dir)

    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest


class _BatchWriter:
    """Generates a batch and writes its PNGs atomically, returning manifest rows."""

    def __init__(self, generator: Generator, out_dir: Path) -> None:
        self.generator, self.out_dir = generator, out_dir

    def __call__(self, batch: list[GenerationRequest]) -> list[dict[str, Any]]:
        rows = []
        for request, result in zip(batch, self.generator.generate(batch), strict=True):
            sample = request.id.rsplit("-", 1)[1]
            path = GenerationLayout.image_relpath(request.model, request.category_id, sample)
            write_png(result.image, self.out_dir / path)
            mask_path = None
            if result.mask is not None:
                mask_path = GenerationLayout.image_relpath(request.model, request.category_id, sample, "masks")
                write_png(result.mask.astype(np.uint8) * 255, self.out_dir / mask_path)
            height, width = result.image.shape[:2]
            row = {k: v for k, v in vars(request).items() if k != "id"}
            rows.append({**row, "width": width, "height": height, "path": path, "mask_path": mask_path, "status": "ok"})
        return rows


def request_settings(requests: list[GenerationRequest], model: ModelConfig) -> dict[str, str]:
    """Request id -> digest of everything that decides its image: the request and the model's method settings."""
    made_by = output_settings(model)
    return {r.id: settings_digest(r, made_by) for r in requests}


def run(config: Config) -> GenerationRun:
    """Plan and make every image of the ``generation`` section, bring in its external ones; write ``manifest.jsonl``
    (rank 0)."""
    cfg: GenerationConfig = config.section("generation")
    out_dir = config.stage_dir("generation")
    layout = GenerationLayout(out_dir)
    with stage_session(out_dir) as info:
        device = resolve_device(config.common.device, info)
        categories = resolve_categories(cfg.categories)
        check_plan_size(categories, cfg)
        external = [(source, list_images(source, categories)) for source in cfg.external]
        prompts = build_prompts(categories, cfg.prompts, config.common.seed, device) if cfg.models else {}
        if info.is_main:
            write_json(categories, layout.categories)
            write_manifest(
                [
                    {"id": f"{cid:05d}-{p.index:04d}", "category_id": cid, "prompt": p.text, "source": p.source}
                    for cid, plist in prompts.items()
                    for p in plist
                ],
                layout.prompts,
            )
        rows: list[dict[str, Any]] = []
        for model in cfg.models:
            requests = plan_requests(categories, prompts, model, cfg.images_per_category, config.common.seed)
            name, settings = f"manifest.{model.name}", request_settings(requests, model)
            # a model that cannot load is one clear error here, before anything of it is written
            generator = build_generator(model, device) if has_pending(out_dir, name, settings) else None
            merged = resumable_map(
                requests,
                _BatchWriter(generator, out_dir),
                out_dir,
                name,
                id_of=lambda r: r.id,
                info=info,
                desc=f"generate {model.name}",
                batch_size=model.batch_size,
                settings=settings,
            )
            rows += merged or []
        for source, images in external:
            rows += import_images(source, images, out_dir, info) or []
        if not info.is_main:
            return GenerationRun(out_dir, categories, prompts, None)
        write_manifest(rows, layout.manifest)
        failed = [r for r in rows if r.get("status") != "ok"]
        if failed:
            log.warning("generation: %d of %d images failed (first: %s)", len(failed), len(rows), failed[0]["reason"])
        return GenerationRun(out_dir, categories, prompts, rows)


def summarize(run_: GenerationRun) -> list[dict[str, Any]]:
    """Per model and prompt source: categories, prompts and images made (rank 0 rows)."""
    rows = run_.rows or []
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for source in dict.fromkeys(r["prompt_source"] for r in rows):
            mine = [r for r in rows if r["model"] == model and r["prompt_source"] == source]
            if mine:
                table.append(
                    {
                        "model": model,
                        "prompt source": source,
                        "categories": len({r["category_id"] for r in mine}),
                        "distinct prompts": len({r["prompt"] for r in mine}),
                        "images ok": sum(r["status"] == "ok" for r in mine),
                        "errors": sum(r["status"] != "ok" for r in mine),
                    }
                )
    return table


def save_figures(run_: GenerationRun, config: Config) -> dict[str, Path]:
    """Sample grid (categories x models x prompt sources) and images per frequency group, as PNGs."""
    from ..viz import save_figure
    from .figures import pick_figure_categories, plot_counts_by_group, plot_sample_grid

    cfg: GenerationConfig = config.section("generation")
    figures = config.figures_dir
    picked = pick_figure_categories(run_.categories, cfg.report.figure_categories)
    return {
        "samples": save_figure(
            plot_sample_grid(run_.rows or [], run_.out_dir, picked), figures / "generation_samples.png"
        ),
        "counts": save_figure(
            plot_counts_by_group(run_.rows or [], run_.categories), figures / "generation_counts.png"
        ),
    }
