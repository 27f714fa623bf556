"""Annotator throughput on CPU (or a CUDA device): images/s of each annotation method on the same toy generations.

Methods: the border fallback (flood fill, and refined by GrabCut), the real IS-Net of ``../shared/models/`` through
``salient_onnx`` (its export takes 1024² inputs only), and CLIPSeg's architecture at a tiny size with random
weights (``tiny_clipseg``: a cost of the code path, **not** of the real CLIPSeg, whose weights are not here), and
SAM-background with the real ``--sam`` architecture (ViT-B by default; ViT-H is the paper's) and random weights at
batch 1 and ``--sam-batch`` images per encoder call: its masks mean nothing, but its cost is the real model's. Each
method annotates the same ``--images`` toy generations (256 px, both styles) through ``raw_masks``, after one
warm-up image.

The baseline is rembg (``pip install rembg``), the package users run these ONNX exports with: its ``dis_custom``
session on the same IS-Net file, measured in this process on the same images; the ratio is ours over rembg's
images/s, and the masks' mean IoU between the two says how far their pre/post-processing differs (rembg: ImageNet
mean, std 1 and a min-max stretch of the output; ours: the model card's ``(x - 128) / 256`` and threshold 0.5).
Each method's mIoU against the toy generator's true masks is printed beside its rate. Without rembg the ratio is
not printed.

    .venv/bin/python benchmarks/annotators.py [--images 16 --device cpu --sam vit_b --sam-batch 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from divergen_lib.annotation import AnnotatorConfig, build_annotator
from divergen_lib.annotation.quality import mask_iou
from divergen_lib.annotation.sam import SAM_SPECS, build_sam
from divergen_lib.annotation.tiny_clipseg import build_tiny_clipseg
from divergen_lib.config import load_config
from divergen_lib.generation import GenerationRequest, ModelConfig, build_generator
from divergen_lib.prompts import template_prompt
from divergen_lib.toyworld import build_toyworld

REPO = Path(__file__).resolve().parent.parent
ISNET = REPO.parent / "shared" / "models" / "isnet_quint8.onnx"

Masker = Callable[[Sequence[np.ndarray], Sequence[str]], list[np.ndarray]]


def toy_images(root: Path, n: int) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
    """``n`` toy generations at 256 px, alternating the flat and soft styles, their category names and true
    masks."""
    config = load_config(REPO / "params" / "smoke" / "00_toyworld.yaml")
    world = build_toyworld(config.section("toyworld"), root, seed=config.common.seed)
    images, names, truths = [], [], []
    for k in range(n):
        style = ("flat", "soft")[k % 2]
        options = {"world": str(world.root), "style": style, "size": 256}
        generator = build_generator(ModelConfig(name=style, backend="toy", options=options))
        category = world.categories[k % len(world.categories)]
        prompt = template_prompt(category.name, "")
        request = GenerationRequest(f"{k}", category.id, category.name, prompt, "template", 0, k, style, k)
        made = generator.generate([request])[0]
        images.append(made.image)
        names.append(category.name)
        truths.append(made.mask)
    return images, names, truths


def miou(masks: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """Mean IoU of ``masks`` with ``truths``, pair by pair."""
    return float(np.mean([mask_iou(a, b) for a, b in zip(masks, truths, strict=True)]))


def rate(masker: Masker, images: list[np.ndarray], names: list[str]) -> tuple[float, list[np.ndarray]]:
    """Images/s of ``masker`` over ``images`` after one warm-up image, and its masks."""
    masker(images[:1], names[:1])
    start = time.perf_counter()
    masks = masker(images, names)
    return len(images) / (time.perf_counter() - start), masks


def annotator(name: str, method: str, device: str, **fields: object) -> Masker:
    built = build_annotator(AnnotatorConfig(name=name, method=method, **fields), device)  # type: ignore[arg-type]
    assert built is not None
    return built.raw_masks


def rembg_masker(device: str) -> Masker | None:
    """rembg's IS-Net session on the same file (None when rembg is not installed)."""
    try:
        from PIL import Image
        from rembg import new_session
    except ImportError:
        return None
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
    os.environ.setdefault("U2NET_HOME", str(ISNET.parent))  # rembg loads custom files from its models folder only
    session = new_session("dis_custom", model_path=str(ISNET), providers=providers)

    def masks(images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(session.predict(Image.fromarray(image))[0]) > 127 for image in images]

    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sam", default="vit_b", choices=("vit_b", "vit_l", "vit_h", "none"))
    parser.add_argument("--sam-batch", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images, names, truths = toy_images(Path(tmp) / "world", args.images)
        clipseg = build_tiny_clipseg(Path(tmp) / "clipseg")
        methods: dict[str, Masker] = {
            "border_fallback (flood)": annotator("flood", "border_fallback", args.device, options={"refine": "none"}),
            "border_fallback (grabcut)": annotator("grabcut", "border_fallback", args.device),
            "clipseg (tiny, random weights)": annotator("cs", "clipseg", args.device, checkpoint=clipseg),
        }
        if args.sam != "none":
            sam = Path(tmp) / f"sam_{args.sam}_random.pth"
            torch.save(build_sam(SAM_SPECS[args.sam]).state_dict(), sam)
            for batch in sorted({1, args.sam_batch}):
                label = f"sam_background {args.sam} (random) batch {batch}"
                fields = {"checkpoint": sam, "model_type": args.sam, "batch_size": batch}
                methods[label] = annotator("sam", "sam_background", args.device, **fields)
        if ISNET.is_file():
            methods["salient_onnx IS-Net 1024²"] = annotator("isnet", "salient_onnx", args.device, checkpoint=ISNET)
        else:
            print(f"the real IS-Net is not at {ISNET}: its rows are left out")
        print(f"{args.images} toy generations at 256 px, device {args.device}")
        results = {}
        for label, masker in methods.items():
            results[label] = rate(masker, images, names)
            print(f"  {label:38s} {results[label][0]:8.2f} images/s   mIoU {miou(results[label][1], truths):.3f}")
        baseline = rembg_masker(args.device) if ISNET.is_file() else None
        if baseline is None:
            print("rembg is not installed (pip install rembg): no baseline ratio")
            return
        theirs, their_masks = rate(baseline, images, names)
        ours, our_masks = results["salient_onnx IS-Net 1024²"]
        agreement = miou(our_masks, their_masks)
        name = "rembg dis_custom (same IS-Net file)"
        print(f"  {name:38s} {theirs:8.2f} images/s   mIoU {miou(their_masks, truths):.3f}")
        print(f"salient_onnx / rembg: {ours / theirs:.2f}x; mean mask IoU between them {agreement:.3f}")


if __name__ == "__main__":
    main()
