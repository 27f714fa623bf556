"""Prediction with a detectron2-engine checkpoint: LVIS results and box-head logits."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data.detection_utils import convert_PIL_to_numpy
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes
from PIL import Image

from ...distributed import resolve_device
from ...errors import InputError
from ...formats import image_file, read_image
from ...formats.results import detections_to_results
from ...progress import progress
from ..classes import ClassMap
from ..config import TestSettings, TrainingConfig
from ..run import RunOutput
from .augmentations import augment, build_augmentations
from .d2config import build_config
from .original_checkpoints import DetectorWeights, read_detector_weights

# Federated-loss class weights (detectron2, Detic/DiverGen): training-only buffers, not needed for inference.
_FED_LOSS_WEIGHTS = re.compile(r"\.(fed_loss_cls_weights|freq_weight)$")


def _test_input(image: np.ndarray, d2: CfgNode, file_name: str = "") -> tuple[dict[str, Any], Any]:
    """An RGB image as the model's test input (resized by the config's test augmentations, :mod:`.augmentations`,
    in ``INPUT.FORMAT``; ``file_name``, which some projects' models read) and the resize transform."""
    resized, transform = augment(build_augmentations(d2, is_train=False), image)
    tensor = torch.as_tensor(
        np.ascontiguousarray(convert_PIL_to_numpy(Image.fromarray(resized), d2.INPUT.FORMAT).transpose(2, 0, 1))
    )
    given = {"image": tensor, "height": image.shape[0], "width": image.shape[1], "file_name": file_name}
    return given, transform


def load_model(
    checkpoint: str | Path | DetectorWeights, cfg: TrainingConfig, classes: ClassMap, device: str = "auto"
) -> tuple[torch.nn.Module, CfgNode]:
    """A detectron2 checkpoint in this project's or the originals' layout (:mod:`.original_checkpoints`), or the
    weights read from one, as an eval-mode model for ``classes`` (this project's: EMA weights when present, and a
    truncated checkpoint needs the truncated class map) and its inference config."""
    weights = checkpoint if isinstance(checkpoint, DetectorWeights) else read_detector_weights(checkpoint)
    weights.check_classes(classes)
    d2 = build_config(cfg, classes.num_classes, resolve_device(device))
    model = build_model(d2)
    if not isinstance(model, GeneralizedRCNN):
        raise InputError(f"training.detectron2.config_file: an R-CNN is needed, not {type(model).__name__}")
    try:
        model.load_state_dict({k: v for k, v in weights.state.items() if not _FED_LOSS_WEIGHTS.search(k)})
    except RuntimeError as err:
        raise InputError(
            f"{weights.source}: weights do not fit the configured model ({str(err).splitlines()[0]})"
        ) from None
    return model.eval(), d2


@torch.no_grad()
def predict_images(
    model: GeneralizedRCNN,
    d2: CfgNode,
    classes: ClassMap,
    images: list[dict[str, Any]],
    image_root: str | os.PathLike,
    test: TestSettings,
) -> list[dict[str, Any]]:
    """LVIS results (dataset category ids, boxes, RLE masks, at most ``test.max_detections`` per image)."""
    ids = np.asarray(classes.category_ids)
    results: list[dict[str, Any]] = []
    for start in progress(range(0, len(images), test.batch_size), desc="predict", unit="batch"):
        batch = images[start : start + test.batch_size]
        files = [image_file(img, image_root) for img in batch]
        inputs = [_test_input(read_image(file), d2, str(file))[0] for file in files]
        for img, given, out in zip(batch, inputs, model.inference(inputs, do_postprocess=False), strict=True):
            out = detector_postprocess(out, given["height"], given["width"], test.mask_threshold).to("cpu")
            results += detections_to_results(
                img["id"],
                out.pred_boxes.tensor.numpy(),
                out.scores.numpy(),
                ids[out.pred_classes.numpy()],
                out.pred_masks.numpy() if out.has("pred_masks") else None,
                test.max_detections,
            )
    return results


def predict(
    checkpoint: str | Path,
    cfg: TrainingConfig,
    classes: ClassMap,
    images: list[dict[str, Any]],
    image_root: str | Path,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """:func:`predict_images` of a detectron2-engine checkpoint for ``classes``."""
    model, d2 = load_model(checkpoint, cfg, classes, device)
    return predict_images(model, d2, classes, images, image_root, cfg.test)


@torch.no_grad()
def box_logits(model: GeneralizedRCNN, d2: CfgNode, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Foreground class logits (N×C, background dropped) of the box head at given boxes of one RGB image; a
    cascade's stages are averaged."""
    given, resize = _test_input(image, d2)
    features = model.backbone(model.preprocess_image([given]).tensor)
    heads = model.roi_heads
    boxes = Boxes(torch.as_tensor(resize.apply_box(np.asarray(boxes_xyxy, np.float32).reshape(-1, 4))))
    pooled = heads.box_pooler([features[f] for f in heads.box_in_features], [boxes.to(model.device)])
    stages = (
        zip(heads.box_head, heads.box_predictor, strict=True)
        if isinstance(heads.box_head, torch.nn.ModuleList)
        else [(heads.box_head, heads.box_predictor)]
    )
    logits = torch.stack([predictor(head(pooled))[0] for head, predictor in stages]).mean(0)
    return logits[:, :-1].float().cpu().numpy()


class Detectron2Detector:
    """A loaded detectron2 model as an evaluation detector of ``classes`` (:class:`~..engine.Detector`)."""

    def __init__(self, model: torch.nn.Module, d2: CfgNode, classes: ClassMap, test: TestSettings) -> None:
        self.model, self.d2, self.classes, self.test = model, d2, classes, test

    @classmethod
    def of_run(cls, run: RunOutput, device: str) -> Detectron2Detector:
        """A finished run's evaluation checkpoint (truncated when it had extra classes; EMA weights when present)."""
        model, d2 = load_model(run.eval_checkpoint, run.config, run.eval_classes, device)
        return cls(model, d2, run.eval_classes, run.config.test)

    def predict(self, images: list[dict[str, Any]], image_root: str | os.PathLike) -> list[dict[str, Any]]:
        return predict_images(self.model, self.d2, self.classes, images, image_root, self.test)

    def box_logits(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        return box_logits(self.model, self.d2, image, boxes_xyxy)
