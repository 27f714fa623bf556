"""t-SNE wall time: openTSNE vs scikit-learn on the same data.

A 50-D mixture of 10 Gaussians (fixed seed) is mapped to 2-D by both implementations through
``divergen_lib.analysis.maps.embed_2d`` with the same perplexity and thread count; printed as seconds and as the
ratio sklearn / openTSNE.

    .venv/bin/python benchmarks/tsne.py [--n 20000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from divergen_lib.analysis.maps import embed_2d


def mixture(n: int, dim: int = 50, n_clusters: int = 10, seed: int = 0) -> np.ndarray:
    """``n`` points of a Gaussian mixture with unit-variance components and well separated centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(n_clusters, dim))
    return centres[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, dim))


def seconds(x: np.ndarray, method: str, jobs: int) -> float:
    """Wall time of one 2-D embedding."""
    start = time.perf_counter()
    embed_2d(x, method=method, seed=0, n_jobs=jobs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    x = mixture(args.n)
    fast = seconds(x, "opentsne", args.jobs)
    slow = seconds(x, "sklearn", args.jobs)
    print(f"t-SNE, {args.n} points, 50-D, perplexity 30, {args.jobs} threads")
    print(f"  openTSNE     : {fast:8.1f} s")
    print(f"  scikit-learn : {slow:8.1f} s   (sklearn / openTSNE = {slow / fast:.2f})")


if __name__ == "__main__":
    main()
