"""The detectron2 engine on CPU: a tiny R18 Mask R-CNN trained for a few steps on the smoke world with pastes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

from divergen_lib.errors import InputError  # noqa: E402
from divergen_lib.formats import image_file, mask_bbox, read_image, read_lvis  # noqa: E402
from divergen_lib.training.checkpoints import load_checkpoint  # noqa: E402
from divergen_lib.training.config import Detectron2Settings  # noqa: E402
from divergen_lib.training.detectron2_engine import d2config, inference  # noqa: E402
from divergen_lib.training.detectron2_engine import mapper as d2_mapper  # noqa: E402
from divergen_lib.training.detectron2_engine import records as d2_records  # noqa: E402
from divergen_lib.training.detectron2_engine import trainer as d2_trainer  # noqa: E402
from divergen_lib.training.layout import RunLayout  # noqa: E402
from divergen_lib.training.loss_log import read_loss_log  # noqa: E402
from divergen_lib.training.sources import run_inputs  # noqa: E402
from divergen_lib.training.stage import run  # noqa: E402

from .conftest import EXTRA_ID, interrupted_after, pool_runs, smoke_training  # noqa: E402
from .test_predict import assert_predicts, user_images  # noqa: E402

TINY_MODEL = [
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.DEPTH", "18",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.FPN.OUT_CHANNELS", "32",
    "MODEL.ANCHOR_GENERATOR.SIZES", "[[8], [16], [32], [64], [128]]",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "200",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "200",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "64",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
    "MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES", "10",
    "INPUT.MIN_SIZE_TRAIN", "(64,)",
    "INPUT.MAX_SIZE_TRAIN", "96",
    "INPUT.MIN_SIZE_TEST", "80",
    "INPUT.MAX_SIZE_TEST", "96",
]  # fmt: skip
MAX_DETECTIONS = 20


def detectron2_training(out, world, *overrides):
    """The smoke training params on the detectron2 engine with the tiny model: 3 steps, a checkpoint each."""
    return smoke_training(
        out,
        world,
        "training.engine=detectron2",
        f"training.detectron2.opts={json.dumps(TINY_MODEL)}",
        "training.solver.iterations=3",
        "training.checkpoint_period=1",
        f"training.test.max_detections={MAX_DETECTIONS}",
        *overrides,
    )


@pytest.fixture(scope="module")
def d2_run(tmp_path_factory, pool_world):
    """A pasting run with an extra category and EMA, trained (and truncated) by the training stage."""
    world, root = pool_world
    config = detectron2_training(tmp_path_factory.mktemp("d2"), world, *pool_runs(root), "training.solver.ema=0.9")
    return config, run(config)[0]


def test_final_checkpoint_is_ours_with_ema_classes_and_federated_weights(d2_run):
    config, output = d2_run
    ckpt = load_checkpoint(output.checkpoint)
    assert ckpt["engine"] == "detectron2" and ckpt["step"] == 3
    assert ckpt["classes"] == output.classes.to_json() and output.classes.category_ids[-1] == EXTRA_ID
    cls_score = "roi_heads.box_predictor.cls_score.weight"
    assert ckpt["model_ema"].keys() == ckpt["model"].keys()
    assert not torch.equal(ckpt["model_ema"][cls_score], ckpt["model"][cls_score])  # the average lags behind
    counts = json.loads((output.layout.engine_dir("detectron2") / d2config.CLASS_COUNTS_FILE).read_text())
    train = read_lvis(config.section("training").train.annotations)
    images_of_first = {a["image_id"] for a in train["annotations"] if a["category_id"] == train["categories"][0]["id"]}
    assert counts[0] == {"id": 1, "image_count": len(images_of_first)} and counts[-1]["image_count"] == 0
    weights = ckpt["model"]["roi_heads.box_predictor.fed_loss_cls_weights"]
    assert torch.allclose(weights, torch.tensor([c["image_count"] for c in counts], dtype=torch.float) ** 0.5)
    rows = read_loss_log(output.layout.loss_log)
    assert [row["step"] for row in rows] == [1, 2, 3] and {"loss", "loss_cls", "loss_mask", "lr"} <= rows[0].keys()


def test_truncation_keeps_target_rows_with_background_last(d2_run):
    _, output = d2_run
    targets = list(output.classes.targets)
    full, cut = load_checkpoint(output.checkpoint), load_checkpoint(output.eval_checkpoint)
    for key in ("model", "model_ema"):
        weight = full[key]["roi_heads.box_predictor.cls_score.weight"]
        truncated = cut[key]["roi_heads.box_predictor.cls_score.weight"]
        assert len(truncated) == len(targets) + 1
        assert torch.equal(truncated[:-1], weight[targets]) and torch.equal(truncated[-1], weight[-1])
        assert len(cut[key]["roi_heads.mask_head.predictor.weight"]) == len(targets)
        assert len(cut[key]["roi_heads.box_predictor.fed_loss_cls_weights"]) == len(targets)


def test_truncated_run_predicts_lvis_results_and_box_logits_of_its_targets(d2_run):
    config, output = d2_run
    cfg, classes = config.section("training"), output.classes.truncated()
    val = read_lvis(cfg.val.annotations)
    images = val["images"][:3]
    results = inference.predict(output.eval_checkpoint, cfg, classes, images, cfg.val.image_root, "cpu")
    assert results and {r["image_id"] for r in results} <= {img["id"] for img in images}
    assert {r["category_id"] for r in results} <= {c["id"] for c in val["categories"]}
    assert max(sum(r["image_id"] == img["id"] for r in results) for img in images) <= MAX_DETECTIONS
    assert all(len(r["bbox"]) == 4 and r["segmentation"]["size"] == [96, 96] for r in results)
    detector = inference.Detectron2Detector.of_run(output, "cpu")
    assert detector.classes == classes and detector.predict(images, cfg.val.image_root) == results
    image = read_image(image_file(images[0], cfg.val.image_root))
    logits = detector.box_logits(image, np.array([[0, 0, 40, 40], [10, 20, 90, 60]], np.float32))
    assert logits.shape == (2, classes.num_classes) and np.isfinite(logits).all()
    with pytest.raises(InputError, match="categories"):
        inference.predict(output.eval_checkpoint, cfg, output.classes, images, cfg.val.image_root, "cpu")


def test_predict_draws_a_detectron2_run_on_a_toy_image_and_a_real_photo(d2_run, pool_world, tmp_path):
    _, output = d2_run
    images = user_images(tmp_path / "mine", pool_world[0])
    done = assert_predicts(output.out_dir, images, tmp_path / "truncated")
    assert EXTRA_ID not in {c["id"] for c in done["listing"]["categories"]}
    full = assert_predicts(output.checkpoint, images, tmp_path / "full")  # the checkpoint with the extra class
    assert EXTRA_ID in {c["id"] for c in full["listing"]["categories"]}


def test_box_logits_average_the_stages_of_a_cascade(tmp_path, smoke_world):
    cascade = detectron2_training(
        tmp_path, smoke_world, "training.detectron2.config_file=Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml"
    )
    d2 = d2config.build_config(cascade.section("training"), 4, "cpu")
    model = build_model(d2).eval()
    image = np.zeros((96, 96, 3), np.uint8)
    assert inference.box_logits(model, d2, image, np.array([[5, 5, 50, 70]], np.float32)).shape == (1, 4)


def _pool_run_mapper(pool_world, tmp_path, paste: bool, flip: bool):
    """The toy pool run's training inputs and settings, and a mapper over them (pasting if ``paste``)."""
    world, root = pool_world
    config = detectron2_training(tmp_path, world, *pool_runs(root))
    cfg = config.section("training")
    inputs = run_inputs(cfg, cfg.runs[0], config.common.seed)
    d2 = d2config.build_config(cfg, inputs.classes.num_classes, "cpu", d2config.TrainSetup("toy", tmp_path, 0))
    mapper = d2_mapper.PasteMapper(d2, inputs.classes, inputs.paste if paste else None, flip=flip, seed=0)
    return cfg, inputs, mapper


def test_mapper_gives_tight_boxes_resized_images_and_pasted_extra_instances(pool_world, tmp_path):
    cfg, inputs, mapper = _pool_run_mapper(pool_world, tmp_path, paste=True, flip=True)
    records = d2_records.dataset_records(inputs.train, cfg.train.image_root, inputs.classes)
    classes_seen = set()
    for position in range(12):
        out = mapper({**records[position], "position": position})
        instances = out["instances"]
        assert out["image"].shape == (3, 64, 64) and out["image"].dtype == torch.uint8
        masks = instances.gt_masks.tensor.numpy()
        tight = [[x, y, x + w, y + h] for x, y, w, h in map(mask_bbox, masks)]
        assert masks.any(axis=(1, 2)).all() and instances.gt_boxes.tensor.tolist() == tight
        classes_seen |= set(instances.gt_classes.tolist())
    assert inputs.classes.index()[EXTRA_ID] in classes_seen  # only pastes bring the extra category
    record = {**records[5], "position": 5}
    assert torch.equal(mapper(record)["image"], mapper(record)["image"])


def test_interrupted_training_resumes_where_the_stream_stopped(tmp_path, smoke_world, monkeypatch):
    config = detectron2_training(tmp_path, smoke_world)
    positions = []
    original = d2_mapper.PasteMapper.__call__

    def recording(self, record):
        positions.append(record["position"])
        return original(self, record)

    monkeypatch.setattr(d2_mapper.PasteMapper, "__call__", recording)
    with interrupted_after(d2_mapper.PasteMapper, 4):  # two steps of two images, then a kill
        run(config)
    assert positions == [0, 1, 2, 3] and not (RunLayout(tmp_path / "training" / "baseline").final).exists()
    output = run(config)[0]
    assert positions == [0, 1, 2, 3, 4, 5]
    assert load_checkpoint(output.checkpoint)["step"] == 3
    assert [row["step"] for row in read_loss_log(output.layout.loss_log)] == [1, 2, 3]


def test_bad_detectron2_settings_are_input_errors(tmp_path, smoke_world):
    cfg = detectron2_training(tmp_path, smoke_world).section("training")
    bad_file = smoke_training(tmp_path, smoke_world, "training.detectron2.config_file=no/such.yaml")
    with pytest.raises(InputError, match="neither a file nor"):
        d2config.build_config(bad_file.section("training"), 3, "cpu")
    bad_opts = detectron2_training(tmp_path, smoke_world, 'training.detectron2.opts=["MODEL.NO_SUCH_KEY", "1"]')
    with pytest.raises(InputError, match="opts"):
        d2config.build_config(bad_opts.section("training"), 3, "cpu")
    assert d2config.build_config(cfg, 3, "cpu").MODEL.ROI_HEADS.NUM_CLASSES == 3
    too_many = json.dumps([*TINY_MODEL, "MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES", "50"])
    with pytest.raises(InputError, match="FED_LOSS_NUM_CLASSES"):
        run(detectron2_training(tmp_path, smoke_world, f"training.detectron2.opts={too_many}"))


def test_project_modules_extend_the_config_before_a_user_config_file(tmp_path, smoke_world, monkeypatch):
    (tmp_path / "toy_project.py").write_text(
        "from detectron2.config import CfgNode\n\n\ndef add_toy_config(cfg):\n"
        "    cfg.MODEL.TOY_HEAD = CfgNode({'ENABLED': True, 'WIDTH': 8})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    zoo = d2config._config_file(Detectron2Settings().config_file)
    (tmp_path / "user.yaml").write_text(f"_BASE_: {zoo}\nMODEL:\n  TOY_HEAD:\n    WIDTH: 16\n")
    project = ["training.detectron2.project_modules=[toy_project:add_toy_config]"]
    cfg = detectron2_training(
        tmp_path, smoke_world, f"training.detectron2.config_file={tmp_path / 'user.yaml'}", *project
    )
    d2 = d2config.build_config(cfg.section("training"), 3, "cpu")
    assert d2.MODEL.TOY_HEAD.ENABLED is True and d2.MODEL.TOY_HEAD.WIDTH == 16
    missing = detectron2_training(tmp_path, smoke_world, "training.detectron2.project_modules=[no_such_project]")
    with pytest.raises(InputError, match="cannot import 'no_such_project'"):
        d2config.build_config(missing.section("training"), 3, "cpu")


def test_the_mapper_leaves_crowd_regions_out(pool_world, tmp_path):
    from .test_training import _crowd_image

    _, inputs, mapper = _pool_run_mapper(pool_world, tmp_path, paste=False, flip=False)
    info, anns = _crowd_image(tmp_path)
    category = inputs.classes.category_ids[0]
    train = {"images": [info], "annotations": [{**a, "category_id": category} for a in anns]}
    records = d2_records.dataset_records(train, tmp_path, inputs.classes)
    assert [a["iscrowd"] for a in records[0]["annotations"]] == [0, 1]
    mapped = mapper({**records[0], "position": 0})
    assert len(mapped["instances"]) == 1
    scale = mapped["image"].shape[2] / info["width"]  # the 40×50 image resized to a short edge of 64
    assert torch.allclose(mapped["crowd_boxes"], torch.tensor([[30.0, 0, 40, 40]]) * scale)


@pytest.mark.parametrize("config_file", ["", "Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml"])
def test_rpn_and_roi_heads_ignore_background_examples_inside_crowd_regions(tmp_path, smoke_world, config_file):
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    from divergen_lib.training.detectron2_engine.crowd import ignore_crowds

    override = [f"training.detectron2.config_file={config_file}"] if config_file else []
    config = detectron2_training(tmp_path, smoke_world, *override)
    model = ignore_crowds(build_model(d2config.build_config(config.section("training"), 2, "cpu"))).train()
    boxes = torch.tensor([[0.0, 0, 10, 10], [40, 40, 60, 60], [45, 45, 50, 50], [20, 0, 30, 10]])
    gt = Instances((64, 64), gt_boxes=Boxes(boxes[:1]), gt_classes=torch.tensor([1]))
    crowd = torch.tensor([[32.0, 32, 64, 64]])
    rpn, heads = model.proposal_generator, model.roi_heads
    proposals = [Instances((64, 64), proposal_boxes=Boxes(boxes), objectness_logits=torch.zeros(4))]

    def labels(crowds):
        rpn.crowd = heads.crowd = crowds
        with EventStorage():
            anchors = rpn.label_and_sample_anchors([Boxes(boxes)], [gt])[0][0].tolist()
            sampled = heads.label_and_sample_proposals(proposals, [gt])[0].proposal_boxes.tensor.tolist()
        return anchors, sorted(sampled)

    every = sorted(boxes.tolist() + boxes[:1].tolist())  # the ground truth is appended as a proposal
    assert labels(None) == labels([None]) == ([1, 0, 0, 0], every)
    assert labels([crowd]) == ([1, -1, -1, 0], [b for b in every if b[0] < 32])


def test_a_training_step_hands_the_crowd_boxes_to_the_heads(pool_world, tmp_path):
    from detectron2.utils.events import EventStorage

    from .test_training import _crowd_image

    cfg, inputs, mapper = _pool_run_mapper(pool_world, tmp_path, paste=False, flip=False)
    info, anns = _crowd_image(tmp_path)
    train = {"images": [info], "annotations": [{**a, "category_id": inputs.classes.category_ids[0]} for a in anns]}
    mapped = mapper({**d2_records.dataset_records(train, tmp_path, inputs.classes)[0], "position": 0})
    d2 = d2config.build_config(cfg, inputs.classes.num_classes, "cpu")
    model = d2_trainer.Trainer.build_model(d2).train()
    with EventStorage():
        losses = model([mapped])
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.proposal_generator.crowd[0] is mapped["crowd_boxes"] is model.roi_heads.crowd[0]
    assert model.state_dict().keys() == build_model(d2).state_dict().keys()
