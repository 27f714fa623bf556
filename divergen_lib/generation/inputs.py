"""What the ``generation`` section needs before it runs (preflight): category metadata, WordNet, prompt folders,
a local LLM, the diffusers weights of every model and the folder (and listing) of every external source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..preflight import LVIS_HOW, Check, path_checks
from .config import GenerationConfig


def pipeline_checks(path: str | None, what: str) -> Iterator[Check]:
    """A diffusers pipeline: a local folder with ``model_index.json`` or a Hugging Face repo in the local cache."""
    from .pipeline_files import locate_pipeline

    try:
        present = bool(locate_pipeline(path, what, allow_download=False))
    except InputError:
        present = False
    how = f"huggingface-cli download {path} (into the Hugging Face cache), or a local folder as `path`"
    yield Check(what, path or "(no path given)", how, present)


def model_checks(models: list[Any]) -> Iterator[Check]:
    """The weights of every non-toy model that may not download them."""
    for model in models:
        if model.backend == "toy" or model.allow_download:
            continue
        yield from pipeline_checks(model.path, f"{model.backend} weights of model {model.name}")
        if model.backend == "deepfloyd_if":
            yield from pipeline_checks(model.options.get("stage2_path"), f"IF stage II weights of model {model.name}")


def category_checks(selection: Any) -> Iterator[Check]:
    """The category metadata, and WordNet when ImageNet extra categories are chosen."""
    yield from path_checks(selection.metadata, "category metadata (LVIS json)", LVIS_HOW)
    if selection.imagenet_extras:
        from ..wordnet import DEBIAN_WORDNET_DIR, missing_wordnet_files

        missing = missing_wordnet_files()
        how = "apt-get install wordnet-base wordnet-sense-index (WordNet 3.0, for the ImageNet extra categories)"
        yield Check("WordNet 3.0 files", f"{DEBIAN_WORDNET_DIR} ({', '.join(missing)})", how, not missing)


def prompt_checks(prompts: Any) -> Iterator[Check]:
    """DiverGen's LLM prompt folder and a local LLM, when the prompts use them."""
    yield from path_checks(
        prompts.llm_dir,
        "LLM prompt folder (DiverGen's input/gpt_prompt)",
        "DiverGen's repository, input/gpt_prompt/",
        True,
    )
    if prompts.llm_model is not None and not prompts.allow_download and (prompts.attributes or prompts.llm_prompts):
        yield from path_checks(prompts.llm_model, "local LLM for prompts", "a Hugging Face causal LM folder", True)


def external_checks(sources: list[Any]) -> Iterator[Check]:
    """The image folder of every external source, and its listing when it has one."""
    for source in sources:
        how = "your images, as <folder>/<category>/<file> or listed in a file,category csv / json"
        yield from path_checks(source.folder, f"image folder of external source {source.name}", how, True)
        yield from path_checks(source.listing, f"listing of external source {source.name}", how)


def required_inputs(cfg: GenerationConfig) -> Iterator[Check]:
    yield from category_checks(cfg.categories)
    yield from prompt_checks(cfg.prompts)
    yield from model_checks(cfg.models)
    yield from external_checks(cfg.external)
