"""Which CLIP a stage uses, and how the toy CLIP is trained: the params side of :mod:`divergen_lib.clip_models`,
importable without torch."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigError


@dataclass(frozen=True)
class ClipChoice:
    """The CLIP that embeds images and texts: an open_clip model by config name and pretrained tag or local
    file (paper: ``ViT-L-14`` / ``openai``), or the TOY CLIP (``toy: true``), trained once on a toy world and
    cached."""

    name: str = "ViT-L-14"
    pretrained: str | None = "openai"
    toy: bool = False
    allow_download: bool = False


@dataclass(frozen=True)
class ToyClipConfig:
    """Training of the TOY CLIP (demo profile). The architecture is the open_clip config ``model`` (its image
    size, widths and depths are in ``clip_configs/<model>.json``). Each step draws ``batch_size`` distinct
    categories uniformly (balanced over the long tail) and one training crop of each, randomly flipped.
    """

    model: str = "toyworld-clip"
    steps: int = 350
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    crop_padding: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"toy_clip.steps must be >= 1, got {self.steps}")
        if self.batch_size < 2:
            raise ConfigError(f"toy_clip.batch_size must be >= 2 (contrastive pairs), got {self.batch_size}")
        if self.crop_padding < 0:
            raise ConfigError(f"toy_clip.crop_padding must be >= 0, got {self.crop_padding}")
