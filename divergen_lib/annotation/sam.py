"""SAM annotators: DiverGen's SAM-background and the SAM-foreground ablation, on ``segment_anything``.

SAM-background (``DG:segmentation/get_background_sam_mask.py``) prompts SAM with the four image corners as
positive points, takes one of its three multimask outputs as the background and inverts it. Two bugs of the
released script are fixed: the corners are given in SAM's (x, y) order, not (row, col), and every corner
keeps the margin. SAM-foreground prompts with the image centre and keeps the chosen mask as it is.

Checkpoints are local ``.pth`` state dicts read with ``weights_only=True``. A model type names an
architecture spec (:data:`SAM_SPECS`: the three real SAM sizes, plus whatever tests register); the model is
assembled from ``segment_anything.modeling`` on the meta device, the file's keys and shapes are checked
against it (one-line ``ConfigError``), then the weights are assigned without any random initialisation.

Images are resized as ``SamPredictor.set_image`` does and go through ``Sam.forward``, SAM's own batched
path: ``batch_size`` images share one image-encoder call, prompts are decoded per image. On CUDA the model
runs under autocast (``autocast`` option); on other devices in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.utils.transforms import ResizeLongestSide

from ..config import ConfigError, parse_options
from ..errors import InputError, unreadable_weights_reason
from .base import AnnotatorConfig, existing_weights

MaskChoice = Literal[0, 1, 2, "best_score"]
Autocast = Literal["auto", "float16", "bfloat16", "off"]


@dataclass(frozen=True)
class SamSpec:
    """Architecture hyper-parameters of a SAM model; the defaults are those ``segment_anything.build_sam`` uses
    for every size (1024 px input, 16 px patches, 256-d prompt space, two-layer two-way decoder)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256


SAM_SPECS: dict[str, SamSpec] = {
    "vit_h": SamSpec(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamSpec(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamSpec(768, 12, 12, (2, 5, 8, 11)),
}


def register_sam_spec(name: str, spec: SamSpec) -> None:
    """Make ``name`` a valid ``model_type`` (tests register tiny architectures this way)."""
    SAM_SPECS[name] = spec


def _modules(spec: SamSpec) -> tuple[ImageEncoderViT, PromptEncoder, MaskDecoder]:
    grid = spec.image_size // spec.patch_size
    encoder = ImageEncoderViT(
        depth=spec.encoder_depth,
        embed_dim=spec.encoder_embed_dim,
        img_size=spec.image_size,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=spec.encoder_num_heads,
        patch_size=spec.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=spec.encoder_global_attn_indexes,
        window_size=spec.window_size,
        out_chans=spec.prompt_embed_dim,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=spec.prompt_embed_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(spec.image_size, spec.image_size),
        mask_in_chans=spec.mask_in_chans,
    )
    transformer = TwoWayTransformer(
        depth=spec.decoder_depth,
        embedding_dim=spec.prompt_embed_dim,
        mlp_dim=spec.decoder_mlp_dim,
        num_heads=spec.decoder_num_heads,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=transformer,
        transformer_dim=spec.prompt_embed_dim,
        iou_head_depth=spec.iou_head_depth,
        iou_head_hidden_dim=spec.iou_head_hidden_dim,
    )
    return encoder, prompt_encoder, decoder


def build_sam(spec: SamSpec) -> Sam:
    """A randomly initialised SAM of architecture ``spec`` (float32, CPU, eval mode)."""
    return Sam(*_modules(spec)).eval()


def _meta_sam(spec: SamSpec) -> Sam:
    """A SAM whose parameters are shapes only (meta device); its pixel mean/std buffers are real."""
    with torch.device("meta"):
        modules = _modules(spec)
    return Sam(*modules)


def expected_shapes(model_type: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor a ``model_type`` checkpoint must hold."""
    return {k: tuple(v.shape) for k, v in _meta_sam(SAM_SPECS[model_type]).state_dict().items()}


def _mismatch(expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from fitting ``expected`` (empty if it fits)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} in the file, {expected[k]} expected)"
        )
    return ", ".join(parts)


def load_sam(checkpoint: Path | None, model_type: str, device: str | torch.device, where: str) -> Sam:
    """Load a SAM ``.pth`` state dict of architecture ``model_type`` onto ``device`` (float32, eval mode).

    Any problem with the type or the file is one ``ConfigError`` line starting with ``where``.
    """
    if model_type not in SAM_SPECS:
        raise ConfigError(f"{where}: unknown model_type {model_type!r} (known: {', '.join(SAM_SPECS)})")
    path = existing_weights(checkpoint, where, f"a SAM {model_type} .pth file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises anything from KeyError to UnpicklingError on a bad file
        reason = unreadable_weights_reason(err)
        raise ConfigError(
            f"{where}: checkpoint {path} cannot be read as PyTorch weights ({type(err).__name__}: {reason})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = f"a mapping with keys {list(state)[:5]}" if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"{where}: checkpoint {path} is not a state dict of tensors (found {found})")
    problem = _mismatch(expected_shapes(model_type), state)
    if problem:
        fits = [name for name in SAM_SPECS if name != model_type and not _mismatch(expected_shapes(name), state)]
        hint = f"; it fits model_type {fits[0]}" if fits else ""
        raise ConfigError(f"{where}: checkpoint {path} does not fit SAM {model_type}: {problem}{hint}")
    model = _meta_sam(SAM_SPECS[model_type])
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=torch.float32).eval()


def corner_points(height: int, width: int, margin: int) -> np.ndarray:
    """The four corner prompts of SAM-background in SAM's (x, y) pixel order, ``margin`` pixels in from each border:
    top-left, top-right, bottom-left, bottom-right."""
    if 2 * margin >= min(height, width):
        raise InputError(f"corner_margin {margin} does not fit a {height}x{width} image")
    right, bottom = width - 1 - margin, height - 1 - margin
    return np.array([[margin, margin], [right, margin], [margin, bottom], [right, bottom]], dtype=np.float64)


def centre_point(height: int, width: int) -> np.ndarray:
    """The SAM-foreground prompt: the image centre, (x, y) in pixel-index coordinates, shape (1, 2)."""
    return np.array([[(width - 1) / 2, (height - 1) / 2]], dtype=np.float64)


def autocast_dtype(setting: Autocast, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``setting`` on ``device``; ``None`` (float32) off CUDA or when ``"off"``.
    ``"auto"`` is bfloat16 where the GPU supports it, else float16."""
    if device.type != "cuda" or setting == "off":
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[setting]


@dataclass(frozen=True)
class SamBackgroundOptions:
    """``corner_margin``: pixels between each corner prompt and the border (DiverGen's ``--corner_margin``, 0 in
    its DATA.md). ``mask_choice``: which multimask output is the background, an index (DiverGen: 2, the
    coarsest) or ``best_score`` (highest predicted IoU). ``autocast``: CUDA precision, see :func:`autocast_dtype`."""

    corner_margin: int = 0
    mask_choice: MaskChoice = 2
    autocast: Autocast = "auto"

    def __post_init__(self) -> None:
        if self.corner_margin < 0:
            raise ValueError(f"corner_margin: expected an integer >= 0, got {self.corner_margin}")


@dataclass(frozen=True)
class SamForegroundOptions:
    """``mask_choice``: which multimask output is the object (default: highest predicted IoU);
    ``autocast`` as for :class:`SamBackgroundOptions`."""

    mask_choice: MaskChoice = "best_score"
    autocast: Autocast = "auto"


class _SamAnnotator:
    """Shared by both annotators: options, model, batching through ``Sam.forward`` and the mask choice."""

    options_cls: type
    invert: bool

    def __init__(self, config: AnnotatorConfig, device: str) -> None:
        where = f"annotation method {config.name}"
        self.config = config
        self.options = parse_options(self.options_cls, config.options, f"{where} options")
        self.device = torch.device(device)
        self.autocast = autocast_dtype(self.options.autocast, self.device)
        self.model = load_sam(config.checkpoint, config.model_type, self.device, where)
        self.transform = ResizeLongestSide(self.model.image_encoder.img_size)

    def prompt_points(self, height: int, width: int) -> np.ndarray:
        """The positive point prompts, (x, y), shape (N, 2), of an image of this size."""
        raise NotImplementedError

    def raw_masks(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        """One boolean H×W object mask per uint8 H×W×3 RGB image (``names`` unused: SAM is prompted with points);
        ``config.batch_size`` images per encoder call."""
        step = self.config.batch_size
        return [mask for start in range(0, len(images), step) for mask in self._batch(images[start : start + step])]

    def _record(self, image: np.ndarray) -> dict[str, Any]:
        """``Sam.forward``'s input for one image: resized as ``SamPredictor.set_image`` does, prompts in that frame."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {image.dtype} {image.shape}")
        size = image.shape[:2]
        pixels = torch.as_tensor(self.transform.apply_image(image), device=self.device).permute(2, 0, 1).contiguous()
        points = self.transform.apply_coords(self.prompt_points(*size), size)
        return {
            "image": pixels,
            "original_size": size,
            "point_coords": torch.as_tensor(points, dtype=torch.float, device=self.device)[None],
            "point_labels": torch.ones((1, len(points)), dtype=torch.int, device=self.device),
        }

    def _batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        records = [self._record(image) for image in images]
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None),
        ):
            outputs = self.model(records, multimask_output=True)
        return [self._choose(out["masks"][0], out["iou_predictions"][0]) for out in outputs]

    def _choose(self, masks: torch.Tensor, scores: torch.Tensor) -> np.ndarray:
        choice = self.options.mask_choice
        index = int(scores.float().argmax()) if choice == "best_score" else choice
        mask = masks[index].cpu().numpy()
        return ~mask if self.invert else mask


class SamBackgroundAnnotator(_SamAnnotator):
    """DiverGen's SAM-background: the four corners as positive points; the chosen mask is the background, inverted."""

    options_cls = SamBackgroundOptions
    invert = True

    def prompt_points(self, height: int, width: int) -> np.ndarray:
        return corner_points(height, width, self.options.corner_margin)


class SamForegroundAnnotator(_SamAnnotator):
    """The SAM-foreground ablation: the image centre as one positive point; the chosen mask is the object."""

    options_cls = SamForegroundOptions
    invert = False

    def prompt_points(self, height: int, width: int) -> np.ndarray:
        return centre_point(height, width)
