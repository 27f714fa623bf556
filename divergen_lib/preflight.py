"""Preflight: every dataset file, model weight and package the params files of a run need, checked before any
work starts, and reported together in one message with what to download and where to put it.

Inputs an earlier stage writes (anything under the profile's ``output_dir``) are not checked: they appear as
the run proceeds. Nothing is downloaded or loaded here; Hugging Face entries are looked up in the local cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load_config


@dataclass(frozen=True)
class Missing:
    """A missing input: what it is, where it is looked for, how to get it, and which params file needs it."""

    what: str
    where: str
    how: str
    needed_by: str = ""


@dataclass(frozen=True)
class _Check:
    what: str
    where: str
    how: str
    present: bool


def _path(path: Path | str | None, what: str, how: str, folder: bool = False) -> Iterator[_Check]:
    if path is not None:
        path = Path(path)
        yield _Check(what, str(path), how, path.is_dir() if folder else path.is_file())


def _package(module: str, what: str, how: str) -> Iterator[_Check]:
    yield _Check(what, f"python package {module!r}", how, importlib.util.find_spec(module) is not None)


LVIS_HOW = (
    "LVIS v1 from https://www.lvisdataset.org/dataset (annotations) and COCO 2017 images, under $DETECTRON2_DATASETS"
)


def _pipeline(path: str | None, what: str) -> Iterator[_Check]:
    """A diffusers pipeline: a local folder with ``model_index.json`` or a Hugging Face repo in the local cache."""
    from .generation.pipeline_files import locate_pipeline

    try:
        present = bool(locate_pipeline(path, what, allow_download=False))
    except ConfigError:
        present = False
    how = f"huggingface-cli download {path} (into the Hugging Face cache), or a local folder as `path`"
    yield _Check(what, path or "(no path given)", how, present)


def _models(models: list[Any]) -> Iterator[_Check]:
    for model in models:
        if model.backend == "toy" or model.allow_download:
            continue
        yield from _pipeline(model.path, f"{model.backend} weights of model {model.name}")
        if model.backend == "deepfloyd_if":
            yield from _pipeline(model.options.get("stage2_path"), f"IF stage II weights of model {model.name}")


def _categories(selection: Any) -> Iterator[_Check]:
    yield from _path(selection.metadata, "category metadata (LVIS json)", LVIS_HOW)
    if selection.imagenet_extras:
        from .wordnet import DEBIAN_WORDNET_DIR, missing_wordnet_files

        missing = missing_wordnet_files()
        how = "apt-get install wordnet-base wordnet-sense-index (WordNet 3.0, for the ImageNet extra categories)"
        yield _Check("WordNet 3.0 files", f"{DEBIAN_WORDNET_DIR} ({', '.join(missing)})", how, not missing)


def _prompts(prompts: Any) -> Iterator[_Check]:
    yield from _path(
        prompts.llm_dir,
        "LLM prompt folder (DiverGen's input/gpt_prompt)",
        "DiverGen's repository, input/gpt_prompt/",
        True,
    )
    if prompts.llm_model is not None and not prompts.allow_download and (prompts.attributes or prompts.llm_prompts):
        yield from _path(prompts.llm_model, "local LLM for prompts", "a Hugging Face causal LM folder", True)


def _clip(choice: Any) -> Iterator[_Check]:
    if choice.toy or choice.pretrained is None or choice.allow_download:
        return
    from .clip_models import locate_pretrained

    try:
        present = bool(locate_pretrained(choice.name, choice.pretrained))
    except ConfigError:
        present = False
    how = "an open_clip pretrained tag in the Hugging Face cache (allow_download once), or a local checkpoint file"
    yield _Check(f"CLIP {choice.name} weights", choice.pretrained, how, present)


def _generation(cfg: Any) -> Iterator[_Check]:
    yield from _categories(cfg.categories)
    yield from _prompts(cfg.prompts)
    yield from _models(cfg.models)


def _annotation(cfg: Any) -> Iterator[_Check]:
    for method in cfg.methods:
        if method.method.startswith("sam"):
            how = f"SAM {method.model_type} checkpoint from https://github.com/facebookresearch/segment-anything"
            where = method.checkpoint or "(no checkpoint given)"
            yield from _path(where, f"SAM weights of method {method.name}", how)


def _filtration(cfg: Any) -> Iterator[_Check]:
    yield from _path(cfg.real.annotations, "real training annotations", LVIS_HOW)
    yield from _path(cfg.real.image_root, "real training images", LVIS_HOW, True)
    yield from _clip(cfg.clip)


def _analysis(cfg: Any) -> Iterator[_Check]:
    yield from _path(cfg.train_annotations, "train annotations", LVIS_HOW)
    yield from _path(cfg.val_annotations, "val annotations", LVIS_HOW)
    yield from _path(cfg.image_root, "images", LVIS_HOW, True)
    yield from _categories(cfg.categories)
    yield from _clip(cfg.clip)
    for generated in cfg.generated:
        yield from _prompts(generated.prompts)
        yield from _models(generated.models)


def _detectron2_weights(weights: str, allow_download: bool) -> Iterator[_Check]:
    """``MODEL.WEIGHTS``: a local file, or a URL that training may fetch only with ``allow_download``."""
    if "://" not in weights:
        yield from _path(weights or None, "detectron2 MODEL.WEIGHTS", "a local .pkl/.pth checkpoint")
        return
    how = "set training.detectron2.allow_download: true, or download it and set opts: [MODEL.WEIGHTS, /local/file]"
    yield _Check("detectron2 MODEL.WEIGHTS (a download)", weights, how, allow_download)


def _training(cfg: Any) -> Iterator[_Check]:
    for name, split in (("train", cfg.train), ("val", cfg.val)):
        yield from _path(split.annotations, f"{name} annotations", LVIS_HOW)
        yield from _path(split.image_root, f"{name} images", LVIS_HOW, True)
    yield from _path(cfg.categories, "category metadata of the pools", "notebook 02 writes generation/categories.json")
    for run in cfg.runs:
        yield from _path(run.pool, f"instance pool of run {run.name}", "notebook 04 writes filtration/pool.json")
    yield from _path(cfg.model.backbone_weights, "backbone ImageNet weights", "a torchvision ResNet state dict")
    if cfg.engine != "detectron2":
        return
    how = "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'"
    yield from _package("detectron2", "detectron2", how)
    for module in cfg.detectron2.project_modules:
        name = module.partition(":")[0]
        yield from _package(name, f"detectron2 project module {name}", "put the project's folder on PYTHONPATH")
    if importlib.util.find_spec("detectron2") is not None:
        from .errors import InputError
        from .training.detectron2_engine import build_config

        try:
            weights = build_config(cfg, 1, "cpu").MODEL.WEIGHTS
            yield from _detectron2_weights(weights, cfg.detectron2.allow_download)
        except InputError as err:
            yield _Check("detectron2 config", cfg.detectron2.config_file, str(err), False)


CHECKS = {
    "generation": _generation,
    "annotation": _annotation,
    "filtration": _filtration,
    "analysis": _analysis,
    "training": _training,
}


def missing_inputs(config: Config) -> list[Missing]:
    """What the sections of ``config`` need and is not there (outputs of earlier stages excepted)."""
    outputs = config.common.output_dir.resolve()
    found = []
    for name, section in config.sections.items():
        for check in CHECKS.get(name, lambda _: iter(()))(section):
            if not check.present and not Path(check.where).resolve().is_relative_to(outputs):
                found.append(Missing(check.what, check.where, check.how, str(config.path)))
    return found


def preflight(params_files: list[Path]) -> list[Missing]:
    """Missing inputs of every params file, each place listed once (with the first file that needs it)."""
    seen: dict[str, Missing] = {}
    for path in params_files:
        for item in missing_inputs(load_config(path)):
            seen.setdefault(item.where, item)
    return list(seen.values())


def report(missing: list[Missing]) -> str:
    """One message listing every missing input with where it goes and how to get it."""
    lines = [f"{len(missing)} input(s) missing before this run can start:"]
    for item in missing:
        lines.append(f"  - {item.what}: {item.where}\n      get it: {item.how}\n      needed by: {item.needed_by}")
    return "\n".join(lines)
