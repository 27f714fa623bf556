"""The filtration stage: score every annotated instance, decide keep/drop with a reason, build the pool.

1. Real instances: every training instance of a category is cropped (DiverGen's recipe) and embedded once;
   the category keeps the mean of the normalised embeddings (``real_means.jsonl``). Chunks of real images are
   spread over the ranks, each image read once by a DataLoader worker, and each chunk leaves per-category sums
   in a part file named by the settings digest; rank 0 adds them in chunk order (:mod:`.real_means`).
2. Scores: each generated instance gets its CLIP score (X-Paste: masked instance on white vs the category
   text) and its inter-similarity (DiverGen: background zeroed, dot product with the category mean)
   (``scores.jsonl``).
3. Decisions: X-Paste's per-category bar needs every score of a category, so decisions are made once all
   are in; ``manifest.jsonl`` holds every score and the reason for each drop.
4. Pool: kept instances become tight RGBA crops, written to ``pool/images/<0-based category>/`` and listed
   in DiverGen/X-Paste's instance-pool json, one per generator and ``pool.json`` merging them. Entries are
   relative to the pool json's folder, so a pool can be moved or copied with its images.
Steps 2 and 4 run through the resumable, sharded map, step 1 through its part files; each of their rows or parts
records the digest of what made it (the CLIP model, the real split and crop settings, the CLIP-score text and
background, the annotation row), so a rerun after changing any of them redoes exactly the rows they decide.
Thresholds only enter step 3, which is redone on every run.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..annotation.layout import AnnotationLayout
from ..clip_models import configured_clip
from ..config import Config, ConfigError, settings_digest
from ..crops import generated_instance
from ..distributed import completed_rows, resolve_device, resumable_map, stage_session
from ..formats import (
    PoolEntry,
    category_index,
    merge_instance_pools,
    read_image,
    read_json,
    read_manifest,
    rle_to_mask,
    write_instance_pool,
    write_manifest,
    write_png,
)
from ..generation.layout import GenerationLayout
from .composition import NOT_DRAWN, compose_pool, source_kind
from .config import FiltrationConfig
from .fusion import FUSED, max_clip
from .layout import FiltrationLayout
from .pool import rgba_crop
from .real_means import category_means
from .rules import clip_score, inter_similarity, xpaste_keep

log = logging.getLogger(__name__)


@dataclass
class FiltrationRun:
    """The stage's folder, its decision rows and the pool files (rank 0)."""

    out_dir: Path
    generation_dir: Path
    categories: list[dict[str, Any]] = field(repr=False)
    rows: list[dict[str, Any]] | None = field(repr=False)
    pools: dict[str, Path] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return FiltrationLayout(self.out_dir).manifest


class _Scorer:
    """A batch of annotated instances -> CLIP score and inter-similarity of each."""

    def __init__(self, clip: Any, cfg: FiltrationConfig, gen_dir: Path, texts: dict, means: dict) -> None:
        self.clip, self.cfg, self.gen_dir, self.texts, self.means = clip, cfg, gen_dir, texts, means

    def __call__(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sources = [str(self.gen_dir / r["path"]) for r in batch]
        images = [read_image(src) for src in sources]
        masks = [rle_to_mask(r["rle"]) for r in batch]
        rows = [
            {
                "status": "ok",
                "annotation_id": r["id"],
                **{k: r.get(k) for k in ("generation_id", "method", "category_id", "model", "prompt_source", "path")},
                "area_fraction": r["area_fraction"],
                "rle": r["rle"],
            }
            for r in batch
        ]

        def embed(background: tuple[int, int, int]) -> np.ndarray:
            triples = zip(images, masks, sources, strict=True)
            return self.clip.encode_images([generated_instance(i, m, background, src) for i, m, src in triples])

        if scores_clip(self.cfg):
            texts = np.stack([self.texts[r["category_id"]] for r in batch])
            scores = clip_score(embed(tuple(self.cfg.clip_score.background)), texts)
            for row, score in zip(rows, scores, strict=True):
                row["clip_score"] = round(float(score), 4)
        if self.cfg.inter_similarity.enabled:
            for row, emb in zip(rows, embed((0, 0, 0)), strict=True):
                mean = self.means.get(row["category_id"])
                row["inter_similarity"] = (
                    None if mean is None else round(float(inter_similarity(emb[None], mean)[0]), 6)
                )
        return rows


def scores_clip(cfg: FiltrationConfig) -> bool:
    """Whether instances get a CLIP score: for X-Paste's rule, or to pick each image's best mask (max-CLIP)."""
    return cfg.clip_score.apply_to != "none" or cfg.fusion == FUSED


def decide(rows: list[dict[str, Any]], cfg: FiltrationConfig) -> list[dict[str, Any]]:
    """Keep/drop every scored instance with the reason: max-CLIP fusion when asked, then the enabled rules (see
    :mod:`.fusion`, :mod:`.rules`). X-Paste's bar is per method, generator and category; fused, per generator and
    category over all methods."""
    cs, sim = cfg.clip_score, cfg.inter_similarity
    reasons: dict[str, list[str]] = {r["annotation_id"]: [] for r in rows}
    judged = rows
    if cfg.fusion == FUSED:
        judged, losers = max_clip(rows)
        for annotation_id, why in losers.items():
            reasons[annotation_id].append(why)
    has_real = {r["category_id"]: r.get("inter_similarity") is not None for r in rows}
    by_category: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in judged:
        judged_by_clip = cs.apply_to == "all" or (cs.apply_to == "without_real" and not has_real[r["category_id"]])
        if judged_by_clip:
            method = FUSED if cfg.fusion == FUSED else r["method"]
            by_category[(method, r["model"], r["category_id"])].append(r)
        if sim.enabled:
            if r.get("inter_similarity") is None:
                if sim.without_real == "drop":
                    reasons[r["annotation_id"]].append("no real instances to compare with")
            elif r["inter_similarity"] < sim.threshold:
                reasons[r["annotation_id"]].append(f"inter-similarity {r['inter_similarity']:.3f} < {sim.threshold}")
    for members in by_category.values():
        scores = [m["clip_score"] for m in members]
        areas = [m["area_fraction"] for m in members]
        for m, reason in zip(
            members, xpaste_keep(scores, areas, cs.min_clip, cs.tolerance, cs.min_area, cs.max_area), strict=True
        ):
            if reason:
                reasons[m["annotation_id"]].append(reason)
    fused_from = {r["annotation_id"]: r["fused_from"] for r in judged if "fused_from" in r}
    decided = []
    for r in rows:
        why = reasons[r["annotation_id"]]
        row = {k: v for k, v in r.items() if k != "rle"}
        if r["annotation_id"] in fused_from:
            row["fused_from"] = fused_from[r["annotation_id"]]
        decided.append({**row, "keep": not why, "reason": "; ".join(why) or None})
    return decided


def check_selection(annotated: list[dict[str, Any]], cfg: FiltrationConfig) -> None:
    """One line for a selection that would pool an image once per method, or a quota naming no known source."""
    methods = list(dict.fromkeys(r["method"] for r in annotated))
    if len(methods) > 1 and cfg.fusion != FUSED:
        raise ConfigError(
            f"filtration: the masks of annotation methods {methods} would each enter the pool, so every image once "
            "per method: set filtration.methods to one of them, or filtration.fusion: max_clip to keep each image's "
            "best mask by CLIP score (X-Paste)"
        )
    sources = set(r["model"] for r in annotated)
    for quota in cfg.pool.quotas:
        unknown = sorted(set(quota.generators or ()) - sources)
        if unknown:
            raise ConfigError(
                f"filtration.pool quota {quota.name}: generators {unknown} made none of the annotated images "
                f"(they come from {sorted(sources)})"
            )


class _PoolWriter:
    """A kept instance -> its tight RGBA crop under ``pool/images/<0-based category index>/``."""

    def __init__(self, out_dir: Path, gen_dir: Path, index: dict[int, int], rles: dict[str, dict]) -> None:
        self.out_dir, self.gen_dir, self.index, self.rles = out_dir, gen_dir, index, rles

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        source = self.gen_dir / row["path"]
        crop = rgba_crop(read_image(source), rle_to_mask(self.rles[row["annotation_id"]]), str(source))
        relpath = FiltrationLayout.crop_relpath(self.index[row["category_id"]], row["annotation_id"])
        write_png(crop, self.out_dir / relpath)
        return {"status": "ok", "model": row["model"], "category_id": row["category_id"], "crop": relpath}


class _Digests:
    """The settings digests of the stage's rows: what decides a category's real mean, and an instance's scores."""

    def __init__(self, cfg: FiltrationConfig, clip: Any) -> None:
        # the CLIP by architecture and weights (a file by its name: the toy CLIP's names its training settings)
        self.clip = (clip.name, os.path.basename(clip.pretrained or ""))
        sim, cs = cfg.inter_similarity, cfg.clip_score
        self.real_means = settings_digest(
            self.clip, cfg.real, sim.crop_padding, sim.blur_kernel, sim.max_real_per_category
        )
        self.score_parts = (
            self.clip,
            (cs.template, cs.background) if scores_clip(cfg) else None,
            self.real_means if sim.enabled else None,
        )

    def scores(self, annotation_row: dict[str, Any]) -> str:
        return settings_digest(annotation_row, *self.score_parts)


def run(config: Config) -> FiltrationRun:
    """Score, decide and build the pool for every annotated instance (``filtration/``)."""
    from ..prompts import display_name

    cfg: FiltrationConfig = config.section("filtration")
    out_dir = config.stage_dir("filtration")
    gen_dir = cfg.generation_dir or config.stage_dir("generation")
    ann_dir = cfg.annotation_dir or config.stage_dir("annotation")
    layout = FiltrationLayout(out_dir)
    generated, annotations = GenerationLayout(gen_dir), AnnotationLayout(ann_dir)
    for needed in (generated.categories, annotations.manifest):
        if not needed.is_file():
            raise ConfigError(f"{needed}: missing (run the generation and annotation stages first)")
    with stage_session(out_dir) as info:
        device = resolve_device(config.common.device, info)
        categories = read_json(generated.categories)
        names = {c["id"]: c["name"] for c in categories}
        annotated = [
            r
            for r in read_manifest(annotations.manifest)
            if r["status"] == "ok" and (cfg.methods is None or r["method"] in cfg.methods)
        ]
        check_selection(annotated, cfg)
        clip = configured_clip(cfg.clip, cfg.toy_clip, cfg.real.annotations.parent, config.clip_cache_dir, device)
        ids = sorted(names)
        texts = dict(
            zip(
                ids,
                clip.encode_texts([cfg.clip_score.template.format(name=display_name(names[i])) for i in ids]),
                strict=True,
            )
        )

        digests = _Digests(cfg, clip)
        means: dict[int, np.ndarray] = {}
        if cfg.inter_similarity.enabled:
            means = category_means(clip, cfg, ids, out_dir, digests.real_means, info)

        scorer = _Scorer(clip, cfg, gen_dir, texts, means)
        score_settings = {r["id"]: digests.scores(r) for r in annotated}
        resumable_map(
            annotated,
            scorer,
            out_dir,
            "scores",
            id_of=lambda r: r["id"],
            info=info,
            batch_size=cfg.batch_size,
            settings=score_settings,
        )
        scores = completed_rows(out_dir, "scores", score_settings)
        scored = [scores[r["id"]] for r in annotated]
        errors = [r for r in scored if r.get("status") == "error"]
        decided = decide([r for r in scored if r.get("status") != "error"], cfg)
        left_out = compose_pool(decided, cfg.pool, config.common.seed if cfg.pool.seed is None else cfg.pool.seed)
        for r in decided:
            if r["annotation_id"] in left_out:
                r.update(keep=False, reason=left_out[r["annotation_id"]])
        decided += [{"annotation_id": r["id"], "keep": False, "reason": r["reason"], "status": "error"} for r in errors]

        index = category_index(categories)
        kept = [r for r in decided if r["keep"]]
        rles = {r["annotation_id"]: r["rle"] for r in scored if r.get("status") != "error"}
        writer = _PoolWriter(out_dir, gen_dir, index, rles)
        crop_settings = {r["annotation_id"]: score_settings[r["annotation_id"]] for r in kept}  # image and mask
        resumable_map(
            kept, writer, out_dir, "pool_crops", id_of=lambda r: r["annotation_id"], info=info, settings=crop_settings
        )
        if not info.is_main:
            return FiltrationRun(out_dir, gen_dir, categories, None)
        write_manifest([{"id": r["annotation_id"], **r} for r in decided], layout.manifest)
        crops = completed_rows(out_dir, "pool_crops", crop_settings)
        pools: dict[str, Path] = {}
        per_model: dict[str, dict[int, list[PoolEntry]]] = defaultdict(lambda: defaultdict(list))
        for r in kept:
            crop = crops[r["annotation_id"]]
            if crop.get("status") == "ok":
                per_model[r["model"]][index[r["category_id"]]].append(PoolEntry(crop["crop"], preprocessed=True))
        for model, pool in per_model.items():
            pools[model] = layout.model_pool(model)
            write_instance_pool(dict(pool), pools[model])
        pools["merged"] = layout.pool
        write_instance_pool(merge_instance_pools(*[dict(p) for p in per_model.values()]), pools["merged"])
        return FiltrationRun(out_dir, gen_dir, categories, decided, pools)


def summarize(run_: FiltrationRun) -> list[dict[str, Any]]:
    """Per generator and prompt source: masks scored, kept, and the drop reasons (max-CLIP and the pool's
    composition only where they left something out); ``kept`` is what entered the pool."""
    rows = [r for r in run_.rows or [] if "model" in r]
    counted = {
        "dropped: max-CLIP": "max-CLIP:",
        "dropped: inter-similarity": "inter-similarity",
        "dropped: CLIP score": "CLIP score",
        "dropped: area": "area",
        "passed, not drawn for the pool": NOT_DRAWN,
    }
    optional = {"dropped: max-CLIP", "passed, not drawn for the pool"}
    shown = [k for k, text in counted.items() if k not in optional or any(text in (r["reason"] or "") for r in rows)]
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for source in dict.fromkeys(r["prompt_source"] for r in rows):
            mine = [r for r in rows if r["model"] == model and r["prompt_source"] == source]
            if mine:
                reasons = [r["reason"] or "" for r in mine]
                entry = {"generator": model, "kind": source_kind(mine[0]), "prompt source": source}
                entry |= {"masks": len(mine), "kept": sum(r["keep"] for r in mine)}
                entry |= {k: sum(counted[k] in x for x in reasons) for k in shown}
                table.append(entry)
    return table


def pool_sizes(run_: FiltrationRun) -> dict[int, int]:
    """Category id -> instances in the merged pool."""
    from ..formats import read_instance_pool

    by_index = {i: cid for cid, i in category_index(run_.categories).items()}
    return {by_index[k]: len(v) for k, v in read_instance_pool(run_.pools["merged"]).items()}


def save_figures(run_: FiltrationRun, config: Config) -> dict[str, Path]:
    """Score distributions, kept fraction per group, threshold galleries and pool sizes, as PNGs."""
    from ..viz import save_figure
    from .figures import plot_kept_fraction, plot_pool_sizes, plot_score_distributions, plot_threshold_gallery

    cfg: FiltrationConfig = config.section("filtration")
    figures = config.figures_dir
    rows = [r for r in run_.rows or [] if "model" in r]
    thresholds = {"clip_score": cfg.clip_score.min_clip, "inter_similarity": cfg.inter_similarity.threshold}
    paths = {
        "scores": save_figure(plot_score_distributions(rows, thresholds), figures / "filtration_scores.png"),
        "kept": save_figure(plot_kept_fraction(rows, run_.categories), figures / "filtration_kept.png"),
        "pool": save_figure(plot_pool_sizes(pool_sizes(run_), run_.categories), figures / "filtration_pool.png"),
    }
    for score, threshold in thresholds.items():
        if any(r.get(score) is not None for r in rows):
            fig = plot_threshold_gallery(rows, run_.generation_dir, score, threshold, cfg.report.gallery)
            paths[f"gallery_{score}"] = save_figure(fig, figures / f"filtration_gallery_{score}.png")
    return paths
