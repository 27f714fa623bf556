"""Figures of the generation stage: sample grids per category x model x prompt source, counts per group."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..formats import read_image
from ..viz import FREQUENCY_COLOURS

GROUPS = {"r": "rare", "c": "common", "f": "frequent", "extra": "extra"}
GROUP_COLOURS = {**FREQUENCY_COLOURS, "extra": "#2ca02c"}


def category_group(category: dict[str, Any]) -> str:
    """``extra`` for categories added by category diversity, else the LVIS frequency group."""
    return "extra" if category.get("extra") else category.get("frequency", "c")


def pick_figure_categories(categories: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` categories spread over the groups (rare first), for sample grids."""
    by_group: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for cat in categories:
        by_group[category_group(cat)].append(cat)
    picked: list[dict[str, Any]] = []
    while len(picked) < n and any(by_group.values()):
        for group in GROUPS:
            if by_group[group] and len(picked) < n:
                picked.append(by_group[group].pop(0))
    return picked


def plot_sample_grid(
    rows: list[dict[str, Any]], out_dir: str | Path, categories: list[dict[str, Any]], per_source: int = 3
) -> plt.Figure:
    """One row per (category, model); columns grouped by prompt source, ``per_source`` samples each."""
    ok = [r for r in rows if r.get("status") == "ok"]
    models = list(dict.fromkeys(r["model"] for r in ok))
    sources = list(dict.fromkeys(r["prompt_source"] for r in ok))
    lines = [(c, m) for c in categories for m in models]
    cols = per_source * len(sources)
    fig, axes = plt.subplots(len(lines), cols, figsize=(1.15 * cols, 1.2 * len(lines)), squeeze=False)
    for r, (cat, model) in enumerate(lines):
        for s, source in enumerate(sources):
            picks = [
                x for x in ok if x["category_id"] == cat["id"] and x["model"] == model and x["prompt_source"] == source
            ]
            for j in range(per_source):
                ax = axes[r, s * per_source + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(picks):
                    ax.imshow(read_image(Path(out_dir) / picks[j]["path"]))
                else:
                    ax.axis("off")
                if r == 0 and j == 0:
                    ax.set_title(source, fontsize=8, loc="left")
        axes[r, 0].set_ylabel(f"{cat['name']}\n{model}", fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_counts_by_group(rows: list[dict[str, Any]], categories: list[dict[str, Any]]) -> plt.Figure:
    """Generated images per frequency group (and extras), one bar per model."""
    group_of = {c["id"]: category_group(c) for c in categories}
    counts = Counter((group_of[r["category_id"]], r["model"]) for r in rows if r.get("status") == "ok")
    models = list(dict.fromkeys(r["model"] for r in rows))
    groups = [g for g in GROUPS if any(group_of[c] == g for c in group_of)]
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(groups), 3.0))
    for k, model in enumerate(models):
        xs = np.arange(len(groups)) + k * width
        ax.bar(xs, [counts[(g, model)] for g in groups], width, label=model)
    ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels([f"{GROUPS[g]}\n({sum(v == g for v in group_of.values())} cat.)" for g in groups])
    ax.set_ylabel("generated images")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
