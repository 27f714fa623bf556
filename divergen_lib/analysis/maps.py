"""2-D maps of embeddings (openTSNE by default, scikit-learn t-SNE, or UMAP if umap-learn is installed) and a plot."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from ..errors import InputError  # noqa: E402

METHODS = ("opentsne", "sklearn", "umap")
MIN_POINTS = 5


def effective_perplexity(n: int, perplexity: float) -> float:
    """``perplexity`` lowered to ``(n - 1) / 3`` for small inputs (t-SNE uses about 3 x perplexity neighbours)."""
    return float(min(perplexity, (n - 1) / 3))


def embed_2d(
    x: np.ndarray, method: str = "opentsne", seed: int = 0, perplexity: float = 30, n_jobs: int = 1
) -> np.ndarray:
    """(N, 2) map of the rows of ``x``; the same ``seed`` and ``n_jobs`` give the same map."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < MIN_POINTS:
        raise InputError(f"embed_2d: expected a 2-D array of at least {MIN_POINTS} rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("embed_2d: input contains NaN or infinite values")
    if method not in METHODS:
        raise InputError(f"embed_2d: unknown method {method!r}, expected one of {', '.join(METHODS)}")
    perplexity = effective_perplexity(len(x), perplexity)
    if method == "opentsne":
        from openTSNE import TSNE

        points = TSNE(perplexity=perplexity, random_state=seed, n_jobs=n_jobs).fit(x)
    elif method == "sklearn":
        from sklearn.manifold import TSNE

        points = TSNE(perplexity=perplexity, random_state=seed, init="pca", n_jobs=n_jobs).fit_transform(x)
    else:
        try:
            import umap
        except ImportError:
            raise InputError(
                "embed_2d: method='umap' needs umap-learn, install it with `pip install umap-learn`"
            ) from None
        points = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed).fit_transform(x)
    return np.asarray(points, dtype=np.float64)


def plot_map(points: np.ndarray, labels: Sequence, title: str = "") -> plt.Figure:
    """Scatter plot of a 2-D map, one colour per label (e.g. the data source of each point)."""
    points = np.asarray(points)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=np.asarray(labels), s=6, linewidth=0, alpha=0.6, ax=ax)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=2, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
