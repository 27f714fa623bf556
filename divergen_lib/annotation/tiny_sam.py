"""A random-weight test fixture of the real SAM architecture.

This is NOT a model: every weight is random and its masks mean nothing. It exists so that tests and
benchmarks can save a SAM state dict of the same ``segment_anything`` classes (ViT image encoder with
windowed and global attention, prompt encoder, two-way mask decoder) and load it through the real
checkpoint loader of :mod:`divergen_lib.annotation.sam`, with nothing downloaded. It is small (64 px
input, two encoder blocks, 32-d embeddings) so that it runs in milliseconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .sam import SamSpec, build_sam, register_sam_spec

TINY_MODEL_TYPE = "tiny"
TINY_SAM_SPEC = SamSpec(
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    image_size=64,
    patch_size=8,
    window_size=4,
    prompt_embed_dim=32,
    mask_in_chans=4,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_hidden_dim=32,
)


def build_tiny_sam(path: str | Path, seed: int = 0) -> Path:
    """Register :data:`TINY_SAM_SPEC` as model type ``"tiny"`` and save a random SAM of it to ``path`` (a ``.pth``).

    Parameters SAM initialises to zero (absolute and relative position embeddings) get random values too, so that
    every tensor of the checkpoint matters. The same ``seed`` gives the same file contents.
    """
    register_sam_spec(TINY_MODEL_TYPE, TINY_SAM_SPEC)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam(TINY_SAM_SPEC)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "pos" in name.rsplit(".", 1)[-1]:
                    param.normal_(0.0, 0.1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
