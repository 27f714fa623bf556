"""Distribution analysis (notebook 01): where real, generated and diversified data lie.

CLIP image embeddings of real train and val instances (DiverGen's crop recipe) and of small generated sets
made on the fly with different diversity settings (whole generated images, as in DiverGen's analysis) are
compared with real val by numbers — Fréchet distance, RBF MMD, k-NN precision / recall / density / coverage —
and drawn on one 2-D map. Embeddings are cached under ``analysis/embeddings/`` and reused.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..clip_models import ClipChoice, ClipModel, ToyClipConfig, configured_clip
from ..config import Config, check_named_list, settings_digest
from ..crops import annotation_crops
from ..distributed import require_single_process, resolve_device
from ..formats import atomic_open, read_lvis, write_json
from ..generation.base import ModelConfig, build_generator
from ..generation.stage import CategorySelection, build_prompts, plan_requests, resolve_categories
from ..prompts import PromptConfig
from .metrics import compare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedSet:
    """A small generated sample made with one diversity setting (prompts, generators, extra categories)."""

    name: str
    models: list[ModelConfig]
    prompts: PromptConfig = field(default_factory=PromptConfig)
    include_extra: bool = False
    images_per_category: int = 6
    batch_size: int = 1


@dataclass(frozen=True)
class AnalysisConfig:
    """The ``analysis`` section of a params file."""

    train_annotations: Path
    val_annotations: Path
    image_root: Path
    categories: CategorySelection
    generated: list[GeneratedSet]
    clip: ClipChoice = field(default_factory=ClipChoice)
    toy_clip: ToyClipConfig = field(default_factory=ToyClipConfig)
    crop_padding: int = 40
    max_real: int | None = 2000
    k: int = 5
    map_method: Literal["opentsne", "sklearn", "umap"] = "opentsne"
    map_points_per_set: int = 600
    rare_panels: int = 3

    def __post_init__(self) -> None:
        check_named_list("analysis.generated", self.generated)


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
    key = settings_digest(asdict(spec), asdict(selection), seed, clip.name, clip.pretrained)

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


@dataclass
class AnalysisRun:
    """Every embedded set and the comparison of each with real val."""

    out_dir: Path
    sets: dict[str, EmbeddedSet] = field(repr=False)
    table: list[dict[str, Any]] = field(repr=False)
    rare_ids: list[int] = field(repr=False)


def run(config: Config) -> AnalysisRun:
    """Embed real train/val and each generated set; compare each with real val (``analysis/metrics.json``)."""
    require_single_process("the analyze stage")
    cfg: AnalysisConfig = config.section("analysis")
    out_dir = config.stage_dir("analysis")
    cache = out_dir / "embeddings"
    device = resolve_device(config.common.device)
    seed = config.common.seed
    clip = configured_clip(
        cfg.clip, cfg.toy_clip, cfg.train_annotations.parent, config.common.output_dir / "clip", device
    )
    real = {"image_root": cfg.image_root, "crop_padding": cfg.crop_padding, "max_real": cfg.max_real}
    sets = {
        "real train": real_set("real_train", cfg.train_annotations, clip=clip, cache=cache, seed=seed, **real),
        "real val": real_set("real_val", cfg.val_annotations, clip=clip, cache=cache, seed=seed, **real),
    }
    for spec in cfg.generated:
        sets[spec.name] = generated_set(spec, cfg, clip, cache, seed, device)
    train = read_lvis(cfg.train_annotations)
    rare_ids = [c["id"] for c in train["categories"] if c.get("frequency") == "r"]
    table = comparison_table(sets, rare_ids, cfg.k)
    write_json(table, out_dir / "metrics.json", indent=1)
    return AnalysisRun(out_dir, sets, table, rare_ids)


def comparison_table(sets: dict[str, EmbeddedSet], rare_ids: list[int], k: int) -> list[dict[str, Any]]:
    """Every set against real val: over all categories, and over the rare categories only."""
    val = sets["real val"]
    rare_val = np.isin(val.category_ids, rare_ids)
    table = []
    for name, s in sets.items():
        if name == "real val":
            continue
        table.append({"set": name, "categories": "all", **compare(val.embeddings, s.embeddings, k)})
        rare = np.isin(s.category_ids, rare_ids)
        if min(rare.sum(), rare_val.sum()) > k:
            table.append(
                {"set": name, "categories": "rare", **compare(val.embeddings[rare_val], s.embeddings[rare], k)}
            )
    return table


def conclusions(table: list[dict[str, Any]]) -> list[str]:
    """Sentences read off the comparison table: how each set covers real val, and what each diversity setting
    changes relative to the first (least diverse) generated set."""
    lines = []
    for group in dict.fromkeys(r["categories"] for r in table):
        lines += _group_conclusions([r for r in table if r["categories"] == group], group)
    return lines


def _group_conclusions(table: list[dict[str, Any]], group: str) -> list[str]:
    where = "real val" if group == "all" else f"real val ({group} categories)"
    rows = {r["set"]: r for r in table}
    lines = []
    train = rows.get("real train")
    generated = [r for r in table if r["set"] != "real train"]
    for r in table:
        lines.append(
            f"{r['set']}: covers {r['coverage']:.0%} of {where} (recall {r['recall']:.0%}, precision "
            f"{r['precision']:.0%}), Fréchet distance {r['frechet']:.3g}, MMD {r['mmd']:.3g}."
        )
    if train and generated:
        best = max(generated, key=lambda r: r["coverage"])
        relation = "more" if best["coverage"] > train["coverage"] else "less"
        lines.append(
            f"The generated set with the highest coverage ({best['set']}) covers {relation} of {where} than real train "
            f"({best['coverage']:.0%} vs {train['coverage']:.0%})."
        )
    if len(generated) > 1:
        base = generated[0]
        for r in generated[1:]:
            change = r["coverage"] - base["coverage"]
            verb = "raises" if change > 0 else "lowers" if change < 0 else "leaves"
            lines.append(
                f"{r['set']} vs {base['set']}: {verb} coverage of {where} by {abs(change):.0%} "
                f"({base['coverage']:.0%} -> {r['coverage']:.0%}); Fréchet distance {base['frechet']:.3g} -> "
                f"{r['frechet']:.3g}."
            )
    return lines


def save_figures(run_: AnalysisRun, config: Config) -> dict[str, Path]:
    """The 2-D map of every set, and per-category panels for a few rare categories, as PNGs."""
    from ..viz import save_figure
    from .figures import plot_rare_panels
    from .maps import embed_2d, plot_map

    cfg: AnalysisConfig = config.section("analysis")
    rng = np.random.default_rng(config.common.seed)
    chosen, sources, ids = [], [], []
    for name, s in run_.sets.items():
        rows = np.arange(len(s.embeddings))
        if len(rows) > cfg.map_points_per_set:  # every rare-category point stays, the rest is sampled
            rare = np.isin(s.category_ids, run_.rare_ids)
            budget = max(cfg.map_points_per_set - int(rare.sum()), 0)
            others = rng.choice(rows[~rare], min(budget, int((~rare).sum())), replace=False)
            rows = np.sort(np.concatenate([rows[rare], others]))
        chosen.append(s.embeddings[rows])
        sources += [name] * len(rows)
        ids.append(s.category_ids[rows])
    points = embed_2d(np.concatenate(chosen), cfg.map_method, seed=config.common.seed)
    sources_arr, ids_arr = np.asarray(sources), np.concatenate(ids)
    figures = config.common.output_dir / "figures"
    title = f"{cfg.map_method} map of CLIP embeddings"
    paths = {"map": save_figure(plot_map(points, sources, title), figures / "analysis_map.png")}
    names = {c["id"]: c["name"] for c in read_lvis(cfg.train_annotations)["categories"]}
    rare = [c for c in run_.rare_ids if (ids_arr[sources_arr == "real val"] == c).any()][: cfg.rare_panels]
    if rare:
        fig = plot_rare_panels(points, sources_arr, ids_arr, rare, names)
        paths["rare"] = save_figure(fig, figures / "analysis_rare.png")
    return paths
