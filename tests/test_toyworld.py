import hashlib
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from lvis import LVIS

from divergen_lib.formats import frequency_of, read_lvis, rle_area
from divergen_lib.toyworld import build_toyworld
from divergen_lib.toyworld.catalog import ATTRIBUTES, make_catalog

from .conftest import SMOKE_PARAMS, run_cli


def digest(root):
    files = ["train.json", "val.json", "world.json", "extra_categories.json"]
    files += sorted(str(p.relative_to(root)) for p in root.glob("*/*.png"))
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files}


def test_deterministic_for_a_seed(tmp_path, smoke_config, smoke_world):
    cfg = smoke_config.section("toyworld")
    again = build_toyworld(cfg, tmp_path / "again", seed=smoke_config.common.seed)
    assert digest(again.root) == digest(smoke_world.root)
    other = build_toyworld(cfg, tmp_path / "other", seed=smoke_config.common.seed + 1)
    assert digest(other.root)["train.json"] != digest(smoke_world.root)["train.json"]


def test_lvis_api_loads_both_splits(smoke_world, smoke_config):
    n_cats = smoke_config.section("toyworld").n_categories
    for split in ("train", "val"):
        api = LVIS(str(smoke_world.json_path(split)))
        assert len(api.get_cat_ids()) == n_cats >= 30
        assert len(api.get_ann_ids()) > len(api.get_img_ids())  # several instances per image on average
        first = api.load_anns(api.get_ann_ids()[:5])
        assert all(api.ann_to_mask(a).sum() == a["area"] > 0 for a in first)


def test_frequency_bins_follow_lvis_rule_and_all_three_are_present(smoke_world):
    train = read_lvis(smoke_world.json_path("train"))
    images_of = Counter()
    for ann in {(a["image_id"], a["category_id"]) for a in train["annotations"]}:
        images_of[ann[1]] += 1
    rare_max, common_max = smoke_world.thresholds
    for cat in train["categories"]:
        assert cat["image_count"] == images_of[cat["id"]]
        assert cat["frequency"] == frequency_of(cat["image_count"], rare_max, common_max)
    assert {c["frequency"] for c in train["categories"]} == {"r", "c", "f"}


def test_val_contains_every_category_and_lvis_image_lists(smoke_world):
    train, val = read_lvis(smoke_world.json_path("train")), read_lvis(smoke_world.json_path("val"))
    assert {a["category_id"] for a in val["annotations"]} == {c["id"] for c in val["categories"]}
    assert any(img["neg_category_ids"] for img in val["images"])
    assert any(img["not_exhaustive_category_ids"] for img in train["images"] + val["images"])
    for data in (train, val):
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            assert ann["area"] == rle_area(ann["segmentation"]) and w > 0 and h > 0
            assert x + w <= ann["segmentation"]["size"][1] and y + h <= ann["segmentation"]["size"][0]


def test_occlusion_happens(smoke_world):
    train = read_lvis(smoke_world.json_path("train"))
    # occluded objects: mask area clearly below the area of their unoccluded bounding shape
    ratios = [a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in train["annotations"]]
    assert min(ratios) < 0.35 and np.median(ratios) > 0.45


def test_rare_categories_see_only_a_narrow_slice_in_train():
    rng = np.random.default_rng(0)
    spec = make_catalog(1, rng, slice_width=0.2)[0]
    wide = [spec.sample(rng) for _ in range(300)]
    narrow = [spec.sample(rng, narrow_slice=0.2) for _ in range(300)]
    for attr in ("saturation", "value", "size", "pattern_scale"):
        spread_wide = np.ptp([getattr(a, attr) for a in wide])
        spread_narrow = np.ptp([getattr(a, attr) for a in narrow])
        assert spread_narrow <= 0.21 * spread_wide + 1e-9
    assert len(spec.slice_start) == len(ATTRIBUTES)


def test_rebuild_is_skipped_when_parameters_are_unchanged(smoke_config, smoke_world):
    before = smoke_world.json_path("train").stat().st_mtime_ns
    build_toyworld(smoke_config.section("toyworld"), smoke_world.root, seed=smoke_config.common.seed)
    assert smoke_world.json_path("train").stat().st_mtime_ns == before


def test_extra_categories_continue_ids_and_are_absent_from_the_data(smoke_world):
    train = read_lvis(smoke_world.json_path("train"))
    extra_ids = {s.id for s in smoke_world.extra_categories}
    assert min(extra_ids) == max(c["id"] for c in train["categories"]) + 1
    assert not extra_ids & {a["category_id"] for a in train["annotations"]}


def test_cli_builds_world_and_figures(tmp_path):
    out = tmp_path / "out"
    sets = [f"output_dir={out}", "toyworld.n_train_images=40", "toyworld.n_val_images=10"]
    done = run_cli("toyworld", "--params", str(SMOKE_PARAMS), "--figures", *[x for s in sets for x in ("--set", s)])
    assert done.returncode == 0, done.stderr
    assert (out / "toyworld" / "train.json").exists()
    assert {p.name for p in (out / "figures").iterdir()} >= {"toyworld_examples.png", "toyworld_frequency.png"}


def test_cli_bad_params_give_one_line_error():
    done = run_cli("toyworld", "--params", str(SMOKE_PARAMS), "--set", "toyworld.image_size=huge")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "toyworld.image_size: expected an integer" in done.stderr


def test_world_is_labelled_as_toy(smoke_world):
    assert "TOY WORLD" in read_lvis(smoke_world.json_path("train"))["info"]["description"]


def test_catalog_size_is_bounded_by_the_kinds(smoke_config):
    with pytest.raises(ValueError, match="at most 56"):
        replace(smoke_config.section("toyworld"), n_categories=60)
