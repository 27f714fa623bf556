"""The generated data of each ablation setting, and how far it covers real val.

A :class:`DataVariant` turns the params file's ``generation`` / ``annotation`` / ``filtration`` sections into the
variant's own; each stage then runs (resumably) into ``ablation/data/<stage>-<hash of its settings and
inputs>``, so settings that share a stage share its folder and a rerun reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.embeddings import Arrays, EmbeddedSet, cached, real_set, sharded_embeddings
from ..analysis.metrics import knn_precision_recall
from ..annotation.config import AnnotationConfig
from ..clip_models import ClipModel
from ..config import Config, ConfigError, settings_digest
from ..filtration.config import FiltrationConfig
from ..filtration.layout import FiltrationLayout
from ..formats import read_image, read_manifest
from ..generation.config import GenerationConfig
from ..generation.layout import GenerationLayout
from ..registry import load_target
from ..stages import stage_of_section
from .config import CoverageSettings, DataVariant, Setting


@dataclass(frozen=True)
class VariantSections:
    """The three stage sections of a variant and the folder each writes."""

    generation: GenerationConfig
    annotation: AnnotationConfig
    filtration: FiltrationConfig
    dirs: dict[str, Path]

    @property
    def pool(self) -> Path:
        return FiltrationLayout(self.dirs["filtration"]).pool

    @property
    def categories(self) -> Path:
        return GenerationLayout(self.dirs["generation"]).categories


def _digest(*parts: Any) -> str:
    return settings_digest(*parts, length=12)


def _by_name(items: list[Any], names: list[str], what: str) -> list[Any]:
    known = {item.name: item for item in items}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"ablation: {what} {unknown} not in the params file (known: {sorted(known)})")
    return [known[n] for n in names]


def unavailable_settings(config: Config, settings: list[Setting]) -> dict[str, str]:
    """Setting name -> why it cannot run here: it uses an ``optional`` annotation method whose weights are missing
    (e.g. the real IS-Net of ``../shared/models`` on a clone elsewhere)."""
    missing = {m.name: m.checkpoint for m in config.section("annotation").methods if m.optional and m.missing_weights}
    out = {}
    for setting in settings:
        data = setting.data
        used = [] if data is None else data.max_clip or [data.annotation]
        absent = [n for n in used if n in missing]
        if absent:
            out[setting.name] = f"annotation method {absent[0]}'s weights {missing[absent[0]]} are missing"
    return out


def variant_sections(config: Config, variant: DataVariant, data_root: Path) -> VariantSections:
    """The variant's generation, annotation and filtration sections, each pointing at its input folders."""
    gen: GenerationConfig = config.section("generation")
    ann: AnnotationConfig = config.section("annotation")
    filt: FiltrationConfig = config.section("filtration")
    models = gen.models if variant.models is None else _by_name(gen.models, variant.models, "models")
    prompts = gen.prompts
    if not variant.attribute_prompts:
        prompts = replace(prompts, template="always", llm_dir=None, attributes=0, llm_prompts=0)
    categories = replace(gen.categories, include_extra=variant.include_extra)
    if not variant.include_extra:
        categories = replace(categories, imagenet_extras=0)
    per_model = max(1, gen.images_per_category * variant.scale // len(models))
    gen = replace(gen, categories=categories, prompts=prompts, models=models, images_per_category=per_model)
    methods = [ann.methods[0]] if variant.annotation is None else _by_name(ann.methods, [variant.annotation], "method")
    if variant.max_clip is not None:
        methods = _by_name(ann.methods, variant.max_clip, "max_clip methods")
        filt = replace(filt, fusion="max_clip")
    if variant.filtration != "divergen":
        filt = replace(
            filt,
            inter_similarity=replace(filt.inter_similarity, enabled=False),
            clip_score=replace(filt.clip_score, apply_to="all" if variant.filtration == "clip_score" else "none"),
        )
    gen_dir = data_root / f"generation-{_digest(gen)}"
    ann = replace(ann, methods=methods, generation_dir=gen_dir)
    ann_dir = data_root / f"annotation-{_digest(ann)}"
    filt = replace(filt, methods=[m.name for m in methods], generation_dir=gen_dir, annotation_dir=ann_dir)
    dirs = {"generation": gen_dir, "annotation": ann_dir, "filtration": data_root / f"filtration-{_digest(filt)}"}
    return VariantSections(gen, ann, filt, dirs)


def prepare(config: Config, sections: VariantSections) -> None:
    """Run generation, annotation and filtration of a variant (each skips what its folder already holds), through
    the stage registry."""
    for name in ("generation", "annotation", "filtration"):
        run = load_target(stage_of_section(name).run)
        run(replace(config, sections={name: getattr(sections, name)}, stage_dirs={name: sections.dirs[name]}))


def pool_statistics(sections: VariantSections) -> dict[str, int]:
    """Generated images, annotated masks kept, and instances in the pool."""
    generated = read_manifest(GenerationLayout(sections.dirs["generation"]).manifest)
    decided = read_manifest(FiltrationLayout(sections.dirs["filtration"]).manifest)
    return {
        "generated": sum(r.get("status") == "ok" for r in generated),
        "pool": sum(bool(r.get("keep")) for r in decided),
    }


def kept_set(
    sections: VariantSections, target_ids: set[int], clip: ClipModel, batch_size: int = 64
) -> EmbeddedSet | None:
    """Embeddings of the generated images (whole, as in notebook 01) whose instance entered the pool, target
    categories only (extra categories have no val instances to cover); cached in the filtration folder.
    None when the pool holds no target instance."""
    filt_dir = sections.dirs["filtration"]
    decided = read_manifest(FiltrationLayout(filt_dir).manifest)
    kept = [r for r in decided if r.get("keep") and r["category_id"] in target_ids]
    if not kept:
        return None

    def make(block: range) -> Arrays:
        embeddings = []
        for start in range(block.start, block.stop, batch_size):
            batch = kept[start : min(start + batch_size, block.stop)]
            embeddings.append(clip.encode_images([read_image(sections.dirs["generation"] / r["path"]) for r in batch]))
        ids = np.asarray([r["category_id"] for r in kept[block.start : block.stop]], dtype=np.int64)
        return np.concatenate(embeddings), ids, np.arange(block.start, block.stop)

    key = _digest(clip.name, clip.pretrained, [r["annotation_id"] for r in kept])
    path = filt_dir / f"coverage-embeddings-{key}.npz"
    return EmbeddedSet("generated", *(cached(path) or sharded_embeddings(path, len(kept), make)))


@dataclass
class RealSets:
    """Real train and val instances embedded with the toy CLIP, and the rare category ids."""

    train: EmbeddedSet
    val: EmbeddedSet
    rare_ids: list[int]


def real_sets(config: Config, clip: ClipModel, cache: Path, cfg: CoverageSettings, rare_ids: list[int]) -> RealSets:
    """Real train and val of the ``training`` section, cropped with DiverGen's recipe."""
    training = config.section("training")
    kwargs = {"clip": clip, "cache": cache, "seed": config.common.seed}
    kwargs |= {"crop_padding": cfg.crop_padding, "max_real": cfg.max_real}
    return RealSets(
        real_set("real_train", training.train.annotations, training.train.image_root, **kwargs),
        real_set("real_val", training.val.annotations, training.val.image_root, **kwargs),
        rare_ids,
    )


def coverage(real: RealSets, data: EmbeddedSet | None, k: int) -> dict[str, float | None]:
    """Coverage of real val (all and rare categories) by the generated data alone and by the training data
    (real train plus generated); without generated data, by real train. None where a set is too small."""
    training = real.train if data is None else _join(real.train, data)
    out: dict[str, float | None] = {}
    for name, s in (("train+generated", training), ("generated", data)):
        for group, ids in (("all", None), ("rare", real.rare_ids)):
            out[f"coverage {group} ({name})"] = None if s is None else _coverage(real.val, s, ids, k)
    return out


def _coverage(val: EmbeddedSet, s: EmbeddedSet, ids: list[int] | None, k: int) -> float | None:
    v, g = val.embeddings, s.embeddings
    if ids is not None:
        v, g = v[np.isin(val.category_ids, ids)], g[np.isin(s.category_ids, ids)]
    return knn_precision_recall(v, g, k)["coverage"] if min(len(v), len(g)) > k else None


def _join(a: EmbeddedSet, b: EmbeddedSet) -> EmbeddedSet:
    return EmbeddedSet(
        f"{a.name}+{b.name}",
        np.concatenate([a.embeddings, b.embeddings]),
        np.concatenate([a.category_ids, b.category_ids]),
    )
