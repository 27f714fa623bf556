"""The fast LVIS backend on category shards: the same numbers for every shard size and worker count (equal to the
lvis-api), detections read from a results file entry by entry, and columns that keep the top-300 rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from divergen_lib.evaluation import METRICS, evaluate_lvis_detailed, lvis_shards
from divergen_lib.evaluation.metrics_file import evaluate_results_file
from divergen_lib.formats import FormatError, top_detections
from divergen_lib.formats.detections import Detections, read_detections
from divergen_lib.formats.json_stream import iter_json_list

from .conftest import run_cli
from .lvis_cases import make_case
from .test_evaluation import BAD_ENTRIES, _assert_agree


def _case(tmp_path, seed, **sizes):
    gt, results = make_case(seed, **sizes)
    path = tmp_path / f"gt_{seed}.json"
    path.write_text(json.dumps(gt))
    return gt, path, results


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_every_shard_size_and_worker_count_gives_the_lvis_apis_numbers(tmp_path, monkeypatch, seed, iou_type):
    gt, path, results = _case(tmp_path, seed, n_images=20, n_cats=10)
    reference = evaluate_lvis_detailed(path, results, iou_type, backend="lvis")
    dets = Detections.from_results(results, iou_type == "segm")
    one = evaluate_lvis_detailed(path, results, iou_type, workers=1)
    _assert_agree(one, reference, METRICS, seed)
    monkeypatch.setattr(lvis_shards, "SHARD_SIZE", 1)  # one category per task
    with_gt = {a["category_id"] for a in gt["annotations"]}
    assert lvis_shards.evaluate_shards(gt, dets, iou_type).tasks == len(with_gt) > 2
    for workers in (1, 2):
        sharded = evaluate_lvis_detailed(gt, dets, iou_type, workers=workers)
        assert sharded.metrics == one.metrics and sharded.per_category == one.per_category, workers


def test_categories_without_detections_and_shards_without_any(tmp_path, monkeypatch):
    """A category with ground truth but no detection has AP 0, one without ground truth -1, as in the lvis-api;
    a task holding only such categories sends faster-coco-eval no detection at all."""
    gt, path, results = _case(tmp_path, 5, n_images=15, n_cats=8)
    silent = {1, 2}
    results = [r for r in results if r["category_id"] not in silent]
    monkeypatch.setattr(lvis_shards, "SHARD_SIZE", 1)
    for iou_type in ("bbox", "segm"):
        reference = evaluate_lvis_detailed(path, results, iou_type, backend="lvis")
        fast = evaluate_lvis_detailed(path, results, iou_type)
        _assert_agree(fast, reference, METRICS, 5)
        assert {fast.per_category[c] for c in silent} <= {0.0, -1.0}
    nothing_evaluated = [{**r, "category_id": 8} for r in results]  # category 8 never has ground truth
    fast = evaluate_lvis_detailed(path, nothing_evaluated, "bbox")
    _assert_agree(fast, evaluate_lvis_detailed(path, nothing_evaluated, "bbox", backend="lvis"), METRICS, 5)


def test_columns_keep_each_images_top_300_as_the_dicts_do():
    rng = np.random.default_rng(0)
    results = [
        {"image_id": int(i), "category_id": 1, "score": float(rng.integers(0, 5)), "bbox": [0, 0, 1, 1]}
        for i in rng.integers(1, 4, 1000)
    ]
    for k, r in enumerate(results):
        r["bbox"] = [float(k), 0.0, 1.0, 1.0]  # names its position
    dets = Detections.from_results(results, with_masks=False)
    kept = dets.top_per_image(300)
    by_columns = sorted((int(dets.image_id[k]), -dets.score[k], int(dets.bbox[k, 0])) for k in kept)
    by_dicts = sorted((d["image_id"], -d["score"], int(d["bbox"][0])) for d in top_detections(results))
    assert by_columns == by_dicts


def test_columns_round_trip_masks_and_take(tmp_path):
    _, _, results = _case(tmp_path, 1)
    dets = Detections.from_results(results, with_masks=True)
    back = dets.to_results(with_masks=True)
    assert [b["segmentation"]["counts"].decode() for b in back] == [r["segmentation"]["counts"] for r in results]
    assert [b["bbox"] for b in back] == [r["bbox"] for r in results]
    picked = dets.take(np.array([3, 0]))
    assert picked.to_results(True)[0]["segmentation"]["counts"] == back[3]["segmentation"]["counts"]
    assert picked.to_results(True)[1]["image_id"] == back[0]["image_id"]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_a_json_list_is_read_entry_by_entry_across_any_chunk_boundary(tmp_path, chunk):
    entries = [{"a": [1, 2.5, "x,]}"], "b": {"c": None}}, 3, "s", [], {"counts": "ab]c" * 50}]
    path = tmp_path / "list.json"
    path.write_text(" \n[ " + ",\n ".join(json.dumps(e) for e in entries) + " ]\n")
    assert [e for _, e in iter_json_list(path, chunk_chars=chunk)] == entries
    path.write_text("[]")
    assert list(iter_json_list(path, chunk_chars=chunk)) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"image_id": 1}', "expected a list of detections"),
        ("", "expected a list of detections"),
        ('[D, {"image_id": 2', "entry 1 is not valid json"),
        ("[D, ]", "entry 1 is not valid json"),
        ("[D D]", "expected ',' or ']' after entry 0"),
        ('[{"image_id": NaN-}]', "entry 0 is not valid json"),
    ],
)
def test_a_broken_results_file_is_one_line_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "results.json"
    path.write_text(text.replace("D", json.dumps({"image_id": 1, "category_id": 1, "score": 1, "bbox": [0, 0, 1, 1]})))
    with pytest.raises(FormatError, match=message):
        read_detections(path, with_masks=False)


@pytest.mark.parametrize(("what", "change", "message"), BAD_ENTRIES, ids=[b[0] for b in BAD_ENTRIES])
def test_bad_entries_of_a_results_file_are_named_as_in_a_list(tmp_path, what, change, message):
    _, path, results = _case(tmp_path, 2)
    results[3] = {**results[3], **change}
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results).replace("Infinity", "1e999"))
    with pytest.raises(FormatError, match=message):
        evaluate_results_file(path, results_path, ("segm",))


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": 5, "counts": "ab"}, r"results\[3\]: segmentation size 5 is not \[height, width\]"),
        ({"size": [4, -1], "counts": "ab"}, r"segmentation size \[4, -1\] is not \[height, width\]"),
        ({"size": [4, 4], "counts": 7}, "segmentation counts is neither"),
    ],
)
@pytest.mark.parametrize("backend", ["fast", "lvis"])
def test_a_malformed_rle_is_named(tmp_path, segmentation, message, backend):
    _, path, results = _case(tmp_path, 2)
    results[3] = {**results[3], "segmentation": segmentation}
    with pytest.raises(FormatError, match=message):
        evaluate_lvis_detailed(path, results, "segm", backend=backend)


def test_evaluate_results_streams_the_file_with_workers_and_matches_the_lvis_api(tmp_path):
    _, path, results = _case(tmp_path, 4, n_images=20, n_cats=10)
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    out = tmp_path / "metrics.json"
    args = ["--gt", str(path), "--results", str(results_path), "--out", str(out)]
    done = run_cli("evaluate-results", *args, "--workers", "2")
    assert done.returncode == 0, done.stderr
    fast = json.loads(out.read_text())
    done = run_cli("evaluate-results", *args, "--backend", "lvis")
    assert done.returncode == 0, done.stderr
    reference = json.loads(out.read_text())
    for iou_type in ("bbox", "segm"):
        for key in METRICS:
            assert fast[iou_type][key] == pytest.approx(reference[iou_type][key], abs=1e-9), (iou_type, key)
        assert fast[f"{iou_type}_per_category"] == pytest.approx(reference[f"{iou_type}_per_category"], abs=1e-9)
    wrong = run_cli("evaluate-results", *args, "--workers", "0")
    assert wrong.returncode == 2 and "expected a whole number >= 1, got '0'" in wrong.stderr


def _columns_equal(a, b):
    for name in ("image_id", "category_id", "score", "bbox", "rle_offsets", "rle_size"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.rle_counts == b.rle_counts


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_a_results_file_read_by_several_processes_is_the_file(tmp_path, monkeypatch, workers):
    from divergen_lib.evaluation import parallel

    _, _, results = _case(tmp_path, 6, n_images=20)
    trap = {"note": "}, {" * 40}  # what looks like a boundary between entries, inside strings
    results = [{**r, **trap} for r in results]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    monkeypatch.setattr(parallel, "PARALLEL_READ_BYTES", 0)
    serial = read_detections(path, with_masks=True)
    assert len(serial) == len(results)
    _columns_equal(parallel.read_results_columns(path, True, workers), serial)
    results[len(results) // 2]["score"] = "high"
    path.write_text(json.dumps(results))
    with pytest.raises(FormatError, match=rf"results\[{len(results) // 2}\]: score 'high'"):
        parallel.read_results_columns(path, True, workers)


def test_byte_ranges_hold_every_entry_once(tmp_path):
    from divergen_lib.formats.detections import concatenate, read_detections_range
    from divergen_lib.formats.json_stream import split_json_list

    _, _, results = _case(tmp_path, 7, n_images=20)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results, indent=1))
    ranges = split_json_list(path, 5)
    assert len(ranges) == 5 and [closed for *_, closed in ranges] == [False] * 4 + [True]
    parts = [read_detections_range(path, s, e, closed, True) for s, e, closed in ranges]
    _columns_equal(concatenate(parts, True), read_detections(path, True))
