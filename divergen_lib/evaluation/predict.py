"""Predict on your own images with a finished training run (either engine) or a detectron2 checkpoint in either
layout (:mod:`.checkpoint`, e.g. DiverGen's released one): one picture per image with its masks, boxes, category
names and scores, and the detections as an LVIS results json.

``python -m divergen_lib predict --run <run folder or final checkpoint> --images <file or folder> --out DIR``, or
``--weights W.pth --config-file CFG`` instead of ``--run``; notebook 06 does the same for one image. DIR receives
``<image stem>.png`` per image, ``results.json`` (every detection, at most ``test.max_detections`` per image; the
score threshold applies to the pictures only) and ``images.json`` (the checkpoint, the image ids of
``results.json``, the files they are, and the category names).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..categories import read_category_metadata
from ..distributed import resolve_device
from ..errors import InputError
from ..formats import image_file, read_image, read_lvis, write_json, write_results
from ..training.config import Detectron2Settings, TestSettings
from ..training.engines import ENGINES
from ..training.layout import RunLayout
from ..training.run import RunOutput, read_run
from ..viz import save_figure
from .checkpoint import checkpoint_detector
from .figures import plot_detections

if TYPE_CHECKING:
    from ..training.engine import Detector

DEFAULT_SCORE_THRESHOLD = 0.5


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict_images` wrote: one picture per image, the results json and the image list."""

    pictures: list[Path]
    results: Path
    images: Path
    detections: list[dict[str, Any]]


def run_to_predict_with(path: str | os.PathLike) -> RunOutput:
    """A run folder, or one of its final checkpoints (``model_final.pth``, ``model_final_truncated.pth``), as the
    run to predict with; one line for anything else."""
    path = Path(path)
    if path.is_dir():
        return read_run(path)
    if not path.exists():
        raise InputError(f"--run {path}: no such run folder or checkpoint file")
    layout = RunLayout(path.parent)
    if path.name not in (layout.final.name, layout.truncated.name) or not layout.run_json.is_file():
        raise InputError(
            f"--run {path}: not a run folder or a final checkpoint of one "
            f"({layout.final.name} or {layout.truncated.name} beside a {layout.run_json.name})"
        )
    run = read_run(path.parent)
    return RunOutput(run.name, run.out_dir, run.classes, run.checkpoint, run.config, run.pool, chosen=path)


@dataclass(frozen=True)
class Predictor:
    """What :func:`predict_images` predicts with: ``load`` gives the detector on a device (called once every image
    is read), ``checkpoint`` names it in ``images.json``, and ``results.json`` keeps ``max_detections`` per image."""

    checkpoint: Path
    max_detections: int
    load: Callable[[str], Detector]


def run_predictor(run: RunOutput) -> Predictor:
    """A finished run's evaluation checkpoint (or its ``chosen`` one), with its engine's detector."""
    load = partial(ENGINES.get(run.config.engine).load_detector, run)
    return Predictor(run.eval_checkpoint, run.config.test.max_detections, load)


def checkpoint_predictor(
    weights: str | os.PathLike,
    settings: Detectron2Settings,
    categories: str | os.PathLike | None = None,
    ema: bool | None = None,
    truncate_to: int | None = None,
) -> Predictor:
    """A detectron2 checkpoint in either layout (:func:`~.checkpoint.checkpoint_detector`), of its class map or else
    of the ``categories`` of an LVIS json or a category list (read now, so a bad one is reported first)."""
    found = read_category_metadata(categories) if categories is not None else None

    def load(device: str) -> Detector:
        return checkpoint_detector(weights, settings, found, categories, ema, truncate_to, device)[0]

    return Predictor(Path(weights), TestSettings().max_detections, load)


def image_files(path: str | os.PathLike) -> list[Path]:
    """An image file, or the image files directly in a folder (by name); one line when there are none."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"--images {path}: no such file or folder")
    suffixes = {s for s, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise InputError(f"--images {path}: no image files in this folder ({', '.join(sorted(suffixes)[:8])}, ...)")
    return found


def first_val_image(run: RunOutput) -> Path:
    """The file of the first image of the run's val split (what notebook 06 predicts when given no image)."""
    val = read_lvis(run.config.val.annotations)
    if not val["images"]:
        raise InputError(f"{run.config.val.annotations}: no images")
    return image_file(val["images"][0], run.config.val.image_root)


def _picture_names(files: list[Path]) -> list[str]:
    """``<stem>.png`` per file, or ``<name>.png`` where two files share a stem (``a.jpg`` and ``a.png``)."""
    stems = [f.stem for f in files]
    return [f"{f.stem if stems.count(f.stem) == 1 else f.name}.png" for f in files]


def predict_images(
    predictor: Predictor,
    files: list[Path],
    out_dir: str | os.PathLike,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    device: str = "auto",
) -> Prediction:
    """Predict ``files`` with ``predictor`` (:func:`run_predictor`, :func:`checkpoint_predictor`) into ``out_dir``:
    every image is read (and a bad one reported) before the model is loaded."""
    if not 0.0 <= score_threshold <= 1.0:
        raise InputError(f"--score-threshold {score_threshold}: must be between 0 and 1")
    out = Path(out_dir)
    pixels = {}
    images = []
    for index, file in enumerate(files, start=1):
        pixels[index] = read_image(file)
        height, width = pixels[index].shape[:2]
        images.append({"id": index, "file_name": str(file.resolve()), "height": height, "width": width})
    try:
        device = resolve_device(device)
    except RuntimeError as err:
        raise InputError(f"--device {device}: {err}") from None
    detector = predictor.load(device)
    detections = detector.predict(images, "/")
    names = dict(zip(detector.classes.category_ids, detector.classes.names, strict=True))
    pictures = []
    for image, name in zip(images, _picture_names(files), strict=True):
        mine = [d for d in detections if d["image_id"] == image["id"]]
        figure = plot_detections(pixels[image["id"]], mine, names, score_threshold)
        pictures.append(save_figure(figure, out / name, dpi=100, tight=False))
    results, listing = out / "results.json", out / "images.json"
    write_results(detections, results, predictor.max_detections)
    categories = [{"id": cid, "name": n} for cid, n in names.items()]
    write_json({"run": str(predictor.checkpoint), "images": images, "categories": categories}, listing)
    return Prediction(pictures, results, listing, detections)
