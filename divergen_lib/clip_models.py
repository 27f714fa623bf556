"""CLIP models for instance filtration: loading open_clip models offline, and the TOY CLIP of the demo profile.

:func:`load_clip` builds an open_clip model from its config name and loads weights from an open_clip pretrained
tag (resolved in the local Hugging Face cache only, unless ``allow_download``) or a local checkpoint file
(``torch.load(weights_only=True)`` or safetensors). A tag's QuickGELU flag and preprocessing are applied, so
``ViT-L-14`` + ``openai`` (DiverGen's feature extractor) is the model OpenAI trained.

:func:`toy_clip` trains the TOY CLIP: the small ``toyworld-clip`` architecture (``clip_configs/toyworld-clip.json``,
registered with open_clip on import), trained contrastively with open_clip's ``ClipLoss`` on toy-world training
crops and their category texts. It is a stand-in with which the demo runs the same filtration code as the paper
profile; its features say nothing about real CLIP models. The result is cached and loaded back through
:func:`load_clip`.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.transform import merge_preprocess_dict
from PIL import Image

from .clip_choice import ClipChoice, ToyClipConfig
from .config import ConfigError, settings_digest
from .crops import annotation_crops
from .errors import unreadable_weights_reason
from .formats import atomic_open, read_json, read_lvis, write_json
from .paths import from_root
from .toyworld import ToyWorld

TOY_CLIP_CONFIGS = Path(__file__).with_name("clip_configs")
TOY_CLIP_LABEL = "TOY CLIP: a tiny CLIP trained on toy-world crops, a stand-in for a real CLIP model"
TEXT_TEMPLATE = "a photo of a single {}"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")

open_clip.add_model_config(TOY_CLIP_CONFIGS)


@dataclass
class ClipModel:
    """An open_clip model in eval mode with its inference preprocessing and tokenizer."""

    name: str
    pretrained: str | None
    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    device: torch.device
    batch_size: int = 64

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings (N, D) float32 of uint8 HxWx3 RGB images."""
        starts = range(0, len(images), self.batch_size)
        out = [self.encode_pixels(preprocessed(self.preprocess, images[i : i + self.batch_size])) for i in starts]
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """L2-normalised embeddings (N, D) float32 of images already preprocessed (N, 3, H, W), as one batch."""
        return self.model.encode_image(pixels.to(self.device), normalize=True).float().cpu().numpy()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings (N, D) float32 of texts."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[i : i + self.batch_size]))
            out.append(self.model.encode_text(tokens.to(self.device), normalize=True).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim), np.float32)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])


def preprocessed(preprocess: Callable[[Image.Image], torch.Tensor], images: Sequence[np.ndarray]) -> torch.Tensor:
    """``preprocess`` (a :attr:`ClipModel.preprocess`) of each uint8 HxWx3 RGB image, stacked (N, 3, H, W)."""
    return torch.stack([preprocess(Image.fromarray(im)) for im in images])


def _tag_checkpoint(name: str, tag: str, tag_cfg: dict[str, Any], allow_download: bool) -> str:
    """The local file of an open_clip pretrained tag: the Hugging Face cache, or a download if allowed."""
    what = f"CLIP model {name} pretrained {tag!r}"
    if allow_download:
        try:
            return open_clip.download_pretrained(tag_cfg)
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{what}: download failed: {str(e).splitlines()[0]}") from None
    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        raise ConfigError(f"{what}: only downloadable from {tag_cfg.get('url')} and downloads are off (allow_download)")
    repo_id, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    candidates = [filename]
    if filename == HF_WEIGHTS_NAME:
        candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.insert(0, filename[:-4] + ".safetensors")
    for candidate in candidates:
        try:
            return hf_hub_download(repo_id, candidate, local_files_only=True)
        except LocalEntryNotFoundError:
            continue
    raise ConfigError(
        f"{what}: weights {repo_id}/{filename} not in the local Hugging Face cache "
        "and downloads are off (allow_download)"
    )


def locate_pretrained(name: str, pretrained: str, allow_download: bool = False) -> tuple[str, dict[str, Any]]:
    """The local weights file of ``pretrained`` (an open_clip tag of model ``name`` or a checkpoint file) and the
    extra ``create_model_and_transforms`` arguments a tag implies; one ConfigError when they cannot be had."""
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if tag_cfg:
        kwargs = {
            "force_quick_gelu": bool(tag_cfg.get("quick_gelu", False)),
            "force_preprocess_cfg": merge_preprocess_dict({}, tag_cfg),
        }
        return _tag_checkpoint(name, pretrained, tag_cfg, allow_download), kwargs
    if from_root(pretrained).is_file():
        return str(from_root(pretrained)), {}
    if Path(pretrained).suffix in CHECKPOINT_SUFFIXES:
        raise ConfigError(f"CLIP model {name}: checkpoint file {pretrained} not found")
    tags = open_clip.list_pretrained_tags_by_model(name)
    raise ConfigError(f"CLIP model {name}: {pretrained!r} is neither a pretrained tag {tags} nor a file")


class _RandomInitNotice(logging.Filter):
    """Drops open_clip's warning that a model was initialized randomly: asked for here (``pretrained=None``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


def load_clip(
    name: str, pretrained: str | None, device: str | torch.device = "cpu", allow_download: bool = False
) -> ClipModel:
    """Build open_clip model ``name`` with weights from ``pretrained``: an open_clip tag (e.g. ``openai``), a local
    ``.pt``/``.pth``/``.bin``/``.safetensors`` checkpoint (a state dict), or ``None`` for random weights.

    Tags resolve to files in the local Hugging Face cache unless ``allow_download``. Any problem is one
    :class:`ConfigError` line naming the model and the tag or file.
    """
    if name not in open_clip.list_models():
        raise ConfigError(f"CLIP model {name}: not an open_clip model config")
    checkpoint, kwargs = None, {}
    if pretrained is not None:
        checkpoint, kwargs = locate_pretrained(name, pretrained, allow_download)
    device = torch.device(device)
    notice, root = _RandomInitNotice(), logging.getLogger()
    if checkpoint is None:
        root.addFilter(notice)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=checkpoint, device=device, weights_only=True, **kwargs
        )
    except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as e:
        raise ConfigError(f"CLIP model {name}: cannot load {pretrained}: {unreadable_weights_reason(e)}") from None
    finally:
        root.removeFilter(notice)  # a no-op when it was not added
    model.eval()
    return ClipModel(name, pretrained, model, preprocess, open_clip.get_tokenizer(name), device)


def class_texts(class_names: Sequence[str]) -> list[str]:
    """``a photo of a single {name}`` per class, underscores as spaces."""
    return [TEXT_TEMPLATE.format(n.replace("_", " ")) for n in class_names]


def zero_shot_accuracy(
    clip: ClipModel, crops: Sequence[np.ndarray], labels: Sequence[int], class_names: Sequence[str]
) -> float:
    """Top-1 accuracy of classifying ``crops`` by their most similar class text; ``labels`` index ``class_names``."""
    if len(crops) != len(labels) or not crops:
        raise ValueError(f"need as many labels as crops (and at least one), got {len(crops)} and {len(labels)}")
    predicted = (clip.encode_images(crops) @ clip.encode_texts(class_texts(class_names)).T).argmax(axis=1)
    return float(np.mean(predicted == np.asarray(labels)))


@dataclass
class ToyClip:
    """A TOY CLIP: the loaded model, its checkpoint, its info json and whether this call trained it."""

    clip: ClipModel
    checkpoint: Path
    info: dict[str, Any]
    trained: bool


def world_crops(world: ToyWorld, split: str, padding: int) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Instance crops of a toy-world split (:func:`instance_crop`, blur fill), their category indices and the
    category names (sorted by id)."""
    data = read_lvis(world.json_path(split))
    categories = sorted(data["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    images = {im["id"]: im for im in data["images"]}
    anns = sorted(data["annotations"], key=lambda a: a["image_id"])  # stable: file order within an image
    crops, used = annotation_crops(images, anns, world.root, padding=padding)
    labels = [index[a["category_id"]] for a in used]
    return crops, labels, [c["name"] for c in categories]


def _cache_key(world: ToyWorld, cfg: ToyClipConfig) -> str:
    fingerprint = read_json(world.layout.world)["fingerprint"]
    arch = open_clip.get_model_config(cfg.model)
    return settings_digest(asdict(cfg), fingerprint, arch, open_clip.__version__)


def _train(clip: ClipModel, crops: list[np.ndarray], labels: list[int], names: list[str], cfg: ToyClipConfig) -> None:
    """Contrastive training in place: ``cfg.steps`` AdamW steps of ``ClipLoss`` on balanced batches."""
    model, device = clip.model, clip.device
    pixels = preprocessed(clip.preprocess, crops)
    tokens = clip.tokenizer(class_texts(names))
    labels_arr = np.asarray(labels)
    members = [np.flatnonzero(labels_arr == k) for k in range(len(names))]
    present = np.asarray([k for k, m in enumerate(members) if m.size])
    per_batch = min(cfg.batch_size, present.size)
    if per_batch < 2:
        raise ConfigError("toy CLIP training needs training crops of at least 2 categories")
    rng = np.random.default_rng(cfg.seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )

    def schedule(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    loss_fn = open_clip.ClipLoss()
    model.train()
    for _ in range(cfg.steps):
        cats = rng.choice(present, size=per_batch, replace=False)
        idx = np.asarray([rng.choice(members[k]) for k in cats])
        batch = pixels[idx].clone()
        flip = torch.from_numpy(rng.random(per_batch) < 0.5)
        batch[flip] = batch[flip].flip(-1)
        image_features, text_features, logit_scale = model(batch.to(device), tokens[cats].to(device))[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    model.eval()


def toy_clip(world: ToyWorld, cfg: ToyClipConfig, cache_dir: str | Path, device: str | torch.device = "cpu") -> ToyClip:
    """The TOY CLIP of ``world``: loaded from ``cache_dir/toy_clip-<hash>.pt`` if trained before with the same
    config, world and architecture, else trained on the world's train crops, evaluated zero-shot on its val crops,
    and cached (state dict + ``.json`` with its params, label and accuracy). Always returned as loaded by
    :func:`load_clip` from the cached file."""
    cache_dir = Path(cache_dir)
    stem = f"toy_clip-{_cache_key(world, cfg)}"
    checkpoint, info_path = cache_dir / f"{stem}.pt", cache_dir / f"{stem}.json"
    if checkpoint.is_file() and info_path.is_file():
        return ToyClip(load_clip(cfg.model, str(checkpoint), device), checkpoint, read_json(info_path), trained=False)

    torch.manual_seed(cfg.seed)
    clip = load_clip(cfg.model, None, device)
    crops, labels, names = world_crops(world, "train", cfg.crop_padding)
    start = time.perf_counter()
    _train(clip, crops, labels, names, cfg)
    train_seconds = time.perf_counter() - start
    val_crops, val_labels, val_names = world_crops(world, "val", cfg.crop_padding)
    with atomic_open(checkpoint, "wb", encoding=None) as f:
        torch.save(clip.model.state_dict(), f)
    loaded = load_clip(cfg.model, str(checkpoint), device)
    info = {
        "label": TOY_CLIP_LABEL,
        "model": cfg.model,
        "checkpoint": checkpoint.name,
        "params": asdict(cfg),
        "world": str(world.root),
        "n_train_crops": len(crops),
        "n_val_crops": len(val_crops),
        "n_categories": len(names),
        "train_seconds": round(train_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "zero_shot_val_accuracy": zero_shot_accuracy(loaded, val_crops, val_labels, val_names),
        "chance_accuracy": 1 / len(val_names),
    }
    write_json(info, info_path, indent=2)
    return ToyClip(loaded, checkpoint, info, trained=True)


def configured_clip(
    choice: ClipChoice, toy_cfg: ToyClipConfig, world_dir: str | Path, cache_dir: str | Path, device: str
) -> ClipModel:
    """The CLIP a params file asks for: the toy CLIP of the toy world at ``world_dir`` (trained by rank 0 if not
    cached yet, then loaded by every rank) or an open_clip model."""
    from .distributed import barrier, dist_info
    from .toyworld import load_toyworld

    if not choice.toy:
        return load_clip(choice.name, choice.pretrained, device, choice.allow_download)
    world = load_toyworld(world_dir)
    if not dist_info().is_main:
        barrier()  # rank 0 trains (or finds) the toy CLIP first; the others then load its cache
    toy = toy_clip(world, toy_cfg, cache_dir, device)
    if dist_info().is_main:
        barrier()
    return toy.clip
