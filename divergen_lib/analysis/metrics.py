"""Discrepancy between two sets of embeddings (rows = samples), as numbers.

* Fréchet distance between Gaussians fitted to each set (the FID formula).
* Squared MMD with an RBF kernel, unbiased estimator, median-heuristic bandwidth.
* k-NN manifold precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020): every
  sample's k-NN radius (distance to its k-th nearest neighbour within its own set, itself excluded) defines a ball;
  precision is the fraction of fake samples inside some real ball, recall the fraction of real samples inside some
  fake ball, density the mean number of real balls holding a fake sample divided by k, coverage the fraction of real
  balls holding at least one fake sample.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from scipy.spatial.distance import pdist
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from ..errors import InputError


def _matrix(x: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    """``x`` as a finite float64 (N, D) array with at least ``min_rows`` rows."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (samples x features), got shape {x.shape}")
    if len(x) < min_rows:
        raise InputError(f"{name}: needs at least {min_rows} samples, got {len(x)}")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    return x


def _pair(a: np.ndarray, b: np.ndarray, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a, b = _matrix(a, "a", min_rows), _matrix(b, "b", min_rows)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of the sample means and covariances.

    If the product of the covariances is singular (scipy warns, or the root is not finite), the root is taken again
    with ``eps`` added to both diagonals.
    """
    a, b = _pair(a, b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(cov_a @ cov_b)
        except linalg.LinAlgWarning:
            root = None
    if root is None or not np.isfinite(root).all():
        offset = eps * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(root)))


def median_bandwidth(a: np.ndarray, b: np.ndarray) -> float:
    """Median of the positive pairwise Euclidean distances of the pooled samples (1.0 if all coincide)."""
    distances = pdist(np.concatenate(_pair(a, b, min_rows=1)))
    positive = distances[distances > 0]
    return float(np.median(positive)) if len(positive) else 1.0


def mmd_rbf(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with ``k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2))``; may be slightly negative.

    ``bandwidth`` defaults to the median heuristic (:func:`median_bandwidth`). Memory grows as ``(m + n)^2``:
    subsample sets of more than about 10k rows.
    """
    a, b = _pair(a, b)
    sigma = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    if not sigma > 0:
        raise InputError(f"bandwidth must be positive, got {bandwidth}")
    gamma = 1.0 / (2.0 * sigma**2)
    sq_a, sq_b = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)

    def kernel(x: np.ndarray, sq_x: np.ndarray, y: np.ndarray, sq_y: np.ndarray) -> np.ndarray:
        return np.exp(-gamma * np.maximum(sq_x[:, None] + sq_y[None, :] - 2.0 * x @ y.T, 0.0))

    m, n = len(a), len(b)
    k_aa = (kernel(a, sq_a, a, sq_a).sum() - m) / (m * (m - 1))
    k_bb = (kernel(b, sq_b, b, sq_b).sum() - n) / (n * (n - 1))
    k_ab = kernel(a, sq_a, b, sq_b).mean()
    return float(k_aa + k_bb - 2.0 * k_ab)


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every row to its k-th nearest other row."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return distances[:, k]


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """``precision``, ``recall``, ``density`` and ``coverage`` of ``fake`` against ``real`` with k-NN balls."""
    real, fake = _pair(real, fake, min_rows=k + 1)
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    radius_real, radius_fake = knn_radii(real, k), knn_radii(fake, k)
    in_real_balls = np.zeros(len(fake), dtype=np.int64)
    nearest_fake = np.full(len(real), np.inf)
    in_fake_ball = np.zeros(len(real), dtype=bool)

    def reduce(chunk: np.ndarray, start: int) -> None:
        rows = slice(start, start + len(chunk))
        in_real_balls[rows] = (chunk <= radius_real[None, :]).sum(axis=1)
        np.minimum(nearest_fake, chunk.min(axis=0), out=nearest_fake)
        in_fake_ball[:] |= (chunk <= radius_fake[rows, None]).any(axis=0)

    for _ in pairwise_distances_chunked(fake, real, reduce_func=reduce):
        pass
    return {
        "precision": float((in_real_balls > 0).mean()),
        "recall": float(in_fake_ball.mean()),
        "density": float(in_real_balls.sum() / (k * len(fake))),
        "coverage": float((nearest_fake <= radius_real).mean()),
    }


def compare(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float | int]:
    """All metrics of ``fake`` against ``real``: sample counts, ``frechet``, ``mmd`` and the k-NN ones."""
    real, fake = _pair(real, fake, min_rows=k + 1)
    return {
        "n_real": len(real),
        "n_fake": len(fake),
        "frechet": frechet_distance(real, fake),
        "mmd": mmd_rbf(real, fake),
        **knn_precision_recall(real, fake, k),
    }
