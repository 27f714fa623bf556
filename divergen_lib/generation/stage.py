"""The generation stage: categories x prompts x models -> images and a JSONL manifest.

Requests are planned deterministically (sample ``k`` of a category uses prompt ``k mod n_prompts``), each
with a seed derived from (model, category, prompt index, sample index); each model's requests run through
the resumable, sharded map, so a stage can be interrupted, resumed or spread over ``torchrun`` processes
with the same result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..categories import Selection, merge_categories, read_category_metadata, select_imagenet_extras
from ..config import Config, ConfigError, check_named_list
from ..distributed import completed_rows, resolve_device, resumable_map, start_stage
from ..formats import read_json, write_json, write_manifest, write_png
from ..prompts import LocalLLM, Prompt, PromptConfig, category_prompts, load_prompt_folder
from ..toyworld import load_toyworld
from .base import GenerationRequest, Generator, ModelConfig, build_generator, derive_seed

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class CategorySelection:
    """Where the categories to generate come from (the ``generation.categories`` section).

    ``toyworld``: a built toy world — its categories, plus its extra kinds when ``include_extra``.
    ``metadata``: an LVIS json or category-info list of the target categories; ``imagenet_extras`` > 0 adds
    that many ImageNet-1K classes whose WordNet path similarity to every target is at most ``extra_threshold``
    (DiverGen: 250 at 0.4). ``ids`` restricts either to a subset.
    """

    toyworld: Path | None = None
    metadata: Path | None = None
    include_extra: bool = True
    imagenet_extras: int = 0
    extra_threshold: float = 0.4
    ids: list[int] | None = None

    def __post_init__(self) -> None:
        if (self.toyworld is None) == (self.metadata is None):
            raise ValueError("give exactly one of categories.toyworld and categories.metadata")
        if self.imagenet_extras and self.toyworld is not None:
            raise ValueError("imagenet_extras needs categories.metadata with WordNet synsets (not the toy world)")


@dataclass(frozen=True)
class GenerationConfig:
    """The ``generation`` section of a params file."""

    categories: CategorySelection
    models: list[ModelConfig]
    prompts: PromptConfig = field(default_factory=PromptConfig)
    images_per_category: int = 8
    figure_categories: int = 6

    def __post_init__(self) -> None:
        check_named_list("generation.models", self.models)
        if self.images_per_category < 1:
            raise ValueError("images_per_category must be >= 1")


@dataclass
class GenerationRun:
    """What the stage made: the categories and prompts used, and the merged manifest rows (rank 0)."""

    out_dir: Path
    categories: list[dict[str, Any]] = field(repr=False)
    prompts: dict[int, list[Prompt]] = field(repr=False)
    rows: list[dict[str, Any]] | None = field(repr=False)

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST


def select_extras(selection: CategorySelection) -> Selection | None:
    """The WordNet category-diversity selection of ``imagenet_extras`` (None when not asked for)."""
    if not selection.imagenet_extras or selection.metadata is None:
        return None
    targets = read_category_metadata(selection.metadata)
    return select_imagenet_extras(targets, selection.extra_threshold, selection.imagenet_extras)


def resolve_categories(selection: CategorySelection) -> list[dict[str, Any]]:
    """LVIS-schema categories to generate for, target categories first, then extras (``"extra": true``)."""
    if selection.toyworld is not None:
        world = load_toyworld(selection.toyworld)
        train = read_json(world.json_path("train"))["categories"]
        extras = [s.to_lvis_category() for s in world.extra_categories] if selection.include_extra else []
        placeholder = {"image_count": world.thresholds[1], "instance_count": world.thresholds[1], "frequency": "c"}
        categories = [dict(c) for c in train] + [{**c, **placeholder, "extra": True} for c in extras]
    else:
        targets = read_category_metadata(selection.metadata)
        extras_selection = select_extras(selection)
        categories = [dict(c) for c in targets]
        if extras_selection is not None:
            merged = merge_categories(targets, extras_selection)
            categories += [{**c, "extra": True} for c in merged[len(targets) :]]
    if selection.ids is not None:
        known = {c["id"] for c in categories}
        unknown = sorted(set(selection.ids) - known)
        if unknown:
            raise ConfigError(f"generation.categories.ids: category ids {unknown} are not in the category metadata")
        wanted = set(selection.ids)
        categories = [c for c in categories if c["id"] in wanted]
    return categories


def build_prompts(
    categories: list[dict[str, Any]], cfg: PromptConfig, seed: int, device: str = "cpu"
) -> dict[int, list[Prompt]]:
    """Every category's prompt list; prompt files and the LLM are validated/loaded once, before any work."""
    files = load_prompt_folder(cfg.llm_dir, [c["id"] for c in categories]) if cfg.llm_dir else None
    llm = LocalLLM(cfg.llm_model, cfg.allow_download, device) if cfg.llm_prompts and cfg.llm_model else None
    return {c["id"]: category_prompts(c, cfg, seed, files, llm) for c in categories}


def plan_requests(
    categories: list[dict[str, Any]], prompts: dict[int, list[Prompt]], model: ModelConfig, n: int, seed: int
) -> list[GenerationRequest]:
    """``n`` requests per category for one model, cycling through the category's prompts."""
    requests = []
    for cat in categories:
        cid, plist = cat["id"], prompts[cat["id"]]
        for k in range(n):
            prompt, sample = plist[k % len(plist)], k // len(plist)
            requests.append(
                GenerationRequest(
                    id=f"{model.name}-{cid:05d}-{k:06d}",
                    category_id=cid,
                    category_name=cat["name"],
                    prompt=prompt.text,
                    prompt_source=prompt.source,
                    prompt_index=prompt.index,
                    sample_index=sample,
                    model=model.name,
                    seed=derive_seed(seed, model.name, cid, prompt.index, sample),
                )
            )
    return requests


def image_relpath(request: GenerationRequest, kind: str = "images") -> str:
    """``<kind>/<model>/<category id>/<sample>.png`` relative to the stage folder."""
    return f"{kind}/{request.model}/{request.category_id:05d}/{request.id.rsplit('-', 1)[1]}.png"


class _BatchWriter:
    """Generates a batch and writes its PNGs atomically, returning manifest rows."""

    def __init__(self, generator: Generator, out_dir: Path) -> None:
        self.generator, self.out_dir = generator, out_dir

    def __call__(self, batch: list[GenerationRequest]) -> list[dict[str, Any]]:
        rows = []
        for request, result in zip(batch, self.generator.generate(batch), strict=True):
            path = image_relpath(request)
            write_png(result.image, self.out_dir / path)
            mask_path = None
            if result.mask is not None:
                mask_path = image_relpath(request, "masks")
                write_png(result.mask.astype(np.uint8) * 255, self.out_dir / mask_path)
            height, width = result.image.shape[:2]
            row = {k: v for k, v in vars(request).items() if k != "id"}
            rows.append({**row, "width": width, "height": height, "path": path, "mask_path": mask_path, "status": "ok"})
        return rows


def run(config: Config) -> GenerationRun:
    """Plan and make every image of the ``generation`` section; write ``manifest.jsonl`` (rank 0)."""
    cfg: GenerationConfig = config.section("generation")
    out_dir = config.stage_dir("generation")
    info = start_stage(out_dir)
    device = resolve_device(config.common.device, info)
    categories = resolve_categories(cfg.categories)
    prompts = build_prompts(categories, cfg.prompts, config.common.seed, device)
    if info.is_main:
        write_json(categories, out_dir / "categories.json")
        write_manifest(
            [
                {"id": f"{cid:05d}-{p.index:04d}", "category_id": cid, "prompt": p.text, "source": p.source}
                for cid, plist in prompts.items()
                for p in plist
            ],
            out_dir / "prompts.jsonl",
        )
    rows: list[dict[str, Any]] = []
    for model in cfg.models:
        requests = plan_requests(categories, prompts, model, cfg.images_per_category, config.common.seed)
        name = f"manifest.{model.name}"
        done = completed_rows(out_dir, name)
        # a model that cannot load is one clear error here, before anything of it is written
        generator = build_generator(model, device) if any(r.id not in done for r in requests) else None
        merged = resumable_map(
            requests,
            _BatchWriter(generator, out_dir),
            out_dir,
            name,
            id_of=lambda r: r.id,
            info=info,
            desc=f"generate {model.name}",
            batch_size=model.batch_size,
        )
        rows += merged or []
    if not info.is_main:
        return GenerationRun(out_dir, categories, prompts, None)
    write_manifest(rows, out_dir / MANIFEST)
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
    figures = config.common.output_dir / "figures"
    picked = pick_figure_categories(run_.categories, cfg.figure_categories)
    return {
        "samples": save_figure(
            plot_sample_grid(run_.rows or [], run_.out_dir, picked), figures / "generation_samples.png"
        ),
        "counts": save_figure(
            plot_counts_by_group(run_.rows or [], run_.categories), figures / "generation_counts.png"
        ),
    }
