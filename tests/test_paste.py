import copy

import numpy as np
import pytest

from divergen_lib.formats import mask_bbox, mask_to_rle, read_lvis, rle_to_mask, segmentation_to_rle
from divergen_lib.paste import PasteConfig, _kept, area_prior, paste_instances


def rgba(h, w, colour):
    crop = np.zeros((h, w, 4), np.uint8)
    crop[..., :3] = colour
    crop[..., 3] = 255
    return crop


def scene():
    image = np.full((120, 160, 3), 90, np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[30:70, 40:100] = True
    ann = {"category_id": 1, "bbox": [40.0, 30.0, 60.0, 40.0], "segmentation": mask_to_rle(mask), "area": 2400}
    return image, [ann]


def test_area_prior_is_mean_and_std_of_sqrt_relative_box_area():
    data = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [
            {"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10]},
            {"image_id": 1, "category_id": 3, "bbox": [0, 0, 30, 30]},
        ],
    }
    assert area_prior(data) == {3: (pytest.approx(0.2), pytest.approx(0.1))}


def test_paste_is_deterministic_and_marks_pasted_instances():
    image, anns = scene()
    crops = {2: [rgba(20, 30, (250, 0, 0))], 3: [rgba(25, 25, (0, 250, 0))]}
    cfg = PasteConfig(max_samples=8)
    a = paste_instances(image, anns, crops, {2: (0.2, 0.05)}, cfg, np.random.default_rng(3))
    b = paste_instances(image, anns, crops, {2: (0.2, 0.05)}, cfg, np.random.default_rng(3))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    pasted = [x for x in a[1] if x.get("pasted")]
    assert pasted and {x["category_id"] for x in pasted} <= {2, 3}
    for ann in a[1]:
        mask = rle_to_mask(ann["segmentation"])
        assert mask.sum() == ann["area"] > 0
        x, y, w, h = ann["bbox"]
        assert mask[int(y) : int(y + h), int(x) : int(x + w)].sum() == ann["area"]  # boxes are tight


def test_later_pastes_occlude_earlier_masks_and_pixels_match_the_top_instance():
    image, anns = scene()
    crops = {2: [rgba(60, 60, (250, 0, 0))]}
    out, result = paste_instances(
        image, anns, crops, {2: (0.35, 0.0)}, PasteConfig(max_samples=6, flip_prob=0), np.random.default_rng(0)
    )
    masks = [rle_to_mask(r["segmentation"]) for r in result]
    union = np.zeros(masks[0].shape, int)
    for m in masks:
        union += m
    assert union.max() == 1  # visible masks never overlap
    top = masks[-1]
    assert (out[top] == (250, 0, 0)).all()


def test_keep_rule():
    assert _kept([10, 10, 50, 50], [10, 10, 45, 50], 100)  # moved <= 10 px
    assert _kept([10, 10, 50, 50], [10, 10, 20, 50], 301)  # moved more, but > 300 px left
    assert not _kept([10, 10, 50, 50], [10, 10, 20, 50], 300)
    assert not _kept([10, 10, 50, 50], [0, 0, 0, 0], 0)


def test_zero_samples_or_empty_pool_leave_the_image_alone(smoke_world):
    image, anns = scene()
    assert paste_instances(image, anns, {}, {}, PasteConfig(), np.random.default_rng(0)) == (image, anns)
    prior = area_prior(read_lvis(smoke_world.json_path("train")))
    assert all(0 < m < 1 and s >= 0 for m, s in prior.values())


def busy_scene(size=(150, 200)):
    """A noisy image with RLE, polygon and ``mask`` annotations (categories 101.., LVIS-style tight boxes), and crops
    of categories 2 and 3."""
    height, width = size
    r = np.random.default_rng(0)
    image = r.integers(0, 256, (height, width, 3), dtype=np.uint8)
    anns = []
    for k in range(9):
        x, y = r.uniform(0, width - 40), r.uniform(0, height - 40)
        poly = [x, y, x + r.uniform(8, 40), y + r.uniform(0, 15), x + r.uniform(0, 20), y + r.uniform(8, 40)]
        mask = rle_to_mask(segmentation_to_rle([poly], height, width))
        ann = {"category_id": 101 + k, "bbox": mask_bbox(mask), "area": int(mask.sum())}
        ann.update([{"segmentation": mask_to_rle(mask)}, {"segmentation": [poly]}, {"mask": mask}][k % 3])
        anns.append(ann)
    crops = {c: [rgba(*r.integers(10, 50, 2), (40 * c, 0, 0)) for _ in range(c)] for c in (2, 3)}
    return image, anns, crops, {2: (0.15, 0.05)}


@pytest.mark.parametrize("blend", ["hard", "alpha", "gaussian"])
def test_boxes_are_tight_where_touched_and_untouched_annotations_come_back_as_given(blend):
    image, anns, crops, prior = busy_scene()
    before = copy.deepcopy(anns)
    given = {a["category_id"]: a for a in anns}
    seen = {"touched": 0, "untouched": 0, "pasted": 0}
    for seed in range(20):
        out, result = paste_instances(image, anns, crops, prior, PasteConfig(blend=blend), np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8
        for ann in result:
            assert "mask" not in ann
            source = given.get(ann["category_id"], {})
            if "segmentation" in source and ann["segmentation"] is source["segmentation"]:
                seen["untouched"] += 1
                assert ann == source and ann["bbox"] is source["bbox"] and ann["area"] is source["area"]
                continue
            mask = rle_to_mask(ann["segmentation"])
            assert mask.shape == image.shape[:2] and ann["area"] == mask.sum() > 0
            if "mask" in source and np.array_equal(mask, source["mask"]):  # untouched, given as a bitmap
                seen["untouched"] += 1
                assert ann["bbox"] == source["bbox"]
                continue
            seen["pasted" if ann.get("pasted") else "touched"] += 1
            assert ann["bbox"] == mask_bbox(mask)
    assert min(seen.values()) > 10, seen
    for a, b in zip(anns, before, strict=True):  # the inputs are left alone
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_fully_covered_instances_are_dropped_and_partly_covered_small_ones_kept():
    image = np.full((100, 100, 3), 90, np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[46:54, 46:54] = True  # 8×8: a partial cover moves its box by < 10 px, so it stays while any pixel is left
    ann = {"category_id": 1, "bbox": mask_bbox(mask), "segmentation": mask_to_rle(mask), "area": 64}
    crops = {2: [rgba(30, 30, (250, 0, 0))]}
    outcomes = set()
    for seed in range(40):
        out, result = paste_instances(
            image, [ann], crops, {2: (0.4, 0.1)}, PasteConfig(max_samples=12), np.random.default_rng(seed)
        )
        covered = bool((out[mask] == (250, 0, 0)).all())
        kept = [r for r in result if not r.get("pasted")]
        assert len(kept) == (not covered)
        if kept:
            left = rle_to_mask(kept[0]["segmentation"])
            assert left.sum() == kept[0]["area"] > 0 and not (left & (out == (250, 0, 0)).all(axis=2)).any()
        assert all(r["area"] > 0 for r in result)
        outcomes.add(covered)
    assert outcomes == {True, False}


def test_same_seed_same_result_and_different_seed_different_result():
    image, anns, crops, prior = busy_scene()
    cfg = PasteConfig(blend="gaussian")
    a = paste_instances(image, anns, crops, prior, cfg, np.random.default_rng(7))
    b = paste_instances(image, anns, crops, prior, cfg, np.random.default_rng(7))
    c = paste_instances(image, anns, crops, prior, cfg, np.random.default_rng(8))
    assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
    assert a[0].tobytes() != c[0].tobytes() and a[1] != c[1]


def pasted_categories(sampling, counts, draws=300):
    """Categories of pasted instances over many images: ≤ 10-px squares on a large canvas are never rejected and,
    sizes being equal across categories, get dropped (fully covered) independently of their category."""
    crops = {cid: [rgba(40, 40, (cid, 0, 0))] * k for cid, k in counts.items()}
    cfg = PasteConfig(max_samples=20, sampling=sampling, random_scale=(0.1, 0.25))
    image = np.zeros((300, 300, 3), np.uint8)
    found = []
    for seed in range(draws):
        _, result = paste_instances(image, [], crops, {}, cfg, np.random.default_rng(seed))
        found += [r["category_id"] for r in result]
    return np.array([found.count(cid) for cid in counts])


def chi_square(observed, expected_share):
    expected = observed.sum() * np.asarray(expected_share) / np.sum(expected_share)
    return float(((observed - expected) ** 2 / expected).sum())


CHI2_DF2_P001 = 13.82  # chi-square critical value, 2 degrees of freedom, p = 0.001


def test_cas_random_samples_categories_uniformly_whatever_their_pool_sizes():
    observed = pasted_categories("cas_random", {1: 1, 2: 5, 3: 40})
    assert observed.sum() > 2000
    assert chi_square(observed, [1, 1, 1]) < CHI2_DF2_P001
    assert chi_square(observed, [1, 5, 40]) > 100 * CHI2_DF2_P001


def test_random_samples_categories_in_proportion_to_their_instances():
    observed = pasted_categories("random", {1: 1, 2: 5, 3: 40})
    assert chi_square(observed, [1, 5, 40]) < CHI2_DF2_P001
    assert chi_square(observed, [1, 1, 1]) > 100 * CHI2_DF2_P001
