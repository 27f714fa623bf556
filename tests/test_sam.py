"""The SAM annotators, run through the real checkpoint loader on a random-weight tiny SAM of the real architecture.

Batch vs one-at-a-time: a batched image-encoder call is not bit-identical to single ones. Measured on CPU with the
tiny SAM and the toy images below: mask logits differ by at most 7.5e-8, and no mask pixel flips (the closest
logit to SAM's 0 threshold was 1.5e-7). The test allows logits to move by LOGIT_TOLERANCE and masks to differ only
at pixels whose logit lies within it. With batch_size 1 the annotators match ``SamPredictor`` exactly.
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor, sam_model_registry
from segment_anything.modeling import Sam

from divergen_lib.annotation.base import AnnotatorConfig, annotator_class, build_annotator
from divergen_lib.annotation.sam import (
    SAM_SPECS,
    SamBackgroundAnnotator,
    SamForegroundAnnotator,
    autocast_dtype,
    centre_point,
    corner_points,
    expected_shapes,
    load_sam,
)
from divergen_lib.annotation.tiny_sam import TINY_MODEL_TYPE, TINY_SAM_SPEC, build_tiny_sam
from divergen_lib.config import ConfigError
from divergen_lib.errors import InputError

LOGIT_TOLERANCE = 1e-5  # see the module docstring
# seed 3: the predicted IoUs of the corner prompts favour output 1 on the third toy image and output 2 on the others
TINY_SEED = 3


def toy_image(height: int, width: int, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """A coloured rectangle somewhere on a white background."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 255, np.uint8)
    top, left = rng.integers(0, height // 3), rng.integers(0, width // 3)
    image[top : top + height // 2, left : left + width // 2] = colour
    return image


IMAGES = [
    toy_image(96, 96, (200, 30, 30), 1),
    toy_image(48, 80, (30, 200, 30), 2),
    toy_image(128, 64, (30, 30, 200), 3),
    toy_image(64, 64, (0, 0, 0), 4),
    toy_image(100, 120, (250, 200, 0), 5),
    toy_image(90, 90, (10, 100, 200), 6),
]
NAMES = ["toy_object"] * len(IMAGES)  # SAM takes no text; the category names go unused


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_sam(tmp_path_factory.mktemp("tiny_sam") / "sam_tiny.pth", seed=TINY_SEED)


def make(checkpoint, method: str = "sam_background", batch_size: int = 1, model_type: str = TINY_MODEL_TYPE, **options):
    config = AnnotatorConfig(
        name="sam_test",
        method=method,
        checkpoint=checkpoint,
        model_type=model_type,
        batch_size=batch_size,
        options=options,
    )
    return build_annotator(config, "cpu")


def predictor_outputs(model: Sam, image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3 mask logits at image size, 3 predicted IoUs) from SAM's own single-image predictor."""
    predictor = SamPredictor(model)
    predictor.set_image(image)
    logits, scores, _ = predictor.predict(points, np.ones(len(points)), multimask_output=True, return_logits=True)
    return logits, scores


class PromptSpy:
    """Records the point prompts the prompt encoder receives."""

    def __init__(self, model: Sam) -> None:
        self.points: list[tuple[np.ndarray, np.ndarray]] = []
        self.handle = model.prompt_encoder.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs) -> None:
        coords, labels = kwargs["points"]
        self.points.append((coords.cpu().numpy(), labels.cpu().numpy()))


def test_real_specs_match_segment_anything():
    for model_type in ("vit_h", "vit_l", "vit_b"):
        with torch.device("meta"):
            reference = sam_model_registry[model_type]()
        assert expected_shapes(model_type) == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        assert SAM_SPECS[model_type].image_size == reference.image_encoder.img_size == 1024
    assert expected_shapes("vit_h")["image_encoder.patch_embed.proj.weight"] == (1280, 3, 16, 16)


def test_tiny_checkpoint_loads_through_the_real_loader(checkpoint, tmp_path):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = load_sam(checkpoint, TINY_MODEL_TYPE, "cpu", "annotation method t")
    assert isinstance(model, Sam) and not model.training
    assert model.image_encoder.img_size == TINY_SAM_SPEC.image_size == 64
    loaded = model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) and loaded[k].dtype == torch.float32 for k in saved)
    assert saved["image_encoder.pos_embed"].abs().max() > 0  # zero-initialised in SAM, random in the fixture
    assert torch.equal(model.pixel_mean.flatten(), torch.tensor([123.675, 116.28, 103.53]))
    again = torch.load(build_tiny_sam(tmp_path / "a.pth", seed=TINY_SEED), weights_only=True)
    other = torch.load(build_tiny_sam(tmp_path / "b.pth", seed=TINY_SEED + 1), weights_only=True)
    assert all(torch.equal(again[k], saved[k]) for k in saved)
    assert not torch.equal(other["mask_decoder.iou_token.weight"], saved["mask_decoder.iou_token.weight"])


def test_registry_and_paper_defaults():
    assert annotator_class("sam_background") is SamBackgroundAnnotator
    assert annotator_class("sam_foreground") is SamForegroundAnnotator
    background = SamBackgroundAnnotator.options_cls()
    assert (background.corner_margin, background.mask_choice, background.autocast) == (0, 2, "auto")
    assert SamForegroundAnnotator.options_cls().mask_choice == "best_score"


def test_shapes_dtypes_determinism(checkpoint):
    annotator = make(checkpoint, batch_size=4)
    masks = annotator.raw_masks(IMAGES, NAMES)
    assert len(masks) == len(IMAGES)
    for mask, image in zip(masks, IMAGES, strict=True):
        assert mask.dtype == np.bool_ and mask.shape == image.shape[:2]
        assert 0 < mask.mean() < 1  # random weights, but not a constant mask
    assert all(np.array_equal(a, b) for a, b in zip(masks, annotator.raw_masks(IMAGES, NAMES), strict=True))
    assert annotator.raw_masks([], []) == []
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        annotator.raw_masks([IMAGES[0][..., 0]], NAMES[:1])


@pytest.mark.parametrize("choice", [0, 1, 2])
def test_background_is_the_inverted_predictor_mask(checkpoint, choice):
    annotator = make(checkpoint, mask_choice=choice)
    for image, mask in zip(IMAGES, annotator.raw_masks(IMAGES, NAMES), strict=True):
        logits, _ = predictor_outputs(annotator.model, image, corner_points(*image.shape[:2], 0))
        assert np.array_equal(mask, ~(logits[choice] > 0))


def test_the_three_outputs_differ(checkpoint):
    by_choice = [make(checkpoint, mask_choice=c).raw_masks(IMAGES[:1], NAMES[:1])[0] for c in (0, 1, 2)]
    assert not np.array_equal(by_choice[0], by_choice[1]) and not np.array_equal(by_choice[1], by_choice[2])


def test_best_score_picks_the_highest_predicted_iou(checkpoint):
    best = make(checkpoint, mask_choice="best_score").raw_masks(IMAGES, NAMES)
    index2 = make(checkpoint, mask_choice=2).raw_masks(IMAGES, NAMES)
    model = make(checkpoint).model
    picks = []
    for image, mask, mask2 in zip(IMAGES, best, index2, strict=True):
        logits, scores = predictor_outputs(model, image, corner_points(*image.shape[:2], 0))
        picks.append(int(scores.argmax()))
        assert np.array_equal(mask, ~(logits[picks[-1]] > 0))
        assert np.array_equal(mask, mask2) == (picks[-1] == 2)
    assert picks[2] == 1 and picks.count(2) == len(IMAGES) - 1


def test_corner_prompts_are_xy_with_margin_on_every_corner(checkpoint):
    assert corner_points(48, 80, 3).tolist() == [[3, 3], [76, 3], [3, 44], [76, 44]]
    assert corner_points(48, 80, 0).tolist() == [[0, 0], [79, 0], [0, 47], [79, 47]]
    with pytest.raises(InputError, match="corner_margin 24 does not fit a 48x80 image"):
        corner_points(48, 80, 24)

    annotator = make(checkpoint, corner_margin=3)
    spy = PromptSpy(annotator.model)
    image = IMAGES[1]  # 48x80: resized to 38x64 (SAM's ResizeLongestSide, long side 64)
    mask = annotator.raw_masks([image], NAMES[:1])[0]
    coords, labels = spy.points[0]
    expected = np.array([[3, 3], [76, 3], [3, 44], [76, 44]]) * np.array([64 / 80, 38 / 48])
    np.testing.assert_allclose(coords[0], expected, rtol=1e-6)
    assert labels.tolist() == [[1, 1, 1, 1]]
    logits, _ = predictor_outputs(annotator.model, image, corner_points(48, 80, 3))
    assert np.array_equal(mask, ~(logits[2] > 0))
    unmargined, _ = predictor_outputs(annotator.model, image, corner_points(48, 80, 0))
    assert not np.array_equal(logits[2] > 0, unmargined[2] > 0)


def test_foreground_uses_the_centre_and_is_not_inverted(checkpoint):
    annotator = make(checkpoint, method="sam_foreground")
    assert isinstance(annotator, SamForegroundAnnotator)
    assert centre_point(48, 80).tolist() == [[39.5, 23.5]]
    spy = PromptSpy(annotator.model)
    masks = annotator.raw_masks(IMAGES, NAMES)
    coords, labels = spy.points[1]
    np.testing.assert_allclose(coords[0], [[39.5 * 64 / 80, 23.5 * 38 / 48]], rtol=1e-6)
    assert labels.tolist() == [[1]]
    for image, mask in zip(IMAGES, masks, strict=True):
        logits, scores = predictor_outputs(annotator.model, image, centre_point(*image.shape[:2]))
        assert np.array_equal(mask, logits[scores.argmax()] > 0)


@pytest.mark.parametrize("batch_size", [3, 4])
def test_batched_encoder_matches_one_at_a_time(checkpoint, batch_size):
    single = make(checkpoint, batch_size=1)
    batched = make(checkpoint, batch_size=batch_size)
    for image, one, many in zip(IMAGES, single.raw_masks(IMAGES, NAMES), batched.raw_masks(IMAGES, NAMES), strict=True):
        logits, _ = predictor_outputs(single.model, image, corner_points(*image.shape[:2], 0))
        assert np.all(np.abs(logits[2][one != many]) <= LOGIT_TOLERANCE)
    records = [batched._record(image) for image in IMAGES[:batch_size]]
    with torch.inference_mode():
        together = batched.model(records, multimask_output=True)
        apart = [batched.model([r], multimask_output=True)[0] for r in records]
    for a, b in zip(together, apart, strict=True):
        assert (a["low_res_logits"] - b["low_res_logits"]).abs().max() <= LOGIT_TOLERANCE
        assert (a["iou_predictions"] - b["iou_predictions"]).abs().max() <= LOGIT_TOLERANCE


def test_vit_b_shaped_checkpoint(tmp_path):
    # every tensor a stride-0 view of one zero: the file has vit_b's keys and shapes and weighs ~100 kB
    path = tmp_path / "vit_b.pth"
    torch.save({k: torch.zeros(()).expand(s) for k, s in expected_shapes("vit_b").items()}, path)
    model = load_sam(path, "vit_b", "cpu", "annotation method b")
    assert model.image_encoder.patch_embed.proj.weight.shape == (768, 3, 16, 16)
    assert model.image_encoder.img_size == 1024
    with pytest.raises(ConfigError) as err:
        make(path, model_type="vit_h")
    message = str(err.value)
    assert message.startswith(f"annotation method sam_test: checkpoint {path} does not fit SAM vit_h: ")
    assert "280 missing keys" in message and "shape mismatches" in message
    assert message.endswith("it fits model_type vit_b") and "\n" not in message


def write_checkpoint(path, content) -> None:
    if isinstance(content, str):
        path.write_text(content)
    else:
        torch.save(content, path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage", "cannot be read as PyTorch weights"),
        ("empty", "cannot be read as PyTorch weights"),
        ("unsafe_pickle", "cannot be read as PyTorch weights (UnpicklingError"),
        ("list", "is not a state dict of tensors (found list)"),
        ("nested", "is not a state dict of tensors (found a mapping with keys ['model'])"),
        ("missing_key", "does not fit SAM tiny: 1 missing keys (e.g. mask_decoder.iou_token.weight)"),
        ("extra_key", "does not fit SAM tiny: 1 unexpected keys (e.g. extra.weight)"),
        (
            "wrong_shape",
            "1 shape mismatches (e.g. mask_decoder.iou_token.weight: (2, 32) in the file, (1, 32) expected)",
        ),
    ],
)
def test_bad_checkpoint_files(checkpoint, tmp_path, case, expected):
    state = torch.load(checkpoint, weights_only=True)
    contents = {
        "garbage": "not a checkpoint",
        "empty": "",
        "unsafe_pickle": {"created": datetime.date(2024, 1, 1)},
        "list": list(state.values()),
        "nested": {"model": state},
        "missing_key": {k: v for k, v in state.items() if k != "mask_decoder.iou_token.weight"},
        "extra_key": {**state, "extra.weight": torch.zeros(1)},
        "wrong_shape": {**state, "mask_decoder.iou_token.weight": torch.zeros(2, 32)},
    }
    path = tmp_path / f"{case}.pth"
    write_checkpoint(path, contents[case])
    with pytest.raises(ConfigError) as err:
        make(path)
    message = str(err.value)
    assert message.startswith(f"annotation method sam_test: checkpoint {path} ")
    assert expected in message and "\n" not in message


def test_missing_checkpoint_and_unknown_model_type(checkpoint, tmp_path):
    with pytest.raises(
        ConfigError, match=r"^annotation method sam_test: no checkpoint given \(a SAM tiny .pth file\)$"
    ):
        make(None)
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError, match=f"^annotation method sam_test: checkpoint not found: {missing}$"):
        make(missing)
    with pytest.raises(ConfigError, match=r"^annotation method sam_test: unknown model_type 'vit_x' \(known: vit_h, "):
        make(checkpoint, model_type="vit_x")


@pytest.mark.parametrize(
    ("method", "options", "expected"),
    [
        ("sam_background", {"mask_choice": 3}, "mask_choice: expected one of 0, 1, 2, 'best_score', got 3"),
        ("sam_background", {"mask_choice": "best"}, "mask_choice: expected one of"),
        ("sam_background", {"mask_choice": True}, "mask_choice: expected one of 0, 1, 2, 'best_score', got True"),
        ("sam_background", {"mask_choice": 2.0}, "mask_choice: expected one of 0, 1, 2, 'best_score', got 2.0"),
        ("sam_background", {"corner_margin": -1}, "corner_margin: expected an integer >= 0, got -1"),
        ("sam_background", {"autocast": "fp16"}, "autocast: expected one of 'auto', 'float16', 'bfloat16', 'off'"),
        ("sam_foreground", {"corner_margin": 2}, "unknown key 'corner_margin'"),
    ],
)
def test_option_errors(checkpoint, method, options, expected):
    with pytest.raises(ConfigError, match="^annotation method sam_test options: ") as err:
        make(checkpoint, method=method, **options)
    assert expected in str(err.value)


def test_autocast_dtype(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert all(autocast_dtype(s, cpu) is None for s in ("auto", "float16", "bfloat16", "off"))
    assert autocast_dtype("off", cuda) is None
    assert autocast_dtype("float16", cuda) is torch.float16 and autocast_dtype("bfloat16", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert autocast_dtype("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert autocast_dtype("auto", cuda) is torch.float16
