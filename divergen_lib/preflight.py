"""Preflight: every dataset file, model weight and package the params files of a run need, checked before any
work starts, and reported together in one message with what to download and where to put it.

Inputs an earlier stage writes (anything under the profile's ``output_dir``) are not checked: they appear as
the run proceeds. Nothing is downloaded or loaded here; Hugging Face entries are looked up in the local cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .errors import InputError
from .registry import load_target
from .stages import stage_of_section


@dataclass(frozen=True)
class Missing:
    """A missing input: what it is, where it is looked for, how to get it, and which params file needs it."""

    what: str
    where: str
    how: str
    needed_by: str = ""


@dataclass(frozen=True)
class Check:
    """One input a stage needs: what it is, where it is looked for, how to get it, and whether it is there."""

    what: str
    where: str
    how: str
    present: bool


def path_checks(path: Path | str | None, what: str, how: str, folder: bool = False) -> Iterator[Check]:
    """A file (or ``folder``) the stage reads; nothing when the params leave it unset."""
    if path is not None:
        path = Path(path)
        yield Check(what, str(path), how, path.is_dir() if folder else path.is_file())


def package_checks(module: str, what: str, how: str) -> Iterator[Check]:
    """A python package (or a module of one) the stage imports."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        found = False
    yield Check(what, f"python package {module!r}", how, found)


LVIS_HOW = (
    "LVIS v1 from https://www.lvisdataset.org/dataset (annotations) and COCO 2017 images, under $DETECTRON2_DATASETS"
)


def clip_checks(choice: Any) -> Iterator[Check]:
    """Pretrained open_clip weights of a :class:`~divergen_lib.clip_models.ClipChoice` (the toy CLIP needs none)."""
    if choice.toy or choice.pretrained is None or choice.allow_download:
        return
    from .clip_models import locate_pretrained

    try:
        present = bool(locate_pretrained(choice.name, choice.pretrained))
    except InputError:
        present = False
    how = "an open_clip pretrained tag in the Hugging Face cache (allow_download once), or a local checkpoint file"
    yield Check(f"CLIP {choice.name} weights", choice.pretrained, how, present)


def missing_inputs(config: Config) -> list[Missing]:
    """What the sections of ``config`` need and is not there (outputs of earlier stages excepted)."""
    outputs = config.common.output_dir.resolve()
    found = []
    for name, section in config.sections.items():
        inputs = stage_of_section(name).inputs
        for check in load_target(inputs)(section) if inputs else ():
            if not check.present and not Path(check.where).resolve().is_relative_to(outputs):
                found.append(Missing(check.what, check.where, check.how, str(config.path)))
    return found


def preflight(params_files: list[Path], overrides: Sequence[str] = ()) -> list[Missing]:
    """Missing inputs of every params file (with ``--set`` overrides), each place listed once (with the first file
    that needs it)."""
    seen: dict[str, Missing] = {}
    for path in params_files:
        for item in missing_inputs(load_config(path, overrides)):
            seen.setdefault(item.where, item)
    return list(seen.values())


def report(missing: list[Missing]) -> str:
    """One message listing every missing input with where it goes and how to get it."""
    lines = [f"{len(missing)} input(s) missing before this run can start:"]
    for item in missing:
        lines.append(f"  - {item.what}: {item.where}\n      get it: {item.how}\n      needed by: {item.needed_by}")
    return "\n".join(lines)
