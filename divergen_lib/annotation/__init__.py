"""Instance annotation: object masks for generated images (SAM-background, SAM-foreground, CLIPSeg, salient-object
ONNX exports such as IS-Net, a weight-free fallback)."""

from .base import ANNOTATORS, Annotator, AnnotatorConfig, annotator_class, build_annotator

__all__ = ["ANNOTATORS", "Annotator", "AnnotatorConfig", "annotator_class", "build_annotator"]
