"""What every generator backend takes and returns, the backend registry, and per-image seeds.

A backend is a class built as ``Backend(model: ModelConfig, device: str)`` with one method,
``generate(requests) -> list[GeneratedImage]``, one result per request, in order. Randomness enters only
through each request's ``seed``, so any image can be regenerated alone and results do not depend on batch
size or on the number of processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

import numpy as np

from ..config import check_component
from ..prompts import PromptSource
from ..registry import Choice, Registry

# backend classes, imported only when used (diffusers is heavy); adding a backend: its module and one line here
BACKENDS: Registry[type] = Registry(
    "generation backend",
    {
        "toy": "divergen_lib.generation.toy:ToyGenerator",
        "stable_diffusion": "divergen_lib.generation.diffusers_backends:StableDiffusionGenerator",
        "deepfloyd_if": "divergen_lib.generation.diffusers_backends:DeepFloydIFGenerator",
        "diffusers": "divergen_lib.generation.diffusers_backends:DiffusersGenerator",
    },
)


@dataclass(frozen=True)
class ModelConfig:
    """One generative model of the ``generation.models`` list of a params file.

    ``path`` is a local folder or a Hugging Face repo id (read from the local cache unless
    ``allow_download``); ``options`` are the backend's own settings (steps, guidance, size, ...), checked by
    the backend, which raises ``ValueError`` naming an unknown or malformed option.
    """

    name: str
    backend: Annotated[str, Choice(BACKENDS)]
    path: str | None = None
    batch_size: int = 1
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    allow_download: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_component("model", self.name, self.batch_size)


@dataclass(frozen=True)
class GenerationRequest:
    """One image to make."""

    id: str
    category_id: int
    category_name: str
    prompt: str
    prompt_source: PromptSource
    prompt_index: int
    sample_index: int
    model: str
    seed: int


@dataclass
class GeneratedImage:
    """A generated RGB image (uint8 H×W×3) and, when the backend knows it, the true object mask."""

    image: np.ndarray
    mask: np.ndarray | None = None


class Generator(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]: ...


def derive_seed(base_seed: int, model: str, category_id: int, prompt_index: int, sample_index: int) -> int:
    """A 63-bit seed from (base seed, model, category, prompt index, sample index), stable across runs."""
    key = f"{base_seed}|{model}|{category_id}|{prompt_index}|{sample_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)


def backend_class(name: str) -> type:
    """The class of backend ``name`` (its ``options_cls`` is the dataclass its ``options`` must fit)."""
    return BACKENDS.get(name)


def build_generator(model: ModelConfig, device: str = "cpu") -> Generator:
    """Instantiate the backend named by ``model.backend``."""
    return backend_class(model.backend)(model, device)
