"""The ablation figure: metrics per setting over seeds, and rare-category AP against rare coverage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .report import column

PANEL_METRICS = [("bbox", "AP"), ("segm", "AP"), ("bbox", "APr"), ("segm", "APr")]


def plot_ablation(rows: Sequence[dict[str, Any]], baseline: str | None = None) -> plt.Figure:
    """Left: AP and APr (box and mask) per setting, mean ± std with every seed as a dot. Right: APr (mask)
    against the share of rare val instances the setting's generated data covers, with the baseline's level."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 0.45 * len(rows) + 3), width_ratios=(3, 2))
    y = np.arange(len(rows))
    height = 0.8 / len(PANEL_METRICS)
    for k, (iou, metric) in enumerate(PANEL_METRICS):
        name = column(iou, metric)
        offset = y + (k - (len(PANEL_METRICS) - 1) / 2) * height
        means = [r[name]["mean"] or 0.0 for r in rows]
        stds = [r[name]["std"] or 0.0 for r in rows]
        left.barh(offset, means, height, xerr=stds, label=name, alpha=0.75, capsize=2)
        for yy, r in zip(offset, rows, strict=True):
            left.scatter(r[name]["values"], [yy] * len(r[name]["values"]), s=6, color="black", zorder=3)
    left.set_yticks(y, [r["label"] for r in rows])
    left.invert_yaxis()
    left.set_xlabel("LVIS metric on the toy val split (%)")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=len(PANEL_METRICS), fontsize=8)
    left.set_title("Mean ± std over seeds (dots: single seeds)")

    name = column("segm", "APr")
    for r in rows:
        cov = r.get("coverage rare (generated)")
        if cov is None:
            continue
        right.errorbar(100 * cov, r[name]["mean"], yerr=r[name]["std"] or 0.0, fmt="o", capsize=3)
        right.annotate(r["label"], (100 * cov, r[name]["mean"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    base = next((r for r in rows if r["setting"] == baseline), None)
    if base is not None and base[name]["mean"] is not None:
        right.axhline(base[name]["mean"], color="grey", linestyle="--", label=base["label"])
        right.legend(fontsize=8)
    right.set_xlabel("rare val instances covered by the generated data (%, k-NN coverage, toy CLIP)")
    right.set_ylabel(f"{name} (%)")
    right.set_title("Wider rare coverage vs rare-category AP")
    fig.tight_layout()
    return fig
