"""The diffusers backends, run through their real loading code on random-weight pipelines of the real architectures.

Batch vs one-at-a-time: the noise of each image comes from its own seed, but a batched network evaluation is not
bit-identical to a single one, and samplers amplify the rounding. Measured on CPU with these pipelines (8 seeds):
SD identical at 3 and 10 steps; IF at most 1 grey level at 2-3 steps, up to 8 at 10 steps. The tests use 2-3
steps and allow 1 grey level. At equal batch size an image does not depend on its batch-mates at all (asserted
exactly, on CPU).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace

import huggingface_hub
import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, PNDMScheduler, StableDiffusionPipeline

from divergen_lib.config import ConfigError, load_config, parse_options
from divergen_lib.generation.base import GenerationRequest, ModelConfig, backend_class, build_generator
from divergen_lib.generation.diffusers_backends import (
    DeepFloydIFGenerator,
    DiffusersGenerator,
    StableDiffusionGenerator,
    resolve_dtype,
)
from divergen_lib.generation.stage import request_settings
from divergen_lib.generation.tiny_pipelines import build_tiny_if, build_tiny_sd

from .conftest import REPO_ROOT

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
        ("stable_diffusion", {"offload": "gpu"}, r"model m options: offload: expected one of 'none', 'model', "),
        ("diffusers", {"attention_slicing": "half"}, r"model m options: attention_slicing: expected int or "),
        ("stable_diffusion", {"attention_slicing": 0}, r"model m options: attention_slicing: expected 'auto', "),
        ("stable_diffusion", {"attention": "flash"}, r"model m options: attention: expected one of 'sdpa', "),
        ("stable_diffusion", {"vae_tiling": "yes"}, r"model m options: vae_tiling: expected true or false"),
        ("deepfloyd_if", {"stage2_path": "x", "offload": True}, r"model m options: offload: expected one of"),
    ],
)
def test_option_errors_name_the_option(tiny_dirs, backend, options, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_generator(ModelConfig(name="m", backend=backend, path=str(tiny_dirs["sd"]), options=options), "cpu")
    assert "\n" not in str(err.value)


MEMORY_OPTIONS = {"offload": "model", "attention_slicing": 2, "attention": "default", "vae_tiling": True}


@pytest.mark.parametrize("backend", ["stable_diffusion", "deepfloyd_if", "diffusers"])
def test_memory_options_parse(backend):
    options = {"stage2_path": "x"} if backend == "deepfloyd_if" else {}
    cls = backend_class(backend).options_cls
    default = parse_options(cls, options, "m")
    assert (default.offload, default.attention_slicing, default.attention) == ("none", None, "sdpa")
    assert not default.vae_tiling and not default.vae_slicing
    parsed = parse_options(cls, {**options, **MEMORY_OPTIONS, "vae_slicing": True}, "m")
    assert (parsed.offload, parsed.attention_slicing, parsed.attention) == ("model", 2, "default")
    assert parsed.vae_tiling and parsed.vae_slicing
    assert parse_options(cls, {**options, "attention_slicing": "max"}, "m").attention_slicing == "max"


def tiny_if(tiny_dirs, **options) -> DeepFloydIFGenerator:
    options = {**IF_OPTIONS, "stage2_path": str(tiny_dirs["if2"]), **options}
    return DeepFloydIFGenerator(
        ModelConfig(name="if", backend="deepfloyd_if", path=str(tiny_dirs["if1"]), options=options), "cpu"
    )


def tiny_sd(tiny_dirs, size: tuple[int, int], **options) -> StableDiffusionGenerator:
    options = {"steps": 3, "height": size[0], "width": size[1], **options}
    return StableDiffusionGenerator(
        ModelConfig(name="sd", backend="stable_diffusion", path=str(tiny_dirs["sd"]), options=options), "cpu"
    )


@pytest.mark.parametrize("option", ["vae_tiling", "vae_slicing"])
def test_vae_options_are_one_line_errors_for_deepfloyd_if(tiny_dirs, option):
    message = r"^model if options: vae_tiling and vae_slicing need a pipeline with a VAE; .*if1 has none$"
    with pytest.raises(ConfigError, match=message) as err:
        tiny_if(tiny_dirs, **{option: True})
    assert "\n" not in str(err.value)


def processor_names(module: torch.nn.Module) -> set[str]:
    return {type(p).__name__ for p in module.attn_processors.values()}


def images(generator, seeds=(21, 22)) -> np.ndarray:
    return np.stack([o.image for o in generator.generate([make_request(s, PROMPTS[s % 3]) for s in seeds])])


def test_sd_memory_options_keep_the_images(tiny_dirs):
    # 32x32 is the tiny VAE's sample_size, so tiling leaves the single tile alone; above it, tiles are blended
    plain = tiny_sd(tiny_dirs, (32, 32))
    assert processor_names(plain.pipe.unet) == {"AttnProcessor2_0"}  # diffusers' SDPA default with torch 2
    frugal = tiny_sd(tiny_dirs, (32, 32), attention_slicing="auto", vae_slicing=True, vae_tiling=True)
    assert processor_names(frugal.pipe.unet) == {"SlicedAttnProcessor"}
    assert frugal.pipe.vae.use_slicing and frugal.pipe.vae.use_tiling
    assert max_diff(images(frugal), images(plain)) <= BATCH_TOLERANCE
    classic = tiny_sd(tiny_dirs, (32, 32), attention="default")
    assert processor_names(classic.pipe.unet) == processor_names(classic.pipe.vae) == {"AttnProcessor"}
    assert max_diff(images(classic), images(plain)) <= BATCH_TOLERANCE
    tiled, untiled = tiny_sd(tiny_dirs, (32, 48), vae_tiling=True), tiny_sd(tiny_dirs, (32, 48))
    assert max_diff(images(tiled), images(untiled)) > 10  # why vae_tiling is in the settings digest


def test_deepfloyd_memory_options_keep_the_images(tiny_dirs, deepfloyd):
    frugal = tiny_if(tiny_dirs, attention_slicing=1, attention="default")
    assert processor_names(frugal.stage1.unet) == processor_names(frugal.stage2.unet) == {"SlicedAttnAddedKVProcessor"}
    assert processor_names(deepfloyd.stage1.unet) == {"AttnAddedKVProcessor2_0"}
    assert max_diff(images(frugal), images(deepfloyd)) <= BATCH_TOLERANCE


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_offload_is_skipped_with_a_warning_on_cpu(tiny_dirs, deepfloyd, caplog, offload):
    with caplog.at_level(logging.WARNING):
        skipped = tiny_if(tiny_dirs, offload=offload)
    assert [r.getMessage() for r in caplog.records] == [
        f"model if options: offload '{offload}' skipped on device cpu, where the weights are already"
    ]
    assert skipped.offload == "none" and not hasattr(skipped.stage1.unet, "_hf_hook")
    assert np.array_equal(images(skipped), images(deepfloyd))


def test_model_offload_hooks_run_on_cpu(tiny_dirs, deepfloyd):
    # the accelerator path, with the CPU as the "accelerator": diffusers' model offload accepts device="cpu"
    hooked = tiny_if(tiny_dirs)
    hooked.offload = "model"
    for pipe in (hooked.stage1, hooked.stage2):
        hooked._set_memory_options(pipe)
    assert all(hasattr(m, "_hf_hook") for m in (hooked.stage1.text_encoder, hooked.stage1.unet, hooked.stage2.unet))
    assert np.array_equal(images(hooked), images(deepfloyd))


def test_only_pixel_changing_options_reach_the_settings_digest():
    requests = [make_request(1)]
    model = ModelConfig(name="sd", backend="stable_diffusion", path="p", options=SD_OPTIONS)
    digest = request_settings(requests, model)
    memory = {"offload": "sequential", "attention_slicing": "max", "attention": "default", "vae_slicing": True}
    assert request_settings(requests, replace(model, options={**SD_OPTIONS, **memory})) == digest
    assert request_settings(requests, replace(model, options={**SD_OPTIONS, "vae_tiling": True})) != digest
    assert request_settings(requests, replace(model, dtype="float16")) != digest


def test_paper_recipe_offloads_deepfloyd_if_only():
    config = load_config(REPO_ROOT / "params/paper/02_generation.yaml")
    models = {m.name: m for m in config.section("generation").models}
    recipes = {n: parse_options(backend_class(m.backend).options_cls, m.options, n) for n, m in models.items()}
    assert (recipes["deepfloyd_if"].offload, models["deepfloyd_if"].dtype) == ("model", "float16")
    sd = recipes["sd15"]
    assert (sd.offload, sd.attention_slicing, sd.attention) == ("none", None, "sdpa")
