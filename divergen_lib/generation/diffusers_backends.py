"""Text-to-image backends on Hugging Face diffusers: Stable Diffusion (X-Paste), DeepFloyd-IF (DiverGen), any pipeline.

All three load their pipeline once, from a local folder or a repo id already in the Hugging Face cache
(``local_files_only`` unless the model sets ``allow_download``), and check that it exists before loading
anything, so a wrong path fails with one line. A call makes its whole batch in one pipeline call with one
``torch.Generator(device).manual_seed(request.seed)`` per request: the starting noise and every sampler
noise of an image come from its own seed only; no randomness is shared between the images of a batch. The
batch size can still move pixels slightly, since a batched network evaluation is not bit-identical to an
unbatched one and samplers amplify the rounding (bounds measured in tests/test_diffusers_backends.py).
Safety checkers and watermarkers are never loaded: they blank or mark images that the data pipeline
filters by its own rules.
"""

from __future__ import annotations

import json
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

from ..config import parse_options
from .base import GeneratedImage, GenerationRequest, ModelConfig
from .pipeline_files import locate_pipeline

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NOT_LOADED = ("safety_checker", "watermarker")


@dataclass(frozen=True)
class DiffusersOptions:
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
class DeepFloydIFOptions:
    """DiverGen's IF settings (the diffusers defaults it relied on): stage I 64 px, 100 steps, guidance 7.0;
    stage II 256 px, 50 steps, guidance 4.0, noise level 250. ``stage2_path``: the IF-II pipeline (folder or
    repo id). ``negative_prompt: null`` is the empty-string embedding. ``variant`` as for :class:`DiffusersOptions`.
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
        self.options = parse_options(self.options_cls, model.options, f"model {model.name} options")
        self.device = torch.device(device)
        self.dtype = resolve_dtype(model.dtype, self.device)

    def _load(self, pipeline_cls: type, located: tuple[str, Path], variant: str | None, **kwargs: Any) -> Any:
        """Load a located pipeline in ``self.dtype`` onto ``self.device``, without safety checker or watermarker."""
        source, folder = located
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        if variant == "auto":
            has_fp16 = any(".fp16." in f.name for f in folder.glob("*/*"))
            variant = "fp16" if self.dtype == torch.float16 and has_fp16 else None
        kwargs = {name: None for name in _NOT_LOADED if name in index} | kwargs
        pipe = pipeline_cls.from_pretrained(
            source, dtype=self.dtype, variant=variant, local_files_only=not self.model.allow_download, **kwargs
        )
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

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
