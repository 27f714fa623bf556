import copy

import numpy as np
import pytest

from divergen_lib.evaluation import METRICS, evaluate_lvis, evaluate_lvis_detailed
from divergen_lib.formats import read_lvis, top_detections


def synthetic_results(gt, seed, crowded_image=True):
    """Detections from jittered ground truth, false positives on negative / not-exhaustive / absent categories,
    some images left empty, and (optionally) one image with more than 300 detections."""
    rng = np.random.default_rng(seed)
    images = gt["images"]
    empty = {img["id"] for img in images[: len(images) // 5]}
    cats = [c["id"] for c in gt["categories"]]
    any_segm = gt["annotations"][0]["segmentation"]
    results = []
    for ann in gt["annotations"]:
        if ann["image_id"] in empty or rng.random() < 0.25:
            continue
        x, y, w, h = ann["bbox"]
        j = rng.normal(0, 1.5, 4)
        box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": box,
                "score": float(rng.random()),
                "segmentation": ann["segmentation"],
            }
        )
    for img in images:
        if img["id"] in empty:
            continue
        pool = img["neg_category_ids"] + img["not_exhaustive_category_ids"] + [int(rng.choice(cats))]
        for cid in pool:
            results.append(
                {
                    "image_id": img["id"],
                    "category_id": int(cid),
                    "bbox": [5.0, 5.0, 20.0, 15.0],
                    "score": float(rng.random() * 0.6),
                    "segmentation": any_segm,
                }
            )
    if crowded_image:
        img = next(i for i in images if i["id"] not in empty)
        for k in range(400):
            results.append(
                {
                    "image_id": img["id"],
                    "category_id": int(cats[k % len(cats)]),
                    "bbox": [float(k % 50), 3.0, 12.0, 9.0],
                    "score": float(rng.random()),
                    "segmentation": any_segm,
                }
            )
    return results


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_fast_backend_matches_the_lvis_api(smoke_world, seed, iou_type):
    gt_path = smoke_world.json_path("val")
    results = synthetic_results(read_lvis(gt_path), seed, crowded_image=seed != 1)
    given = copy.deepcopy(results)
    fast_detailed = evaluate_lvis_detailed(gt_path, results, iou_type, backend="fast")
    reference_detailed = evaluate_lvis_detailed(gt_path, results, iou_type, backend="lvis")
    assert results == given  # the caller's results are left as they were
    fast, reference = fast_detailed.metrics, reference_detailed.metrics
    assert evaluate_lvis(gt_path, results, iou_type) == fast
    assert set(fast) == set(METRICS)
    for key in METRICS:
        assert fast[key] == pytest.approx(reference[key], abs=1e-6), key
    assert 0 < reference["AP"] < 1
    per_category = reference_detailed.per_category
    assert set(per_category) == {c["id"] for c in read_lvis(gt_path)["categories"]}
    assert fast_detailed.per_category == pytest.approx(per_category, abs=1e-6)
    measured = [ap for ap in per_category.values() if ap > -1]
    assert np.mean(measured) == pytest.approx(reference["AP"], abs=1e-9)  # AP is the mean over categories
    assert "float" not in np.__dict__  # the numpy-2 alias lives only around the lvis-api call


def test_top_detections_caps_each_image_by_score():
    dets = [{"image_id": 1, "score": s} for s in range(400)] + [{"image_id": 2, "score": 0.5}]
    kept = top_detections(dets)
    ones = [d["score"] for d in kept if d["image_id"] == 1]
    assert len(ones) == 300 and min(ones) == 100 and len(kept) == 301


def test_no_detections_gives_minus_one(smoke_world):
    assert evaluate_lvis(smoke_world.json_path("val"), [], "bbox") == dict.fromkeys(METRICS, -1.0)


def _oracle_agreement(tmp_path, seed, iou_type, **sizes):
    import json

    from .lvis_cases import make_case

    gt, results = make_case(seed, **sizes)
    path = tmp_path / f"gt_{seed}.json"
    path.write_text(json.dumps(gt))
    fast = evaluate_lvis_detailed(path, results, iou_type, backend="fast")
    _assert_agree(fast, evaluate_lvis_detailed(path, results, iou_type, backend="lvis"), METRICS, seed)


def _assert_agree(fast, reference, metrics, seed):
    """Every metric and every per-category AP of the two evaluations equal to 1e-9."""
    assert set(fast.metrics) == set(metrics) and fast.per_category.keys() == reference.per_category.keys()
    for key in metrics:
        assert fast.metrics[key] == pytest.approx(reference.metrics[key], abs=1e-9), (seed, key)
    for cid, ap in reference.per_category.items():
        assert fast.per_category[cid] == pytest.approx(ap, abs=1e-9), (seed, cid)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_randomized_lvis_cases_agree_with_the_lvis_api(tmp_path, seed, iou_type):
    _oracle_agreement(tmp_path, seed, iou_type)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 160))
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_more_randomized_lvis_cases_agree_with_the_lvis_api(tmp_path, seed, iou_type):
    _oracle_agreement(tmp_path, seed, iou_type, n_images=30, n_cats=12)


def test_the_library_alone_crashes_on_images_with_only_ignored_detections(tmp_path):
    """The shape our filtering of unevaluated detections works around (faster-coco-eval 1.8.0): if this stops
    raising, the library has been fixed and :class:`lvis_shards._Planner`'s filtering is only a speed-up."""
    import json

    from faster_coco_eval import COCO, COCOeval_faster

    from .lvis_cases import make_case

    gt, results = make_case(1)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    coco = COCO(str(path))
    with pytest.raises(IndexError, match="unordered_map"):
        COCOeval_faster(coco, coco.loadRes(top_detections(results)), "segm", lvis_style=True).evaluate()
    _oracle_agreement(tmp_path, 1, "segm")


BAD_ENTRIES = [
    ("score NaN", {"score": float("nan")}, r"results\[3\]: score nan is not a finite number"),
    ("score Inf", {"score": float("inf")}, r"results\[3\]: score inf is not a finite number"),
    ("negative width", {"bbox": [1.0, 1.0, -2.0, 3.0]}, r"results\[3\]: bbox .* negative width"),
    ("NaN box", {"bbox": [1.0, float("nan"), 2.0, 3.0]}, r"results\[3\]: bbox .* not four finite numbers"),
    ("short box", {"bbox": [1.0, 2.0]}, r"results\[3\]: bbox .* not four finite numbers"),
    ("unknown image", {"image_id": 10**9}, r"results\[3\]: image_id 1000000000 is not an image of the ground truth"),
    ("unknown category", {"category_id": 999}, r"results\[3\]: category_id 999 is not a category of the ground"),
    ("string id", {"image_id": "1"}, r"results\[3\]: image_id '1' is not an integer"),
    ("string score", {"score": "0.5"}, r"results\[3\]: score '0.5' is not a finite number"),
    ("no segmentation", {"segmentation": None}, r"results\[3\]: no RLE segmentation"),
]


@pytest.mark.parametrize("backend", ["fast", "lvis"])
@pytest.mark.parametrize(("what", "change", "message"), BAD_ENTRIES, ids=[b[0] for b in BAD_ENTRIES])
def test_malformed_results_are_one_line_naming_the_entry(tmp_path, backend, what, change, message):
    import json

    from divergen_lib.formats import FormatError

    from .lvis_cases import make_case

    gt, results = make_case(2)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    results[3] = {**results[3], **change}
    with pytest.raises(FormatError, match=message):
        evaluate_lvis_detailed(path, results, "segm", backend=backend)


def test_a_non_mapping_entry_is_named_too(tmp_path):
    from divergen_lib.formats import FormatError

    with pytest.raises(FormatError, match=r"results\[0\]: not a mapping but list"):
        evaluate_lvis_detailed(tmp_path / "unused.json", [[1, 2, 3]], "bbox")


def _coco_agreement(tmp_path, seed, iou_type, **sizes):
    import json

    from divergen_lib.evaluation.coco_metrics import COCO_METRICS, evaluate_coco_detailed

    from .lvis_cases import make_coco_case

    gt, results = make_coco_case(seed, **sizes)
    assert any(a["iscrowd"] for a in gt["annotations"])
    path = tmp_path / f"coco_{seed}.json"
    path.write_text(json.dumps(gt))
    fast = evaluate_coco_detailed(path, results, iou_type, backend="fast")
    _assert_agree(fast, evaluate_coco_detailed(path, results, iou_type, backend="pycocotools"), COCO_METRICS, seed)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_randomized_coco_cases_agree_with_pycocotools(tmp_path, seed, iou_type):
    _coco_agreement(tmp_path, seed, iou_type)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 130))
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_more_randomized_coco_cases_agree_with_pycocotools(tmp_path, seed, iou_type):
    _coco_agreement(tmp_path, seed, iou_type, n_images=30, n_cats=12)


def test_crowd_regions_are_ignored_not_counted(tmp_path):
    """A detection exactly on a crowd region is neither a true nor a false positive: removing it changes nothing,
    while the same box on a non-crowd instance counts."""
    import json

    from divergen_lib.evaluation.coco_metrics import evaluate_coco_detailed

    from .lvis_cases import make_coco_case

    gt, results = make_coco_case(0)
    crowd = next(a for a in gt["annotations"] if a["iscrowd"])
    gt["annotations"] = [  # the crowd region is the only ground truth of its category in its image
        a
        for a in gt["annotations"]
        if a is crowd or (a["image_id"], a["category_id"]) != (crowd["image_id"], crowd["category_id"])
    ]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(gt))
    on_crowd = {"image_id": crowd["image_id"], "category_id": crowd["category_id"], "score": 0.999}
    on_crowd["bbox"] = crowd["bbox"]
    with_it = evaluate_coco_detailed(path, [*results, on_crowd], "bbox", backend="pycocotools")
    without = evaluate_coco_detailed(path, results, "bbox", backend="pycocotools")
    assert with_it.per_category[crowd["category_id"]] == without.per_category[crowd["category_id"]]
    assert evaluate_coco_detailed(path, [*results, on_crowd], "bbox").metrics == with_it.metrics
    crowd["iscrowd"] = 0
    path.write_text(json.dumps(gt))
    as_instance = evaluate_coco_detailed(path, [*results, on_crowd], "bbox", backend="pycocotools")
    assert as_instance.per_category[crowd["category_id"]] > with_it.per_category[crowd["category_id"]]


def test_evaluate_results_command_in_coco_mode(tmp_path):
    import json

    from divergen_lib.evaluation.coco_metrics import COCO_METRICS, evaluate_coco_detailed

    from .conftest import run_cli
    from .lvis_cases import make_coco_case

    gt, results = make_coco_case(3)
    (tmp_path / "instances_val.json").write_text(json.dumps(gt))
    (tmp_path / "coco_instances_results.json").write_text(json.dumps(results))
    args = ["--gt", str(tmp_path / "instances_val.json"), "--results", str(tmp_path / "coco_instances_results.json")]
    done = run_cli("evaluate-results", *args, "--format", "coco", "--out", str(tmp_path / "m.json"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["iou", *COCO_METRICS]
    written = json.loads((tmp_path / "m.json").read_text())
    for iou in ("bbox", "segm"):
        reference = evaluate_coco_detailed(tmp_path / "instances_val.json", results, iou, backend="pycocotools")
        assert written[iou] == pytest.approx(reference.metrics, abs=1e-9)
    wrong = run_cli("evaluate-results", *args, "--format", "coco", "--backend", "lvis")
    assert wrong.returncode == 2 and "does not evaluate coco" in wrong.stderr and "Traceback" not in wrong.stderr
