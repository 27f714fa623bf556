"""Stable Diffusion and DeepFloyd-IF backends: images/s at batch 1 vs batch 8 on a CUDA GPU, from local weights.

Times ``generate`` of the real backends with the paper settings (``--steps`` overrides the sampler steps for a
quicker run) and prints the batch-8 / batch-1 throughput ratio and peak GPU memory:

    .venv/bin/python benchmarks/generation_diffusers.py --sd-path /weights/stable-diffusion-v1-5 \\
        --if-stage1 /weights/IF-I-XL-v1.0 --if-stage2 /weights/IF-II-L-v1.0

``--tiny`` times the random-weight test pipelines instead: it checks the code path, not real speed. Nothing is
downloaded; without a CUDA GPU (unless ``--device cpu``) or without weights it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from divergen_lib.generation import GenerationRequest, ModelConfig, build_generator

NAMES = ["banana", "cat", "chair", "teapot", "bicycle", "umbrella", "zebra", "backpack"]
TINY_SD = {"height": 32, "width": 32}
TINY_IF = {"stage1_size": 16, "stage2_size": 32}


def requests(n: int, model: str) -> list[GenerationRequest]:
    """``n`` distinct X-Paste-style prompts and seeds."""
    names = [NAMES[i % len(NAMES)] for i in range(n)]
    return [
        GenerationRequest(f"{i}", i, name, f"a photo of a single {name}", "template", 0, i, model, 1000 + i)
        for i, name in enumerate(names)
    ]


def time_model(model: ModelConfig, device: str, batch_sizes: list[int], repeats: int) -> list[tuple[int, float, str]]:
    """(batch size, images/s, peak GPU memory) per batch size, after one untimed warm-up call each."""
    generator = build_generator(model, device)
    cuda = torch.device(device).type == "cuda"
    rows = []
    for batch in batch_sizes:
        batch_requests = requests(batch, model.name)
        generator.generate(batch_requests)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(repeats):
            generator.generate(batch_requests)
        if cuda:
            torch.cuda.synchronize()
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "-"
        rows.append((batch, batch * repeats / (time.perf_counter() - start), peak))
    return rows


def models(args: argparse.Namespace, tiny_dir: Path) -> list[ModelConfig]:
    """The models to time: the given weights, or the random-weight test pipelines with ``--tiny``."""
    batch = max(args.batch_sizes)
    sd_steps = {"steps": args.steps} if args.steps else {}
    if_steps = {"stage1_steps": args.steps, "stage2_steps": args.steps} if args.steps else {}
    sd_path, if1, if2 = args.sd_path, args.if_stage1, args.if_stage2
    sd_extra, if_extra = {}, {}
    if args.tiny:
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
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per batch size (default 2)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the paper settings)")
    args = parser.parse_args()
    if bool(args.if_stage1) != bool(args.if_stage2):
        parser.error("--if-stage1 and --if-stage2 go together")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU: nothing timed (pass --device cpu to time on the CPU anyway)")
        return 0
    if not (args.sd_path or args.if_stage1 or args.tiny):
        print("no weights given (--sd-path, --if-stage1 with --if-stage2, or --tiny): nothing timed")
        return 0
    device_name = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "CPU"
    print(f"device {device_name}, torch {torch.__version__}, dtype {args.dtype}, {args.repeats} timed calls")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models(args, Path(tmp)):
            rows = time_model(model, args.device, args.batch_sizes, args.repeats)
            for batch, rate, peak in rows:
                print(f"  {model.name:13s} batch {batch:2d}: {rate:8.3f} images/s   peak GPU memory {peak}")
            (b0, r0, _), (b1, r1, _) = rows[0], rows[-1]
            print(f"  {model.name:13s} batch {b1} / batch {b0} throughput ratio: {r1 / r0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
