"""Distribution analysis (notebook 01): where real, generated and diversified data lie.

CLIP image embeddings of real train and val instances (DiverGen's crop recipe) and of small generated sets
made on the fly with different diversity settings (whole generated images, as in DiverGen's analysis) are
compared with real val by numbers — Fréchet distance, RBF MMD, k-NN precision / recall / density / coverage —
and drawn on one 2-D map. Embeddings are cached under ``analysis/embeddings/`` and reused; under ``torchrun`` every
rank embeds its block of each set (:mod:`.embeddings`) and rank 0 compares and draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..clip_models import configured_clip
from ..config import Config
from ..distributed import available_cores, resolve_device, stage_session
from ..formats import read_lvis, write_json
from .config import AnalysisConfig
from .embeddings import EmbeddedSet, generated_set, real_set
from .layout import AnalysisLayout
from .metrics import compare

log = logging.getLogger(__name__)


@dataclass
class AnalysisRun:
    """Every embedded set and the comparison of each with real val."""

    out_dir: Path
    sets: dict[str, EmbeddedSet] = field(repr=False)
    table: list[dict[str, Any]] = field(repr=False)
    rare_ids: list[int] = field(repr=False)


def run(config: Config) -> AnalysisRun:
    """Embed real train/val and each generated set; compare each with real val (``analysis/metrics.json``, rank 0;
    the other ranks' run holds no sets)."""
    cfg: AnalysisConfig = config.section("analysis")
    out_dir = config.stage_dir("analysis")
    layout = AnalysisLayout(out_dir)
    cache = layout.embeddings
    seed = config.common.seed
    with stage_session(out_dir) as info:
        device = resolve_device(config.common.device, info)
        clip = configured_clip(cfg.clip, cfg.toy_clip, cfg.train_annotations.parent, config.clip_cache_dir, device)
        real = {"image_root": cfg.image_root, "crop_padding": cfg.crop_padding, "max_real": cfg.max_real}
        sets = {
            "real train": real_set("real_train", cfg.train_annotations, clip=clip, cache=cache, seed=seed, **real),
            "real val": real_set("real_val", cfg.val_annotations, clip=clip, cache=cache, seed=seed, **real),
        }
        for spec in cfg.generated:
            sets[spec.name] = generated_set(spec, cfg, clip, cache, seed, device)
    if not info.is_main:
        return AnalysisRun(out_dir, {}, [], [])
    train = read_lvis(cfg.train_annotations)
    rare_ids = [c["id"] for c in train["categories"] if c.get("frequency") == "r"]
    table = comparison_table(sets, rare_ids, cfg.k)
    write_json(table, layout.metrics, indent=1)
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
    from .maps import embed_2d, plot_map, stratified_sample

    cfg: AnalysisConfig = config.section("analysis")
    if not run_.sets:  # a rank other than 0
        return {}
    report = cfg.report
    chosen, fit, sources, ids = [], [], [], []
    offset = 0
    for name, s in run_.sets.items():
        sample = stratified_sample(s.category_ids, report.map_points_per_set, run_.rare_ids, config.common.seed)
        rows = np.arange(len(s.embeddings)) if report.map_all else sample
        chosen.append(s.embeddings[rows])
        fit.append(offset + np.searchsorted(rows, sample))
        offset += len(rows)
        sources += [name] * len(rows)
        ids.append(s.category_ids[rows])
    jobs = report.map_jobs or available_cores()
    fit_rows = np.concatenate(fit) if report.map_all else None
    x = np.concatenate(chosen)
    points = embed_2d(
        x, report.map_method, config.common.seed, n_jobs=jobs, pca_dims=report.map_pca_dims, fit_rows=fit_rows
    )
    sources_arr, ids_arr = np.asarray(sources), np.concatenate(ids)
    figures = config.figures_dir
    title = f"{cfg.report.map_method} map of CLIP embeddings"
    paths = {"map": save_figure(plot_map(points, sources, title), figures / "analysis_map.png")}
    names = {c["id"]: c["name"] for c in read_lvis(cfg.train_annotations)["categories"]}
    rare = [c for c in run_.rare_ids if (ids_arr[sources_arr == "real val"] == c).any()][: cfg.report.rare_panels]
    if rare:
        fig = plot_rare_panels(points, sources_arr, ids_arr, rare, names)
        paths["rare"] = save_figure(fig, figures / "analysis_rare.png")
    return paths
