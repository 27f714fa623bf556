"""The pretrained-model annotators (CLIPSeg, salient ONNX exports) and the per-method ``sample`` / ``optional``
settings of the annotation stage.

CLIPSeg and a tiny ONNX graph are built here with random or hand-set weights and loaded through the real loading
paths; the real IS-Net of ``../shared/models/`` is checked on photographs and on toy generations when present.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from divergen_lib.annotation import AnnotatorConfig, build_annotator
from divergen_lib.annotation import stage as annotation
from divergen_lib.annotation.clipseg import ClipSegAnnotator
from divergen_lib.annotation.fallback import BorderFallbackAnnotator
from divergen_lib.annotation.postprocess import PostprocessConfig, postprocess
from divergen_lib.annotation.quality import mask_iou
from divergen_lib.annotation.salient_onnx import SalientOnnxAnnotator
from divergen_lib.annotation.tiny_clipseg import build_tiny_clipseg, tiny_processor
from divergen_lib.config import ConfigError, load_config
from divergen_lib.generation import GeneratedImage, GenerationRequest, ModelConfig, build_generator
from divergen_lib.preflight import missing_inputs
from divergen_lib.prompts import template_prompt

from .conftest import REPO_ROOT

SMOKE = REPO_ROOT / "params" / "smoke" / "03_annotation.yaml"
ISNET = REPO_ROOT.parent / "shared" / "models" / "isnet_quint8.onnx"
needs_isnet = pytest.mark.skipif(not ISNET.is_file(), reason=f"the real IS-Net is not at {ISNET}")


def images_and_names() -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(0)
    sizes = [(50, 70), (64, 64), (20, 30)]
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in sizes], ["toy_cat", "dog", "toy_3"]


def truth(output: GeneratedImage) -> np.ndarray:
    """The toy generator's true mask of ``output`` (it always records one)."""
    assert output.mask is not None
    return output.mask


def dark_square(size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A dark square on white, and its mask."""
    image = np.full((size, size + 8, 3), 255, np.uint8)
    truth = np.zeros(image.shape[:2], bool)
    truth[10:30, 12:36] = True
    image[truth] = (20, 40, 60)
    return image, truth


# --- CLIPSeg ---


@pytest.fixture(scope="module")
def clipseg_folder(tmp_path_factory):
    return build_tiny_clipseg(tmp_path_factory.mktemp("clipseg") / "tiny")


def clipseg(folder, batch_size: int = 1, **options) -> ClipSegAnnotator:
    config = AnnotatorConfig(
        name="cs", method="clipseg", checkpoint=Path(folder), batch_size=batch_size, options=options
    )
    annotator = build_annotator(config)
    assert isinstance(annotator, ClipSegAnnotator)
    return annotator


def test_clipseg_masks_have_the_image_sizes_and_batching_changes_nothing(clipseg_folder):
    images, names = images_and_names()
    one = clipseg(clipseg_folder).raw_masks(images, names)
    assert [(m.shape, m.dtype) for m in one] == [(im.shape[:2], np.dtype(bool)) for im in images]
    assert all(0 < m.mean() < 1 for m in one)  # random weights, but a map thresholded somewhere inside
    batched = clipseg(clipseg_folder, batch_size=2).raw_masks(images, names)
    assert all(np.array_equal(a, b) for a, b in zip(one, batched, strict=True))
    assert clipseg(clipseg_folder).raw_masks([], []) == []


def test_clipseg_prompts_with_the_category_name_and_its_threshold(clipseg_folder):
    annotator = clipseg(clipseg_folder)
    assert annotator.prompts(["toy_cat"]) == ["a photo of toy cat"]  # X-Paste's text, underscores as spaces
    assert clipseg(clipseg_folder, template="{name}, cut out").prompts(["dog"]) == ["dog, cut out"]
    images, names = images_and_names()
    other = annotator.raw_masks(images[:1], ["dog"])[0]
    assert not np.array_equal(annotator.raw_masks(images[:1], ["toy_cat"])[0], other)  # the text conditions the map
    low, high = (clipseg(clipseg_folder, threshold=t).raw_masks(images[:1], names[:1])[0] for t in (0.2, 0.8))
    assert high.sum() < low.sum() and not (high & ~low).any()


def test_clipseg_bad_checkpoints_and_options_are_one_line(clipseg_folder, tmp_path):
    cases = {
        tmp_path / "missing": "checkpoint folder not found",
        tmp_path: "is not a CLIPSeg model and processor",
    }
    for folder, expected in cases.items():
        with pytest.raises(ConfigError, match=expected) as err:
            clipseg(folder)
        assert "\n" not in str(err.value) and str(err.value).startswith("annotation method cs:")
    with pytest.raises(ConfigError, match="annotation method cs: no checkpoint given"):
        build_annotator(AnnotatorConfig(name="cs", method="clipseg"))
    with pytest.raises(ConfigError, match=r"cs options: template: must contain \{name\}"):
        clipseg(clipseg_folder, template="a photo")
    cropping = tmp_path / "cropping"
    build_tiny_clipseg(cropping)
    processor = tiny_processor()
    processor.image_processor.do_center_crop = True
    processor.save_pretrained(cropping)
    with pytest.raises(ConfigError, match="crops images"):
        clipseg(cropping)


# --- salient ONNX exports ---


def darkness_graph(path: Path, size: int | str, extra_output: bool = True) -> Path:
    """A 1×3×S×S -> 1×1×S×S graph whose saliency is the negated mean of the channels (dark = salient), with a
    second output (its negation) when ``extra_output``; ``size`` a string makes the side dynamic."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [-1 / 3] * 3)
    nodes = [helper.make_node("Conv", ["input", "w"], ["saliency"])]
    outputs = [helper.make_tensor_value_info("saliency", TensorProto.FLOAT, [1, 1, size, size])]
    if extra_output:
        nodes.append(helper.make_node("Neg", ["saliency"], ["negated"]))
        outputs.append(helper.make_tensor_value_info("negated", TensorProto.FLOAT, [1, 1, size, size]))
    graph = helper.make_graph(
        nodes,
        "darkness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def salient(path, **options) -> SalientOnnxAnnotator:
    annotator = build_annotator(AnnotatorConfig(name="sal", method="salient_onnx", checkpoint=path, options=options))
    assert isinstance(annotator, SalientOnnxAnnotator)
    return annotator


def test_salient_onnx_finds_the_salient_region_at_the_image_size(tmp_path):
    annotator = salient(darkness_graph(tmp_path / "dark.onnx", 32), input_size=32)
    image, truth = dark_square()
    (mask,) = annotator.raw_masks([image], ["toy_object"])
    assert mask.shape == truth.shape and mask.dtype == bool and mask_iou(mask, truth) > 0.9
    saliency = annotator.saliency(image)
    assert saliency.dtype == np.float32 and saliency.min() == 0 and saliency.max() == pytest.approx(1)
    inverted = salient(tmp_path / "dark.onnx", input_size=32, output=1).raw_masks([image], ["toy_object"])[0]
    assert mask_iou(inverted, ~truth) > 0.9  # output 1 is the negated map
    flat = np.full((20, 20, 3), 128, np.uint8)
    assert not annotator.raw_masks([flat], ["toy_object"])[0].any()  # a flat map: nothing salient


def test_salient_onnx_normalises_as_configured_and_takes_any_size_on_a_dynamic_graph(tmp_path):
    image, truth = dark_square()
    dynamic = darkness_graph(tmp_path / "dynamic.onnx", "side", extra_output=False)
    for size in (16, 64):
        annotator = salient(dynamic, input_size=size, mean=[0, 10, 20], std=[255, 255, 255])
        pixels = annotator._input(image)
        assert pixels.shape == (1, 3, size, size) and pixels.dtype == np.float32
        assert pixels[0, :, 0, 0] == pytest.approx([255 / 255, 245 / 255, 235 / 255])
        assert mask_iou(annotator.raw_masks([image], ["toy_object"])[0], truth) > 0.8
    assert salient(dynamic, input_size=16)._input(image)[0, 0, 0, 0] == pytest.approx((255 - 128) / 256)  # IS-Net's


def test_salient_onnx_bad_checkpoints_and_options_are_one_line(tmp_path):
    fixed = darkness_graph(tmp_path / "dark.onnx", 32)
    (tmp_path / "junk.onnx").write_bytes(b"not an onnx file")
    cases = [
        (tmp_path / "missing.onnx", {}, "checkpoint not found"),
        (tmp_path / "junk.onnx", {}, "cannot be read as an ONNX model"),
        (fixed, {}, r"input_size 1024 does not fit the model's input input \[1, 3, 32, 32\]"),
        (fixed, {"input_size": 32, "output": 2}, "output 2: the model has 2 outputs"),
        (fixed, {"threshold": 1.5}, "threshold: expected a number between 0 and 1"),
        (fixed, {"std": [1, 0, 1]}, "std: expected positive numbers"),
        (fixed, {"mean": [0.5]}, "mean: expected a list of 3 values"),
    ]
    for path, options, expected in cases:
        with pytest.raises(ConfigError, match=expected) as err:
            salient(path, **options)
        assert "\n" not in str(err.value) and str(err.value).startswith("annotation method sal")


@pytest.fixture(scope="module")
def isnet():
    return salient(ISNET)


@needs_isnet
def test_real_isnet_cuts_the_object_out_of_photographs(isnet):
    from skimage import data

    coffee, cat = isnet.raw_masks([data.coffee(), data.chelsea()], ["cup", "cat"])
    assert 0.05 < coffee.mean() < 0.9 and 0.05 < cat.mean() < 0.9
    h, w = coffee.shape
    assert coffee[h // 3 : 2 * h // 3, w // 3 : w // 2].mean() > 0.9  # the cup
    h, w = cat.shape
    assert cat[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean() > 0.9  # the cat's face fills the centre
    assert cat[:, -w // 12 :].mean() < 0.1  # the dark background on the right is not the cat


@needs_isnet
def test_real_isnet_on_toy_generations_is_far_above_chance(isnet, smoke_world):
    """Measured: IoU 0.45-0.96 (flat) and 0.29-0.72 (soft, with sensor noise), mean 0.65 on these 8 images; the
    border fallback reaches 1.0. IS-Net was trained on photographs, not flat toy shapes."""
    ious = []
    for style in ("flat", "soft"):
        options = {"world": str(smoke_world.root), "style": style, "size": 96}
        generator = build_generator(ModelConfig(name=style, backend="toy", options=options))
        requests = [
            GenerationRequest("x", c.id, c.name, template_prompt(c.name, ""), "template", 0, 0, style, 0)
            for c in smoke_world.categories[:4]
        ]
        outputs = generator.generate(requests)
        masks = isnet.raw_masks([o.image for o in outputs], [r.category_name for r in requests])
        ious += [
            mask_iou(postprocess(m, PostprocessConfig())[0], truth(o)) for m, o in zip(masks, outputs, strict=True)
        ]
    assert min(ious) > 0.2 and np.mean(ious) > 0.5


# --- the stage: category names, sample, optional ---


def smoke_config(tmp_path, generation, methods: str):
    overrides = [f"output_dir={tmp_path}", f"annotation.generation_dir={generation.out_dir}", methods]
    return load_config(SMOKE, overrides)


def annotated(config) -> list[dict[str, Any]]:
    """The manifest rows of the annotation stage run with ``config``."""
    rows = annotation.run(config).rows
    assert rows is not None
    return rows


def test_stage_runs_clipseg_and_salient_onnx_on_a_sample(tmp_path, smoke_generation, clipseg_folder):
    graph = darkness_graph(tmp_path / "dark.onnx", "side", extra_output=False)
    methods = (
        f"annotation.methods=[{{name: cs, method: clipseg, checkpoint: {clipseg_folder}, batch_size: 3, sample: 5}}, "
        f"{{name: sal, method: salient_onnx, checkpoint: {graph}, options: {{input_size: 48}}, sample: 4}}]"
    )
    rows = annotated(smoke_config(tmp_path, smoke_generation, methods))
    by_method = {m: [r for r in rows if r["method"] == m] for m in ("cs", "sal")}
    assert [len(rows) for rows in by_method.values()] == [5, 4]
    assert not [r for r in rows if r["status"] == "error"]
    chosen = annotation.subsample(smoke_generation.rows, 5, load_config(SMOKE).common.seed)
    assert [r["generation_id"] for r in by_method["cs"]] == [r["id"] for r in chosen]
    assert all(r["category_name"] for r in rows)


def test_subsample_is_deterministic_order_free_and_nested():
    rows = [{"id": f"g{k}"} for k in range(30)]
    five = annotation.subsample(rows, 5, seed=1)
    assert len(five) == 5 and five == annotation.subsample(rows[::-1], 5, seed=1)[::-1]
    assert five != annotation.subsample(rows, 5, seed=2)
    assert {r["id"] for r in five} <= {r["id"] for r in annotation.subsample(rows, 8, seed=1)}
    assert annotation.subsample(rows, None, seed=1) == rows == annotation.subsample(rows, 99, seed=1)


def test_a_larger_sample_annotates_only_the_images_it_adds(tmp_path, smoke_generation, monkeypatch):
    seen: list[int] = []
    original = BorderFallbackAnnotator.raw_masks

    def counting(self, images, names):
        seen.append(len(images))
        return original(self, images, names)

    monkeypatch.setattr(BorderFallbackAnnotator, "raw_masks", counting)
    for n in (5, 8):
        methods = f"annotation.methods=[{{name: fb, method: border_fallback, sample: {n}}}]"
        rows = annotated(smoke_config(tmp_path, smoke_generation, methods))
        assert len(rows) == n
    assert sum(seen) == 8  # 5, then the 3 the larger sample adds: sample is not part of a mask's digest


def test_an_optional_method_without_its_weights_is_skipped_with_one_warning(tmp_path, smoke_generation, caplog):
    missing = tmp_path / "missing.onnx"
    methods = (
        "annotation.methods=[{name: fb, method: border_fallback, batch_size: 8}, "
        f"{{name: isnet, method: salient_onnx, checkpoint: {missing}, optional: true}}]"
    )
    config = smoke_config(tmp_path, smoke_generation, methods)
    assert not missing_inputs(config)  # preflight does not ask for it either
    with caplog.at_level(logging.WARNING):
        rows = annotated(config)
    assert {r["method"] for r in rows} == {"fb"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"annotation method isnet skipped: its weights {missing} are missing"]
    required = smoke_config(tmp_path / "required", smoke_generation, methods.replace("optional: true", "sample: 2"))
    assert [m.what for m in missing_inputs(required)] == ["weights of annotation method isnet"]
    with pytest.raises(ConfigError, match="annotation method isnet: checkpoint not found"):
        annotation.run(required)


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("{name: fb, method: border_fallback, sample: 0}", "fb: sample must be >= 1"),
        ("{name: fb, method: border_fallback, optional: true}", "fb: optional needs a checkpoint"),
    ],
)
def test_sample_and_optional_are_checked_when_the_params_load(entry, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(SMOKE, [f"annotation.methods=[{entry}]"])
