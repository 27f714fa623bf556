import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from divergen_lib.formats import (
    FormatError,
    PoolEntry,
    atomic_open,
    mask_to_rle,
    merge_instance_pools,
    read_image,
    read_instance_pool,
    read_json,
    read_manifest,
    resolve_pool_paths,
    rle_area,
    rle_bbox,
    rle_to_mask,
    segmentation_to_rle,
    validate_lvis,
    write_instance_pool,
    write_json,
    write_manifest,
    write_png,
)
from divergen_lib.formats.images import MAX_IMAGE_PIXELS, read_image_and_alpha
from divergen_lib.formats.lvis_json import frequency_of, frequency_thresholds

from .conftest import png_claiming


def tiny_lvis():
    return {
        "images": [{"id": 1, "width": 8, "height": 8, "neg_category_ids": [2], "not_exhaustive_category_ids": []}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 2, 2],
                "area": 4,
                "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]],
            }
        ],
        "categories": [{"id": 1, "name": "a", "frequency": "r"}, {"id": 2, "name": "b", "frequency": "f"}],
    }


# --- RLE ---------------------------------------------------------------------------------------------


def test_rle_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 13), (64, 48)]:
        mask = rng.random(shape) < 0.4
        rle = mask_to_rle(mask)
        assert isinstance(rle["counts"], str) and rle["size"] == list(shape)
        assert np.array_equal(rle_to_mask(rle), mask)
        assert rle_area(rle) == mask.sum()


def test_rle_bbox_and_polygon_conversion():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert rle_bbox(mask_to_rle(mask)) == [3.0, 2.0, 6.0, 3.0]
    poly = segmentation_to_rle([[3, 2, 9, 2, 9, 5, 3, 5]], 10, 12)
    assert rle_area(poly) > 0 and rle_to_mask(poly).shape == (10, 12)
    uncompressed = {"size": [2, 2], "counts": [1, 2, 1]}
    assert rle_to_mask(segmentation_to_rle(uncompressed, 2, 2)).sum() == 2
    with pytest.raises(FormatError):
        segmentation_to_rle([[1, 2, 3]], 4, 4)


# --- LVIS json ---------------------------------------------------------------------------------------


def test_valid_lvis_passes():
    validate_lvis(tiny_lvis())


def test_dangling_category_id_is_caught():
    data = tiny_lvis()
    data["annotations"][0]["category_id"] = 99
    with pytest.raises(FormatError, match="annotation 10 refers to unknown category id 99"):
        validate_lvis(data, "x.json")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][0].update(image_id=5), "unknown image id 5"),
        (lambda d: d["images"][0].update(neg_category_ids=[7]), "neg_category_ids refers to unknown category id 7"),
        (
            lambda d: d["images"][0].update(not_exhaustive_category_ids=[8]),
            "not_exhaustive_category_ids refers to unknown",
        ),
        (lambda d: d["images"][0].update(neg_category_ids=[1]), "lists annotated categories \\[1\\] as negative"),
        (lambda d: d["categories"].append({"id": 1, "name": "dup"}), "categories id 1 appears twice"),
        (lambda d: d["categories"][0].update(frequency="x"), "frequency 'x'"),
        (lambda d: d["annotations"][0].update(bbox=[0, 0, 1]), "bbox must be"),
        (lambda d: d.pop("images"), "'images' must be a list"),
    ],
)
def test_lvis_problems_are_named(mutate, message):
    data = tiny_lvis()
    mutate(data)
    with pytest.raises(FormatError, match=message):
        validate_lvis(data)


def test_lvis_frequency_rule_is_lvis_at_lvis_size():
    assert frequency_thresholds(100_170) == (10, 100)
    assert [frequency_of(n, 10, 100) for n in (1, 10, 11, 100, 101)] == ["r", "r", "c", "c", "f"]


# --- atomic writes -----------------------------------------------------------------------------------


def test_atomic_write_interrupted_by_exception_keeps_old_file(tmp_path):
    target = tmp_path / "a.json"
    write_json({"v": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write('{"v": 2, "half')
            raise RuntimeError("interrupted")
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_write_killed_mid_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "big.jsonl"
    script = textwrap.dedent(f"""
        import sys, time
        from divergen_lib.formats import atomic_open
        with atomic_open({str(target)!r}) as fh:
            for i in range(10**6):
                fh.write('{{"id": "%d"}}\\n' % i)
                if i == 1000:
                    fh.flush(); print("writing", flush=True)
                if i > 1000:
                    time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()  # only the hidden temp file may remain, never a partial big.jsonl
    assert all(p.name.startswith(".big.jsonl.") for p in tmp_path.iterdir())


def test_png_round_trip_and_corrupt_image(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    write_png(rgb, tmp_path / "x.png")
    assert np.array_equal(read_image(tmp_path / "x.png"), rgb)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(FormatError, match="bad.png: unreadable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(FormatError, match="image not found"):
        read_image(tmp_path / "none.png")


def test_an_image_over_the_pixel_limit_is_refused_from_its_header_without_pil_warnings(tmp_path):
    (tmp_path / "big.png").write_bytes(png_claiming(9000, 9000))
    (tmp_path / "bomb.png").write_bytes(png_claiming(20000, 20000))  # past PIL's decompression-bomb error
    limit = rf"over the limit of {MAX_IMAGE_PIXELS} pixels"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FormatError, match=rf"big\.png: 9000×9000 image \(81000000 pixels\) is {limit}"):
            read_image(tmp_path / "big.png")
        with pytest.raises(FormatError, match=rf"bomb\.png: image of more than \d+ pixels, {limit}"):
            read_image(tmp_path / "bomb.png")
        with pytest.raises(FormatError, match=r"big\.png: 9000×9000 image .* over the limit of 100 pixels"):
            read_image(tmp_path / "big.png", max_pixels=100)


def test_an_image_is_read_with_whether_it_has_alpha(tmp_path):
    write_png(np.zeros((2, 2, 3), np.uint8), tmp_path / "rgb.png")
    write_png(np.zeros((2, 2, 4), np.uint8), tmp_path / "rgba.png")
    assert read_image_and_alpha(tmp_path / "rgba.png")[1] and not read_image_and_alpha(tmp_path / "rgb.png")[1]
    assert read_image_and_alpha(tmp_path / "rgb.png")[0].shape == (2, 2, 4)


def test_read_json_errors_name_file(tmp_path):
    (tmp_path / "b.json").write_text("{oops")
    with pytest.raises(FormatError, match=r"b\.json: not valid JSON"):
        read_json(tmp_path / "b.json")


# --- manifests ---------------------------------------------------------------------------------------


def test_manifest_round_trip_and_unique_ids(tmp_path):
    rows = [{"id": "a", "x": 1}, {"id": "b", "x": [1, 2]}]
    write_manifest(rows, tmp_path / "m.jsonl")
    assert read_manifest(tmp_path / "m.jsonl") == rows
    with pytest.raises(FormatError, match="appears twice"):
        write_manifest(rows + [{"id": "a"}], tmp_path / "n.jsonl")


def test_manifest_torn_tail_only_tolerated_when_asked(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "x"')
    assert [r["id"] for r in read_manifest(path, tolerate_torn_tail=True)] == ["a"]
    with pytest.raises(FormatError, match="s.jsonl:2"):
        read_manifest(path)


# --- instance pool -----------------------------------------------------------------------------------


def test_pool_round_trip_with_star_and_pairs(tmp_path):
    raw = {
        "0": ["*/data/images/0/0.png", "*/data/images/0/1.png"],
        "12": ["/gen/img_12.png|/gen/mask_12.png", "/gen/raw_rgba.png"],
        "1452": ["*/data/images/1452/0.png"],
    }
    write_json(raw, tmp_path / "pool.json")
    pool = read_instance_pool(tmp_path / "pool.json")
    assert list(pool) == [0, 12, 1452]
    assert pool[0][0] == PoolEntry("/data/images/0/0.png", None, True)
    assert pool[12][0] == PoolEntry("/gen/img_12.png", "/gen/mask_12.png", False)
    assert pool[12][1] == PoolEntry("/gen/raw_rgba.png")
    write_instance_pool(pool, tmp_path / "again.json")
    assert read_json(tmp_path / "again.json") == raw


def test_pool_merge_concatenates_per_category_and_replaces_prefix():
    a = {0: [PoolEntry("/a/0.png", preprocessed=True)], 3: [PoolEntry("/a/3.png", "/a/3m.png")]}
    b = {0: [PoolEntry("/b/0.png", preprocessed=True)], 1: [PoolEntry("/b/1.png", preprocessed=True)]}
    merged = merge_instance_pools(a, b, replace_prefix={"/a/": "/mnt/a/"})
    assert [str(e) for e in merged[0]] == ["*/mnt/a/0.png", "*/b/0.png"]
    assert str(merged[3][0]) == "/mnt/a/3.png|/mnt/a/3m.png"
    assert list(merged) == [0, 1, 3]


def test_pool_relative_paths_resolve_against_base(tmp_path):
    pool = resolve_pool_paths({0: [PoolEntry("images/0/0.png", preprocessed=True)]}, tmp_path)
    assert pool[0][0].path == str(tmp_path.resolve() / "images/0/0.png")


@pytest.mark.parametrize(
    "raw, message",
    [
        ([1, 2], "JSON object"),
        ({"cat": ["a.png"]}, "not a 0-based category index"),
        ({"0": "a.png"}, "must map to a list"),
        ({"0": ["a|b|c"]}, "expected 'image\\|mask'"),
        ({"0": ["*a.png|m.png"]}, "preprocessed"),
        ({"0": ["*"]}, "empty path"),
        ({"0": [5]}, "must be strings"),
    ],
)
def test_malformed_pool_is_one_clear_error(tmp_path, raw, message):
    write_json(raw, tmp_path / "p.json")
    with pytest.raises(FormatError, match=message):
        read_instance_pool(tmp_path / "p.json")


def test_image_file_follows_file_name_or_lvis_coco_url(tmp_path):
    from divergen_lib.formats import image_file

    assert image_file({"file_name": "train/1.png"}, tmp_path) == tmp_path / "train/1.png"
    lvis = {"coco_url": "http://images.cocodataset.org/train2017/000000391895.jpg"}
    assert image_file(lvis, tmp_path) == tmp_path / "train2017" / "000000391895.jpg"


def test_annotation_crops_skip_unreadable_images_and_keep_order(tmp_path):
    from divergen_lib.crops import annotation_crops

    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    write_png(rgb, tmp_path / "a.png")
    mask = np.zeros((20, 30), bool)
    mask[5:10, 8:20] = True
    images = {
        1: {"id": 1, "file_name": "a.png", "height": 20, "width": 30},
        2: {"id": 2, "file_name": "missing.png", "height": 20, "width": 30},
    }
    anns = [{"id": k, "image_id": i, "segmentation": mask_to_rle(mask)} for k, i in ((1, 1), (2, 2), (3, 1))]
    crops, used = annotation_crops(images, anns, tmp_path, padding=2)
    assert [a["id"] for a in used] == [1, 3] and crops[0].shape == (9, 16, 3)


def test_atomic_writes_follow_the_umask_not_mkstemps_0600(tmp_path):
    from divergen_lib.formats import write_json

    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "shared.json")
        os.umask(0o027)
        write_json({"a": 1}, tmp_path / "group.json")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "group.json").stat().st_mode & 0o777 == 0o640
