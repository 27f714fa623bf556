"""LVIS evaluation at LVIS-val size: our ``fast`` backend (faster-coco-eval on category shards, results read entry by
entry) against the lvis-api, box and mask, time and peak memory, with identical metrics.

The input is synthetic and shaped like LVIS v1 val: 19 809 images, 1203 categories in LVIS's rare/common/frequent
proportions, ~12 polygon instances per image over ~4 categories, ~4 negative categories per image, some
not-exhaustive ones, and 300 detections per image with RLE masks (two jittered copies of each instance, 60 on the
image's positive and negative categories, the rest on any category, which LVIS ignores). Each evaluation runs in
its own process, reading the ground-truth and results files as a user's run would; its peak memory is the largest
sum of the proportional set sizes of it and its workers, sampled every 0.2 s.

The lvis-api holds every detection as Python dicts and loops over every (image, category) pair; at full size it
needs more memory than this 24 GB machine has. It is therefore timed on the first ``--reference-images`` images and
on half as many, checked to grow linearly, and its full-size time is extrapolated from those two points; the
metrics of both backends are compared on the larger subset. Ours is measured at full size.

    .venv/bin/python benchmarks/evaluation.py                  # LVIS val size (about 17 minutes on 2 cores)
    .venv/bin/python benchmarks/evaluation.py --images 2000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pycocotools import mask as mask_utils

LVIS_VAL_IMAGES = 19_809
FREQUENCY_COUNTS = {"r": 337, "c": 461, "f": 405}  # LVIS v1's 1203 categories
SIZES = ((640, 480), (480, 640), (640, 427), (500, 375))
METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def _polygon(rng: np.random.Generator, box: np.ndarray, w: int, h: int) -> list[float]:
    """A star-shaped polygon inside ``box`` (x, y, bw, bh), clipped to the image."""
    x, y, bw, bh = box
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(8, 17))))
    radius = rng.uniform(0.6, 1.0, angles.size)
    xs = np.clip(x + bw / 2 * (1 + radius * np.cos(angles)), 0, w)
    ys = np.clip(y + bh / 2 * (1 + radius * np.sin(angles)), 0, h)
    return np.round(np.stack([xs, ys], 1).ravel(), 2).tolist()


def _random_boxes(rng: np.random.Generator, n: int, w: int, h: int) -> np.ndarray:
    side = np.exp(rng.uniform(np.log(4), np.log(min(w, h)), (n, 2)))
    corner = rng.uniform(0, 1, (n, 2)) * (np.array([w, h]) - side)
    return np.round(np.concatenate([corner, side], 1), 2)


def synthetic_world(n_images: int, gt_path: Path, results_path: Path, seed: int = 0) -> int:
    """Write an LVIS-val-shaped ground truth and results file (see the module docstring); the detection count."""
    rng = np.random.default_rng(seed)
    frequency = [f for f, n in FREQUENCY_COUNTS.items() for _ in range(n)]
    rng.shuffle(frequency)
    categories = [{"id": k + 1, "name": f"c{k + 1}", "frequency": f} for k, f in enumerate(frequency)]
    n_cats = len(categories)
    weight = np.array([{"r": 1.0, "c": 4.0, "f": 20.0}[f] for f in frequency])
    weight /= weight.sum()
    images, annotations, count = [], [], 0
    with open(results_path, "w") as out:
        out.write("[")
        for image_id in range(1, n_images + 1):
            w, h = SIZES[image_id % len(SIZES)]
            positive = rng.choice(n_cats, min(1 + rng.poisson(3), 10), replace=False, p=weight) + 1
            others = np.setdiff1d(rng.choice(n_cats, rng.poisson(5), replace=False) + 1, positive)
            image = {
                "id": image_id,
                "width": w,
                "height": h,
                "neg_category_ids": others.tolist(),
                "not_exhaustive_category_ids": [int(c) for c in positive if rng.random() < 0.1],
            }
            images.append(image)
            polygons, labels = [], []
            for cid in positive.tolist():
                for box in _random_boxes(rng, 1 + rng.poisson(2), w, h):
                    polygon = _polygon(rng, box, w, h)
                    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], h, w))
                    if mask_utils.area(rle) < 1:
                        continue
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": cid,
                            "segmentation": [polygon],
                            "area": float(mask_utils.area(rle)),
                            "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)],
                        }
                    )
                    for _ in range(2):  # two detections of each instance, jittered
                        jitter = box + rng.normal(0, 0.08, 4) * box[[2, 3, 2, 3]]
                        polygons.append(_polygon(rng, jitter, w, h))
                        labels.append((cid, rng.uniform(0.2, 1.0)))
            rles = mask_utils.frPyObjects(polygons, h, w) if polygons else []
            n_rest = 300 - len(rles)
            boxes = _random_boxes(rng, n_rest, w, h)
            rles += mask_utils.frPyObjects(boxes, h, w)
            near = np.concatenate([positive, others])
            labels += [(int(rng.choice(near)), rng.uniform(0, 0.6)) for _ in range(min(60, n_rest))]
            labels += [(int(rng.integers(1, n_cats + 1)), rng.uniform(0, 0.5)) for _ in range(n_rest - 60)]
            dets = []
            for rle, (cid, score) in zip(rles, labels, strict=True):
                bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
                counts = rle["counts"].decode()
                dets.append(
                    f'{{"image_id": {image_id}, "category_id": {cid}, "bbox": {json.dumps(bbox)}, '
                    f'"score": {score:.4f}, "segmentation": {{"size": [{h}, {w}], "counts": {json.dumps(counts)}}}}}'
                )
            out.write(("," if count else "") + ",".join(dets))
            count += len(dets)
        out.write("]")
    gt = {"images": images, "annotations": annotations, "categories": categories, "info": {}, "licenses": []}
    gt_path.write_text(json.dumps(gt))
    return count


def subset(gt_path: Path, results_path: Path, n_images: int, out_dir: Path) -> tuple[Path, Path]:
    """The first ``n_images`` images of a world, with their annotations and detections."""
    from divergen_lib.formats.json_stream import iter_json_list

    gt = json.loads(gt_path.read_text())
    gt["images"] = [img for img in gt["images"] if img["id"] <= n_images]
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] <= n_images]
    sub_gt, sub_results = out_dir / f"gt_{n_images}.json", out_dir / f"results_{n_images}.json"
    sub_gt.write_text(json.dumps(gt))
    with open(sub_results, "w") as out:
        out.write("[")
        first = True
        for _, det in iter_json_list(results_path):
            if det["image_id"] <= n_images:
                out.write(("" if first else ",") + json.dumps(det))
                first = False
        out.write("]")
    return sub_gt, sub_results


def _tree_pss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(backend: str, ious: tuple[str, ...], gt: Path, results: Path, workers: int) -> dict[str, Any]:
    """Run one evaluation in a child process: its record, seconds and peak memory (bytes, with its workers)."""
    cmd = [sys.executable, __file__, "--evaluate", backend, ",".join(ious), str(gt), str(results), str(workers)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    peak, process = 0, psutil.Process(child.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            try:
                peak = max(peak, _tree_pss(process))
            except psutil.NoSuchProcess:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"{backend} {ious} failed (exit {child.returncode})")
    return json.loads(output.strip().splitlines()[-1]) | {"peak_bytes": peak}


def _evaluate(backend: str, ious: str, gt: str, results: str, workers: int) -> None:
    """The child's side of :func:`measure`: evaluate a results file as ``evaluate-results`` does."""
    from divergen_lib.evaluation.metrics_file import evaluate_results_file

    start = time.perf_counter()
    iou_types = tuple(ious.split(","))
    record = evaluate_results_file(gt, results, iou_types, "fast" if backend == "fast" else "lvis", "lvis", workers)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, **{k: record[k] for k in record if k.startswith(("bbox", "segm"))}}))


def _gap(a: dict[str, Any], b: dict[str, Any], iou: str) -> float:
    gaps = [abs(a[iou][k] - b[iou][k]) for k in METRIC_KEYS]
    per_category = f"{iou}_per_category"
    return max(gaps + [abs(v - b[per_category][c]) for c, v in a[per_category].items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=LVIS_VAL_IMAGES)
    parser.add_argument("--reference-images", type=int, default=2000, help="images the lvis-api is timed on")
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1, 2 and the cores")
    parser.add_argument("--evaluate", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evaluate:
        backend, ious, gt, results, workers = args.evaluate
        _evaluate(backend, ious, gt, results, int(workers))
        return
    from divergen_lib.distributed import available_cores

    cores = available_cores()
    workers_list = args.workers or sorted({1, 2, cores})
    most = max(workers_list)
    n1 = min(args.reference_images, args.images)
    n0 = n1 // 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        gt, results = tmp_dir / "gt.json", tmp_dir / "results.json"
        start = time.perf_counter()
        n_dets = synthetic_world(args.images, gt, results)
        size = f"{args.images} images x 1203 categories, {n_dets} detections ({results.stat().st_size / 1e9:.2f} GB)"
        print(f"{size}; written in {time.perf_counter() - start:.0f} s; {cores} cores", flush=True)
        halves = {n: subset(gt, results, n, tmp_dir) for n in (n0, n1)}
        lvis_full: dict[tuple[str, ...], float] = {}
        print("\nlvis-api (one process; reads the files itself, one run per IoU type):")
        for iou in ("bbox", "segm"):
            ref = {n: measure("lvis", (iou,), *paths, 1) for n, paths in halves.items()}
            per_image = (ref[n1]["seconds"] - ref[n0]["seconds"]) / (n1 - n0)
            lvis_full[(iou,)] = ref[n1]["seconds"] + per_image * (args.images - n1)
            for n in (n0, n1):
                print(f"  {iou}, {n:6d} images: {ref[n]['seconds']:8.1f} s  {ref[n]['peak_bytes'] / 1e9:6.2f} GB")
            growth = ref[n1]["seconds"] / ref[n0]["seconds"]
            print(
                f"  {iou}, {args.images} images, extrapolated linearly (x{growth:.2f} from {n0} to {n1} images): "
                f"{lvis_full[(iou,)]:8.1f} s",
                flush=True,
            )
            ours_small = measure("fast", (iou,), *halves[n1], most)
            print(
                f"  ours on the {n1} images: largest difference over every metric and per-category AP "
                f"{_gap(ours_small, ref[n1], iou):.1e}",
                flush=True,
            )
        lvis_full[("bbox", "segm")] = lvis_full[("bbox",)] + lvis_full[("segm",)]
        print(f"\nours at {args.images} images (lvis-api / ours from the extrapolated lvis-api times):")
        for ious in (("bbox", "segm"), ("bbox",), ("segm",)):
            for workers in workers_list:
                ours = measure("fast", ious, gt, results, workers)
                print(
                    f"  {'+'.join(ious):9s} {workers:2d} worker(s): {ours['seconds']:7.1f} s  "
                    f"{ours['peak_bytes'] / 1e9:6.2f} GB   lvis-api / ours = {lvis_full[ious] / ours['seconds']:5.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
