"""``predict --weights``: a detectron2 checkpoint with its config instead of a run, in DiverGen's released layout
(``model``, ``model_ema`` with ``module.`` keys, ``iteration``; no class names) or this project's, on a toy image
and a real photo. The weights are the tiny R18 Mask R-CNN of the detectron2 tests, with extra classes."""

from __future__ import annotations

import pytest

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

from divergen_lib.__main__ import main  # noqa: E402
from divergen_lib.config import DatasetSplit  # noqa: E402
from divergen_lib.formats import read_lvis  # noqa: E402
from divergen_lib.training.checkpoints import save_checkpoint  # noqa: E402
from divergen_lib.training.classes import build_class_map  # noqa: E402
from divergen_lib.training.config import Detectron2Settings, TrainingConfig  # noqa: E402
from divergen_lib.training.detectron2_engine import d2config  # noqa: E402
from divergen_lib.training.truncation import truncate_state_dict  # noqa: E402

from .test_detectron2_engine import TINY_MODEL  # noqa: E402
from .test_original_checkpoints import EXTRA, random_weights  # noqa: E402
from .test_predict import PHOTO, assert_predicts, user_images  # noqa: E402

CONFIG = ["--config-file", Detectron2Settings().config_file, "--opts", *TINY_MODEL]  # --opts last: it takes the rest


@pytest.fixture(scope="module")
def checkpoints(smoke_world, tmp_path_factory):
    """The tiny model with EXTRA classes beyond the val categories and its EMA in DiverGen's layout, and the EMA
    truncated to the val categories in this project's layout (with its class map)."""
    val = smoke_world.json_path("val")
    classes = build_class_map(read_lvis(val)["categories"], None, None, False)
    split = DatasetSplit(val, smoke_world.root)
    cfg = TrainingConfig(train=split, val=split, engine="detectron2", detectron2=Detectron2Settings(opts=TINY_MODEL))
    full, ema = random_weights(lambda: build_model(d2config.build_config(cfg, classes.num_classes + EXTRA, "cpu")))
    root = tmp_path_factory.mktemp("checkpoints")
    original, ours = root / "DiverGen_swinL.pth", root / "ours.pth"
    save_checkpoint({"model": full, "model_ema": {f"module.{k}": v for k, v in ema.items()}, "iteration": 3}, original)
    targets = list(range(classes.num_classes))
    truncated = truncate_state_dict(ema, classes.num_classes + EXTRA, targets, "detectron2")
    save_checkpoint({"engine": "detectron2", "model": truncated, "step": 3, "classes": classes.to_json()}, ours)
    return original, ours, classes


@pytest.mark.slow
def test_a_released_layout_checkpoint_predicts_as_the_same_weights_in_ours(checkpoints, smoke_world, tmp_path):
    original, ours, classes = checkpoints
    images = user_images(tmp_path / "mine", smoke_world)
    truncated = ["--ema", "--truncate-to", str(classes.num_classes), "--categories", str(smoke_world.json_path("val"))]
    released = assert_predicts(["--weights", str(original), *truncated, *CONFIG], images, tmp_path / "released")
    mine = assert_predicts(["--weights", str(ours), *CONFIG], images, tmp_path / "ours")
    assert released["results"] == mine["results"] != []
    names = dict(zip(classes.category_ids, classes.names, strict=True))
    for done, weights in ((released, original), (mine, ours)):
        assert done["listing"]["run"] == str(weights)
        assert {c["id"]: c["name"] for c in done["listing"]["categories"]} == names


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("both", "predict: give one of --run (a training run) and --weights (a detectron2 checkpoint)"),
        ("neither", "predict: give one of --run (a training run) and --weights (a detectron2 checkpoint)"),
        ("run_with_checkpoint_options", "predict --run: --ema, --categories go with --weights, not --run"),
        ("no_config", "predict --weights: give its detectron2 yaml too (--config-file)"),
        ("no_categories", "DiverGen_swinL.pth: stores no class names; give the categories it was trained for"),
        ("extra_classes", "classes, {n} categories in {val}; --truncate-to {n} keeps the first {n}"),
    ],
)
def test_bad_checkpoint_predict_usage_is_one_line(case, message, checkpoints, smoke_world, tmp_path, capsys):
    original, _, classes = checkpoints
    val = str(smoke_world.json_path("val"))
    args = {
        "both": ["--run", str(tmp_path), "--weights", str(original), *CONFIG],
        "neither": [],
        "run_with_checkpoint_options": ["--run", str(tmp_path), "--ema", "--categories", val],
        "no_config": ["--weights", str(original)],
        "no_categories": ["--weights", str(original), *CONFIG],
        "extra_classes": ["--weights", str(original), "--categories", val, *CONFIG],
    }[case]
    status = main(["predict", "--images", str(PHOTO), "--out", str(tmp_path / "out"), *args])
    stderr = capsys.readouterr().err
    assert status == 2 and message.format(n=classes.num_classes, val=val) in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
