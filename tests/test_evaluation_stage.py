"""The evaluate stage on finished smoke runs: metrics, energies, reuse of up-to-date files, figures, errors."""

from __future__ import annotations

import json

import pytest

from divergen_lib.config import load_config
from divergen_lib.errors import InputError
from divergen_lib.evaluation import METRICS, evaluate, stage
from divergen_lib.evaluation.energy import energy, train_val_gap
from divergen_lib.evaluation.paper_results import PAPER_RESULTS, comparison_table
from divergen_lib.formats import read_results
from divergen_lib.training import stage as training_stage

from .conftest import REPO_ROOT, run_cli, smoke_training

SMOKE_EVALUATION = REPO_ROOT / "params" / "smoke" / "06_evaluation.yaml"


@pytest.fixture(scope="module")
def profile(trained, pool_world):
    """The trained pool run plus a baseline, in one output folder."""
    config, _ = trained
    world, _ = pool_world
    training_stage.run(smoke_training(config.common.output_dir, world))
    return config.common.output_dir


def evaluation_config(output_dir, *overrides):
    return load_config(SMOKE_EVALUATION, [f"output_dir={output_dir}", *overrides])


def test_energy_is_minus_tau_logsumexp():
    logits = [[0.0, 0.0], [2.0, -1.0]]
    values = energy(logits, tau=1.0)
    assert values[0] == pytest.approx(-0.693147, abs=1e-6)
    assert energy([[5.0, 5.0]], 0.9)[0] < energy([[1.0, 1.0]], 0.9)[0]  # confident -> lower energy


def test_train_val_gap_per_group():
    rows = train_val_gap({"r": [1.0, 3.0], "c": [0.0], "f": []}, {"r": [4.0], "c": [0.0, 2.0], "f": [1.0]})
    by_group = {r["group"]: r for r in rows}
    assert by_group["r"]["tvg"] == pytest.approx(2.0) and by_group["c"]["tvg"] == pytest.approx(1.0)
    assert "tvg" not in by_group["f"] and by_group["all"]["n_train"] == 3 and by_group["all"]["n_val"] == 4


def test_stage_evaluates_every_finished_run_and_reuses_its_files(profile):
    config = evaluation_config(profile)
    evaluations = stage.run(config)
    assert [ev.run.name for ev in evaluations] == ["baseline", "divergen"]
    for ev in evaluations:
        assert set(ev.metrics) == {"bbox", "segm"} and set(ev.metrics["segm"]) == set(METRICS)
        results = read_results(ev.run.out_dir / "results_val.json")
        assert results and all(r["category_id"] in ev.run.classes.truncated().category_ids for r in results)
        gap = {row["group"]: row for row in ev.energy["gap"]}
        assert gap["all"]["n_train"] > 0 and gap["all"]["n_val"] > 0 and "tvg" in gap["all"]
    stamps = [
        (ev.run.out_dir / name).stat().st_mtime_ns for ev in evaluations for name in ("metrics.json", "energy.json")
    ]
    again = stage.run(config)
    assert [(ev.run.out_dir / n).stat().st_mtime_ns for ev in again for n in ("metrics.json", "energy.json")] == stamps
    assert again[0].metrics == evaluations[0].metrics
    other_backend = stage.run(evaluation_config(profile, "evaluation.backend=lvis", "evaluation.runs=[baseline]"))
    for iou in ("bbox", "segm"):
        for key in METRICS:
            assert other_backend[0].metrics[iou][key] == pytest.approx(evaluations[0].metrics[iou][key], abs=1e-6)
    rows = stage.summarize(evaluations)
    assert {(r["run"], r["iou"]) for r in rows} == {(n, i) for n in ("baseline", "divergen") for i in ("bbox", "segm")}
    table = comparison_table(rows, with_paper=True, source="smoke")
    assert len(table) == 2 + len(PAPER_RESULTS) and table[0]["AP_box"] == rows[0]["AP"]
    assert table[0]["source"] == "smoke" and table[-1]["source"] == "DiverGen paper"
    assert table[0]["detector"] == "Mask R-CNN resnet18-FPN (torchvision)"  # ours, named beside the papers'
    assert table[-1]["detector"] == "CenterNet2 Swin-L"
    figures = stage.save_figures(evaluations, config)
    assert set(figures) == {"metrics", "ap_vs_images", "predictions", "energy"}
    assert all(path.stat().st_size > 0 for path in figures.values())


def test_missing_runs_are_clear_errors(profile, tmp_path):
    with pytest.raises(InputError, match="no finished run"):
        evaluate.selected_runs(evaluation_config(profile, "evaluation.runs=[nope]"))
    with pytest.raises(InputError, match="notebook 05"):
        evaluate.selected_runs(evaluation_config(tmp_path))


def test_cli_evaluates_a_run(profile):
    result = run_cli(
        "evaluate",
        "--params",
        str(SMOKE_EVALUATION),
        "--set",
        f"output_dir={profile}",
        "--set",
        "evaluation.runs=[baseline]",
    )
    assert result.returncode == 0, result.stderr


def test_evaluate_results_command_reports_the_stages_numbers(profile, tmp_path):
    config = evaluation_config(profile)
    (ev,) = [e for e in stage.run(config) if e.run.name == "baseline"]
    out = tmp_path / "metrics.json"
    args = ["--gt", str(ev.run.config.val.annotations), "--results", str(ev.run.out_dir / "results_val.json")]
    done = run_cli("evaluate-results", *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["iou", *METRICS]
    written = json.loads(out.read_text())
    stored = json.loads((ev.run.out_dir / "metrics.json").read_text())
    for iou in ("bbox", "segm"):
        assert written[iou] == stored[iou] == ev.metrics[iou]
        assert written[f"{iou}_per_category"] == stored[f"{iou}_per_category"]
        row = next(line.split() for line in done.stdout.splitlines() if line.startswith(iou))
        assert float(row[1]) == pytest.approx(100 * ev.metrics[iou]["AP"], abs=0.006)


def test_evaluate_results_command_refuses_bad_files_in_one_line(tmp_path, smoke_world):
    (tmp_path / "nan.json").write_text('[{"image_id": 1, "category_id": 1, "score": NaN, "bbox": [0, 0, 1, 1]}]')
    (tmp_path / "dict.json").write_text('{"annotations": []}')
    for name, message in (("nan.json", "results[0]: score nan"), ("dict.json", "expected a list of detections")):
        args = ["--gt", str(smoke_world.json_path("val")), "--results", str(tmp_path / name), "--iou", "bbox"]
        done = run_cli("evaluate-results", *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_evaluate_results_reads_detectron2s_own_results_json(tmp_path):
    """Results written by detectron2's own converter (``instances_to_coco_json``, ids shifted by one as its
    LVISEvaluator does for LVIS v1) evaluate like the same detections given directly."""
    pytest.importorskip("detectron2")
    import numpy as np
    import torch
    from detectron2.evaluation.coco_evaluation import instances_to_coco_json
    from detectron2.structures import Boxes, Instances
    from pycocotools import mask as mask_utils

    from divergen_lib.evaluation import evaluate_lvis_detailed

    from .lvis_cases import make_case

    gt, results = make_case(5)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    d2_results = []
    for img in gt["images"]:
        mine = [r for r in results if r["image_id"] == img["id"]]
        if not mine:
            continue
        instances = Instances((img["height"], img["width"]))
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in mine)]
        instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        instances.scores = torch.tensor([r["score"] for r in mine])
        instances.pred_classes = torch.tensor([r["category_id"] - 1 for r in mine])
        masks = np.stack(
            [mask_utils.decode({**r["segmentation"], "counts": r["segmentation"]["counts"].encode()}) for r in mine]
        )
        instances.pred_masks = torch.from_numpy(masks.astype(bool))
        for det in instances_to_coco_json(instances, img["id"]):
            d2_results.append({**det, "category_id": det["category_id"] + 1})
    (tmp_path / "lvis_instances_results.json").write_text(json.dumps(d2_results))
    out = tmp_path / "m.json"
    args = ["--gt", str(tmp_path / "gt.json"), "--results", str(tmp_path / "lvis_instances_results.json")]
    done = run_cli("evaluate-results", *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    for iou in ("bbox", "segm"):
        direct = evaluate_lvis_detailed(tmp_path / "gt.json", d2_results, iou).metrics
        assert written[iou] == direct and direct["AP"] > 0
