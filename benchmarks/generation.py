"""Generation throughput.

Toy generator (CPU): images/s of the raw backend per style, and of the whole stage (resumable map, PNG
writes, fsync'd manifest rows) — printed as a ratio against the raw backend measured in the same process.
With a CUDA GPU and local weights, Stable Diffusion and DeepFloyd-IF at batch 1 vs 8 are timed by
``benchmarks/generation_diffusers.py``; run it directly with ``--sd-path`` / ``--if-stage1`` ``--if-stage2``.

    .venv/bin/python benchmarks/generation.py [--images 400]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from divergen_lib.config import load_config
from divergen_lib.generation import GenerationRequest, ModelConfig, build_generator
from divergen_lib.generation import stage as generation
from divergen_lib.prompts import template_prompt
from divergen_lib.toyworld import build_toyworld

REPO = Path(__file__).resolve().parent.parent


def raw_rate(world_root: Path, style: str, n: int, size: int) -> float:
    """Images/s of the toy backend alone."""
    gen = build_generator(
        ModelConfig(name=style, backend="toy", options={"world": str(world_root), "style": style, "size": size})
    )
    spec = gen.specs[1]
    requests = [
        GenerationRequest(f"{i}", 1, spec.name, template_prompt(spec.name, ""), "template", 0, i, style, i)
        for i in range(n)
    ]
    start = time.perf_counter()
    gen.generate(requests)
    return n / (time.perf_counter() - start)


def stage_rate(world_root: Path, out: Path, n: int, size: int) -> float:
    """Images/s of the generation stage (one flat-style model) including all writes."""
    n_cats = 8
    models = f"[{{name: toy_flat, backend: toy, options: {{world: {world_root}, style: flat, size: {size}}}}}]"
    config = load_config(
        REPO / "params" / "smoke" / "02_generation.yaml",
        [
            f"output_dir={out}",
            f"generation.categories.toyworld={world_root}",
            f"generation.models={models}",
            f"generation.categories.ids={list(range(1, n_cats + 1))}",
            f"generation.images_per_category={n // n_cats}",
        ],
    )
    start = time.perf_counter()
    run = generation.run(config)
    return len(run.rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = build_toyworld(
            load_config(REPO / "params" / "smoke" / "00_toyworld.yaml").section("toyworld"), Path(tmp) / "world"
        )
        flat = raw_rate(world.root, "flat", args.images, args.size)
        soft = raw_rate(world.root, "soft", args.images, args.size)
        staged = stage_rate(world.root, Path(tmp) / "out", args.images, args.size)
    print(f"toy generator, {args.size} px, {args.images} images, CPU")
    print(f"  flat style backend : {flat:8.1f} images/s")
    print(f"  soft style backend : {soft:8.1f} images/s   (soft / flat = {soft / flat:.2f})")
    print(f"  stage, flat + I/O  : {staged:8.1f} images/s   (stage / backend = {staged / flat:.2f})")
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        print("no CUDA GPU: SD / DeepFloyd-IF batch 1 vs 8 not timed (benchmarks/generation_diffusers.py)")


if __name__ == "__main__":
    main()
