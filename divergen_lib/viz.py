"""Figures shared by the notebooks: instance overlays, example grids, long-tail histograms. Importing it sets the
project's matplotlib settings (each stage imports it before plotting): the Agg backend unless ``MPLBACKEND`` says
otherwise, and text without mathtext, so that any category name can be a label."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
matplotlib.rcParams["text.parse_math"] = False  # names are plain text: a '$' in a category name is not mathtext
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from .formats import annotation_mask, image_file, read_image  # noqa: E402

FREQUENCY_COLOURS = {"r": "#d62728", "c": "#ff7f0e", "f": "#1f77b4"}
FREQUENCY_NAMES = {"r": "rare", "c": "common", "f": "frequent"}


def overlay_instances(image: np.ndarray, masks: Sequence[np.ndarray], alpha: float = 0.45, seed: int = 0) -> np.ndarray:
    """Tint each mask with its own colour and outline it; returns a new uint8 image."""
    out = image.astype(np.float64).copy()
    palette = sns.color_palette("husl", max(len(masks), 1))
    order = np.random.default_rng(seed).permutation(len(masks))
    for k, mask in zip(order, masks, strict=True):
        colour = np.array(palette[k]) * 255
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
        out[edge] = colour
    return out.astype(np.uint8)


def annotation_masks(dataset: dict[str, Any], image: dict[str, Any]) -> list[tuple[dict[str, Any], np.ndarray]]:
    """(annotation, boolean mask) pairs of one image of an LVIS/COCO dict."""
    anns = [a for a in dataset["annotations"] if a["image_id"] == image["id"]]
    return [(a, annotation_mask(a, image["height"], image["width"])) for a in anns]


def plot_examples(
    dataset: dict[str, Any], image_root: str | os.PathLike, n: int = 8, seed: int = 0, title: str = ""
) -> plt.Figure:
    """Grid of ``n`` random images (top) and the same with instance masks and category names (bottom)."""
    names = {c["id"]: c["name"] for c in dataset["categories"]}
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(dataset["images"]), size=min(n, len(dataset["images"])), replace=False)
    fig, axes = plt.subplots(2, len(picks), figsize=(2.2 * len(picks), 4.8), squeeze=False)
    for col, idx in enumerate(picks):
        info = dataset["images"][idx]
        pixels = read_image(image_file(info, image_root))
        pairs = annotation_masks(dataset, info)
        axes[0, col].imshow(pixels)
        axes[1, col].imshow(overlay_instances(pixels, [m for _, m in pairs], seed=col))
        label = "\n".join(sorted({names[a["category_id"]] for a, _ in pairs}))
        axes[1, col].set_xlabel(label, fontsize=7)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_category_frequency(
    categories: list[dict[str, Any]], thresholds: tuple[int, int] | None = None, title: str = ""
) -> plt.Figure:
    """Training image count per category, sorted, coloured by LVIS frequency group (log scale)."""
    cats = sorted(categories, key=lambda c: -c["image_count"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.2 * len(cats)), 3.6))
    ax.bar(range(len(cats)), [c["image_count"] for c in cats], color=[FREQUENCY_COLOURS[c["frequency"]] for c in cats])
    ax.set_yscale("log")
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([c["name"] for c in cats], rotation=90, fontsize=6)
    ax.set_ylabel("training images (log)")
    for bound in thresholds or ():
        ax.axhline(bound + 0.5, color="grey", lw=0.8, ls="--")
    counts = {f: sum(c["frequency"] == f for c in cats) for f in FREQUENCY_NAMES}
    handles = [plt.Rectangle((0, 0), 1, 1, color=FREQUENCY_COLOURS[f]) for f in FREQUENCY_NAMES]
    ax.legend(handles, [f"{FREQUENCY_NAMES[f]} ({counts[f]})" for f in FREQUENCY_NAMES], frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def instance_crops(
    dataset: dict[str, Any], image_root: str | os.PathLike, category_id: int, n: int, pad: int = 2
) -> list[np.ndarray]:
    """Up to ``n`` tight crops (background greyed) of instances of one category."""
    images = {i["id"]: i for i in dataset["images"]}
    crops = []
    for ann in (a for a in dataset["annotations"] if a["category_id"] == category_id):
        info = images[ann["image_id"]]
        pixels = read_image(image_file(info, image_root))
        mask = annotation_mask(ann, info["height"], info["width"])
        x, y, w, h = (int(v) for v in ann["bbox"])
        y0, x0 = max(0, y - pad), max(0, x - pad)
        crop = np.where(mask[..., None], pixels, 200)[y0 : y + h + pad, x0 : x + w + pad]
        crops.append(crop.astype(np.uint8))
        if len(crops) == n:
            break
    return crops


def plot_crop_rows(rows: dict[str, list[np.ndarray]], title: str = "") -> plt.Figure:
    """One row of crops per label (e.g. 'train' vs 'val' instances of a rare category)."""
    width = max((len(v) for v in rows.values()), default=1)
    fig, axes = plt.subplots(len(rows), width, figsize=(1.2 * width, 1.4 * len(rows)), squeeze=False)
    for r, (label, crops) in enumerate(rows.items()):
        for c in range(width):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(crops):
                ax.imshow(crops[c])
        axes[r, 0].text(-0.1, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 120, tight: bool = True) -> Path:
    """Save a figure as PNG (folders created; cropped to its contents when ``tight``), close it, and return its
    path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path
