"""Generative model diversity: several text-to-image backends behind one interface, and the generation stage."""

from .base import BACKENDS, GeneratedImage, GenerationRequest, Generator, ModelConfig, build_generator, derive_seed

__all__ = [
    "BACKENDS",
    "GeneratedImage",
    "GenerationRequest",
    "Generator",
    "ModelConfig",
    "build_generator",
    "derive_seed",
]
