"""Stable Diffusion and DeepFloyd-IF backends: images/s and peak memory per memory recipe, at batch 1 vs batch 8.

Times ``generate`` of the real backends with the paper settings (``--steps`` overrides the sampler steps for a
quicker run), once per memory recipe (:data:`RECIPES`, the backends' memory options), and prints images/s, peak
memory and the batch-8 / batch-1 throughput ratio:

    .venv/bin/python benchmarks/generation_diffusers.py --sd-path /weights/stable-diffusion-v1-5 \\
        --if-stage1 /weights/IF-I-XL-v1.0 --if-stage2 /weights/IF-II-L-v1.0

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak resident set (Linux ``VmHWM``,
reset before each timing) on the CPU. Without weights (or with ``--tiny``) it times the random-weight test
pipelines, and without a CUDA GPU it runs on the CPU, where the offload recipes are left out (the backends skip
offload there): those numbers check the code path and are not the real models' speed or memory. Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from divergen_lib.generation import GenerationRequest, ModelConfig, build_generator

NAMES = ["banana", "cat", "chair", "teapot", "bicycle", "umbrella", "zebra", "backpack"]
TINY_SD = {"height": 32, "width": 32}
TINY_IF = {"stage1_size": 16, "stage2_size": 32}
# memory recipes: name -> (backend options, whether they apply to DeepFloyd-IF, which has no VAE)
RECIPES: dict[str, tuple[dict[str, Any], bool]] = {
    "plain": ({}, True),
    "attention_slicing": ({"attention_slicing": "auto"}, True),
    "vae_slicing+tiling": ({"vae_slicing": True, "vae_tiling": True}, False),
    "model_offload": ({"offload": "model"}, True),
    "sequential_offload": ({"offload": "sequential"}, True),
}
OFFLOAD = ("model_offload", "sequential_offload")


def requests(n: int, model: str) -> list[GenerationRequest]:
    """``n`` distinct X-Paste-style prompts and seeds."""
    names = [NAMES[i % len(NAMES)] for i in range(n)]
    return [
        GenerationRequest(f"{i}", i, name, f"a photo of a single {name}", "template", 0, i, model, 1000 + i)
        for i, name in enumerate(names)
    ]


def reset_peak(cuda: bool) -> None:
    """Restart the peak-memory count: CUDA's allocator statistics, or the process's peak resident set (Linux)."""
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory(cuda: bool) -> str:
    """Peak GPU memory allocated, or peak resident set of the process, since :func:`reset_peak`."""
    if cuda:
        torch.cuda.synchronize()
        return f"{torch.cuda.max_memory_allocated() / 2**30:.3f} GiB GPU"
    status = Path("/proc/self/status").read_text().splitlines()
    kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return f"{kib / 2**20:.3f} GiB RSS"


def time_model(model: ModelConfig, device: str, batch_sizes: list[int], repeats: int) -> list[tuple[int, float, str]]:
    """(batch size, images/s, peak memory) per batch size, after one untimed warm-up call each."""
    generator = build_generator(model, device)
    cuda = torch.device(device).type == "cuda"
    rows = []
    for batch in batch_sizes:
        batch_requests = requests(batch, model.name)
        generator.generate(batch_requests)
        reset_peak(cuda)
        start = time.perf_counter()
        for _ in range(repeats):
            generator.generate(batch_requests)
        peak = peak_memory(cuda)
        rows.append((batch, batch * repeats / (time.perf_counter() - start), peak))
    return rows


def models(args: argparse.Namespace, tiny_dir: Path) -> list[ModelConfig]:
    """The models to time: the given weights, or the random-weight test pipelines with ``--tiny``."""
    batch = max(args.batch_sizes)
    sd_steps = {"steps": args.steps} if args.steps else {}
    if_steps = {"stage1_steps": args.steps, "stage2_steps": args.steps} if args.steps else {}
    sd_path, if1, if2 = args.sd_path, args.if_stage1, args.if_stage2
    sd_extra, if_extra = {}, {}
    if args.tiny or not (sd_path or if1):
        from divergen_lib.generation.tiny_pipelines import build_tiny_if, build_tiny_sd

        sd_path = str(build_tiny_sd(tiny_dir / "sd"))
        if1, if2 = (str(p) for p in build_tiny_if(tiny_dir / "if1", tiny_dir / "if2"))
        sd_extra, if_extra = TINY_SD, TINY_IF
    out = []
    if sd_path:
        options = {**sd_steps, **sd_extra}
        out.append(ModelConfig("sd", "stable_diffusion", sd_path, batch, args.dtype, options=options))
    if if1:
        options = {"stage2_path": if2, **if_steps, **if_extra}
        out.append(ModelConfig("deepfloyd_if", "deepfloyd_if", if1, batch, args.dtype, options=options))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-path", help="Stable Diffusion pipeline folder (or repo id in the local HF cache)")
    parser.add_argument("--if-stage1", help="DeepFloyd IF-I pipeline folder (or cached repo id)")
    parser.add_argument("--if-stage2", help="DeepFloyd IF-II pipeline folder (or cached repo id)")
    parser.add_argument("--tiny", action="store_true", help="time the random-weight test pipelines instead")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda, else cpu)")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES), help="memory recipes")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per batch size (default 2)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the paper settings)")
    args = parser.parse_args()
    if bool(args.if_stage1) != bool(args.if_stage2):
        parser.error("--if-stage1 and --if-stage2 go together")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        args.device = "cpu"
    cuda = torch.device(args.device).type == "cuda"
    recipes = [r for r in args.recipes if cuda or r not in OFFLOAD]
    device_name = torch.cuda.get_device_name(args.device) if cuda else "CPU"
    print(f"device {device_name}, torch {torch.__version__}, dtype {args.dtype}, {args.repeats} timed calls")
    if args.tiny or not (args.sd_path or args.if_stage1):
        print(f"TINY RANDOM-WEIGHT PIPELINES on {device_name}: a check of the code path, not the real models' numbers")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models(args, Path(tmp)):
            for recipe in recipes:
                options, for_if = RECIPES[recipe]
                if model.backend == "deepfloyd_if" and not for_if:
                    continue
                recipe_model = replace(model, options={**model.options, **options})
                rows = time_model(recipe_model, args.device, args.batch_sizes, args.repeats)
                label = f"{model.name:12s} {recipe:18s}"
                for batch, rate, peak in rows:
                    print(f"  {label} batch {batch:2d}: {rate:8.3f} images/s   peak memory {peak}")
                (b0, r0, _), (b1, r1, _) = rows[0], rows[-1]
                print(f"  {label} batch {b1} / batch {b0} throughput ratio: {r1 / r0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
