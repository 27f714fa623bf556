"""t-SNE at scale: openTSNE vs scikit-learn against the number of points, and the steps of a map of millions.

A mixture of 10 Gaussians (fixed seed) in a 50-D subspace of a 768-D space (CLIP ViT-L/14's width) stands in for
CLIP embeddings. Printed per size: the wall time of scikit-learn's Barnes-Hut t-SNE and of openTSNE (FFT) through
``divergen_lib.analysis.maps.embed_2d`` with the same perplexity and threads on the 50-D data, and the ratio
sklearn / openTSNE. Then the steps :mod:`divergen_lib.analysis.maps` takes for a map of millions of points: PCA from
768-D to 50-D, a map fitted on a sample, and the placement of the other points into it (points/s, with the time it
implies for 2 million points).

    .venv/bin/python benchmarks/tsne.py [--sizes 10000,25000,50000,100000] [--sklearn-max 100000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from divergen_lib.analysis.maps import embed_2d, reduce_dims


def mixture(n: int, dim: int = 50, width: int = 768, n_clusters: int = 10, seed: int = 0) -> np.ndarray:
    """``n`` points of a Gaussian mixture with unit-variance components and well separated centres in a random
    ``dim``-D subspace of ``width`` dimensions, plus small isotropic noise (float32, as embeddings are stored)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(n_clusters, dim))
    low = centres[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, dim))
    basis = np.linalg.qr(rng.normal(size=(width, dim)))[0]
    return (low @ basis.T + rng.normal(scale=0.05, size=(n, width))).astype(np.float32)


def seconds(work: Callable[[], Any]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,25000,50000,100000")
    parser.add_argument("--sklearn-max", type=int, default=100_000, help="largest size scikit-learn runs at")
    parser.add_argument("--fit", type=int, default=20_000, help="points the placement map is fitted on")
    parser.add_argument("--place", type=int, default=100_000, help="points placed into that map")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    print(f"t-SNE, perplexity 30, {args.jobs} threads; a 10-Gaussian mixture in a 50-D subspace of 768-D")
    print(f"{'points':>8} {'openTSNE s':>11} {'sklearn s':>10} {'sklearn / openTSNE':>19}")
    for n in sizes:
        x = reduce_dims(mixture(n), 50)
        fast = seconds(lambda x=x: embed_2d(x, "opentsne", n_jobs=args.jobs, pca_dims=None))
        slow = None
        if n <= args.sklearn_max:
            slow = seconds(lambda x=x: embed_2d(x, "sklearn", n_jobs=args.jobs, pca_dims=None))
        ratio = f"{slow / fast:19.2f}" if slow else f"{'-':>19}"
        print(f"{n:8d} {fast:11.1f} {slow or float('nan'):10.1f} {ratio}")
    total = args.fit + args.place
    x = mixture(total, seed=1)
    pca = seconds(lambda: reduce_dims(x, 50, fit_rows=np.arange(args.fit)))
    fit_rows = np.arange(args.fit)
    fitted = seconds(lambda: embed_2d(x[: args.fit], "opentsne", n_jobs=args.jobs))
    both = seconds(lambda: embed_2d(x, "opentsne", n_jobs=args.jobs, fit_rows=fit_rows))
    placed = max(both - fitted - pca, 1e-9)
    rate = args.place / placed
    print(f"a map of {total} points fitted on {args.fit}: PCA 768-D -> 50-D {pca:.1f} s, fit {fitted:.1f} s,")
    hours = 2e6 / rate / 3600
    print(f"  placement of {args.place} points {placed:.1f} s ({rate:.0f} points/s; 2 million: {hours:.1f} h)")


if __name__ == "__main__":
    main()
