"""Random-weight test fixtures of the real Stable Diffusion v1.5 and DeepFloyd-IF pipeline architectures.

These are NOT models: every weight is random and the images are noise. They exist so that tests and
benchmarks can save a pipeline of the same classes (UNet, VAE, CLIP / T5 text encoder, tokenizer,
schedulers) to a folder and run the real diffusers loading and sampling code on it, with nothing
downloaded. Layer sizes are tiny; the tokenizers are real: the CLIP one is built from the CLIP BPE
vocabulary bundled with open_clip, the T5 one is a small SentencePiece model in IF's file layout.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    IFPipeline,
    IFSuperResolutionPipeline,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import (
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    PreTrainedTokenizerBase,
    T5Config,
    T5EncoderModel,
)

# CLIP's BPE file holds 49152 - 256 - 2 merges after its header line (the vocabulary size is 49408)
_CLIP_MERGES = 49152 - 256 - 2
_WORDS = "a photo of single the an object on white background cat dog car chair cup banana person red green blue"


def _clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's BPE vocabulary and merges, from the file bundled with open_clip."""
    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1 : _CLIP_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer() -> CLIPTokenizer:
    """The exact CLIP ViT-L/14 tokenizer (49408 tokens), built offline."""
    vocab, merges = _clip_bpe()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def t5_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """A small T5 tokenizer saved in ``folder`` the way IF-I-XL ships its own: a SentencePiece ``spiece.model``
    and a ``tokenizer_config.json``, no ``tokenizer.json`` (reading it needs sentencepiece and protobuf)."""
    import sentencepiece

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sentences = [" ".join(_WORDS.split()[k:] + _WORDS.split()[:k]) for k in range(len(_WORDS.split()))]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences * 20),
        model_prefix=str(folder / "spiece"),
        vocab_size=64,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (folder / "spiece.vocab").unlink()
    config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 77}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return AutoTokenizer.from_pretrained(folder)


def _unet(**kwargs: object) -> UNet2DConditionModel:
    return UNet2DConditionModel(layers_per_block=1, block_out_channels=(32, 64), **kwargs)


def build_tiny_sd(path: str | Path, seed: int = 0) -> Path:
    """Save a random-weight ``StableDiffusionPipeline`` (SD v1.5 classes and file layout; native size 32 px)."""
    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = _unet(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        latent_channels=4,
        sample_size=32,
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    # the tokenizer files as the SD v1.5 repository ships them: vocab.json + merges.txt, no tokenizer.json
    tokenizer_dir = Path(path) / "tokenizer"
    (tokenizer_dir / "tokenizer.json").unlink()
    vocab, merges = _clip_bpe()
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2", *(" ".join(m) for m in merges)]
    (tokenizer_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def _if_scheduler(learned_variance: bool) -> DDPMScheduler:
    extra = {}
    if learned_variance:
        extra = dict(
            variance_type="learned_range", thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.0
        )
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", **extra)


def build_tiny_if(stage1_path: str | Path, stage2_path: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Save random-weight DeepFloyd-IF stage I (``IFPipeline``, 16 px) and stage II (``IFSuperResolutionPipeline``,
    32 px) pipelines; like the real IF-II checkpoint, stage II has no text encoder of its own."""
    torch.manual_seed(seed)
    spiece_dir = Path(stage1_path).parent / f"{Path(stage1_path).name}_spiece"
    tokenizer = t5_tokenizer(spiece_dir)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    )
    # the IF UNet layout: ResNet up/down-sampling blocks, SimpleCrossAttn blocks, T5 states projected by the UNet
    if_unet = dict(
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        out_channels=6,
        cross_attention_dim=32,
        encoder_hid_dim=32,
        attention_head_dim=8,
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
    )
    stage1 = IFPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=_unet(sample_size=16, in_channels=3, **if_unet),
        scheduler=_if_scheduler(learned_variance=True),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    stage2 = IFSuperResolutionPipeline(
        tokenizer=tokenizer,
        text_encoder=None,
        # the low-resolution image is concatenated to the noisy input; the noise level enters as a class label
        unet=_unet(sample_size=32, in_channels=6, class_embed_type="timestep", **if_unet),
        scheduler=_if_scheduler(learned_variance=True),
        image_noising_scheduler=_if_scheduler(learned_variance=False),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )
    stage1.save_pretrained(stage1_path)
    stage2.save_pretrained(stage2_path)
    shutil.rmtree(Path(stage1_path) / "tokenizer")  # keep the SentencePiece layout of the real checkpoint
    shutil.move(spiece_dir, Path(stage1_path) / "tokenizer")
    return Path(stage1_path), Path(stage2_path)
