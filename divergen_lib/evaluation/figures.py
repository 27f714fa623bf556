"""Figures of the evaluation stage: metrics per frequency group, per-category AP against training images,
qualitative predictions, and energy distributions on train and val."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..formats import image_file, read_image, rle_to_mask
from ..viz import FREQUENCY_COLOURS, FREQUENCY_NAMES, overlay_instances

BAR_METRICS = ("AP", "APr", "APc", "APf")
PICTURE_MIN_SIDE = 480


def plot_metric_bars(summary: Sequence[dict[str, Any]]) -> plt.Figure:
    """AP and AP per frequency group of every run, one panel per IoU type (``summarize`` rows, percent)."""
    iou_types = list(dict.fromkeys(r["iou"] for r in summary))
    runs = list(dict.fromkeys(r["run"] for r in summary))
    fig, axes = plt.subplots(
        1, len(iou_types), figsize=(1.4 + 1.3 * len(runs) * len(BAR_METRICS) / 2, 3.4), squeeze=False
    )
    width = 0.8 / len(runs)
    for ax, iou in zip(axes[0], iou_types, strict=True):
        for k, run in enumerate(runs):
            row = next(r for r in summary if r["run"] == run and r["iou"] == iou)
            values = [row[m] if row[m] is not None else np.nan for m in BAR_METRICS]
            bars = ax.bar(np.arange(len(BAR_METRICS)) + (k - (len(runs) - 1) / 2) * width, values, width, label=run)
            ax.bar_label(bars, fmt="%.1f", fontsize=6)
        ax.set_xticks(range(len(BAR_METRICS)), BAR_METRICS)
        ax.set_title(f"{iou} AP (%)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_ap_vs_images(
    per_category: dict[str, dict[int, float]], categories: Sequence[dict[str, Any]], iou_type: str
) -> plt.Figure:
    """Per-category AP of each run against the category's number of training images (log scale)."""
    count = {c["id"]: c["image_count"] for c in categories}
    frequency = {c["id"]: c.get("frequency", "f") for c in categories}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    markers = "os^Dv<>"
    for k, (run, aps) in enumerate(per_category.items()):
        ids = [cid for cid, ap in aps.items() if ap >= 0 and count.get(cid)]
        ax.scatter(
            [count[c] for c in ids],
            [100 * aps[c] for c in ids],
            c=[FREQUENCY_COLOURS[frequency[c]] for c in ids],
            marker=markers[k % len(markers)],
            s=22,
            alpha=0.7,
        )
        ax.scatter([], [], c="grey", marker=markers[k % len(markers)], label=run)
    for group, colour in FREQUENCY_COLOURS.items():
        ax.scatter([], [], c=colour, label=FREQUENCY_NAMES[group])
    ax.set_xscale("log")
    ax.set_xlabel("training images of the category")
    ax.set_ylabel(f"{iou_type} AP (%)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_predictions(
    results: dict[str, list[dict[str, Any]]],
    images: Sequence[dict[str, Any]],
    image_root: str | os.PathLike,
    names: dict[int, str],
    min_score: float = 0.3,
    max_shown: int = 8,
) -> plt.Figure:
    """The highest-scoring predicted masks (score >= ``min_score``, at most ``max_shown``) of each run (rows) on
    the same val images (columns)."""
    fig, axes = plt.subplots(len(results), len(images), figsize=(2.4 * len(images), 2.6 * len(results)), squeeze=False)
    for row, (run, dets) in enumerate(results.items()):
        for col, info in enumerate(images):
            pixels = read_image(image_file(info, image_root))
            mine = sorted((d for d in dets if d["image_id"] == info["id"]), key=lambda d: -d["score"])
            shown = [d for d in mine if d["score"] >= min_score][:max_shown]
            masks = [rle_to_mask(d["segmentation"]) for d in shown if "segmentation" in d]
            ax = axes[row, col]
            ax.imshow(overlay_instances(pixels, masks, seed=col) if masks else pixels)
            ax.set_xlabel(
                "\n".join(f"{names.get(d['category_id'], d['category_id'])} {d['score']:.2f}" for d in shown[:3]),
                fontsize=6,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(run)
    fig.suptitle(f"predictions with score >= {min_score}")
    fig.tight_layout()
    return fig


def plot_detections(
    pixels: np.ndarray, detections: Sequence[dict[str, Any]], names: dict[int, str], min_score: float
) -> plt.Figure:
    """One image with its detections of score >= ``min_score``: masks tinted and outlined, boxes, and ``name score``
    labels (highest score drawn last, on top). Saved at dpi 100 without cropping, the picture is the image's size,
    enlarged to :data:`PICTURE_MIN_SIDE` pixels on its longer side when smaller, so labels stay readable."""
    shown = sorted((d for d in detections if d["score"] >= min_score), key=lambda d: d["score"])
    height, width = pixels.shape[:2]
    scale = max(1.0, PICTURE_MIN_SIDE / max(height, width))
    fig = plt.figure(figsize=(width * scale / 100, height * scale / 100), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    masks = [rle_to_mask(d["segmentation"]) for d in shown if "segmentation" in d]
    ax.imshow(overlay_instances(pixels, masks) if masks else pixels)
    for k, det in enumerate(shown):
        x, y, w, h = det["bbox"]
        colour = plt.get_cmap("tab10")(k % 10)
        ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.5))
        label = f"{names.get(det['category_id'], det['category_id'])} {det['score']:.2f}"
        ax.text(x, y, label, fontsize=7, color="white", va="bottom", bbox={"facecolor": colour, "pad": 1, "lw": 0})
    ax.set_axis_off()
    return fig


def plot_energy(energies: dict[str, dict[str, Any]]) -> plt.Figure:
    """Energy histograms on train and val ground-truth boxes: one row per run, one column per frequency group."""
    groups = list(FREQUENCY_NAMES)
    fig, axes = plt.subplots(
        len(energies), len(groups), figsize=(3.2 * len(groups), 2.4 * len(energies)), squeeze=False
    )
    for row, (run, data) in enumerate(energies.items()):
        for col, group in enumerate(groups):
            ax = axes[row, col]
            values = [np.asarray(data[split].get(group, [])) for split in ("train", "val")]
            present = [v for v in values if v.size]
            if present:
                bins = np.histogram_bin_edges(np.concatenate(present), bins=30)
                for split, v in zip(("train", "val"), values, strict=True):
                    if v.size:
                        ax.hist(v, bins=bins, density=True, alpha=0.55, label=f"{split} (n={v.size})")
                ax.legend(fontsize=6)
            ax.set_title(f"{run}: {FREQUENCY_NAMES[group]}", fontsize=8)
            ax.set_xlabel("energy", fontsize=7)
    fig.tight_layout()
    return fig
