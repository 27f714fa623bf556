import numpy as np
import pytest

from divergen_lib.errors import InputError
from divergen_lib.filtration.pool import rgba_crop
from divergen_lib.filtration.rules import (
    category_mean,
    clip_score,
    inter_similarity,
    normalise,
    xpaste_bar,
    xpaste_keep,
)


def test_inter_similarity_closed_form_equals_mean_pairwise_cosine():
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=(17, 12)), rng.normal(size=(9, 12))
    brute = np.array([[g @ r / np.linalg.norm(g) / np.linalg.norm(r) for r in real] for g in generated]).mean(axis=1)
    assert np.allclose(inter_similarity(generated, category_mean(real)), brute, atol=1e-12)


def test_clip_score_is_100_times_cosine():
    a, b = np.array([[3.0, 4.0]]), np.array([[4.0, 3.0]])
    assert clip_score(a, b)[0] == pytest.approx(100 * 24 / 25)
    assert np.allclose(np.linalg.norm(normalise(np.array([[3.0, 4.0], [1.0, 0.0]])), axis=1), 1)


def test_xpaste_rule_keeps_at_least_one_instance_of_every_category():
    rng = np.random.default_rng(1)
    for _ in range(200):
        scores = rng.uniform(5, 35, rng.integers(1, 30))
        areas = rng.uniform(0.1, 0.9, len(scores))
        reasons = xpaste_keep(scores, areas, min_clip=21, tolerance=1, min_area=0.05, max_area=0.95)
        assert any(r is None for r in reasons)


def test_xpaste_rule_thresholds_and_area_bounds():
    assert xpaste_bar([10, 30], 21, 1) == 21 and xpaste_bar([10, 15], 21, 1) == 14
    reasons = xpaste_keep([30, 20, 25, 26], [0.5, 0.5, 0.01, 0.99], 21, 1, 0.05, 0.95)
    assert reasons[0] is None
    assert reasons[1] == "CLIP score 20.00 < 21.00"
    assert "area 0.010 outside" in reasons[2] and "area 0.990 outside" in reasons[3]


def test_rgba_crop_is_tight_with_binary_alpha_of_the_largest_component():
    image = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:20, 5:25] = True
    mask[30:32, 40:42] = True  # a smaller component, dropped
    crop = rgba_crop(image, mask)
    assert crop.shape == (10, 20, 4) and set(np.unique(crop[..., 3])) == {255}
    assert np.array_equal(crop[..., :3], image[10:20, 5:25])
    mask[12, 7] = False
    assert set(np.unique(rgba_crop(image, mask)[..., 3])) == {0, 255}
    with pytest.raises(InputError, match="empty mask"):
        rgba_crop(image, np.zeros((40, 50), bool))
