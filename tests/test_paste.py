import numpy as np
import pytest

from divergen_lib.formats import mask_to_rle, read_lvis, rle_to_mask
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


def test_pool_crops_load_from_an_instance_pool_json(tmp_path):
    from divergen_lib.formats import PoolEntry, read_instance_pool, write_instance_pool, write_png
    from divergen_lib.paste import load_pool_crops

    write_png(rgba(5, 7, (1, 2, 3)), tmp_path / "a.png")
    write_instance_pool({4: [PoolEntry(str(tmp_path / "a.png"), preprocessed=True)]}, tmp_path / "pool.json")
    crops = load_pool_crops(read_instance_pool(tmp_path / "pool.json"), {4: 5})
    assert list(crops) == [5] and crops[5][0].shape == (5, 7, 4)
