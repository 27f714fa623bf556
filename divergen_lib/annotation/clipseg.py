"""The CLIPSeg annotator: X-Paste's text-prompted segmenter, on transformers' ``CLIPSegForImageSegmentation``.

X-Paste (``XP:segment_methods/reseg.py --seg_method clipseg``) prompts CLIPSeg with ``a photo of <name>`` and
thresholds the sigmoid map. Here the prompt is ``options.template`` with the image's category name (underscores as
spaces), the sigmoid map is resized back to the image with bilinear interpolation and thresholded at
``options.threshold``. X-Paste's MatteFormer matting on top of the map is not reproduced.

The checkpoint is a local folder holding both the model and its processor (``save_pretrained`` of each, as in a
copy of ``CIDAS/clipseg-rd64-refined``); nothing is downloaded. The processor must resize without cropping, so
that its map covers the whole image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

from ..config import ConfigError, parse_options
from ..prompts import display_name
from .base import AnnotatorConfig, existing_weights


@dataclass(frozen=True)
class ClipSegOptions:
    """``template``: the text prompt, with ``{name}`` for the category name (X-Paste: ``a photo of {name}``);
    ``threshold``: on the sigmoid of CLIPSeg's logits, between 0 and 1."""

    template: str = "a photo of {name}"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if "{name}" not in self.template:
            raise ValueError(f"template: must contain {{name}}, got {self.template!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold: expected a number between 0 and 1, got {self.threshold}")


class ClipSegAnnotator:
    """Object = where CLIPSeg, prompted with the category name, is above the threshold."""

    options_cls = ClipSegOptions

    def __init__(self, config: AnnotatorConfig, device: str = "cpu") -> None:
        where = f"annotation method {config.name}"
        self.options = parse_options(ClipSegOptions, config.options, f"{where} options")
        self.batch_size = config.batch_size
        self.device = torch.device(device)
        folder = existing_weights(config.checkpoint, where, "a CLIPSeg save_pretrained folder", folder=True)
        try:
            self.processor: Any = CLIPSegProcessor.from_pretrained(folder, local_files_only=True)
            model: Any = CLIPSegForImageSegmentation.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{where}: checkpoint {folder} is not a CLIPSeg model and processor ({first})") from None
        if getattr(self.processor.image_processor, "do_center_crop", False):
            raise ConfigError(
                f"{where}: the processor of {folder} crops images (do_center_crop); masks would not align"
            )
        self.model = model.to(self.device).eval()

    def prompts(self, names: Sequence[str]) -> list[str]:
        """The text prompt of each category name."""
        return [self.options.template.format(name=display_name(name)) for name in names]

    def raw_masks(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        """One boolean H×W object mask per uint8 H×W×3 RGB image, prompted with its category name;
        ``config.batch_size`` images per model call."""
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} category names")
        step = self.batch_size
        return [
            mask
            for start in range(0, len(images), step)
            for mask in self._batch(images[start : start + step], names[start : start + step])
        ]

    def _batch(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        pixels = [image if image.flags.writeable else image.copy() for image in images]  # torch wants writable arrays
        inputs = self.processor(
            text=self.prompts(names), images=pixels, padding=True, truncation=True, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            probabilities = self.model(**inputs).logits.float().sigmoid()  # batch x h x w
        masks = []
        for image, probability in zip(images, probabilities, strict=True):
            resized = torch.nn.functional.interpolate(
                probability[None, None], size=image.shape[:2], mode="bilinear", align_corners=False
            )
            masks.append((resized[0, 0] > self.options.threshold).cpu().numpy())
        return masks
