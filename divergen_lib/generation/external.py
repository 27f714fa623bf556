"""External images as a generation source: a folder of images with a category each, brought in beside generated ones.

X-Paste trains with web-retrieved instances next to generated ones. Each image of an :class:`ExternalSource` is
copied as an RGB PNG to ``images/<source>/<category id>/<stem>.png`` of the generation folder and gets a manifest row
with the keys of a generated image's (``model``: the source's name, ``prompt_source``: ``external``, ``prompt``: the
file as listed), so annotation, filtration and the pool treat it like a generated image. Its id is
``<source>-<category id>-<stem>``. An unknown category, a missing or unreadable file, and several files of one
category with the same stem are error rows with the reason; a malformed listing is one error line. A row's digest
holds its file's path, size and modification time and its category, so a rerun after a change to the folder or
the listing redoes only the images that changed.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import settings_digest
from ..distributed import DistInfo, resumable_map
from ..errors import InputError
from ..formats import FormatError, read_image, read_json, write_png
from .config import ExternalSource
from .layout import GenerationLayout

log = logging.getLogger(__name__)

LISTING_COLUMNS = ("file", "category")


@dataclass(frozen=True)
class ExternalImage:
    """One listed image: its file relative to the source folder, its category as given and as resolved (None:
    unknown), its id and stem, and what makes it an error row (None: nothing)."""

    id: str
    file: str
    label: str
    category: dict[str, Any] | None
    stem: str
    problem: str | None = None


def _csv_listing(path: Path) -> list[tuple[str, str | int]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in LISTING_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise FormatError(
                    f"{path}: no {' and '.join(missing)} column (the header must be file,category; "
                    f"found {','.join(reader.fieldnames or [])!r})"
                )
            lines = [(reader.line_num, row.get("file"), row.get("category")) for row in reader]
    except (UnicodeDecodeError, csv.Error) as err:
        raise FormatError(f"{path}: not a readable csv listing ({err})") from None
    for line, file, category in lines:
        if not file or not category:
            raise FormatError(f"{path} line {line}: empty file or category")
    return [(str(file), str(category)) for _, file, category in lines]


def _json_listing(path: Path) -> list[tuple[str, str | int]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a list of {{file, category}} objects, got {type(data).__name__}")
    pairs: list[tuple[str, str | int]] = []
    for k, entry in enumerate(data):
        file = entry.get("file") if isinstance(entry, dict) else None
        category = entry.get("category") if isinstance(entry, dict) else None
        if not isinstance(file, str) or not file or isinstance(category, bool) or not isinstance(category, str | int):
            raise FormatError(f"{path}: entry {k}: expected {{file: a path, category: a name or id}}, got {entry!r}")
        pairs.append((file, category))
    return pairs


def read_listing(path: Path) -> list[tuple[str, str | int]]:
    """The (file, category) pairs of a csv (header ``file,category``) or json listing; malformed: one FormatError."""
    if not path.is_file():
        raise FormatError(f"{path}: listing not found")
    readers = {".csv": _csv_listing, ".json": _json_listing}
    if path.suffix.lower() not in readers:
        raise FormatError(f"{path}: a listing is a .csv or .json file")
    return readers[path.suffix.lower()](path)


def folder_listing(folder: Path) -> list[tuple[str, str | int]]:
    """The (file, category) pairs of the layout ``<folder>/<category>/<file>`` (hidden entries left out)."""
    pairs: list[tuple[str, str | int]] = []
    skipped = 0
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            skipped += 1
            continue
        for file in sorted(entry.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                pairs.append((f"{entry.name}/{file.name}", entry.name))
            elif not file.name.startswith("."):
                skipped += 1
    if skipped:
        log.warning("%s: %d entries outside <category>/<file> left out", folder, skipped)
    return pairs


def _key(label: str | int) -> str:
    """What a category is looked up by: its id as digits, or its name in lower case with ``_`` for spaces."""
    text = str(label).strip()
    return str(int(text)) if text.isdigit() else text.lower().replace(" ", "_")


def list_images(source: ExternalSource, categories: list[dict[str, Any]]) -> list[ExternalImage]:
    """Every image of ``source``, in listing (or sorted folder) order, with its category among ``categories``."""
    where = f"generation.external {source.name}"
    if not source.folder.is_dir():
        raise InputError(f"{where}: folder not found: {source.folder}")
    pairs = read_listing(source.listing) if source.listing is not None else folder_listing(source.folder)
    lookup: dict[str, dict[str, Any]] = {}
    for category in categories:
        lookup.setdefault(_key(category["name"]), category)
    lookup |= {str(c["id"]): c for c in categories}
    groups: dict[str, list[ExternalImage]] = {}
    for file, label in pairs:
        category = lookup.get(_key(label))
        stem = PurePosixPath(file).stem
        image_id = f"{source.name}-{format(category['id'], '05d') if category else label}-{stem}"
        unknown = f"unknown category {str(label)!r} (not an id or name of the generation categories)"
        unknown = None if category else unknown
        groups.setdefault(image_id, []).append(ExternalImage(image_id, file, str(label), category, stem, unknown))
    images = []
    for group in groups.values():
        first = group[0]
        if len(group) > 1 and first.problem is None:
            files = ", ".join(image.file for image in group)
            problem = f"{len(group)} files of category {first.label!r} share the stem {first.stem!r} ({files})"
            first = ExternalImage(first.id, first.file, first.label, first.category, first.stem, problem)
        images.append(first)
    return images


def image_settings(source: ExternalSource, images: list[ExternalImage]) -> dict[str, str]:
    """Image id -> digest of what decides its row: the file (path, size, modification time) and its category."""
    settings = {}
    for image in images:
        path = source.folder / image.file
        stat = path.stat() if path.is_file() else None
        made_of = (source.folder, image.file, image.category and image.category["id"], image.problem)
        settings[image.id] = settings_digest(*made_of, stat and (stat.st_size, stat.st_mtime_ns))
    return settings


class _Importer:
    """Copies one external image into the generation folder as an RGB PNG and returns its manifest row."""

    def __init__(self, source: ExternalSource, out_dir: Path) -> None:
        self.source, self.out_dir = source, out_dir

    def row(self, image: ExternalImage, **made: Any) -> dict[str, Any]:
        """The row of ``image``: a generated image's keys, with what ``made`` adds (status and path, or a reason)."""
        category = image.category or {}
        return {
            "category_id": category.get("id"),
            "category_name": category.get("name"),
            "prompt": image.file,
            "prompt_source": "external",
            "prompt_index": None,
            "sample_index": None,
            "model": self.source.name,
            "seed": None,
            "width": None,
            "height": None,
            "path": None,
            "mask_path": None,
        } | made

    def __call__(self, image: ExternalImage) -> dict[str, Any]:
        if image.problem is not None or image.category is None:
            return self.row(image, status="error", reason=image.problem)
        try:
            pixels = read_image(self.source.folder / image.file)
        except InputError as err:
            return self.row(image, status="error", reason=str(err))
        path = GenerationLayout.image_relpath(self.source.name, image.category["id"], image.stem)
        write_png(pixels, self.out_dir / path)
        height, width = pixels.shape[:2]
        return self.row(image, width=width, height=height, path=path, status="ok")


def import_images(
    source: ExternalSource, images: list[ExternalImage], out_dir: Path, info: DistInfo
) -> list[dict[str, Any]] | None:
    """Copy the images of ``source`` that are not done yet; its manifest rows (rank 0, else None)."""
    return resumable_map(
        images,
        _Importer(source, out_dir),
        out_dir,
        f"manifest.{source.name}",
        id_of=lambda image: image.id,
        info=info,
        desc=f"import {source.name}",
        settings=image_settings(source, images),
    )
