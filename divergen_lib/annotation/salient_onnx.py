"""The salient-object annotator: any U²-Net / IS-Net ONNX export through onnxruntime.

U²-Net is one of X-Paste's four segmenters (``XP:segment_methods/U-2-Net/export.py``); IS-Net (DIS) is its
successor by the same authors. Both take one RGB image resized to a square and give one saliency map per image,
class-agnostic (no prompt). Each image is resized to ``input_size``², normalised per channel as
``(pixel - mean) / std`` on 0-255 values, and run alone (exports have a fixed batch of 1); the chosen output map is
resized back to the image (bilinear), min-max normalised as DIS and X-Paste do, and thresholded.

The defaults are those of the IS-Net export in ``../shared/models/`` (its README: ``(x - 128) / 256``, 1024²
input, output 0). A U²-Net export (rembg's ``u2net.onnx``) takes ``input_size: 320`` and ImageNet's
normalisation, ``mean: [123.675, 116.28, 103.53]``, ``std: [58.395, 57.12, 57.375]``. Runs on onnxruntime's CPU
provider, or its CUDA provider when the device is CUDA and the installed onnxruntime has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from ..config import ConfigError, parse_options
from .base import AnnotatorConfig, existing_weights

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class SalientOnnxOptions:
    """``input_size``: the square side the image is resized to (IS-Net 1024, U²-Net 320); ``mean``, ``std``: the RGB
    normalisation ``(pixel - mean) / std`` on 0-255 values; ``output``: which output of the graph is the saliency map;
    ``threshold``: on the min-max normalised map, between 0 and 1."""

    input_size: int = 1024
    mean: Triple = (128.0, 128.0, 128.0)
    std: Triple = (256.0, 256.0, 256.0)
    output: int = 0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.input_size < 1:
            raise ValueError(f"input_size: expected an integer >= 1, got {self.input_size}")
        if min(self.std) <= 0:
            raise ValueError(f"std: expected positive numbers, got {list(self.std)}")
        if self.output < 0:
            raise ValueError(f"output: expected an integer >= 0, got {self.output}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold: expected a number between 0 and 1, got {self.threshold}")


def providers(device: str) -> list[str]:
    """onnxruntime's CUDA provider (then CPU) for a CUDA device where it is installed; else the CPU provider."""
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def normalised(saliency: np.ndarray) -> np.ndarray:
    """``saliency`` min-max normalised to [0, 1]; all zeros when it is flat."""
    low, high = float(saliency.min()), float(saliency.max())
    return (saliency - low) / (high - low) if high > low else np.zeros_like(saliency)


class SalientOnnxAnnotator:
    """Object = the salient region of a U²-Net / IS-Net ONNX export, thresholded."""

    options_cls = SalientOnnxOptions

    def __init__(self, config: AnnotatorConfig, device: str = "cpu") -> None:
        where = f"annotation method {config.name}"
        self.options = parse_options(SalientOnnxOptions, config.options, f"{where} options")
        path = existing_weights(config.checkpoint, where, "a U²-Net / IS-Net .onnx file")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers(device))
        except Exception as err:  # onnxruntime raises its own exception types on a bad file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{where}: checkpoint {path} cannot be read as an ONNX model ({first})") from None
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        size = self.options.input_size
        fixed = [d for d in graph_input.shape[2:] if isinstance(d, int)]
        if len(graph_input.shape) != 4 or any(d != size for d in fixed):
            raise ConfigError(
                f"{where}: input_size {size} does not fit the model's input {graph_input.name} {graph_input.shape}"
            )
        outputs = self.session.get_outputs()
        if self.options.output >= len(outputs):
            raise ConfigError(f"{where} options: output {self.options.output}: the model has {len(outputs)} outputs")
        self.output_name = outputs[self.options.output].name

    def _input(self, image: np.ndarray) -> np.ndarray:
        """The model's 1×3×S×S float32 input for a uint8 H×W×3 RGB image."""
        o = self.options
        resized = cv2.resize(image, (o.input_size, o.input_size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        pixels = (resized - np.array(o.mean, np.float32)) / np.array(o.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])

    def saliency(self, image: np.ndarray) -> np.ndarray:
        """The min-max normalised float32 H×W saliency map of a uint8 H×W×3 RGB image."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {image.dtype} {image.shape}")
        result: Any = self.session.run([self.output_name], {self.input_name: self._input(image)})[0]
        height, width = image.shape[:2]
        resized = cv2.resize(np.asarray(result, np.float32).reshape(result.shape[-2:]), (width, height))
        return normalised(resized)

    def raw_masks(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        """One boolean H×W object mask per uint8 H×W×3 RGB image (``names`` unused: the model takes no prompt)."""
        return [self.saliency(image) > self.options.threshold for image in images]
