"""Instance annotation: object masks for generated images (SAM-background, SAM-foreground, a weight-free fallback)."""

from .base import ANNOTATORS, Annotator, AnnotatorConfig, annotator_class, build_annotator

__all__ = ["ANNOTATORS", "Annotator", "AnnotatorConfig", "annotator_class", "build_annotator"]
