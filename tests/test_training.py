"""Training: classes, sampling, samples with pastes, truncation, and the torchvision engine end to end on CPU."""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from divergen_lib.config import load_config
from divergen_lib.errors import DiskFullError, InputError
from divergen_lib.evaluation import evaluate_lvis
from divergen_lib.formats import (
    FormatError,
    PoolEntry,
    mask_bbox,
    read_area_prior,
    read_instance_pool,
    read_lvis,
    write_area_prior,
    write_png,
)
from divergen_lib.paste import area_prior
from divergen_lib.training import checkpoints, stage
from divergen_lib.training.checkpoints import load_checkpoint, save_checkpoint
from divergen_lib.training.classes import ClassMap, build_class_map
from divergen_lib.training.config import TorchvisionModel
from divergen_lib.training.data import PoolCrops, training_sample
from divergen_lib.training.loss_log import read_loss_log
from divergen_lib.training.sampling import RepeatFactorStream, StepPositions, repeat_factors
from divergen_lib.training.sources import run_inputs
from divergen_lib.training.stage import run
from divergen_lib.training.torchvision_engine import inference
from divergen_lib.training.torchvision_engine import model as tv_model
from divergen_lib.training.torchvision_engine import train as engine_train
from divergen_lib.training.truncation import truncate_checkpoint, truncate_state_dict

from .conftest import (
    EXTRA_ID,
    REPO_ROOT,
    SMOKE_TRAINING,
    pool_runs,
    rgba,
    run_cli,
    smoke_training,
    smoke_training_overrides,
)

# -- classes, pools, sampling ------------------------------------------------------------------------------------


def test_class_map_adds_the_pools_extra_categories_in_id_order(pool_world):
    world, root = pool_world
    train = read_lvis(world.json_path("train"))["categories"]
    metadata = json.loads((root / "categories.json").read_text())
    pool = read_instance_pool(root / "pool.json")
    classes = build_class_map(train, metadata, pool, extra_categories=True)
    assert classes.category_ids == tuple(sorted(c["id"] for c in train)) + (EXTRA_ID,)
    assert classes.targets == tuple(range(len(train))) and classes.has_extras
    assert classes.truncated().category_ids == classes.category_ids[:-1] and not classes.truncated().has_extras
    assert build_class_map(train, metadata, pool, extra_categories=False).num_classes == len(train)
    assert ClassMap.from_json(json.loads(json.dumps(classes.to_json()))) == classes
    with pytest.raises(InputError, match="beyond"):
        build_class_map(train, metadata, {len(metadata) + 3: pool[0]}, extra_categories=True)


def test_pool_crops_read_star_crops_pairs_and_raw_rgba_cut_to_the_object(tmp_path):
    write_png(rgba(6, 8, (1, 2, 3)), tmp_path / "star.png")
    image = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:9, 10:17] = 255
    write_png(image, tmp_path / "image.png")
    write_png(mask, tmp_path / "mask.png")
    write_png(np.dstack([image, mask]), tmp_path / "raw.png")
    crops = PoolCrops(
        [
            PoolEntry(str(tmp_path / "star.png"), preprocessed=True),
            PoolEntry(str(tmp_path / "image.png"), str(tmp_path / "mask.png")),
            PoolEntry(str(tmp_path / "raw.png")),
        ]
    )
    assert len(crops) == 3
    assert [crops[i].shape for i in range(3)] == [(6, 8, 4), (4, 7, 4), (4, 7, 4)]
    assert crops[1][..., 3].min() == 255


def test_pool_pairs_and_raw_rgba_are_binarised_above_128_as_the_originals(tmp_path):
    """A soft mask (an annotator's 0..255 saliency, a resized alpha): only values > 128 are the object, so the
    faint halo around the object is neither cut out nor pasted."""
    image = np.full((20, 30, 3), 90, np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[2:18, 3:27] = 128  # a halo at exactly the threshold: background
    mask[5:9, 10:17] = 129
    write_png(image, tmp_path / "image.png")
    write_png(mask, tmp_path / "mask.png")
    write_png(np.dstack([image, mask]), tmp_path / "raw.png")
    crops = PoolCrops(
        [PoolEntry(str(tmp_path / "image.png"), str(tmp_path / "mask.png")), PoolEntry(str(tmp_path / "raw.png"))]
    )
    for crop in (crops[0], crops[1]):
        assert crop.shape == (4, 7, 4) and crop[..., 3].min() == 255


def test_repeat_factors_follow_lvis_formula():
    images = [{"id": i} for i in range(10)]
    anns = [{"image_id": i, "category_id": 1} for i in range(10)] + [{"image_id": 0, "category_id": 2}]
    factors = repeat_factors({"images": images, "annotations": anns}, threshold=0.4)
    assert factors[0] == pytest.approx(2.0)  # category 2 is in 1 of 10 images: sqrt(0.4 / 0.1)
    assert np.all(factors[1:] == 1.0)


def test_repeat_factor_stream_is_reproducible_and_repeats_rare_images():
    factors = np.array([3.0] + [1.0] * 9)
    stream = RepeatFactorStream(factors, seed=5)
    positions = [stream[p] for p in range(1200)]
    assert positions == [RepeatFactorStream(factors, seed=5)[p] for p in range(1200)]
    assert positions != [RepeatFactorStream(factors, seed=6)[p] for p in range(1200)]
    assert positions.count(0) == 3 * positions.count(4)  # 100 epochs of 12 entries
    assert stream[1199] == positions[1199] and stream[3] == positions[3]  # random access after the fact


def test_step_positions_split_each_global_batch_between_ranks_and_resume_at_a_step():
    ranks = [list(StepPositions(6, r, 3, 0, 4)) for r in range(3)]
    assert sorted(sum(ranks, [])) == list(range(24))
    assert ranks[1][:2] == [2, 3] and ranks[1][2:4] == [8, 9]
    assert list(StepPositions(6, 1, 3, 2, 4)) == ranks[1][4:]
    with pytest.raises(ValueError, match="divisible"):
        StepPositions(5, 0, 2, 0, 1)


def test_training_sample_boxes_are_tight_and_pastes_are_marked(pool_world):
    world, root = pool_world
    cfg = smoke_training(root / "out", world, *pool_runs(root)).section("training")
    inputs = run_inputs(cfg, cfg.runs[0], 0)
    train = inputs.train
    by_image = {img["id"]: [a for a in train["annotations"] if a["image_id"] == img["id"]] for img in train["images"]}
    pasted = 0
    for k, info in enumerate(train["images"][:12]):
        args = (info, by_image[info["id"]], world.root, inputs.classes.index(), inputs.paste, True)
        sample = training_sample(*args, np.random.default_rng(k))
        again = training_sample(*args, np.random.default_rng(k))
        assert np.array_equal(sample.image, again.image) and np.array_equal(sample.masks, again.masks)
        assert sample.image.dtype == np.uint8 and sample.image.shape[:2] == sample.masks.shape[1:]
        assert len(sample.boxes) == len(sample.classes) == len(sample.pasted) == len(sample.masks)
        for mask, box in zip(sample.masks, sample.boxes, strict=True):
            x, y, w, h = mask_bbox(mask)
            assert mask.any() and np.allclose(box, [x, y, x + w, y + h])
        pasted += int(sample.pasted.sum())
        assert set(sample.classes[sample.pasted]) <= {0, 1, inputs.classes.num_classes - 1}
    assert pasted > 0


def test_the_originals_area_prior_file_sizes_the_pastes_when_given(pool_world, tmp_path):
    world, root = pool_world
    cids = [c["id"] for c in read_lvis(world.json_path("train"))["categories"]][:2]
    write_area_prior({cids[0]: (0.25, 0.0), cids[1]: (0.1, 0.01)}, tmp_path / "area_mean_std2.json")
    given = smoke_training(
        root / "out", world, *pool_runs(root), f"training.area_prior={tmp_path / 'area_mean_std2.json'}"
    )
    inputs = run_inputs(given.section("training"), given.section("training").runs[0], 0)
    assert inputs.paste is not None and inputs.paste.prior == {cids[0]: (0.25, 0.0), cids[1]: (0.1, 0.01)}
    (tmp_path / "bad.json").write_text(json.dumps({str(cids[0]): [0.2]}))
    bad = smoke_training(root / "out", world, *pool_runs(root), f"training.area_prior={tmp_path / 'bad.json'}")
    with pytest.raises(FormatError, match=r"bad.json: entry '\d+': \[0.2\] is not \[mean, std\]"):
        run_inputs(bad.section("training"), bad.section("training").runs[0], 0)


# -- truncation --------------------------------------------------------------------------------------------------


def test_torchvision_truncation_keeps_background_and_target_rows():
    model = tv_model.build_model(TorchvisionModel(backbone="resnet18", min_size=64, max_size=64, fpn_channels=16), 5)
    state = model.state_dict()
    out = truncate_state_dict(state, 5, [0, 2, 4], "torchvision")
    cls = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(out[cls], state[cls][[0, 1, 3, 5]])
    box = "roi_heads.box_predictor.bbox_pred.bias"
    assert torch.equal(out[box], state[box].view(6, 4)[[0, 1, 3, 5]].reshape(-1))
    mask = "roi_heads.mask_predictor.mask_fcn_logits.weight"
    assert out[mask].shape[0] == 4 and torch.equal(out[mask][1], state[mask][1])
    unchanged = [k for k in state if "predictor" not in k]
    assert all(out[k] is state[k] for k in unchanged)
    small = tv_model.build_model(TorchvisionModel(backbone="resnet18", min_size=64, max_size=64, fpn_channels=16), 3)
    small.load_state_dict(out)  # the truncated weights are a 3-class model's


def test_detectron2_truncation_keeps_target_rows_background_last_and_federated_weights():
    c, targets = 4, [1, 3]
    ramp = lambda rows: torch.arange(float(rows)).unsqueeze(1).repeat(1, 2)  # noqa: E731
    state = {
        "roi_heads.box_predictor.cls_score.weight": ramp(c + 1),
        "roi_heads.box_predictor.bbox_pred.weight": ramp(4 * c),
        "roi_heads.mask_head.predictor.weight": ramp(c),
        "roi_heads.box_predictor.freq_weight": torch.arange(float(c)),
        "roi_heads.box_predictor.1.cls_score.bias": torch.arange(float(c + 1)),
        "roi_heads.box_predictor.1.bbox_pred.weight": ramp(4),  # class-agnostic (cascade)
        "backbone.stem.conv1.weight": ramp(7),
    }
    out = truncate_state_dict(state, c, targets, "detectron2")
    assert out["roi_heads.box_predictor.cls_score.weight"][:, 0].tolist() == [1, 3, 4]
    assert out["roi_heads.box_predictor.bbox_pred.weight"][:, 0].tolist() == [4, 5, 6, 7, 12, 13, 14, 15]
    assert out["roi_heads.mask_head.predictor.weight"][:, 0].tolist() == [1, 3]
    assert out["roi_heads.box_predictor.freq_weight"].tolist() == [1, 3]
    assert out["roi_heads.box_predictor.1.cls_score.bias"].tolist() == [1, 3, 4]
    assert out["roi_heads.box_predictor.1.bbox_pred.weight"] is state["roi_heads.box_predictor.1.bbox_pred.weight"]
    assert out["backbone.stem.conv1.weight"] is state["backbone.stem.conv1.weight"]
    with pytest.raises(InputError):
        truncate_state_dict({"roi_heads.box_predictor.cls_score.weight": ramp(7)}, c, targets, "detectron2")


def test_truncate_checkpoint_truncates_ema_too_and_stores_the_target_class_map():
    classes = ClassMap((1, 2, 9), ("a", "b", "x"), (0, 1))
    weights = {"roi_heads.box_predictor.cls_score.weight": torch.zeros(4, 3)}
    out = truncate_checkpoint(
        {"model": weights, "model_ema": weights, "classes": classes.to_json()}, classes, "torchvision"
    )
    assert out["model"]["roi_heads.box_predictor.cls_score.weight"].shape == (3, 3)
    assert out["model_ema"]["roi_heads.box_predictor.cls_score.weight"].shape == (3, 3)
    assert ClassMap.from_json(out["classes"]) == classes.truncated()


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")
    save_checkpoint({"model": {}}, tmp_path / "foreign.pth")
    with pytest.raises(InputError, match="torchvision-engine checkpoint"):
        tv_model.load_model(tmp_path / "foreign.pth")


# -- the torchvision engine --------------------------------------------------------------------------------------


def test_engine_trains_logs_truncates_and_predicts_lvis_results(trained):
    config, output = trained
    cfg = config.section("training")
    rows = read_loss_log(output.out_dir / "loss.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss_classifier"]) and r["lr"] > 0 for r in rows)
    assert output.classes.has_extras and output.eval_checkpoint.name == "model_final_truncated.pth"
    model, classes = tv_model.load_model(output.eval_checkpoint, "cpu", cfg.test)
    assert classes == output.classes.truncated()
    assert model.roi_heads.box_predictor.cls_score.out_features == classes.num_classes + 1
    val = read_lvis(cfg.val.annotations)
    results = inference.predict(model, classes, val["images"][:6], cfg.val.image_root, cfg.test)
    assert results and {r["image_id"] for r in results} <= {img["id"] for img in val["images"][:6]}
    assert {r["category_id"] for r in results} <= {c["id"] for c in val["categories"]}
    per_image = np.bincount([r["image_id"] for r in results])
    assert per_image.max() <= cfg.test.max_detections
    assert all(r["segmentation"]["size"] == [96, 96] for r in results)
    metrics = evaluate_lvis(str(cfg.val.annotations), results, "segm")
    assert 0.0 <= metrics["AP"] <= 1.0


def test_finished_runs_are_skipped(trained):
    config, output = trained
    stamp = output.checkpoint.stat().st_mtime_ns
    (again,) = run(config)
    assert again.checkpoint.stat().st_mtime_ns == stamp


def test_interrupted_training_resumes_to_the_uninterrupted_weights(tmp_path, smoke_world, monkeypatch):
    reference = run(smoke_training(tmp_path / "ref", smoke_world))[0]
    original, calls = engine_train._step, []

    def interrupted_step(state, *args):
        if state.step == 3:
            raise KeyboardInterrupt
        calls.append(state.step)
        return original(state, *args)

    monkeypatch.setattr(engine_train, "_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        run(smoke_training(tmp_path / "run", smoke_world))
    monkeypatch.setattr(engine_train, "_step", original)
    resumed = run(smoke_training(tmp_path / "run", smoke_world))[0]
    assert calls == [0, 1, 2]
    assert [r["step"] for r in read_loss_log(resumed.out_dir / "loss.jsonl")] == [1, 2, 3, 4]
    expected, got = load_checkpoint(reference.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_figures_and_summary(trained):
    config, output = trained
    path = stage.save_paste_examples(config)
    assert path is not None and path.stat().st_size > 0
    assert stage.save_loss_curves([output], config).stat().st_size > 0
    (row,) = stage.summarize([output])
    assert (
        row["extra classes"] == 1 and row["steps"] == 4 and row["evaluated checkpoint"] == "model_final_truncated.pth"
    )


def test_cli_rejects_bad_training_parameters_without_a_traceback(tmp_path, smoke_world):
    overrides = [*smoke_training_overrides(tmp_path, smoke_world), "training.model.frozen_batchnorm=true"]
    args = [arg for override in overrides for arg in ("--set", override)]
    result = run_cli("train", "--params", str(SMOKE_TRAINING), *args)
    assert result.returncode != 0 and "frozen_batchnorm" in result.stderr and "Traceback" not in result.stderr


def test_paper_training_and_evaluation_params():
    training = load_config(REPO_ROOT / "params/paper/05_training.yaml").section("training")
    assert training.engine == "detectron2" and [r.name for r in training.runs] == ["baseline", "divergen"]
    assert (training.solver.optimizer, training.solver.lr, training.solver.ema) == ("adamw", 1e-4, 0.999)
    assert training.test.max_detections == 300 and training.repeat_factor_threshold == 0.001
    evaluation = load_config(REPO_ROOT / "params/paper/06_evaluation.yaml").section("evaluation")
    assert evaluation.report.paper_table and evaluation.energy.tau == 0.9


def test_torchrun_trains_with_two_cpu_processes(tmp_path, smoke_world):
    """DDP under torchrun (gloo): the global batch is split between the ranks, rank 0 writes log and checkpoint."""
    import subprocess
    import sys

    overrides = [*smoke_training_overrides(tmp_path, smoke_world), "training.runs=[{name: ddp}]"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "divergen_lib", "train", "--params", str(SMOKE_TRAINING)]
    cmd += [arg for override in overrides for arg in ("--set", override)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "training" / "ddp"
    assert [r["step"] for r in read_loss_log(out / "loss.jsonl")] == [1, 2, 3, 4]
    model, _ = tv_model.load_model(out / "model_final.pth")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_trained_run_refuses_other_settings_and_keeps_its_run_json(trained):
    from dataclasses import replace

    from divergen_lib.training.config import RunSpec
    from divergen_lib.training.train import train_run

    config, output = trained
    cfg = config.section("training")
    # the prior the pastes were sized by, in the originals' area_mean_std2.json layout
    assert read_area_prior(output.layout.area_prior) == area_prior(read_lvis(cfg.train.annotations))
    before = (output.out_dir / "run.json").read_bytes()
    other = replace(cfg, solver=replace(cfg.solver, lr=cfg.solver.lr * 2))
    with pytest.raises(
        InputError, match=r"run divergen in .* was trained with other settings \(training\.solver\.lr\)"
    ):
        train_run(other, other.runs[0], output.layout, config.common.seed, "cpu")
    without_extras = replace(cfg.runs[0], extra_categories=False)  # the same run.json, fewer classes
    with pytest.raises(InputError, match=r"run divergen in .* was trained with other settings \(classes\)"):
        train_run(cfg, without_extras, output.layout, config.common.seed, "cpu")
    assert (output.out_dir / "run.json").read_bytes() == before
    more_runs = replace(cfg, runs=[*cfg.runs, RunSpec("another")])  # a new run in the list changes no trained one
    again = train_run(more_runs, more_runs.runs[0], output.layout, config.common.seed, "cpu")
    assert again.checkpoint == output.checkpoint and again.eval_checkpoint.is_file()


class FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes, as on a file system that fills up."""

    def __init__(self, fh, room: int) -> None:
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_rerun_ends_with_the_uninterrupted_weights(
    tmp_path, smoke_world, monkeypatch
):
    """The disk fills up while the step-4 checkpoint is written (torch's writer then says only ``unexpected pos``);
    the stage stops naming the file, and after space is freed the rerun resumes from step 2 to the same weights."""
    reference = run(smoke_training(tmp_path / "ref", smoke_world))[0]
    real_open, saves = checkpoints.atomic_open, []

    @contextlib.contextmanager
    def filling_up(path, *args, **kwargs):
        saves.append(Path(path).name)
        with real_open(path, *args, **kwargs) as fh:
            yield FullDisk(fh, 1000) if len(saves) == 2 else fh

    monkeypatch.setattr(checkpoints, "atomic_open", filling_up)
    with pytest.raises(DiskFullError) as stopped:
        run(smoke_training(tmp_path / "run", smoke_world))
    monkeypatch.setattr(checkpoints, "atomic_open", real_open)
    last = tmp_path / "run" / "training" / "baseline" / "last.pth"
    assert str(stopped.value) == f"{last}: no space left on the device; free some and rerun (finished work is kept)"
    assert load_checkpoint(last)["step"] == 2  # the checkpoint before the failed write is intact
    resumed = run(smoke_training(tmp_path / "run", smoke_world))[0]
    expected, got = load_checkpoint(reference.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def _crowd_image(tmp_path):
    """A 40×50 image with one instance and one COCO crowd region (an uncompressed RLE) of the same category."""
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "crowd.png")
    info = {"id": 1, "file_name": "crowd.png", "height": 40, "width": 50}
    instance = {
        "id": 1,
        "image_id": 1,
        "category_id": 7,
        "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]],
        "bbox": [2, 2, 18, 18],
        "area": 324,
        "iscrowd": 0,
    }
    crowd = {
        "id": 2,
        "image_id": 1,
        "category_id": 7,
        "segmentation": {"size": [40, 50], "counts": [1200, 400, 400]},
        "bbox": [30, 0, 10, 40],
        "area": 400,
        "iscrowd": 1,
    }
    return info, [instance, crowd]


def test_crowd_regions_are_not_training_instances(tmp_path):
    info, anns = _crowd_image(tmp_path)
    for flip in (False, True):
        sample = training_sample(info, anns, tmp_path, {7: 0}, None, flip, np.random.default_rng(1))
        assert len(sample.masks) == 1 and sample.masks[0].sum() == 18 * 18
    sample = training_sample(info, [{**anns[1], "iscrowd": 0}], tmp_path, {7: 0}, None, False, np.random.default_rng(1))
    assert len(sample.masks) == 1 and sample.masks[0].sum() == 400  # the same region, were it an instance


def _small_torchvision_model():
    from divergen_lib.training.config import TorchvisionModel
    from divergen_lib.training.torchvision_engine.model import build_model

    cfg = TorchvisionModel(
        backbone="resnet18",
        min_size=64,
        max_size=64,
        anchor_sizes=(8, 16, 32, 64, 128),
        fpn_channels=32,
        mask_head_channels=16,
        rpn_proposals_train=50,
        roi_batch_size=16,
    )
    return build_model(cfg, 2)


def test_torchvision_heads_ignore_background_examples_inside_crowd_regions():
    model = _small_torchvision_model()
    boxes = torch.tensor([[0.0, 0, 10, 10], [40, 40, 60, 60], [45, 45, 50, 50], [20, 0, 30, 10]])
    target = {"boxes": boxes[:1], "labels": torch.tensor([1]), "crowd_boxes": torch.tensor([[0.5, 0.5, 1.0, 1.0]])}
    plain = {k: v for k, v in target.items() if k != "crowd_boxes"}
    model.rpn._image_sizes = [(64, 64)]
    assert model.rpn.assign_targets_to_anchors([boxes], [target])[0][0].tolist() == [1, -1, -1, 0]
    assert model.rpn.assign_targets_to_anchors([boxes], [plain])[0][0].tolist() == [1, 0, 0, 0]
    heads = model.roi_heads
    heads._image_shapes, heads._crowd = [(64, 64)], [target["crowd_boxes"]]
    assert heads.assign_targets_to_proposals([boxes], [boxes[:1]], [torch.tensor([1])])[1][0].tolist() == [1, -1, -1, 0]


def test_a_training_step_with_a_crowd_region_runs(tmp_path):
    from divergen_lib.training.data import to_torchvision

    info, anns = _crowd_image(tmp_path)
    sample = training_sample(info, anns, tmp_path, {7: 0}, None, True, np.random.default_rng(0))
    assert sample.crowd.shape == (1, 4)
    model = _small_torchvision_model().train()
    image, target = to_torchvision(sample, "cpu")
    assert torch.all((target["crowd_boxes"] >= 0) & (target["crowd_boxes"] <= 1))
    losses = model([image], [target])
    assert all(torch.isfinite(v) for v in losses.values())
