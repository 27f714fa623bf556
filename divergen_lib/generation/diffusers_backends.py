"""Text-to-image backends on Hugging Face diffusers: Stable Diffusion (X-Paste), DeepFloyd-IF (DiverGen), any pipeline.

All three load their pipeline once, from a local folder or a repo id already in the Hugging Face cache
(``local_files_only`` unless the model sets ``allow_download``), and check that it exists before loading
anything, so a wrong path fails with one line. A call makes its whole batch in one pipeline call with one
``torch.Generator(device).manual_seed(request.seed)`` per request: the starting noise and every sampler
noise of an image come from its own seed only; no randomness is shared between the images of a batch. The
batch size can still move pixels slightly, since a batched network evaluation is not bit-identical to an
unbatched one and samplers amplify the rounding (bounds measured in tests/test_diffusers_backends.py).
Safety checkers and watermarkers are never loaded: they blank or mark images that the data pipeline
filters by its own rules. Every backend takes the memory options of :class:`MemoryOptions`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from diffusers import (
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    IFPipeline,
    IFSuperResolutionPipeline,
    StableDiffusionPipeline,
)

from ..config import ConfigError, parse_options
from .base import GeneratedImage, GenerationRequest, ModelConfig
from .pipeline_files import locate_pipeline

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NOT_LOADED = ("safety_checker", "watermarker")
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MemoryOptions:
    """Where the weights sit and how attention and decoding run: memory and speed, not the images.

    ``offload``: ``model`` keeps the weights in CPU memory and moves each whole model (text encoder, UNet, VAE) to
    the device while it runs (``enable_model_cpu_offload``), ``sequential`` each layer (``enable_sequential_cpu_
    offload``: least memory, slowest); for DeepFloyd-IF both stages, stage I's T5 encoder included. Both need
    ``accelerate`` and an accelerator device; on device ``cpu`` the weights are in CPU memory already, so offload
    is skipped with a logged warning. ``attention_slicing``: ``enable_attention_slicing`` with this slice size
    (``auto``: two slices, ``max``: one head at a time, an int n: head dim / n slices); it replaces the attention
    processors (``attention`` then has no effect) by matmul-softmax ones that hold each slice's attention matrix,
    so with torch 2 it takes more memory than SDPA, not less (README, Generation). ``attention``: ``sdpa`` keeps
    PyTorch's scaled-dot-product attention, which diffusers picks with torch 2; ``default`` is diffusers'
    ``set_default_attn_processor`` (plain matmul-softmax attention). ``vae_slicing`` decodes a batch one image at
    a time; ``vae_tiling`` decodes in overlapping tiles blended at the seams, which changes pixels when the image
    is larger than the VAE's ``sample_size`` (512 for SD v1.5): it is the only one of these options in an image's
    settings digest (see :data:`..config.EXECUTION_ONLY_OPTIONS`). Both VAE options are a config error for a
    pipeline without a VAE (DeepFloyd-IF).
    """

    offload: Literal["none", "model", "sequential"] = "none"
    attention_slicing: int | Literal["auto", "max"] | None = None
    attention: Literal["sdpa", "default"] = "sdpa"
    vae_tiling: bool = False
    vae_slicing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.attention_slicing, int) and self.attention_slicing < 1:
            raise ValueError(f"attention_slicing: expected 'auto', 'max' or an int >= 1, got {self.attention_slicing}")


@dataclass(frozen=True)
class DiffusersOptions(MemoryOptions):
    """Options of the generic backend; ``None`` leaves the pipeline's own default.

    ``variant``: weight-file variant to load (e.g. ``"fp16"``); ``"auto"`` picks ``"fp16"`` when the weights are
    loaded in float16 and the local folder (or cached snapshot) has fp16 files, else the full-precision files.
    ``call_kwargs`` are passed to the pipeline call as they are.
    """

    steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    negative_prompt: str | None = None
    variant: str | None = "auto"
    call_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StableDiffusionOptions(DiffusersOptions):
    """X-Paste's SD v1.5 settings: DPM-Solver++ (multistep, from the pipeline's scheduler config), 50 steps,
    guidance 7.5, 512x512. ``scheduler: pipeline`` keeps the scheduler saved with the pipeline."""

    steps: int | None = 50
    guidance_scale: float | None = 7.5
    height: int | None = 512
    width: int | None = 512
    scheduler: Literal["dpmsolver++", "pipeline"] = "dpmsolver++"


@dataclass(frozen=True)
class DeepFloydIFOptions(MemoryOptions):
    """DiverGen's IF settings (the diffusers defaults it relied on): stage I 64 px, 100 steps, guidance 7.0;
    stage II 256 px, 50 steps, guidance 4.0, noise level 250. ``stage2_path``: the IF-II pipeline (folder or
    repo id). ``negative_prompt: null`` is the empty-string embedding. ``variant`` as for :class:`DiffusersOptions`;
    the memory options (:class:`MemoryOptions`) apply to both stages.
    """

    stage2_path: str
    stage1_steps: int = 100
    stage1_guidance_scale: float = 7.0
    stage1_size: int = 64
    stage2_steps: int = 50
    stage2_guidance_scale: float = 4.0
    stage2_size: int = 256
    noise_level: int = 250
    negative_prompt: str | None = None
    variant: str | None = "auto"


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``model.dtype`` as a torch dtype; ``"auto"`` is float16 on CUDA and float32 elsewhere."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return _DTYPES[name]


class _PipelineBackend:
    """Shared by the backends: options, device and dtype, locating and loading pipelines, per-request seeding."""

    options_cls: type = DiffusersOptions

    def __init__(self, model: ModelConfig, device: str) -> None:
        self.model = model
        self.where = f"model {model.name} options"
        self.options = parse_options(self.options_cls, model.options, self.where)
        self.device = torch.device(device)
        self.dtype = resolve_dtype(model.dtype, self.device)
        self.offload = self.options.offload
        if self.offload != "none" and self.device.type == "cpu":
            log.warning("%s: offload %r skipped on device cpu, where the weights are already", self.where, self.offload)
            self.offload = "none"

    def _load(self, pipeline_cls: type, located: tuple[str, Path], variant: str | None, **kwargs: Any) -> Any:
        """Load a located pipeline in ``self.dtype``, without safety checker or watermarker, with its memory options."""
        source, folder = located
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        if variant == "auto":
            has_fp16 = any(".fp16." in f.name for f in folder.glob("*/*"))
            variant = "fp16" if self.dtype == torch.float16 and has_fp16 else None
        o = self.options
        if (o.vae_tiling or o.vae_slicing) and "vae" not in index:
            raise ConfigError(f"{self.where}: vae_tiling and vae_slicing need a pipeline with a VAE; {source} has none")
        kwargs = {name: None for name in _NOT_LOADED if name in index} | kwargs
        pipe = pipeline_cls.from_pretrained(
            source, dtype=self.dtype, variant=variant, local_files_only=not self.model.allow_download, **kwargs
        )
        pipe.set_progress_bar_config(disable=True)
        self._set_memory_options(pipe)
        return pipe

    def _set_memory_options(self, pipe: Any) -> None:
        """Apply :class:`MemoryOptions` to a loaded pipeline and put it on ``self.device`` (or offload it there)."""
        o = self.options
        if o.attention == "default":
            for module in pipe.components.values():
                if hasattr(module, "set_default_attn_processor"):
                    module.set_default_attn_processor()
        if o.attention_slicing is not None:
            pipe.enable_attention_slicing(o.attention_slicing)
        if o.vae_tiling:
            pipe.vae.enable_tiling()
        if o.vae_slicing:
            pipe.vae.enable_slicing()
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """One uint8 HxWx3 image per request, in order, all in one pipeline call."""
        if not requests:
            return []
        generators = [torch.Generator(self.device).manual_seed(r.seed) for r in requests]
        images = self._sample([r.prompt for r in requests], generators)
        pixels = (np.asarray(images, dtype=np.float32) * 255).round().clip(0, 255).astype(np.uint8)
        return [GeneratedImage(image=p) for p in pixels]

    def _sample(self, prompts: list[str], generators: list[torch.Generator]) -> np.ndarray:
        """Float images in [0, 1], shape (len(prompts), H, W, 3)."""
        raise NotImplementedError


class DiffusersGenerator(_PipelineBackend):
    """Any diffusers text-to-image pipeline (``DiffusionPipeline.from_pretrained``), called with ``output_type="np"``;
    steps, guidance, size and negative prompt are passed only when set in the options."""

    options_cls = DiffusersOptions
    pipeline_cls: type = DiffusionPipeline

    def __init__(self, model: ModelConfig, device: str) -> None:
        super().__init__(model, device)
        located = locate_pipeline(model.path, f"model {model.name}", model.allow_download)
        self.pipe = self._load(self.pipeline_cls, located, self.options.variant, **self._load_kwargs())

    def _load_kwargs(self) -> dict[str, Any]:
        return {}

    def _sample(self, prompts: list[str], generators: list[torch.Generator]) -> np.ndarray:
        o = self.options
        named = {
            "num_inference_steps": o.steps,
            "guidance_scale": o.guidance_scale,
            "height": o.height,
            "width": o.width,
        }
        kwargs = {k: v for k, v in named.items() if v is not None}
        if o.negative_prompt is not None:
            kwargs["negative_prompt"] = [o.negative_prompt] * len(prompts)
        out = self.pipe(prompt=prompts, generator=generators, output_type="np", **kwargs, **o.call_kwargs)
        return out.images


class StableDiffusionGenerator(DiffusersGenerator):
    """Stable Diffusion (``StableDiffusionPipeline``) with X-Paste's sampler settings (:class:`StableDiffusionOptions`).

    The safety checker is not loaded (``safety_checker=None``): it replaces flagged images by black ones.
    """

    options_cls = StableDiffusionOptions
    pipeline_cls = StableDiffusionPipeline

    def __init__(self, model: ModelConfig, device: str) -> None:
        super().__init__(model, device)
        if self.options.scheduler == "dpmsolver++":
            self.pipe.scheduler = DPMSolverMultistepScheduler.from_config(self.pipe.scheduler.config)

    def _load_kwargs(self) -> dict[str, Any]:
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


class DeepFloydIFGenerator(_PipelineBackend):
    """DeepFloyd-IF stage I (``IFPipeline``, ``model.path``) then stage II (``IFSuperResolutionPipeline``,
    ``options.stage2_path``); returns the stage II image.

    The T5 prompt embeddings (and the negative ones) are computed once by stage I's ``encode_prompt`` and reused
    by stage II, which is loaded without text encoder or tokenizer. Stage I hands its raw output
    (``output_type="pt"``) to stage II. No safety checker, no watermark.
    """

    options_cls = DeepFloydIFOptions

    def __init__(self, model: ModelConfig, device: str) -> None:
        super().__init__(model, device)
        stage1 = locate_pipeline(model.path, f"model {model.name}", model.allow_download)
        stage2 = locate_pipeline(
            self.options.stage2_path, f"model {model.name} stage II (options.stage2_path)", model.allow_download
        )
        no_checker = {"feature_extractor": None, "requires_safety_checker": False}
        self.stage1 = self._load(IFPipeline, stage1, self.options.variant, **no_checker)
        self.stage2 = self._load(
            IFSuperResolutionPipeline, stage2, self.options.variant, text_encoder=None, tokenizer=None, **no_checker
        )

    def _sample(self, prompts: list[str], generators: list[torch.Generator]) -> np.ndarray:
        o = self.options
        negative = None if o.negative_prompt is None else [o.negative_prompt] * len(prompts)
        embeds, negative_embeds = self.stage1.encode_prompt(prompts, negative_prompt=negative, device=self.device)
        shared = {"prompt_embeds": embeds, "negative_prompt_embeds": negative_embeds, "generator": generators}
        low = self.stage1(
            num_inference_steps=o.stage1_steps,
            guidance_scale=o.stage1_guidance_scale,
            height=o.stage1_size,
            width=o.stage1_size,
            output_type="pt",
            **shared,
        ).images
        return self.stage2(
            image=low,
            num_inference_steps=o.stage2_steps,
            guidance_scale=o.stage2_guidance_scale,
            noise_level=o.noise_level,
            height=o.stage2_size,
            width=o.stage2_size,
            output_type="np",
            **shared,
        ).images
