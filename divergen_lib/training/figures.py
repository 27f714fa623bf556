"""Figures of the training stage: training samples with their pasted instances, and loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..viz import overlay_instances
from .data import Sample


def plot_paste_examples(samples: Sequence[Sample], names: Sequence[str], title: str = "") -> plt.Figure:
    """Each sample as the model sees it (top) and with its instances tinted, pasted ones outlined (bottom)."""
    fig, axes = plt.subplots(2, len(samples), figsize=(2.4 * len(samples), 5.2), squeeze=False)
    for col, sample in enumerate(samples):
        axes[0, col].imshow(sample.image)
        overlay = overlay_instances(sample.image, list(sample.masks), seed=col)
        for mask in sample.masks[sample.pasted]:
            overlay[mask & ~np.roll(mask, 1, 0) | mask & ~np.roll(mask, 1, 1)] = (255, 255, 255)
        axes[1, col].imshow(overlay)
        pasted = sorted({names[c] for c in sample.classes[sample.pasted]})
        axes[1, col].set_xlabel(
            f"{int((~sample.pasted).sum())} real, {int(sample.pasted.sum())} pasted\n" + "\n".join(pasted[:4]),
            fontsize=7,
        )
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or "training samples: pasted instances outlined in white")
    fig.tight_layout()
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_loss_curves(logs: dict[str, list[dict[str, Any]]], window: int = 5) -> plt.Figure:
    """Total loss and each loss term against the step, one line per run (moving average over ``window`` rows)."""
    terms = sorted({k for rows in logs.values() for row in rows for k in row if k.startswith("loss")} - {"loss"})
    panels = ["loss", *terms]
    cols = min(3, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.0 * rows_n), squeeze=False)
    for ax, term in zip(axes.flat, panels, strict=False):
        for run, rows in logs.items():
            points = [(r["step"], r[term]) for r in rows if term in r]
            if not points:
                continue
            steps, values = map(np.asarray, zip(*points, strict=True))
            smooth = _smooth(values, window)
            ax.plot(steps[len(steps) - len(smooth) :], smooth, label=run)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
