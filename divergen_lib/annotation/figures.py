"""Figures of the annotation stage: overlays, IoU distributions, worst cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ..formats import read_image, rle_to_mask
from ..viz import overlay_instances


def _panel(ax: plt.Axes, image: np.ndarray, title: str = "") -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def plot_overlays(rows: list[dict[str, Any]], gen_dir: str | Path, n: int, seed: int = 0) -> plt.Figure:
    """``n`` random kept masks per method drawn over their images (one row per method; an image outside a method's
    ``sample`` is shown bare, titled so)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    rng = np.random.default_rng(seed)
    ok = [r for r in rows if r["status"] == "ok"]
    ids = sorted({r["generation_id"] for r in ok})
    picks = [ids[i] for i in rng.choice(len(ids), size=min(n, len(ids)), replace=False)] if ids else []
    by_key = {(r["method"], r["generation_id"]): r for r in rows}
    path_of = {r["generation_id"]: r["path"] for r in rows}
    fig, axes = plt.subplots(len(methods), max(len(picks), 1), figsize=(1.3 * max(len(picks), 1), 1.5 * len(methods)))
    axes = np.atleast_2d(axes)
    for i, method in enumerate(methods):
        for j, gid in enumerate(picks):
            row = by_key.get((method, gid))
            image = read_image(Path(gen_dir) / path_of[gid])
            if row is not None and row["status"] == "ok":
                image = overlay_instances(image, [rle_to_mask(row["rle"])])
            title = "not in its sample" if row is None else ("" if row["status"] == "ok" else row["status"])
            _panel(axes[i, j], image, title)
        axes[i, 0].set_ylabel(method, fontsize=7)
    fig.tight_layout()
    return fig


def plot_iou_distribution(rows: list[dict[str, Any]]) -> plt.Figure:
    """IoU with the true mask per method (x) and generator (colour); dropped masks count as IoU 0."""
    data = {"method": [], "generator": [], "IoU": []}
    for r in rows:
        if r.get("iou") is not None:
            data["method"].append(r["method"])
            data["generator"].append(r["model"])
            data["IoU"].append(r["iou"] if r["status"] == "ok" else 0.0)
    fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(set(data["method"])), 3.2))
    sns.boxplot(data=data, x="method", y="IoU", hue="generator", ax=ax, fliersize=2)
    ax.axhline(0.9, color="grey", lw=0.8, ls="--")
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return fig


def plot_worst_cases(rows: list[dict[str, Any]], gen_dir: str | Path, n: int) -> plt.Figure:
    """The ``n`` lowest-IoU masks of each method: image, predicted mask, true mask (one column per case)."""
    scored = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method and r.get("iou") is not None and r.get("mask_path")]
        scored += sorted(mine, key=lambda r: r["iou"])[:n]
    fig, axes = plt.subplots(3, max(len(scored), 1), figsize=(1.5 * max(len(scored), 1), 4.6))
    axes = np.atleast_2d(axes).reshape(3, -1)
    for j, row in enumerate(scored):
        image = read_image(Path(gen_dir) / row["path"])
        true = read_image(Path(gen_dir) / row["mask_path"], "L") > 127
        pred = rle_to_mask(row["rle"]) if row["rle"] else np.zeros(true.shape, bool)
        _panel(axes[0, j], image, f"{row['method']}\nIoU {row['iou']:.2f}")
        _panel(axes[1, j], overlay_instances(image, [pred]))
        _panel(axes[2, j], overlay_instances(image, [true]))
    for i, label in enumerate(("image", "predicted", "true")):
        axes[i, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig
