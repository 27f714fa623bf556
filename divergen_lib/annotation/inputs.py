"""What the ``annotation`` section needs before it runs (preflight): the weights of every method that has some
(an ``optional`` method's are not required: it is skipped without them)."""

from __future__ import annotations

from collections.abc import Iterator

from ..preflight import Check, path_checks
from .config import AnnotationConfig

WEIGHTS_HOW = {
    "sam": "SAM {model_type} checkpoint from https://github.com/facebookresearch/segment-anything",
    "clipseg": "a CLIPSeg folder saved with save_pretrained (e.g. a local copy of CIDAS/clipseg-rd64-refined)",
    "salient_onnx": "an IS-Net / U²-Net ONNX export (e.g. rembg's isnet-general-use.onnx or DIS's release)",
}


def required_inputs(cfg: AnnotationConfig) -> Iterator[Check]:
    for method in cfg.methods:
        family = "sam" if method.method.startswith("sam") else method.method
        if family in WEIGHTS_HOW and not method.optional:
            how = WEIGHTS_HOW[family].format(model_type=method.model_type)
            where = method.checkpoint or "(no checkpoint given)"
            folder = family == "clipseg"
            yield from path_checks(where, f"weights of annotation method {method.name}", how, folder=folder)
