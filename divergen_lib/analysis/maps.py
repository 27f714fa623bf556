"""2-D maps of embeddings (openTSNE by default, scikit-learn t-SNE, or UMAP if umap-learn is installed) and a plot.

At LVIS scale (millions of real and generated instances) a map is made the way t-SNE practice recommends:
:func:`stratified_sample` picks the points a map is fitted on (every rare-category point up to the budget, the
rest spread evenly over categories), the embeddings are reduced to 50 principal components first (the neighbour
search then works in 50-D, not 768-D), openTSNE's FFT-accelerated gradient runs on every core, and, when every
point should appear, the others are placed into the fitted map with openTSNE's ``transform`` (each new point is
optimised against its neighbours among the fitted ones, which stay where they are). ``benchmarks/tsne.py``
measures each step's time against the number of points.
"""

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


def _balanced(rows: np.ndarray, ids: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """``budget`` of ``rows`` spread evenly over their categories ``ids``: each category gives the same number of
    points, or all of its points when it has fewer (a seeded random choice within a category)."""
    if budget >= len(rows):
        return rows
    perm = rng.permutation(len(rows))
    order = np.argsort(ids[perm], kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(ids[perm][order]) != 0])
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    return rows[perm[np.argsort(rank, kind="stable")[:budget]]]


def stratified_sample(category_ids: np.ndarray, budget: int, keep: Sequence[int], seed: int = 0) -> np.ndarray:
    """Sorted row indices of at most ``budget`` points: every point of a ``keep`` category (the rare ones) while
    they fit, spread evenly over categories otherwise, and the rest of the budget spread evenly over the other
    categories."""
    ids = np.asarray(category_ids)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(ids))
    kept = np.isin(ids, keep)
    first = _balanced(rows[kept], ids[kept], budget, rng)
    rest = _balanced(rows[~kept], ids[~kept], budget - len(first), rng)
    return np.sort(np.concatenate([first, rest]))


def reduce_dims(x: np.ndarray, dims: int | None, seed: int = 0, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """``x`` (float64) on the first ``dims`` principal components of ``x[fit_rows]`` (all rows by default);
    ``x`` itself when ``dims`` is None or not below its width."""
    if dims is None or x.shape[1] <= dims:
        return np.asarray(x, dtype=np.float64)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dims, random_state=seed).fit(x if fit_rows is None else x[fit_rows])
    return np.asarray(pca.transform(x), dtype=np.float64)


def embed_2d(
    x: np.ndarray,
    method: str = "opentsne",
    seed: int = 0,
    perplexity: float = 30,
    n_jobs: int = 1,
    pca_dims: int | None = 50,
    fit_rows: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 2) map of the rows of ``x`` (reduced to ``pca_dims`` principal components first); the same ``seed``
    and ``n_jobs`` give the same map. With ``fit_rows`` (openTSNE only) the map is fitted on those rows and
    every other row is placed into it (see the module docstring)."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < MIN_POINTS:
        raise InputError(f"embed_2d: expected a 2-D array of at least {MIN_POINTS} rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("embed_2d: input contains NaN or infinite values")
    if method not in METHODS:
        raise InputError(f"embed_2d: unknown method {method!r}, expected one of {', '.join(METHODS)}")
    if fit_rows is not None and method != "opentsne":
        raise InputError(f"embed_2d: placing points into a fitted map needs method 'opentsne', not {method!r}")
    if fit_rows is not None and len(fit_rows) < MIN_POINTS:
        raise InputError(f"embed_2d: a map is fitted on at least {MIN_POINTS} rows, got {len(fit_rows)}")
    x = reduce_dims(x, pca_dims, seed, fit_rows)
    perplexity = effective_perplexity(len(x) if fit_rows is None else len(fit_rows), perplexity)
    if method == "opentsne":
        from openTSNE import TSNE

        tsne = TSNE(perplexity=perplexity, random_state=seed, n_jobs=n_jobs)
        if fit_rows is None:
            return np.asarray(tsne.fit(x), dtype=np.float64)
        fitted = tsne.fit(x[fit_rows])
        points = np.empty((len(x), 2))
        rest = np.setdiff1d(np.arange(len(x)), fit_rows)
        points[fit_rows] = fitted
        if len(rest):
            points[rest] = fitted.transform(x[rest])
        return points
    if method == "sklearn":
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
    size, alpha = (6, 0.6) if len(points) <= 20_000 else (1, 0.3)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    hue = np.asarray(labels)
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=hue, s=size, linewidth=0, alpha=alpha, rasterized=True, ax=ax)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=2, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
