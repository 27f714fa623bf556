"""Category diversity: extra categories that are far from the target dataset's, merged into its category metadata.

DiverGen adds 250 ImageNet-1K classes to LVIS's 1203 (``ImageNet2012_filtered04_lvis_v1_train_cat_info_250.json``):
the ImageNet classes, in ImageNet index order, whose maximum WordNet path similarity to any LVIS synset is at most
0.4, first 250 of them. Their names are the cleaned CLIP ImageNet class names with spaces as underscores; ``def`` is
the WordNet gloss; counts and frequency are placeholders (2000, 2000, ``'c'``).

For datasets without WordNet synsets (the toy world), :func:`select_by_text_similarity` applies the same rule to
text-embedding cosine similarity, e.g. with a CLIP text encoder from :func:`open_clip_text_encoder`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nltk.corpus.reader import WordNetCorpusReader
from nltk.corpus.reader.wordnet import Synset, WordNetError

from .errors import InputError
from .formats import FormatError, read_json, write_json
from .wordnet import load_wordnet

METADATA_KEYS = ("id", "name", "synonyms", "def", "synset", "image_count", "instance_count", "frequency")
DEFAULT_THRESHOLD = 0.4
DEFAULT_N_EXTRA = 250
EXTRA_IMAGE_COUNT = 2000
EXTRA_INSTANCE_COUNT = 2000
EXTRA_FREQUENCY = "c"
PROMPT_TEMPLATE = "a photo of a {name}"

logger = logging.getLogger(__name__)

TextEncoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1K class: index, WordNet id (``n01440764``) and cleaned CLIP name (``tench``)."""

    index: int
    wnid: str
    name: str


@dataclass(frozen=True)
class CandidateScore:
    """A candidate extra category and its nearest target category."""

    index: int
    name: str
    similarity: float
    nearest_target: str
    survives: bool
    synset: str = ""
    definition: str = ""
    nearest_target_id: int | None = None
    nearest_target_synset: str = ""


@dataclass(frozen=True)
class Selection:
    """All candidates scored in candidate order, and the chosen ones (the first ``n`` survivors).

    ``skipped_target_ids``: target categories left out of the comparison (synset unknown to WordNet).
    """

    threshold: float
    n: int
    scores: list[CandidateScore]
    skipped_target_ids: list[int] = field(default_factory=list)
    selected: list[CandidateScore] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "selected", self.survivors[: self.n])

    @property
    def survivors(self) -> list[CandidateScore]:
        """Candidates whose maximum similarity to the targets is at most the threshold."""
        return [s for s in self.scores if s.survives]

    @property
    def removed(self) -> list[CandidateScore]:
        """Candidates dropped for being too similar to a target category."""
        return [s for s in self.scores if not s.survives]

    @property
    def selected_names(self) -> list[str]:
        """Names of the chosen candidates, in candidate order."""
        return [s.name for s in self.selected]


def imagenet_classes() -> list[ImageNetClass]:
    """The 1000 ImageNet-1K classes in index order: wnids from timm, names from open_clip (spaces -> ``_``)."""
    from open_clip import IMAGENET_CLASSNAMES
    from timm.data import ImageNetInfo

    wnids = ImageNetInfo("imagenet-1k").label_names()
    if len(wnids) != len(IMAGENET_CLASSNAMES):
        raise RuntimeError(f"timm lists {len(wnids)} ImageNet-1K synsets, open_clip {len(IMAGENET_CLASSNAMES)} names")
    return [
        ImageNetClass(i, w, n.replace(" ", "_"))
        for i, (w, n) in enumerate(zip(wnids, IMAGENET_CLASSNAMES, strict=True))
    ]


def synset_of_wnid(wordnet: WordNetCorpusReader, wnid: str) -> Synset:
    """The WordNet 3.0 synset of an ImageNet id such as ``n01440764``."""
    try:
        return wordnet.synset_from_pos_and_offset(wnid[0], int(wnid[1:]))
    except (WordNetError, ValueError, IndexError):
        raise InputError(f"ImageNet wnid {wnid!r}: no such WordNet 3.0 synset") from None


def target_synsets(
    categories: Sequence[dict[str, Any]], wordnet: WordNetCorpusReader, strict: bool = False
) -> dict[int, Synset]:
    """Position in ``categories`` -> noun synset, for every target category whose synset WordNet knows.

    A synset WordNet lacks (LVIS v1 has one: ``stop_sign.n.01``, id 1019) is skipped with a warning, or raises
    when ``strict``. A category without a ``synset`` or with a non-noun synset always raises, naming the id.
    """
    synsets = {}
    for pos, cat in enumerate(categories):
        name = cat.get("synset")
        if not name:
            raise InputError(f"category id {cat.get('id')}: no 'synset'")
        try:
            synset = wordnet.synset(name)
        except (WordNetError, ValueError):
            message = f"category id {cat.get('id')}: synset {name!r} not in WordNet {wordnet.get_version()}"
            if strict:
                raise InputError(message) from None
            logger.warning("%s; category skipped", message)
            continue
        if synset.pos() != "n":
            raise InputError(f"category id {cat.get('id')}: synset {name!r} is not a noun")
        synsets[pos] = synset
    return synsets


def hypernym_depths(synset: Synset) -> dict[Synset, int]:
    """Every hypernym (incl. instance hypernyms and the synset itself) with its shortest distance in edges."""
    depths = {synset: 0}
    frontier = [synset]
    while frontier:
        nxt = []
        for s in frontier:
            for h in s.hypernyms() + s.instance_hypernyms():
                if h not in depths:
                    depths[h] = depths[s] + 1
                    nxt.append(h)
        frontier = nxt
    return depths


def nearest_by_path_similarity(candidates: Sequence[Synset], targets: Sequence[Synset]) -> list[tuple[float, int]]:
    """For each candidate: (max path similarity to any target, index of the first target reaching it).

    Path similarity is NLTK's ``1 / (1 + shortest is-a path length)`` over noun synsets, which share the root
    ``entity.n.01``. It is computed exactly through common hypernyms: every hypernym remembers its nearest target,
    so each candidate needs one walk up its own hypernym graph.
    """
    nearest: dict[Synset, tuple[int, int]] = {}
    for t, synset in enumerate(targets):
        for hyper, depth in hypernym_depths(synset).items():
            if hyper not in nearest or depth < nearest[hyper][0]:
                nearest[hyper] = (depth, t)
    result = []
    for synset in candidates:
        links = [(depth + nearest[h][0], nearest[h][1]) for h, depth in hypernym_depths(synset).items() if h in nearest]
        if not links:
            raise InputError(f"synset {synset.name()!r} shares no hypernym with any target synset")
        distance, t = min(links)
        result.append((1.0 / (1 + distance), t))
    return result


def select_imagenet_extras(
    target_categories: Sequence[dict[str, Any]],
    threshold: float = DEFAULT_THRESHOLD,
    n: int = DEFAULT_N_EXTRA,
    wordnet: WordNetCorpusReader | None = None,
    classes: Sequence[ImageNetClass] | None = None,
    strict: bool = False,
) -> Selection:
    """Score ImageNet-1K classes by WordNet path similarity to the targets; keep those at most ``threshold``.

    ``classes`` defaults to :func:`imagenet_classes`, ``wordnet`` to :func:`divergen_lib.wordnet.load_wordnet`;
    ``strict`` as in :func:`target_synsets` (skipped target ids are listed in ``Selection.skipped_target_ids``).
    With LVIS v1 and the defaults this yields DiverGen's 250 extras (566 survivors in all).
    """
    wordnet = wordnet or load_wordnet()
    classes = list(classes if classes is not None else imagenet_classes())
    targets = target_synsets(target_categories, wordnet, strict)
    if not targets:
        raise InputError("select_imagenet_extras: no target category has a WordNet synset")
    positions, target_list = list(targets), list(targets.values())
    synsets = [synset_of_wnid(wordnet, c.wnid) for c in classes]
    scores = []
    for cls, synset, (similarity, t) in zip(
        classes, synsets, nearest_by_path_similarity(synsets, target_list), strict=True
    ):
        target = target_categories[positions[t]]
        scores.append(
            CandidateScore(
                index=cls.index,
                name=cls.name,
                similarity=similarity,
                nearest_target=target["name"],
                survives=similarity <= threshold,
                synset=synset.name(),
                definition=synset.definition(),
                nearest_target_id=target["id"],
                nearest_target_synset=target_list[t].name(),
            )
        )
    skipped = [c["id"] for pos, c in enumerate(target_categories) if pos not in targets]
    return Selection(threshold, n, scores, skipped)


def select_by_text_similarity(
    target_names: Sequence[str],
    candidate_names: Sequence[str],
    encode_text: TextEncoder,
    threshold: float,
    n: int,
    candidate_definitions: Sequence[str] | None = None,
) -> Selection:
    """Keep candidates whose maximum cosine similarity to any target name is at most ``threshold``; first ``n``.

    ``encode_text`` maps a list of names to an (N, D) array; rows are L2-normalised here.
    ``candidate_definitions`` (one per candidate) become the ``def`` of merged entries; without them it is empty.
    """
    if not target_names or not candidate_names:
        raise InputError("select_by_text_similarity needs at least one target and one candidate name")
    if candidate_definitions is not None and len(candidate_definitions) != len(candidate_names):
        raise InputError(f"{len(candidate_definitions)} candidate definitions for {len(candidate_names)} candidates")
    definitions = candidate_definitions or [""] * len(candidate_names)
    targets = _normalised(encode_text(list(target_names)), len(target_names))
    candidates = _normalised(encode_text(list(candidate_names)), len(candidate_names))
    cosine = candidates @ targets.T
    nearest = cosine.argmax(axis=1)
    scores = [
        CandidateScore(
            index=i,
            name=name,
            similarity=float(cosine[i, nearest[i]]),
            nearest_target=target_names[nearest[i]],
            survives=bool(cosine[i, nearest[i]] <= threshold),
            definition=definitions[i],
        )
        for i, name in enumerate(candidate_names)
    ]
    return Selection(threshold, n, scores)


def _normalised(embeddings: np.ndarray, rows: int) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != rows:
        raise InputError(f"encode_text returned shape {embeddings.shape}, expected ({rows}, D)")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise InputError("encode_text returned a zero embedding")
    return embeddings / norms


def open_clip_text_encoder(
    model: Any, tokenizer: Callable[[list[str]], Any], template: str = PROMPT_TEMPLATE, batch_size: int = 256
) -> TextEncoder:
    """``encode_text`` for an open_clip model: each name (``_`` read as a space) put into ``template``, batched."""
    import torch

    def encode(names: list[str]) -> np.ndarray:
        prompts = [template.format(name=name.replace("_", " ")) for name in names]
        device = next(model.parameters()).device
        chunks = []
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                tokens = tokenizer(prompts[start : start + batch_size]).to(device)
                chunks.append(model.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(chunks)

    return encode


def extra_category_entries(
    selected: Iterable[CandidateScore],
    first_id: int,
    image_count: int = EXTRA_IMAGE_COUNT,
    instance_count: int = EXTRA_INSTANCE_COUNT,
    frequency: str = EXTRA_FREQUENCY,
) -> list[dict[str, Any]]:
    """LVIS-schema entries for selected candidates, ids from ``first_id``; counts and frequency are placeholders."""
    return [
        {
            "id": first_id + i,
            "name": s.name,
            "synonyms": [s.name],
            "def": s.definition,
            "synset": s.synset,
            "image_count": image_count,
            "instance_count": instance_count,
            "frequency": frequency,
        }
        for i, s in enumerate(selected)
    ]


def merge_categories(
    target_categories: Sequence[dict[str, Any]],
    selection: Selection,
    image_count: int = EXTRA_IMAGE_COUNT,
    instance_count: int = EXTRA_INSTANCE_COUNT,
    frequency: str = EXTRA_FREQUENCY,
) -> list[dict[str, Any]]:
    """Target categories (unchanged) followed by the selected extras, ids continuing after the largest target id.

    Extras chosen by text similarity carry no synset (``""``).
    """
    first_id = max(c["id"] for c in target_categories) + 1
    extras = extra_category_entries(selection.selected, first_id, image_count, instance_count, frequency)
    return [dict(c) for c in target_categories] + extras


def write_category_metadata(categories: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write a category-metadata list (LVIS ``cat_info`` schema) atomically."""
    write_json(list(categories), path)


def read_category_metadata(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a ``cat_info`` list or an LVIS json's ``categories``; a malformed entry raises FormatError naming it."""
    data = read_json(path)
    categories = data.get("categories") if isinstance(data, dict) else data
    if not isinstance(categories, list):
        raise FormatError(f"{path}: expected a list of categories or an object with 'categories'")
    seen: set[int] = set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int):
            raise FormatError(f"{path}: category [{i}] lacks an integer 'id'")
        missing = [k for k in METADATA_KEYS if k not in cat]
        if missing:
            raise FormatError(f"{path}: category id {cat['id']} lacks {', '.join(missing)}")
        if cat["id"] in seen:
            raise FormatError(f"{path}: category id {cat['id']} appears twice")
        seen.add(cat["id"])
    return categories
