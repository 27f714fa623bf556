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


def scored(generation_id, method, clip, area=0.5, model="sd", category=1):
    return {
        "annotation_id": f"{method}-{generation_id}",
        "generation_id": generation_id,
        "method": method,
        "model": model,
        "category_id": category,
        "prompt_source": "template",
        "clip_score": clip,
        "area_fraction": area,
    }


def test_max_clip_keeps_each_images_best_mask_then_applies_xpastes_bar_over_all_methods():
    """A hand-computed case of X-Paste's clean_pool.py: 3 images of one category, 2 segmenters.
    Best per image: g1 clipseg 30 (beats u2net 24), g2 u2net 22 (clipseg 20), g3 tie 18/18 -> clipseg (listed first).
    bar = min(21, 30 - 1) = 21: g1 kept, g2 kept (22 >= 21), g3 dropped (18 < 21). g2's best mask is u2net's even
    though clipseg's would fail the bar; g1's u2net mask (24 >= 21) is still dropped: one mask per image."""
    from dataclasses import replace

    from divergen_lib.filtration.config import ClipScoreFilter, FiltrationConfig, InterSimilarityFilter
    from divergen_lib.filtration.stage import decide

    rows = [
        scored("g1", "clipseg", 30.0),
        scored("g2", "clipseg", 20.0),
        scored("g3", "clipseg", 18.0),
        scored("g1", "u2net", 24.0),
        scored("g2", "u2net", 22.0, area=0.6),
        scored("g3", "u2net", 18.0),
    ]
    cfg = FiltrationConfig(
        real=None,  # type: ignore[arg-type]  (decide reads no real data)
        fusion="max_clip",
        clip_score=ClipScoreFilter(apply_to="all", min_clip=21, tolerance=1, min_area=0.05, max_area=0.95),
        inter_similarity=InterSimilarityFilter(enabled=False),
    )
    decided = {r["annotation_id"]: r for r in decide(rows, cfg)}
    assert [k for k, r in decided.items() if r["keep"]] == ["clipseg-g1", "u2net-g2"]
    assert decided["u2net-g1"]["reason"] == "max-CLIP: clipseg's mask scored higher (30.00 vs 24.00)"
    assert decided["clipseg-g2"]["reason"] == "max-CLIP: u2net's mask scored higher (22.00 vs 20.00)"
    assert decided["u2net-g3"]["reason"].startswith("max-CLIP: clipseg's")
    assert decided["clipseg-g3"]["reason"] == "CLIP score 18.00 < 21.00"
    assert decided["u2net-g2"]["fused_from"] == ["clipseg", "u2net"]
    # without fusion the same rows are judged per method: both masks of g1 would enter the pool
    unfused = decide(rows, replace(cfg, fusion="none"))
    assert {r["annotation_id"] for r in unfused if r["keep"]} >= {"clipseg-g1", "u2net-g1"}


def test_pool_quotas_and_caps_draw_a_deterministic_nested_subsample():
    from divergen_lib.filtration.composition import compose_pool
    from divergen_lib.filtration.config import PoolComposition, PoolQuota

    rows = [{**scored(f"g{i}", "m", 25.0, model="sd", category=i % 3), "keep": True} for i in range(40)]
    rows += [{**scored(f"w{i}", "m", 25.0, model="web", category=i % 3), "keep": True} for i in range(30)]
    for r in rows[40:]:
        r["prompt_source"] = "external"
    rows.append({**scored("bad", "m", 5.0), "keep": False})
    quotas = [PoolQuota("generated", 10, kind="generated"), PoolQuota("retrieved", 5, kind="external")]

    def pool(cfg, seed=0, of=rows):
        left_out = compose_pool(of, cfg, seed)
        assert "m-bad" not in left_out
        return {r["annotation_id"] for r in of if r["keep"] and r["annotation_id"] not in left_out}

    drawn = pool(PoolComposition(quotas=quotas))
    assert len(drawn) == 15 and len({d for d in drawn if d.startswith("m-g")}) == 10
    assert drawn == pool(PoolComposition(quotas=quotas), of=rows[::-1])  # not the row order
    assert drawn != pool(PoolComposition(quotas=quotas), seed=1)
    # by generator name: the 30 web rows are "web", a quota of generators [web] takes them only
    by_name = pool(PoolComposition(quotas=[PoolQuota("web", 7, generators=["web"])]))
    assert len(by_name) == 7 and all(d[2] == "w" for d in by_name)
    small, large = pool(PoolComposition(max_instances=20)), pool(PoolComposition(max_instances=40))
    assert len(small) == 20 and small < large  # a smaller pool is a subset of a larger one
    capped = pool(PoolComposition(max_per_category=4))
    categories = [next(r["category_id"] for r in rows if r["annotation_id"] == d) for d in capped]
    assert sorted(categories.count(c) for c in (0, 1, 2)) == [4, 4, 4]
    reasons = compose_pool(rows, PoolComposition(quotas=quotas[:1]), 0)
    assert reasons["m-w0"] == "not drawn for the pool: in no filtration.pool quota"
    assert any(r == "not drawn for the pool: quota generated holds 10 of its 40" for r in reasons.values())
