"""DiverGen's and X-Paste's own detectors (CenterNet2 with Detic's cascade heads, from a user's checkouts) trained,
predicted and evaluated through the detectron2 engine, on tiny variants of their configs (Swin-T, small input,
random weights). Skips without detectron2 or the originals' snapshots in ``../shared/third_party``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("detectron2")

import detectron2  # noqa: E402
import yaml  # noqa: E402

from divergen_lib.config import load_config  # noqa: E402
from divergen_lib.formats import read_json, read_lvis  # noqa: E402
from divergen_lib.training.detectron2_engine.d2config import CENTERNET_BUILDER  # noqa: E402
from divergen_lib.training.loss_log import read_loss_log  # noqa: E402

from .conftest import REPO_ROOT, SMOKE_TRAINING, pool_runs, run_cli, smoke_training_overrides  # noqa: E402
from .test_predict import assert_predicts, user_images  # noqa: E402

SMOKE_EVALUATION = REPO_ROOT / "params" / "smoke" / "06_evaluation.yaml"

THIRD_PARTY = REPO_ROOT.parent / "shared" / "third_party"
CENTERNET2 = THIRD_PARTY / "CenterNet2"
CHECKOUTS = {"divergen": THIRD_PARTY / "DiverGen" / "DiverGen", "xpaste": THIRD_PARTY / "XPaste"}
pytestmark = pytest.mark.skipif(not CENTERNET2.is_dir(), reason="the originals' snapshots (../shared) are absent")

TINY = """_BASE_: {base}
MODEL:
  WEIGHTS: ""
  SWIN: {{SIZE: T}}
  FPN: {{OUT_CHANNELS: 32}}
  ROI_BOX_HEAD: {{FC_DIM: 64, FED_LOSS_NUM_CAT: 4}}
  ROI_MASK_HEAD: {{CONV_DIM: 16, NUM_CONV: 1}}
  ROI_HEADS: {{BATCH_SIZE_PER_IMAGE: 32}}
  CENTERNET: {{PRE_NMS_TOPK_TRAIN: 200, POST_NMS_TOPK_TRAIN: 64, PRE_NMS_TOPK_TEST: 100, POST_NMS_TOPK_TEST: 32}}
INPUT: {{TRAIN_SIZE: 128, TEST_SIZE: 128, SCALE_RANGE: [0.5, 1.5]}}
"""


def original_overrides(out, world, original: str, name: str, *overrides) -> list[str]:
    """``--set`` values of the smoke training params on the detectron2 engine with a tiny variant of an
    original's config ``name``, from the user's checkouts."""
    checkout = CHECKOUTS[original]
    config_file = out / f"tiny_{name}"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(TINY.format(base=checkout / "configs" / name))
    modules = ["centernet.config:add_centernet_config", f"{original}.config:add_{original}_config", original]
    return [
        *smoke_training_overrides(out, world),
        "training.engine=detectron2",
        f"training.detectron2.config_file={config_file}",
        f"training.detectron2.project_paths={json.dumps([str(CENTERNET2), str(checkout)])}",
        f"training.detectron2.project_modules={json.dumps(modules)}",
        "training.solver.iterations=2",
        "training.checkpoint_period=1",
        "training.test.max_detections=20",
        *overrides,
    ]


def _cli(command: str, params, overrides: list[str]) -> None:
    done = run_cli(command, "--params", str(params), *[arg for o in overrides for arg in ("--set", o)])
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(("original", "name"), [("divergen", "DiverGen_swinL.yaml"), ("xpaste", "Xpaste_swinL.yaml")])
def test_an_original_detector_trains_predicts_and_evaluates_with_pastes(tmp_path, pool_world, original, name):
    """Each in its own processes, as a user runs them (both projects register a ``CustomRCNN``)."""
    world, root = pool_world
    overrides = original_overrides(tmp_path, world, original, name, *pool_runs(root))
    _cli("train", SMOKE_TRAINING, overrides)
    config = load_config(SMOKE_TRAINING, overrides).section("training")
    d2 = yaml.safe_load((tmp_path / "training" / "divergen" / "detectron2" / "config.yaml").read_text())
    assert d2["MODEL"]["META_ARCHITECTURE"] == "CustomRCNN" and d2["MODEL"]["PROPOSAL_GENERATOR"]["NAME"] == "CenterNet"
    assert d2["FP16"] is False and d2["AUGMENTATIONS_BUILDER"] == CENTERNET_BUILDER
    assert (
        d2["INPUT"]["CUSTOM_AUG"] == "EfficientDetResizeCrop" and d2["MODEL"]["ROI_BOX_HEAD"]["FED_LOSS_NUM_CAT"] == 4
    )
    run_dir = tmp_path / "training" / "divergen"
    assert (run_dir / "model_final_truncated.pth").is_file() and config.detectron2.project_paths
    assert_predicts(run_dir, user_images(tmp_path / "mine", world), tmp_path / "predicted")
    _cli("evaluate", SMOKE_EVALUATION, [f"output_dir={tmp_path}"])
    metrics = read_json(run_dir / "metrics.json")
    assert np.isfinite(metrics["bbox"]["AP"]) and np.isfinite(metrics["segm"]["AP"])


@pytest.mark.slow
def test_divergens_baseline_config_trains(tmp_path, pool_world):
    """DiverGen's baseline (its LVIS classes only, no pool): one step."""
    world, _ = pool_world
    overrides = original_overrides(tmp_path, world, "divergen", "baseline_swinL.yaml", "training.solver.iterations=1")
    _cli("train", SMOKE_TRAINING, overrides)
    (run_dir,) = [p.parent for p in (tmp_path / "training").glob("*/model_final.pth")]
    rows = read_loss_log(run_dir / "loss.jsonl")
    assert rows and all(np.isfinite(r["loss"]) for r in rows)


def test_pastes_go_into_the_large_scale_jitter_canvas_at_the_priors_relative_size(tmp_path, smoke_world):
    """CenterNet2's ``EfficientDetResizeCrop`` at scales 1.5-2 crops the enlarged image; an instance pasted into
    that canvas is ``prior`` (sqrt of the area fraction) of the canvas, where one pasted before the crop would be
    up to twice as large."""
    from divergen_lib.paste import PasteConfig
    from divergen_lib.training.classes import build_class_map
    from divergen_lib.training.data import PasteSource, training_sample
    from divergen_lib.training.detectron2_engine.d2config import build_config
    from divergen_lib.training.detectron2_engine.mapper import PasteMapper

    (tmp_path / "lsj.yaml").write_text(
        f"_BASE_: {Path(detectron2.__file__).parent}/model_zoo/configs/LVISv1-InstanceSegmentation/"
        "mask_rcnn_R_50_FPN_1x.yaml\n"
        "INPUT: {CUSTOM_AUG: EfficientDetResizeCrop, TRAIN_SIZE: 256, SCALE_RANGE: [1.5, 2.0]}\n"
    )
    overrides = [
        *smoke_training_overrides(tmp_path, smoke_world),
        "training.engine=detectron2",
        f"training.detectron2.config_file={tmp_path / 'lsj.yaml'}",
        f"training.detectron2.project_paths={json.dumps([str(CENTERNET2)])}",
        'training.detectron2.project_modules=["centernet.config:add_centernet_config"]',
    ]
    cfg = load_config(SMOKE_TRAINING, overrides).section("training")
    train = read_lvis(smoke_world.json_path("train"))
    classes = build_class_map(train["categories"], None, None, extra_categories=False)
    cid = classes.category_ids[0]
    crop = np.zeros((40, 40, 4), np.uint8)
    crop[..., 3] = 255
    prior = 0.25
    paste = PasteSource({cid: [crop]}, {cid: (prior, 0.0)}, PasteConfig(max_samples=2, aspect_jitter=0, flip_prob=0))
    mapper = PasteMapper(build_config(cfg, classes.num_classes, "cpu"), classes, paste, flip=False, seed=0)
    by_image = {img["id"]: [a for a in train["annotations"] if a["image_id"] == img["id"]] for img in train["images"]}
    fractions = []
    for position, info in enumerate(train["images"][:40]):
        rng = np.random.default_rng([0, position])
        anns = by_image[info["id"]]
        sample = training_sample(info, anns, smoke_world.root, classes.index(), paste, False, rng, mapper.canvas)
        h, w = sample.image.shape[:2]
        assert max(h, w) == 256  # the longer side, enlarged 1.5-2 times past 256, is cropped
        for (x0, y0, x1, y1), pasted in zip(sample.boxes, sample.pasted, strict=True):
            if pasted and x0 > 0 and y0 > 0 and x1 < w and y1 < h:  # whole, not cut by the canvas edge
                fractions.append(np.sqrt((x1 - x0) * (y1 - y0) / (h * w)))
    assert len(fractions) > 5
    assert np.allclose(fractions, prior, rtol=0.06), fractions


def test_fp16_is_amp_on_cuda_and_off_on_cpu(tmp_path, smoke_world, caplog):
    """DiverGen's ``FP16: True`` (its base config): detectron2's AMP on CUDA; on CPU off, with a log line. Only the
    config is built, so no GPU is needed."""
    from divergen_lib.training.detectron2_engine.d2config import build_config

    cfg = load_config(SMOKE_TRAINING, original_overrides(tmp_path, smoke_world, "divergen", "DiverGen_swinL.yaml"))
    training = cfg.section("training")
    on_gpu = build_config(training, 3, "cuda")
    assert on_gpu.FP16 is True and on_gpu.SOLVER.AMP.ENABLED is True
    with caplog.at_level("INFO"):
        on_cpu = build_config(training, 3, "cpu")
    assert on_cpu.FP16 is False and on_cpu.SOLVER.AMP.ENABLED is False
    assert "FP16 of the config is off on cpu" in caplog.text
