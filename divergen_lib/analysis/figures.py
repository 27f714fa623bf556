"""Per-category panels of the 2-D map: where a rare category's real and generated instances fall."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def plot_rare_panels(
    points: np.ndarray, sources: np.ndarray, category_ids: np.ndarray, rare_ids: list[int], names: dict[int, str]
) -> plt.Figure:
    """One panel per rare category: all points grey, that category's points coloured by set."""
    palette = dict(zip(dict.fromkeys(sources), sns.color_palette("tab10"), strict=False))
    fig, axes = plt.subplots(1, len(rare_ids), figsize=(3.4 * len(rare_ids), 3.4), squeeze=False)
    for ax, cid in zip(axes[0], rare_ids, strict=True):
        ax.scatter(points[:, 0], points[:, 1], s=2, c="#dddddd")
        for source, colour in palette.items():
            sel = (category_ids == cid) & (sources == source)
            if sel.any():
                ax.scatter(points[sel, 0], points[sel, 1], s=14, color=colour, label=f"{source} ({sel.sum()})")
        ax.set_title(f"rare: {names.get(cid, cid)}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig
