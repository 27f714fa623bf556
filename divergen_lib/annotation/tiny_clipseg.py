"""A random-weight test fixture of the real CLIPSeg architecture.

This is NOT a model: every weight is random and its masks mean nothing. It exists so that tests and benchmarks can
save a ``CLIPSegForImageSegmentation`` with its processor (a CLIP tokenizer over a character vocabulary, a CLIP image
processor) and load it through the real ``from_pretrained`` path of :mod:`divergen_lib.annotation.clipseg`, with
nothing downloaded. It is small (32 px input, 8 px patches, two vision layers, 16-d embeddings) so that it runs in
milliseconds on a CPU.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import (
    CLIPImageProcessor,
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPTokenizer,
)

TINY_IMAGE_SIZE = 32
SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def tiny_processor() -> CLIPSegProcessor:
    """A CLIPSeg processor whose tokenizer knows single characters only (no merges) and whose image processor
    resizes to :data:`TINY_IMAGE_SIZE` without cropping."""
    chars = string.ascii_lowercase + string.digits + "-'"
    tokens = [*SPECIALS, *chars, *(c + "</w>" for c in chars)]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)
    images = CLIPImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}, do_center_crop=False, crop_size=None
    )
    return CLIPSegProcessor(image_processor=images, tokenizer=tokenizer)


def tiny_config(vocab_size: int) -> CLIPSegConfig:
    """Two vision layers (both extracted for the decoder), one text layer, 16-d embeddings."""
    text = {
        "vocab_size": vocab_size,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    vision = {
        "image_size": TINY_IMAGE_SIZE,
        "patch_size": 8,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    return CLIPSegConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=16,
        extract_layers=[0, 1],
        reduce_dim=8,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )


def build_tiny_clipseg(folder: str | Path, seed: int = 0) -> Path:
    """Save a random tiny CLIPSeg model and its processor into ``folder`` (``save_pretrained`` of both); the same
    ``seed`` gives the same weights."""
    processor = tiny_processor()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPSegForImageSegmentation(tiny_config(len(processor.tokenizer))).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
