"""What to generate: the categories (targets + extras), each category's prompts, and the seeded requests.

Sample ``k`` of a category uses prompt ``k mod n_prompts``; its seed derives from (model, category, prompt index,
sample index), so any image can be regenerated alone.
"""

from __future__ import annotations

from typing import Any

from ..categories import Selection, merge_categories, read_category_metadata, select_imagenet_extras
from ..config import ConfigError
from ..formats import read_json
from ..prompts import LocalLLM, Prompt, PromptConfig, category_prompts, load_prompt_folder
from ..toyworld import load_toyworld
from .base import GenerationRequest, ModelConfig, derive_seed
from .config import CategorySelection, GenerationConfig


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


def check_plan_size(categories: list[dict[str, Any]], cfg: GenerationConfig) -> None:
    """Refuse, before any request is built, a plan of more than ``cfg.max_images`` images (a mistyped count would
    otherwise plan for hours and fill the memory)."""
    total = len(cfg.models) * len(categories) * cfg.images_per_category
    if total > cfg.max_images:
        raise ConfigError(
            f"generation: {len(cfg.models)} model(s) x {len(categories)} categories x images_per_category "
            f"{cfg.images_per_category} = {total:.3g} images, more than generation.max_images ({cfg.max_images}); "
            "lower images_per_category or raise max_images"
        )


def build_prompts(
    categories: list[dict[str, Any]], cfg: PromptConfig, seed: int, device: str = "cpu"
) -> dict[int, list[Prompt]]:
    """Every category's prompt list; prompt files and the LLM are validated/loaded once, before any work."""
    ids = [c["id"] for c in categories]
    files = load_prompt_folder(cfg.llm_dir, ids, cfg.suffix or None) if cfg.llm_dir else None
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
