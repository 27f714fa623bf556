"""The diffusers backends, run through their real loading code on random-weight pipelines of the real architectures.

Batch vs one-at-a-time: the noise of each image comes from its own seed, but a batched network evaluation is not
bit-identical to a single one, and samplers amplify the rounding. Measured on CPU with these pipelines (8 seeds):
SD identical at 3 and 10 steps; IF at most 1 grey level at 2-3 steps, up to 8 at 10 steps. The tests use 2-3
steps and allow 1 grey level. At equal batch size an image does not depend on its batch-mates at all (asserted
exactly, on CPU).
"""

from __future__ import annotations

import shutil

import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, PNDMScheduler, StableDiffusionPipeline

from divergen_lib.config import ConfigError
from divergen_lib.generation.base import GenerationRequest, ModelConfig, build_generator
from divergen_lib.generation.diffusers_backends import (
    DeepFloydIFGenerator,
    DiffusersGenerator,
    StableDiffusionGenerator,
    resolve_dtype,
)
from divergen_lib.generation.tiny_pipelines import build_tiny_if, build_tiny_sd

BATCH_TOLERANCE = 1  # grey levels, see the module docstring
SD_OPTIONS = {"steps": 3, "height": 32, "width": 48}
IF_OPTIONS = {"stage1_steps": 2, "stage2_steps": 2, "stage1_size": 16, "stage2_size": 32}
PROMPTS = ["a photo of a single banana", "a photo of a single red cat", "a dog on a white background"]


def make_request(seed: int, prompt: str = PROMPTS[0]) -> GenerationRequest:
    return GenerationRequest(
        id=f"r{seed}",
        category_id=1,
        category_name="banana",
        prompt=prompt,
        prompt_source="template",
        prompt_index=0,
        sample_index=seed,
        model="m",
        seed=seed,
    )


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_pipelines")
    sd = build_tiny_sd(root / "sd")
    if1, if2 = build_tiny_if(root / "if1", root / "if2")
    return {"sd": sd, "if1": if1, "if2": if2}


@pytest.fixture(scope="module")
def sd(tiny_dirs):
    model = ModelConfig(name="sd", backend="stable_diffusion", path=str(tiny_dirs["sd"]), options=SD_OPTIONS)
    return build_generator(model, "cpu")


@pytest.fixture(scope="module")
def deepfloyd(tiny_dirs):
    options = {**IF_OPTIONS, "stage2_path": str(tiny_dirs["if2"])}
    return build_generator(
        ModelConfig(name="if", backend="deepfloyd_if", path=str(tiny_dirs["if1"]), options=options), "cpu"
    )


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_tokenizers_survive_save_and_load(sd, deepfloyd):
    # read back from vocab.json + merges.txt: the CLIP ids of real SD v1.5 ("a"=320, "photo"=1125, "of"=539);
    # a tokenizer that missed merges.txt would split into bytes or give only 2 distinct ids
    ids = sd.pipe.tokenizer(PROMPTS[0]).input_ids
    assert ids[:4] == [49406, 320, 1125, 539] and ids[-1] == 49407 and len(set(ids)) == 7
    t5_ids = deepfloyd.stage1.tokenizer(PROMPTS[1]).input_ids
    assert len(set(t5_ids)) > 4 and t5_ids[-1] == deepfloyd.stage1.tokenizer.eos_token_id
    assert deepfloyd.stage1.tokenizer.unk_token_id not in t5_ids


def test_if_tokenizer_is_read_from_a_sentencepiece_model(tiny_dirs):
    # IF-I-XL ships tokenizer/spiece.model and no tokenizer.json: reading it needs sentencepiece and protobuf
    assert sorted(p.name for p in (tiny_dirs["if1"] / "tokenizer").iterdir()) == [
        "spiece.model",
        "tokenizer_config.json",
    ]


def test_sd_loads_paper_sampler_and_makes_uint8_images(sd):
    assert isinstance(sd, StableDiffusionGenerator) and isinstance(sd.pipe, StableDiffusionPipeline)
    assert isinstance(sd.pipe.scheduler, DPMSolverMultistepScheduler)
    assert sd.pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert sd.pipe.safety_checker is None and sd.pipe.unet.dtype == torch.float32
    out = sd.generate([make_request(1), make_request(2)])
    assert len(out) == 2 and all(o.mask is None for o in out)
    assert out[0].image.shape == (32, 48, 3) and out[0].image.dtype == np.uint8
    assert out[0].image.std() > 5  # not a blank image
    assert sd.generate([]) == []


def test_paper_defaults():
    sd_opts = StableDiffusionGenerator.options_cls()
    assert (sd_opts.steps, sd_opts.guidance_scale, sd_opts.height, sd_opts.width) == (50, 7.5, 512, 512)
    if_opts = DeepFloydIFGenerator.options_cls(stage2_path="x")
    assert (if_opts.stage1_steps, if_opts.stage1_guidance_scale, if_opts.stage1_size) == (100, 7.0, 64)
    assert (if_opts.stage2_steps, if_opts.stage2_guidance_scale, if_opts.stage2_size) == (50, 4.0, 256)
    assert if_opts.noise_level == 250


@pytest.fixture(params=["sd", "deepfloyd"])
def generator(request, sd, deepfloyd):
    return {"sd": sd, "deepfloyd": deepfloyd}[request.param]


def test_seed_determinism_and_batching(generator):
    a, b, c = make_request(11, PROMPTS[0]), make_request(12, PROMPTS[1]), make_request(13, PROMPTS[2])
    batch = generator.generate([a, b])
    again = generator.generate([a, b])
    assert all(np.array_equal(x.image, y.image) for x, y in zip(batch, again, strict=True))
    # same batch size, different batch-mate: bit-identical
    assert np.array_equal(generator.generate([a, c])[0].image, batch[0].image)
    # one at a time vs batched: within the measured float tolerance
    for one, batched in zip([generator.generate([r])[0] for r in (a, b)], batch, strict=True):
        assert max_diff(one.image, batched.image) <= BATCH_TOLERANCE
    # another seed, same prompt: a different image
    other = generator.generate([make_request(99, PROMPTS[0])])[0]
    assert np.abs(other.image.astype(int) - batch[0].image.astype(int)).mean() > 10


def test_deepfloyd_two_stages(deepfloyd):
    assert deepfloyd.stage2.text_encoder is None and deepfloyd.stage2.tokenizer is None
    assert deepfloyd.stage1.safety_checker is None and deepfloyd.stage1.watermarker is None
    out = deepfloyd.generate([make_request(5)])
    assert out[0].image.shape == (32, 32, 3) and out[0].image.dtype == np.uint8 and out[0].image.std() > 5


def test_generic_backend_passes_options_through(tiny_dirs):
    def make(**options) -> DiffusersGenerator:
        model = ModelConfig(name="any", backend="diffusers", path=str(tiny_dirs["sd"]), options=options)
        return build_generator(model, "cpu")

    plain = make(steps=2, height=32, width=32)
    assert isinstance(plain.pipe, StableDiffusionPipeline) and isinstance(plain.pipe.scheduler, PNDMScheduler)
    image = plain.generate([make_request(3)])[0].image
    assert image.shape == (32, 32, 3)
    negative = make(steps=2, height=32, width=32, negative_prompt="blurry").generate([make_request(3)])[0].image
    assert max_diff(image, negative) > 0
    few_steps = make(steps=1, height=32, width=32).generate([make_request(3)])[0].image
    assert max_diff(image, few_steps) > 0


def test_model_dtype_reaches_the_pipeline(tiny_dirs):
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    model = ModelConfig(name="sd", backend="stable_diffusion", path=str(tiny_dirs["sd"]), dtype="bfloat16")
    assert build_generator(model, "cpu").pipe.unet.dtype == torch.bfloat16


def test_fp16_variant_is_picked_when_only_it_exists(tiny_dirs, tmp_path):
    StableDiffusionPipeline.from_pretrained(tiny_dirs["sd"]).save_pretrained(tmp_path / "fp16", variant="fp16")
    assert not list((tmp_path / "fp16" / "unet").glob("diffusion_pytorch_model.safetensors"))
    model = ModelConfig(name="sd", backend="stable_diffusion", path=str(tmp_path / "fp16"), dtype="float16")
    assert build_generator(model, "cpu").pipe.unet.dtype == torch.float16
    with pytest.raises(OSError, match="no file named"):  # float32 asks for the full-precision files: none there
        build_generator(ModelConfig(name="sd", backend="stable_diffusion", path=str(tmp_path / "fp16")), "cpu")


def test_repo_id_is_read_from_the_hf_cache(tiny_dirs, tmp_path, monkeypatch):
    revision = "0" * 40
    repo = tmp_path / "hub" / "models--tiny--sd"
    shutil.copytree(tiny_dirs["sd"], repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = ModelConfig(name="sd", backend="stable_diffusion", path="tiny/sd", options=SD_OPTIONS)
    assert build_generator(model, "cpu").generate([make_request(1)])[0].image.shape == (32, 48, 3)
    with pytest.raises(ConfigError, match=r"model sd: no diffusers pipeline at tiny/other .*allow_download: false"):
        build_generator(ModelConfig(name="sd", backend="stable_diffusion", path="tiny/other"), "cpu")


def test_missing_pipelines_give_one_clear_error(tiny_dirs, tmp_path):
    with pytest.raises(ConfigError, match=r"model sd15: no diffusers pipeline at /no/such/dir \(no such folder\)"):
        build_generator(ModelConfig(name="sd15", backend="stable_diffusion", path="/no/such/dir"), "cpu")
    with pytest.raises(ConfigError, match=r"model gen: no diffusers pipeline at .* \(no model_index.json\)"):
        build_generator(ModelConfig(name="gen", backend="diffusers", path=str(tmp_path)), "cpu")
    with pytest.raises(ConfigError, match="model gen: no path given"):
        build_generator(ModelConfig(name="gen", backend="diffusers"), "cpu")
    bad_stage2 = {**IF_OPTIONS, "stage2_path": str(tmp_path / "missing")}
    model = ModelConfig(name="if", backend="deepfloyd_if", path=str(tiny_dirs["if1"]), options=bad_stage2)
    with pytest.raises(ConfigError, match=r"model if stage II \(options.stage2_path\): no diffusers pipeline"):
        build_generator(model, "cpu")


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("stable_diffusion", {"stepz": 3}, r"model m options: unknown key 'stepz'"),
        ("stable_diffusion", {"steps": "many"}, r"model m options: steps: expected"),
        ("stable_diffusion", {"scheduler": "euler"}, r"model m options: scheduler: expected one of"),
        ("deepfloyd_if", {}, r"model m options: missing required key 'stage2_path'"),
        ("diffusers", {"call_kwargs": 3}, r"model m options: call_kwargs: expected a mapping"),
    ],
)
def test_option_errors_name_the_option(tiny_dirs, backend, options, message):
    with pytest.raises(ConfigError, match=message):
        build_generator(ModelConfig(name="m", backend=backend, path=str(tiny_dirs["sd"]), options=options), "cpu")
