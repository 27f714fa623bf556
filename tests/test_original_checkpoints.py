"""Checkpoints in the originals' layout (DiverGen's and X-Paste's ``train_net.py``: ``model``, ``model_ema`` with
``module.`` keys from multi-GPU runs, ``optimizer``, ``scheduler``, ``iteration``) read, truncated and evaluated as
this project's are. The state dicts are of a tiny DiverGen model (its Swin-L config with Swin-T, small heads,
random weights) and of the tiny R18 Mask R-CNN of the detectron2 tests. Skips without detectron2 or the originals'
snapshots in ``../shared/third_party``."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

from divergen_lib.config import DatasetSplit  # noqa: E402
from divergen_lib.errors import InputError  # noqa: E402
from divergen_lib.evaluation.checkpoint import evaluate_checkpoint  # noqa: E402
from divergen_lib.formats import read_lvis  # noqa: E402
from divergen_lib.training.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from divergen_lib.training.classes import ClassMap, build_class_map  # noqa: E402
from divergen_lib.training.config import Detectron2Settings, TrainingConfig  # noqa: E402
from divergen_lib.training.detectron2_engine import d2config, inference  # noqa: E402
from divergen_lib.training.detectron2_engine.original_checkpoints import (  # noqa: E402
    checkpoint_weights,
    read_detector_weights,
    truncate_file,
)
from divergen_lib.training.truncation import truncate_state_dict  # noqa: E402

from .conftest import REPO_ROOT, run_cli  # noqa: E402
from .test_detectron2_engine import TINY_MODEL  # noqa: E402

THIRD_PARTY = REPO_ROOT.parent / "shared" / "third_party"
CENTERNET2, DIVERGEN = THIRD_PARTY / "CenterNet2", THIRD_PARTY / "DiverGen" / "DiverGen"
KEEP, EXTRA = 5, 2  # DiverGen's 1203 LVIS and 250 ImageNet classes, in small
TINY_DIVERGEN = """_BASE_: {base}
MODEL:
  WEIGHTS: ""
  DEVICE: cpu
  SWIN: {{SIZE: T}}
  FPN: {{OUT_CHANNELS: 32}}
  ROI_HEADS: {{NUM_CLASSES: {classes}}}
  CENTERNET: {{NUM_CLASSES: {classes}, PRE_NMS_TOPK_TEST: 100, POST_NMS_TOPK_TEST: 32}}
  ROI_BOX_HEAD: {{FC_DIM: 64, FED_LOSS_NUM_CAT: 4, CAT_FREQ_PATH: {freq}}}
  ROI_MASK_HEAD: {{CONV_DIM: 16, NUM_CONV: 1}}
INPUT: {{TRAIN_SIZE: 128, TEST_SIZE: 128}}
FP16: False
DATASETS: {{TRAIN: [{dataset}]}}
"""
CLASSIFIER = [f"roi_heads.box_predictor.{stage}.cls_score.{p}" for stage in range(3) for p in ("weight", "bias")]
FREQ = [f"roi_heads.box_predictor.{stage}.freq_weight" for stage in range(3)]


def _toy_classes(n: int) -> ClassMap:
    return ClassMap(tuple(range(1, n + 1)), tuple(f"c{i}" for i in range(1, n + 1)), tuple(range(n)))


@pytest.fixture(scope="module")
def divergen(tmp_path_factory):
    """DiverGen's config (Swin-T, KEEP + EXTRA classes) and two state dicts of the model it builds (random
    weights of two seeds: a model and its EMA)."""
    if not (CENTERNET2.is_dir() and DIVERGEN.is_dir()):
        pytest.skip("the originals' snapshots (../shared/third_party) are absent")
    sys.path[:0] = [str(p) for p in (CENTERNET2, DIVERGEN) if str(p) not in sys.path]
    import divergen  # noqa: F401  (registers DiverGen's architectures)
    from centernet.config import add_centernet_config
    from divergen.config import add_divergen_config

    root = tmp_path_factory.mktemp("divergen")
    counts = [{"id": i + 1, "image_count": 3 * i + 1} for i in range(KEEP + EXTRA)]
    (root / "freq.json").write_text(json.dumps(counts))
    MetadataCatalog.get("tiny_divergen_train").set(class_image_count=counts)  # detectron2's fed-loss weights
    config_file = root / "tiny.yaml"
    text = TINY_DIVERGEN.format(
        base=DIVERGEN / "configs" / "DiverGen_swinL.yaml",
        classes=KEEP + EXTRA,
        freq=root / "freq.json",
        dataset="tiny_divergen_train",
    )
    config_file.write_text(text)
    d2 = get_cfg()
    add_centernet_config(d2)
    add_divergen_config(d2)
    d2.merge_from_file(str(config_file))
    return config_file, *random_weights(lambda: build_model(d2))


def random_weights(build: Callable[[], torch.nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The state dicts of two models built with seeds 0 and 1 (a model and its EMA, in a test)."""
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append(build().state_dict())
    return states[0], states[1]


def layouts(model: dict[str, torch.Tensor], ema: dict[str, torch.Tensor], classes: ClassMap) -> dict[str, dict]:
    """A model and its EMA in this project's layout and the originals' (one GPU; multi-GPU EMA keys)."""
    original = {"model": model, "model_ema": ema, "optimizer": {"state": {}}, "scheduler": {}, "iteration": 7}
    return {
        "ours": {"engine": "detectron2", "model": model, "model_ema": ema, "step": 7, "classes": classes.to_json()},
        "original": original,
        "original_multi_gpu": {**original, "model_ema": {f"module.{k}": v for k, v in ema.items()}},
    }


def assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(expected) and all(torch.equal(got[k], v) for k, v in expected.items())


def test_either_layout_gives_the_same_model_and_ema_weights(divergen, tmp_path):
    _, model, ema = divergen
    for name, checkpoint in layouts(model, ema, _toy_classes(KEEP + EXTRA)).items():
        save_checkpoint(checkpoint, tmp_path / f"{name}.pth")
        weights = read_detector_weights(tmp_path / f"{name}.pth", ema=True)
        assert weights.key == "model_ema" and weights.num_classes == KEEP + EXTRA
        assert_same(weights.state, ema)
        assert_same(checkpoint_weights(checkpoint, name, ema=False)[0], model)
        assert (weights.classes is None) == (name != "ours")
    default = {name: checkpoint_weights(c, name)[1] for name, c in layouts(model, ema, _toy_classes(7)).items()}
    assert default == {"ours": "model_ema", "original": "model", "original_multi_gpu": "model"}
    with pytest.raises(InputError, match=r"^x: has no EMA weights \(no 'model_ema'\)"):
        checkpoint_weights({"model": model, "iteration": 0}, "x", ema=True)
    with pytest.raises(InputError, match="^x: not a detectron2-engine checkpoint"):
        checkpoint_weights({"engine": "torchvision", "model": model}, "x")


def test_truncate_keeps_the_first_classes_and_background_in_every_layout(divergen, tmp_path):
    _, model, ema = divergen
    classes = _toy_classes(KEEP + EXTRA)
    for name, checkpoint in layouts(model, ema, classes).items():
        src, dst = tmp_path / f"{name}.pth", tmp_path / f"{name}_truncated.pth"
        save_checkpoint(checkpoint, src)
        if name == "original_multi_gpu":  # the command, once (the others in-process)
            done = run_cli("truncate", "--weights", str(src), "--out", str(dst), "--keep", str(KEEP))
            assert done.returncode == 0, done.stderr
            assert f"{KEEP + EXTRA} -> {KEEP} classes (model, model_ema)" in done.stdout
        else:
            assert truncate_file(src, dst, KEEP) == (KEEP + EXTRA, ["model", "model_ema"])
        cut = load_checkpoint(dst)
        assert cut.keys() == checkpoint.keys() and cut.get("iteration") == checkpoint.get("iteration")
        for key in ("model", "model_ema"):
            full, truncated = checkpoint[key], cut[key]
            prefix = "module." if name == "original_multi_gpu" and key == "model_ema" else ""
            assert list(truncated) == list(full)
            for layer in CLASSIFIER:
                weight = full[prefix + layer]
                assert torch.equal(truncated[prefix + layer], torch.cat([weight[:KEEP], weight[-1:]]))
            for layer in FREQ:
                assert torch.equal(truncated[prefix + layer], full[prefix + layer][:KEEP])
            class_dependent = {prefix + layer for layer in CLASSIFIER + FREQ}
            assert all(torch.equal(truncated[k], v) for k, v in full.items() if k not in class_dependent)
        in_memory = read_detector_weights(src, ema=True).truncated(KEEP)
        assert_same(in_memory.state, checkpoint_weights(cut, name, ema=True)[0])
        if name == "ours":
            assert cut["classes"] == _toy_classes(KEEP).to_json()
            assert in_memory.classes == _toy_classes(KEEP)


@pytest.mark.parametrize(
    ("make", "keep", "error"),
    [
        (None, "3", r"checkpoint not found: .*missing\.pth"),
        ("text", "3", r"bad\.pth: not a readable checkpoint"),
        ("no_model", "3", r"bad\.pth: not a checkpoint of this project \(no 'model' state dict\)"),
        ("checkpoint", "8", r"bad\.pth: cannot keep 8 classes of its 7 \(1 to 7\)"),
    ],
)
def test_truncate_refuses_bad_input_in_one_line(tmp_path, make, keep, error):
    src = tmp_path / ("missing.pth" if make is None else "bad.pth")
    if make == "text":
        src.write_text("not a checkpoint")
    elif make == "no_model":
        torch.save({"weights": {}}, src)
    elif make == "checkpoint":
        torch.save({"model": {CLASSIFIER[0]: torch.zeros(8, 4)}, "iteration": 1}, src)
    done = run_cli("truncate", "--weights", str(src), "--out", str(tmp_path / "out.pth"), "--keep", keep)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(error, done.stderr), done.stderr
    assert not (tmp_path / "out.pth").exists()


def test_load_model_takes_the_originals_layout_and_a_divergen_model_predicts_alike(divergen, smoke_world, tmp_path):
    config_file, model, ema = divergen
    val = read_lvis(smoke_world.json_path("val"))
    classes = build_class_map(val["categories"][: KEEP + EXTRA], None, None, False)
    for name, checkpoint in layouts(model, ema, classes).items():
        save_checkpoint(checkpoint, tmp_path / f"{name}.pth")
    settings = Detectron2Settings(
        config_file=str(config_file),
        project_paths=[CENTERNET2, DIVERGEN],
        project_modules=["centernet.config:add_centernet_config", "divergen.config:add_divergen_config", "divergen"],
    )
    split = DatasetSplit(smoke_world.json_path("val"), smoke_world.root)
    cfg = TrainingConfig(train=split, val=split, engine="detectron2", detectron2=settings)
    original = tmp_path / "original_multi_gpu.pth"
    loaded, _ = inference.load_model(original, cfg, classes, "cpu")  # the originals' model weights by default
    assert_same(loaded.state_dict(), {k: v for k, v in model.items() if "freq_weight" not in k})  # training-only
    with pytest.raises(InputError, match=r"original_multi_gpu\.pth: trained for 7 categories, not the 5 given$"):
        inference.load_model(original, cfg, _toy_classes(KEEP), "cpu")
    results = []
    for weights in (tmp_path / "ours.pth", read_detector_weights(original, ema=True)):  # ours: EMA by default
        loaded, d2 = inference.load_model(weights, cfg, classes, "cpu")
        results.append(inference.predict_images(loaded, d2, classes, val["images"][:2], smoke_world.root, cfg.test))
    assert results[0] == results[1] and results[0]
    truncated = read_detector_weights(original, ema=True).truncated(KEEP)
    loaded, _ = inference.load_model(truncated, cfg, _toy_classes(KEEP), "cpu")
    assert torch.equal(loaded.state_dict()[CLASSIFIER[0]], truncated.state[CLASSIFIER[0]])


def test_evaluate_checkpoint_gives_the_same_metrics_for_either_layout(smoke_world, tmp_path):
    """A model-zoo Mask R-CNN (class-specific box and mask rows) with extra classes: the originals' layout, its EMA
    and truncated in memory, evaluates as the same EMA weights truncated in this project's layout."""
    val = read_lvis(smoke_world.json_path("val"))
    classes = build_class_map(val["categories"], None, None, False)
    split = DatasetSplit(smoke_world.json_path("val"), smoke_world.root)
    settings = Detectron2Settings(opts=TINY_MODEL)
    cfg = TrainingConfig(train=split, val=split, engine="detectron2", detectron2=settings)
    full, ema = random_weights(lambda: build_model(d2config.build_config(cfg, classes.num_classes + EXTRA, "cpu")))
    targets = list(range(classes.num_classes))
    ours = {
        "engine": "detectron2",
        "model": truncate_state_dict(full, classes.num_classes + EXTRA, targets, "detectron2"),
        "model_ema": truncate_state_dict(ema, classes.num_classes + EXTRA, targets, "detectron2"),
        "step": 3,
        "classes": classes.to_json(),
    }
    original = {"model": full, "model_ema": {f"module.{k}": v for k, v in ema.items()}, "iteration": 3}
    save_checkpoint(ours, tmp_path / "ours.pth")
    save_checkpoint(original, tmp_path / "DiverGen_swinL.pth")  # the released file's name
    ours_results = tmp_path / "ours_results.json"  # ours in-process, the originals' through the command
    record = evaluate_checkpoint(
        tmp_path / "ours.pth", settings, split.annotations, split.image_root, None, None, "cpu", 4, 1, ours_results
    )
    assert record["weights"] == "model_ema" and "published" not in record
    out, results = tmp_path / "metrics.json", tmp_path / "results.json"
    args = ["--weights", str(tmp_path / "DiverGen_swinL.pth"), "--config-file", settings.config_file]
    args += ["--gt", str(split.annotations), "--image-root", str(split.image_root), "--device", "cpu"]
    args += ["--max-images", "4", "--ema", "--truncate-to", str(classes.num_classes), "--opts", *TINY_MODEL]
    done = run_cli("evaluate-checkpoint", *args, "--out", str(out), "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert "the model_ema weights of" in done.stdout and "iou" in done.stdout
    assert "published (DiverGen paper) box AP  51.2, mask AP  45.5" in done.stdout
    assert json.loads(results.read_text()) == json.loads(ours_results.read_text()) != []
    assert {r["image_id"] for r in json.loads(results.read_text())} <= {img["id"] for img in val["images"][:4]}
    original = json.loads(out.read_text())
    for key in ("bbox", "segm", "bbox_per_category", "segm_per_category", "images", "classes"):
        assert original[key] == json.loads(json.dumps(record[key]))
    assert original["published"] == {"source": "DiverGen paper", "bbox": 51.2, "segm": 45.5}


def test_evaluate_checkpoint_asks_for_truncation_of_extra_classes(smoke_world, tmp_path):
    torch.save({"model": {CLASSIFIER[0]: torch.zeros(200, 4)}, "iteration": 1}, tmp_path / "big.pth")
    gt, root = smoke_world.json_path("val"), smoke_world.root
    args = ["--weights", str(tmp_path / "big.pth"), "--gt", str(gt), "--image-root", str(root), "--device", "cpu"]
    done = run_cli("evaluate-checkpoint", "--config-file", Detectron2Settings().config_file, *args)
    n = len(read_lvis(gt)["categories"])
    expected = (
        f"error: {tmp_path / 'big.pth'}: {199} classes, {n} categories in {gt}; --truncate-to {n} keeps the first {n}"
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # beside library warnings
    assert done.returncode == 2 and errors == [expected] and "Traceback" not in done.stderr, done.stderr
