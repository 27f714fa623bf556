"""Prompt diversity: DiverGen's hand template, LLM-written prompt folders, attribute combinations, a local LLM.

Every prompt is recorded with its source: ``template`` (one hand-made line per category), ``llm-file``
(DiverGen's folder format: ``<category id>.txt``, one prompt per line), ``attributes`` (an offline,
non-LLM strategy: distinct combinations of colour, material, style, viewpoint and size words) or ``llm``
(written on the fly by a local instruction-tuned model through transformers). Images brought in from a folder
(web-retrieved or any other source) have no prompt: their source is ``external``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import InputError

PromptSource = Literal["template", "llm-file", "attributes", "llm", "external"]

TEMPLATE = "a photo of a single {name}, {definition}, in a white background"
WHITE_BACKGROUND = ", in a white background"

OPENERS = ("A photo of", "A real photo of", "An image of", "A photography of", "An illustration of")
SIZES = ("tiny", "small", "medium-sized", "large", "oversized")
COLOURS = (
    "red",
    "orange",
    "yellow",
    "green",
    "teal",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
    "grey",
    "golden",
    "silver",
)
MATERIALS = ("wooden", "metal", "plastic", "ceramic", "glass", "fabric", "leather", "stone", "paper", "rubber")
STYLES = ("vintage", "modern", "cartoon-style", "minimalist", "ornate", "weathered", "glossy", "matte", "hand-painted")
VIEWPOINTS = (
    "seen from the front",
    "seen from above",
    "seen from the side",
    "at a three-quarter angle",
    "tilted sideways",
    "upside down",
)
LLM_INSTRUCTION = (
    "Write one short, vivid description of a photo of a single {name} ({definition}). Vary its colour, material, "
    "style and viewpoint. Answer with the description only."
)


class PromptError(InputError):
    """A prompt file or folder is malformed; the message names the file (and line)."""


@dataclass(frozen=True)
class Prompt:
    """One prompt of a category, with where it came from and its position in the category's list."""

    text: str
    source: PromptSource
    index: int


def display_name(name: str) -> str:
    """LVIS names use underscores; prompts use spaces."""
    return name.replace("_", " ")


def template_prompt(name: str, definition: str, template: str = TEMPLATE) -> str:
    """The hand-made prompt of a category; by default DiverGen's ``a photo of a single {name}, {definition}, in a
    white background`` (X-Paste's: ``a photo of a single {name}``)."""
    return template.format(name=display_name(name), definition=definition.strip())


def load_prompt_folder(
    folder: str | os.PathLike, category_ids: Iterable[int], suffix: str | None = WHITE_BACKGROUND
) -> dict[int, list[str]]:
    """Read a DiverGen-format prompt folder (``<category id>.txt``, one prompt per line).

    Every file must name a known category id, hold at least one prompt, and (unless ``suffix`` is None)
    every prompt must end with ``suffix``; otherwise :class:`PromptError` names the file and line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PromptError(f"{folder}: prompt folder not found")
    known = set(category_ids)
    prompts: dict[int, list[str]] = {}
    for path in sorted(folder.glob("*.txt"), key=lambda p: (len(p.stem), p.stem)):
        if not path.stem.isdigit():
            raise PromptError(f"{path}: prompt files are named <category id>.txt")
        cid = int(path.stem)
        if cid not in known:
            raise PromptError(f"{path}: category id {cid} is not in the category metadata")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise PromptError(f"{path}: not UTF-8 text") from None
        texts = []
        for lineno, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            if suffix is not None and not text.endswith(suffix):
                raise PromptError(f"{path}:{lineno}: prompt does not end with {suffix!r}")
            texts.append(text)
        if not texts:
            raise PromptError(f"{path}: empty prompt file")
        prompts[cid] = texts
    if not prompts:
        raise PromptError(f"{folder}: no <category id>.txt prompt files")
    return prompts


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def attribute_prompts(name: str, n: int, seed: int, suffix: str = WHITE_BACKGROUND) -> list[str]:
    """``n`` distinct prompts combining opener, size, colour, material, style and viewpoint words.

    Deterministic for ``seed``; every prompt names the category and ends with ``suffix`` (DiverGen's white
    background).
    """
    vocab = (OPENERS, SIZES, COLOURS, MATERIALS, STYLES, VIEWPOINTS)
    space = int(np.prod([len(v) for v in vocab]))
    if n > space:
        raise ValueError(f"at most {space} distinct attribute prompts exist, {n} asked")
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < n:
        pick = tuple(int(rng.integers(len(v))) for v in vocab)
        if pick in seen:
            continue
        seen.add(pick)
        opener, size, colour, material, style, view = (v[i] for v, i in zip(vocab, pick, strict=True))
        out.append(
            f"{opener} {_article(size)} {size} {colour} {material} {display_name(name)}, {style}, {view}{suffix}"
        )
    return out


def _clean_llm_line(text: str, suffix: str) -> str:
    line = next((s.strip(" \"'") for s in text.splitlines() if s.strip(" \"'")), "")
    line = line.rstrip(" .")
    if not line:
        return ""
    return line if line.endswith(suffix) else line + suffix


class LocalLLM:
    """A local instruction-tuned causal LM (transformers) that writes prompts; weights from a local path."""

    def __init__(self, model_path: str | os.PathLike, allow_download: bool = False, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"local_files_only": not allow_download}
        self.tokenizer: Any
        self.model: Any
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), **kwargs)
            model: Any = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
            self.model = model.to(device).eval()
        except OSError as err:
            where = "downloads are off (allow_download: false)" if not allow_download else "it could not be loaded"
            raise PromptError(f"LLM {model_path}: no usable model there and {where} ({err})") from None
        self.device = device

    def _inputs(self, instruction: str) -> Any:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": instruction}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = instruction + "\n"
        return self.tokenizer(text, return_tensors="pt").to(self.device)

    def prompts(
        self, name: str, definition: str, n: int, seed: int, suffix: str = WHITE_BACKGROUND, max_new_tokens: int = 48
    ) -> list[str]:
        """Up to ``n`` distinct prompts, sampled with a fixed seed; each ends with ``suffix``."""
        import torch

        inputs = self._inputs(LLM_INSTRUCTION.format(name=display_name(name), definition=definition))
        start = inputs["input_ids"].shape[1]
        out: list[str] = []
        for attempt in range(3 * n):
            if len(out) == n:
                break
            torch.manual_seed(seed * 7919 + attempt)
            with torch.no_grad():
                tokens = self.model.generate(
                    **inputs,
                    do_sample=True,
                    top_p=0.95,
                    temperature=1.0,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                )
            line = _clean_llm_line(self.tokenizer.decode(tokens[0, start:], skip_special_tokens=True), suffix)
            if line and line not in out:
                out.append(line)
        return out


@dataclass(frozen=True)
class PromptConfig:
    """Which prompt sources to use per category (the ``generation.prompts`` section).

    ``template_text`` is the hand-made prompt (``{name}``, optionally ``{definition}``); ``suffix`` is what every
    prompt ends with: prompt-file lines must, attribute and LLM prompts get it appended. The defaults are DiverGen's;
    X-Paste generates with ``template_text: "a photo of a single {name}"`` and ``suffix: ""``.
    """

    template: Literal["always", "without_file", "never"] = "without_file"
    template_text: str = TEMPLATE
    suffix: str = WHITE_BACKGROUND
    llm_dir: Path | None = None
    attributes: int = 0
    llm_model: Path | None = None
    llm_prompts: int = 0
    allow_download: bool = False

    def __post_init__(self) -> None:
        try:
            self.template_text.format(name="x", definition="y")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"template_text {self.template_text!r}: only {{name}} and {{definition}} can be filled in ({err!r})"
            ) from None
        if "{name}" not in self.template_text:
            raise ValueError(f"template_text {self.template_text!r} does not name the category ({{name}})")


def category_prompts(
    category: dict[str, Any],
    cfg: PromptConfig,
    seed: int,
    llm_files: dict[int, list[str]] | None = None,
    llm: LocalLLM | None = None,
) -> list[Prompt]:
    """The ordered prompt list of one category: template, prompt-file lines, attribute prompts, LLM prompts.

    DiverGen's setting is ``template: without_file`` with a prompt folder: a category uses its file's prompts
    when it has one and the template otherwise.
    """
    cid, name, definition = category["id"], category["name"], category.get("def", "")
    from_file = (llm_files or {}).get(cid, [])
    texts: list[tuple[str, PromptSource]] = []
    if cfg.template == "always" or (cfg.template == "without_file" and not from_file):
        texts.append((template_prompt(name, definition, cfg.template_text), "template"))
    texts.extend((t, "llm-file") for t in from_file)
    extra_seed = seed * 100_003 + cid
    if cfg.attributes:
        texts.extend((t, "attributes") for t in attribute_prompts(name, cfg.attributes, extra_seed, cfg.suffix))
    if cfg.llm_prompts:
        if llm is None:
            raise PromptError("generation.prompts.llm_prompts > 0 needs generation.prompts.llm_model")
        texts.extend((t, "llm") for t in llm.prompts(name, definition, cfg.llm_prompts, extra_seed, cfg.suffix))
    if not texts:
        raise PromptError(f"category {cid} ({name}) has no prompt: enable the template or give it a prompt file")
    return [Prompt(text, source, i) for i, (text, source) in enumerate(texts)]
