"""Figures of the filtration stage: score distributions, kept fractions, galleries, pool sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ..formats import read_image
from ..generation.figures import GROUP_COLOURS, GROUPS, category_group

SCORES = {"clip_score": "CLIP score (100 x cos)", "inter_similarity": "inter-similarity (cos)"}


def plot_score_distributions(rows: list[dict[str, Any]], thresholds: dict[str, float]) -> plt.Figure:
    """One panel per score: its distribution per generator and prompt source, the threshold dashed."""
    present = [s for s in SCORES if any(r.get(s) is not None for r in rows)]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(5.2 * max(len(present), 1), 3.4), squeeze=False)
    for ax, score in zip(axes[0], present, strict=False):
        data = {
            "source": [f"{r['model']} / {r['prompt_source']}" for r in rows if r.get(score) is not None],
            score: [r[score] for r in rows if r.get(score) is not None],
        }
        sns.violinplot(data=data, x="source", y=score, ax=ax, cut=0, inner="quartile", density_norm="width")
        if score in thresholds:
            ax.axhline(thresholds[score], color="black", ls="--", lw=0.8)
        ax.set_ylabel(SCORES[score])
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
    fig.tight_layout()
    return fig


def plot_kept_fraction(rows: list[dict[str, Any]], categories: list[dict[str, Any]]) -> plt.Figure:
    """Share of instances kept per frequency group (and extras), one bar per generator."""
    group_of = {c["id"]: category_group(c) for c in categories}
    models = list(dict.fromkeys(r["model"] for r in rows if "model" in r))
    groups = [g for g in GROUPS if any(group_of.get(r.get("category_id")) == g for r in rows)]
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups), 3.0))
    for k, model in enumerate(models):
        shares = []
        for g in groups:
            mine = [r["keep"] for r in rows if r.get("model") == model and group_of.get(r.get("category_id")) == g]
            shares.append(np.mean(mine) if mine else 0.0)
        ax.bar(np.arange(len(groups)) + k * width, shares, width, label=model)
    ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels([GROUPS[g] for g in groups])
    ax.set_ylim(0, 1)
    ax.set_ylabel("kept fraction")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_threshold_gallery(
    rows: list[dict[str, Any]], gen_dir: str | Path, score: str, threshold: float, n: int
) -> plt.Figure:
    """The ``n`` kept instances just above and the ``n`` dropped just below ``threshold`` of ``score``."""
    scored = [r for r in rows if r.get(score) is not None and r.get("status", "ok") == "ok"]
    above = sorted((r for r in scored if r[score] >= threshold), key=lambda r: r[score])[:n]
    below = sorted((r for r in scored if r[score] < threshold), key=lambda r: -r[score])[:n]
    fig, axes = plt.subplots(2, max(n, 1), figsize=(1.4 * max(n, 1), 3.4), squeeze=False)
    for i, (label, picks) in enumerate((("kept", above), ("dropped", below))):
        for j in range(max(n, 1)):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(picks):
                ax.imshow(read_image(Path(gen_dir) / picks[j]["path"]))
                ax.set_title(f"{picks[j][score]:.2f}", fontsize=7)
            else:
                ax.axis("off")
        axes[i, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"{SCORES[score]} around the threshold {threshold}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_pool_sizes(pool_sizes: dict[int, int], categories: list[dict[str, Any]]) -> plt.Figure:
    """Pool instances per category, sorted, coloured by frequency group (extras in green)."""
    cats = sorted(categories, key=lambda c: -pool_sizes.get(c["id"], 0))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.15 * len(cats)), 3.0))
    ax.bar(
        range(len(cats)),
        [pool_sizes.get(c["id"], 0) for c in cats],
        color=[GROUP_COLOURS[category_group(c)] for c in cats],
    )
    ax.set_xlabel("categories (sorted)")
    ax.set_ylabel("instances in the pool")
    handles = [plt.Rectangle((0, 0), 1, 1, color=GROUP_COLOURS[g]) for g in GROUPS]
    ax.legend(handles, list(GROUPS.values()), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
