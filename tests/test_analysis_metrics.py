import importlib.util
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from divergen_lib.analysis.maps import effective_perplexity, embed_2d, plot_map, reduce_dims, stratified_sample
from divergen_lib.analysis.metrics import compare, frechet_distance, knn_precision_recall, mmd_rbf
from divergen_lib.errors import InputError


def gaussian(n, dim, mean=0.0, scale=1.0, seed=0):
    return np.random.default_rng(seed).normal(mean, scale, size=(n, dim))


def clusters(n_per=50, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(3, dim))
    x = np.concatenate([rng.normal(c, 1.0, size=(n_per, dim)) for c in centres])
    return x, np.repeat(np.arange(3), n_per)


def test_identical_sets_have_no_discrepancy():
    x = gaussian(300, 8)
    metrics = compare(x, x.copy())
    assert metrics["n_real"] == metrics["n_fake"] == 300
    assert abs(metrics["frechet"]) < 1e-6
    assert abs(metrics["mmd"]) < 0.02
    assert metrics["precision"] == metrics["recall"] == metrics["coverage"] == 1.0
    assert 0.8 < metrics["density"] < 1.5


def test_disjoint_gaussians_are_far_apart():
    real, fake = gaussian(300, 8, seed=1), gaussian(300, 8, mean=20.0, seed=2)
    metrics = compare(real, fake)
    assert metrics["frechet"] > 0.9 * 8 * 20**2
    assert metrics["mmd"] > 0.5
    for key in ("precision", "recall", "density", "coverage"):
        assert metrics[key] == 0.0


def test_frechet_matches_closed_form_of_diagonal_gaussians():
    mean_a, std_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 2.0, 0.5])
    mean_b, std_b = np.array([1.0, 1.0, 0.0]), np.array([3.0, 1.0, 0.5])
    rng = np.random.default_rng(3)
    a, b = rng.normal(mean_a, std_a, (40000, 3)), rng.normal(mean_b, std_b, (40000, 3))
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_frechet_is_exact_for_a_scaled_and_shifted_copy():
    a = gaussian(500, 6, seed=4) @ np.random.default_rng(5).normal(size=(6, 6))
    shift, scale = np.arange(6.0), 1.7
    b = scale * a + shift
    expected = np.sum(((scale - 1) * a.mean(axis=0) + shift) ** 2)
    expected += (scale - 1) ** 2 * np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("error")
def test_frechet_survives_singular_covariances():
    a = np.zeros((50, 4))
    a[:, 0] = np.random.default_rng(6).normal(size=50)
    b = a + np.array([0.0, 3.0, 0.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(9.0, abs=1e-3)


def test_mmd_matches_brute_force_unbiased_estimator():
    a, b = gaussian(12, 3, seed=7), gaussian(9, 3, mean=0.5, seed=8)
    sigma = 1.3

    def k(x, y):
        return np.exp(-np.sum((x - y) ** 2) / (2 * sigma**2))

    aa = sum(k(x, y) for i, x in enumerate(a) for j, y in enumerate(a) if i != j) / (12 * 11)
    bb = sum(k(x, y) for i, x in enumerate(b) for j, y in enumerate(b) if i != j) / (9 * 8)
    ab = sum(k(x, y) for x in a for y in b) / (12 * 9)
    assert mmd_rbf(a, b, bandwidth=sigma) == pytest.approx(aa + bb - 2 * ab, abs=1e-12)


def test_knn_metrics_match_brute_force():
    real, fake, k = gaussian(40, 3, seed=9), gaussian(30, 3, mean=0.7, scale=1.3, seed=10), 3
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    r_real, r_fake = np.sort(d_rr, axis=1)[:, k], np.sort(d_ff, axis=1)[:, k]
    inside = d_fr <= r_real[None]
    expected = {
        "precision": inside.any(axis=1).mean(),
        "recall": (d_fr <= r_fake[:, None]).any(axis=0).mean(),
        "density": inside.sum() / (k * len(fake)),
        "coverage": (d_fr.min(axis=0) <= r_real).mean(),
    }
    got = knn_precision_recall(real, fake, k=k)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < got["precision"] < 1 and 0 < got["coverage"] < 1


def test_metrics_move_monotonically_with_a_shift():
    real = gaussian(400, 5, seed=11)
    base = gaussian(400, 5, seed=12)
    rows = [compare(real, base + shift) for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    for key in ("frechet", "mmd"):
        assert np.all(np.diff([r[key] for r in rows]) > 0), key
    for key in ("precision", "recall", "density", "coverage"):
        assert np.all(np.diff([r[key] for r in rows]) < 0), key


def test_metrics_reject_bad_inputs():
    with pytest.raises(InputError, match="feature dimensions differ"):
        compare(gaussian(20, 3), gaussian(20, 4))
    with pytest.raises(InputError, match="at least 6 samples"):
        knn_precision_recall(gaussian(5, 3), gaussian(20, 3), k=5)
    with pytest.raises(InputError, match="2-D"):
        mmd_rbf(np.zeros(10), np.zeros(10))


@pytest.mark.parametrize("method", ["opentsne", "sklearn"])
def test_tsne_maps_are_deterministic_and_separate_clusters(method):
    x, labels = clusters()
    points = embed_2d(x, method=method, seed=3)
    assert points.shape == (150, 2) and np.isfinite(points).all()
    assert np.array_equal(points, embed_2d(x, method=method, seed=3))
    accuracy = cross_val_score(KNeighborsClassifier(5), points, labels, cv=5).mean()
    assert accuracy > 0.9


def test_tsne_handles_tiny_inputs():
    assert effective_perplexity(7, 30) == 2.0 and effective_perplexity(1000, 30) == 30
    points = embed_2d(gaussian(7, 4), method="opentsne")
    assert points.shape == (7, 2) and np.isfinite(points).all()
    with pytest.raises(InputError, match="unknown method"):
        embed_2d(gaussian(20, 4), method="pca")


@pytest.mark.skipif(importlib.util.find_spec("umap") is not None, reason="umap-learn is installed")
def test_umap_without_umap_learn_is_a_clear_error():
    with pytest.raises(InputError, match="pip install umap-learn"):
        embed_2d(gaussian(20, 4), method="umap")


def test_plot_map_colours_points_by_label():
    x, labels = clusters(n_per=10)
    fig = plot_map(x[:, :2], np.array(["real", "sd", "if"])[labels], title="sources")
    ax = fig.axes[0]
    assert ax.get_title() == "sources"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["if", "real", "sd"]
    assert len(ax.collections[0].get_offsets()) == 30
    plt.close(fig)


def test_a_stratified_sample_keeps_rare_points_and_spreads_the_rest_evenly():
    ids = np.repeat([1, 2, 3, 4], [500, 100, 6, 4])  # 3 and 4 are rare
    rows = stratified_sample(ids, 70, keep=[3, 4], seed=1)
    picked = Counter(ids[rows].tolist())
    assert len(rows) == 70 and np.all(np.diff(rows) > 0)
    assert picked == {3: 6, 4: 4, 1: 30, 2: 30}  # every rare point, then an even split of the 60 left
    assert np.array_equal(rows, stratified_sample(ids, 70, keep=[3, 4], seed=1))
    assert not np.array_equal(rows, stratified_sample(ids, 70, keep=[3, 4], seed=2))
    few = stratified_sample(ids, 7, keep=[3, 4], seed=0)  # more rare points than the budget: spread over them
    assert sorted(Counter(ids[few].tolist()).values()) == [3, 4]
    assert np.array_equal(stratified_sample(ids, 10_000, keep=[], seed=0), np.arange(len(ids)))
    uneven = stratified_sample(np.repeat([1, 2, 3], [2, 50, 50]), 42, keep=[], seed=0)
    assert Counter(np.repeat([1, 2, 3], [2, 50, 50])[uneven].tolist()) == {1: 2, 2: 20, 3: 20}


def test_maps_start_from_principal_components_fitted_on_the_fitted_rows():
    x = np.random.default_rng(0).normal(size=(300, 80)) * np.linspace(5, 0.1, 80)
    reduced = reduce_dims(x, 50, seed=0)
    assert reduced.shape == (300, 50)
    expected = PCA(50, random_state=0).fit(x[:100]).transform(x)
    assert np.allclose(np.abs(reduce_dims(x, 50, seed=0, fit_rows=np.arange(100))), np.abs(expected), atol=1e-6)
    assert np.array_equal(reduce_dims(x[:, :20], 50), x[:, :20])  # not wider than 50: left as it is


def test_every_other_point_is_placed_into_a_map_fitted_on_a_sample():
    x, labels = clusters(n_per=60)
    fit_rows = np.arange(0, len(x), 3)
    points = embed_2d(x, seed=0, pca_dims=None, fit_rows=fit_rows)
    assert np.array_equal(points[fit_rows], embed_2d(x[fit_rows], seed=0, pca_dims=None))  # fitted points stay
    rest = np.setdiff1d(np.arange(len(x)), fit_rows)
    placed = KNeighborsClassifier(5).fit(points[fit_rows], labels[fit_rows]).score(points[rest], labels[rest])
    assert placed > 0.9  # each placed point lands among the fitted points of its cluster
    with pytest.raises(InputError, match="needs method 'opentsne'"):
        embed_2d(x, method="sklearn", fit_rows=fit_rows)
