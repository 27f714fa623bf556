from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

from divergen_lib import clip_models
from divergen_lib.clip_models import ToyClipConfig, load_clip, toy_clip, world_crops, zero_shot_accuracy
from divergen_lib.config import ConfigError
from divergen_lib.crops import generated_instance, instance_crop
from divergen_lib.errors import InputError

TOY = "toyworld-clip"


def _image(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- crops -------------------------------------------------------------------------------------------------------


def test_instance_crop_blur_fill_and_tight_box_from_mask():
    image = _image()
    mask = np.zeros(image.shape[:2], bool)
    mask[20:30, 30:45] = True
    crop = instance_crop(image, mask, padding=5)
    assert crop.shape == (10 + 10, 15 + 10, 3)
    inside = crop[5:15, 5:20]
    np.testing.assert_array_equal(inside, image[20:30, 30:45])
    blurred = cv2.blur(image, (10, 10))
    np.testing.assert_array_equal(crop[:5], blurred[15:20, 25:50])
    assert not np.array_equal(crop[:5], image[15:20, 25:50])


def test_instance_crop_padding_clipped_at_borders_and_fills():
    image = _image()
    mask = np.zeros(image.shape[:2], bool)
    mask[0:4, 70:80] = True
    crop = instance_crop(image, mask, padding=40, fill="black")
    assert crop.shape == (44, 50, 3)
    outside = ~mask[0:44, 30:80]
    assert (crop[outside] == 0).all()
    assert (instance_crop(image, mask, padding=40, fill="white")[outside] == 255).all()
    np.testing.assert_array_equal(instance_crop(image, mask, padding=40, fill="original"), image[0:44, 30:80])


def test_generated_instance_background_and_errors():
    image = _image()
    mask = np.zeros(image.shape[:2], bool)
    mask[10:20, 10:20] = True
    black = generated_instance(image, mask)
    white = generated_instance(image, mask, background=(255, 255, 255))
    assert black.shape == image.shape
    assert (black[~mask] == 0).all() and (white[~mask] == 255).all()
    np.testing.assert_array_equal(black[mask], image[mask])
    empty = np.zeros_like(mask)
    with pytest.raises(InputError, match="empty mask"):
        instance_crop(image, empty)
    with pytest.raises(InputError, match="empty mask"):
        generated_instance(image, empty)
    with pytest.raises(InputError, match="fill"):
        instance_crop(image, mask, fill="grey")


# --- loading -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_toy_model():
    torch.manual_seed(1)
    return load_clip(TOY, None)


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_load_clip_from_checkpoint_file_reproduces_embeddings(tmp_path, random_toy_model, fmt):
    path = tmp_path / f"weights.{fmt}"
    state = {k: v.contiguous() for k, v in random_toy_model.model.state_dict().items()}
    torch.save(state, path) if fmt == "pt" else save_file(state, str(path))
    loaded = load_clip(TOY, str(path))
    images = [_image(50, 70, seed=s) for s in range(3)]
    texts = ["a photo of a single red cube", "a photo of a single blue ring"]
    expected = random_toy_model.encode_images(images)
    np.testing.assert_allclose(loaded.encode_images(images), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.encode_texts(texts), random_toy_model.encode_texts(texts), atol=1e-6)
    assert expected.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)
    fresh = load_clip(TOY, None)
    assert not np.allclose(fresh.encode_images(images), expected, atol=1e-3)


def test_load_clip_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found") as err:
        load_clip(TOY, str(tmp_path / "missing.pt"))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="neither a pretrained tag"):
        load_clip(TOY, "no-such-tag")
    with pytest.raises(ConfigError, match="not an open_clip model config"):
        load_clip("no-such-model", None)
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ConfigError, match="cannot load") as err:
        load_clip(TOY, str(wrong))
    assert "\n" not in str(err.value)


def test_uncached_pretrained_tag_is_one_config_error_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as err:
        load_clip("ViT-L-14", "openai")
    message = str(err.value)
    assert "\n" not in message
    assert "ViT-L-14" in message and "openai" in message and "downloads are off" in message


def test_pretrained_tag_resolves_in_local_hf_cache_preferring_safetensors(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--timm--vit_large_patch14_clip_224.openai"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors"):
        (snapshot / name).write_bytes(b"x")
    cfg = clip_models.open_clip.get_pretrained_cfg("ViT-L-14", "openai")
    path = clip_models._tag_checkpoint("ViT-L-14", "openai", cfg, allow_download=False)
    assert path.endswith("open_clip_model.safetensors") and path.startswith(str(snapshot))


# --- toy CLIP ----------------------------------------------------------------------------------------------------


def test_toy_clip_trains_caches_and_reloads(smoke_world, tmp_path):
    cfg = ToyClipConfig(steps=80, batch_size=24)
    first = toy_clip(smoke_world, cfg, tmp_path)
    assert first.trained and first.checkpoint.is_file()
    assert first.checkpoint.parent == tmp_path and first.checkpoint.name.startswith("toy_clip-")
    info = first.info
    assert "TOY" in info["label"] and info["n_categories"] == 30
    assert info["zero_shot_val_accuracy"] >= 3 * info["chance_accuracy"]

    crops, labels, names = world_crops(smoke_world, "val", cfg.crop_padding)
    assert zero_shot_accuracy(first.clip, crops, labels, names) == pytest.approx(info["zero_shot_val_accuracy"])

    start = time.perf_counter()
    second = toy_clip(smoke_world, cfg, tmp_path)
    assert not second.trained and second.checkpoint == first.checkpoint
    assert time.perf_counter() - start < 0.5 * info["train_seconds"]
    assert second.info == info
    np.testing.assert_array_equal(second.clip.encode_images(crops[:8]), first.clip.encode_images(crops[:8]))

    other = toy_clip(smoke_world, ToyClipConfig(steps=2, batch_size=4), tmp_path)
    assert other.trained and other.checkpoint != first.checkpoint


def test_toy_clip_config_validation():
    with pytest.raises(ConfigError, match="batch_size"):
        ToyClipConfig(batch_size=1)
    with pytest.raises(ConfigError, match="steps"):
        ToyClipConfig(steps=0)
