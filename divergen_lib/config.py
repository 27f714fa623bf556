"""Parameter files: YAML -> typed, validated dataclasses, one section per stage.

A params file holds the profile-wide keys of :class:`CommonConfig` at top level and one mapping per stage
section (``toyworld:``, ``generation:``, ...). A ``common.yaml`` beside it, if present, is read first and
the file's own keys override it. Any problem (unknown key, wrong type, missing required file) is reported
as one line naming the file and the dotted key. Relative paths, the params file's own included, are taken from the
repository root whatever the current directory (:mod:`.paths`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml

from .errors import InputError
from .paths import REPO_ROOT, for_display, from_root
from .registry import Choice
from .stages import SECTIONS

COMMON_FILE = "common.yaml"
FIGURES_DIR = "figures"
CLIP_CACHE_DIR = "clip"


class ConfigError(InputError):
    """A params file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class MustExist:
    """Marker for ``Annotated[Path, MustExist()]``: the path must exist when the params are loaded."""


InputPath = Annotated[Path, MustExist()]


@dataclass(frozen=True)
class DatasetSplit:
    """An LVIS/COCO json and the folder its images are under (usually made by an earlier stage, so they are
    checked when the stage reads them, not when the params are loaded)."""

    annotations: Path
    image_root: Path


@dataclass(frozen=True)
class CommonConfig:
    """Profile-wide settings."""

    profile: str = "demo"
    output_dir: Path = REPO_ROOT / "outputs" / "demo"
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = "auto"


@dataclass(frozen=True)
class Config:
    """A loaded params file: common settings plus the typed sections it (or its common.yaml) defines.
    ``stage_dirs`` sends chosen stages elsewhere than ``<output_dir>/<stage>`` (the ablation's data variants)."""

    path: Path
    common: CommonConfig
    sections: dict[str, Any] = field(default_factory=dict)
    stage_dirs: dict[str, Path] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The typed config of section ``name``; its defaults if the file does not mention it."""
        if name in self.sections:
            return self.sections[name]
        if name not in SECTIONS:
            raise ConfigError(f"{self.path}: unknown section {name!r}")
        return _build(SECTIONS.get(name), {}, name, {}, self.path)

    def stage_dir(self, name: str) -> Path:
        """Where stage ``name`` writes: ``<output_dir>/<name>`` unless ``stage_dirs`` says otherwise."""
        return self.stage_dirs.get(name, self.common.output_dir / name)

    @property
    def clip_cache_dir(self) -> Path:
        """Where the toy CLIP is cached, shared by every stage of a run: ``<output_dir>/clip``."""
        return self.common.output_dir / CLIP_CACHE_DIR

    @property
    def figures_dir(self) -> Path:
        """Where every stage saves its figures: ``<output_dir>/figures``."""
        return self.common.output_dir / FIGURES_DIR


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, origin: str, origins: dict[str, str]) -> Any:
    """Check ``value`` against type ``tp`` (converting str->Path, int->float, list->tuple); ``origin`` set it, and
    ``origins`` says who set the dotted keys inside it."""

    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{origin}: {key}: expected {expected}, got {value!r}")

    hint_origin = typing.get_origin(tp)
    if hint_origin is Annotated:
        base, *extra = typing.get_args(tp)
        out = _coerce(value, base, key, origin, origins)
        for choice in (m for m in extra if isinstance(m, Choice)):
            if out not in choice.registry:
                fail("one of " + ", ".join(repr(name) for name in choice.registry.names()))
        if any(isinstance(m, MustExist) for m in extra) and not Path(out).exists():
            raise ConfigError(f"{origin}: {key}: file or folder not found: {out}")
        return out
    if hint_origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        if len(candidates) == 1:  # an optional value: its own type's message says what is wrong
            return _coerce(value, candidates[0], key, origin, origins)
        for arg in candidates:
            try:
                return _coerce(value, arg, key, origin, origins)
            except ConfigError:
                continue
        fail(" or ".join(_type_name(a) for a in args))
    if hint_origin is Literal:
        if not any(value == a and type(value) is type(a) for a in typing.get_args(tp)):  # True is not 1
            fail("one of " + ", ".join(repr(a) for a in typing.get_args(tp)))
        return value
    if hint_origin in (list, tuple):
        if not isinstance(value, list | tuple):
            fail(f"a list of {_type_name(typing.get_args(tp)[0])}")
        args = typing.get_args(tp)
        if hint_origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                fail(f"a list of {len(args)} values")
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(_coerce(v, a, f"{key}[{i}]", origin, origins) for i, (v, a) in pairs)
        items = [_coerce(v, args[0], f"{key}[{i}]", origin, origins) for i, v in enumerate(value)]
        return tuple(items) if hint_origin is tuple else items
    if hint_origin is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(v, vt, f"{key}.{k}", origin, origins) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail("a mapping")
        return _build(tp, value, key, origins, origin)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            fail("a path")
        return from_root(os.path.expandvars(os.path.expanduser(str(value))))
    raise TypeError(f"unsupported config field type {tp!r} at {key}")


def _build(cls: type, values: dict, prefix: str, origins: dict[str, str], default_origin: Any) -> Any:
    """Instantiate dataclass ``cls`` from ``values``; ``origins`` maps dotted keys to the file that set them."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else key
        origin = origins.get(dotted, str(default_origin))
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{origin}: unknown key {dotted!r} (known keys: {known})")
        kwargs[key] = _coerce(value, hints[key], dotted, origin, origins)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            dotted = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{default_origin}: missing required key {dotted!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # a dataclass's own __post_init__ check
        where = f"{default_origin}: {prefix}" if prefix else str(default_origin)
        raise ConfigError(f"{where}: {err}") from None


def _read_yaml(path: Path) -> dict:
    """The mapping in params file ``path`` (relative: from the repository root)."""
    if not from_root(path).is_file():
        where = "" if path.is_absolute() else f" (relative paths are read from the repository root {REPO_ROOT})"
        raise ConfigError(f"params file not found: {path}{where}")
    try:
        data = yaml.safe_load(from_root(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return data


def _merge(base: dict, top: dict, source: str, origins: dict[str, str], prefix: str = "") -> dict:
    """Deep-merge ``top`` over ``base`` and record which file set each dotted key."""
    out = dict(base)
    for key, value in top.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, source, origins, dotted)
        else:
            out[key] = value
            origins[dotted] = source
            if isinstance(value, dict):
                for sub in value:
                    origins[f"{dotted}.{sub}"] = source
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.sub=value`` (value read as YAML) into (key path, value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. toyworld.n_train_images=100")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from None
    return key.strip().split("."), value


def _interpolate(value: Any, variables: dict[str, str]) -> Any:
    """``value`` with every ``${name}`` of ``variables`` replaced inside its strings (at any depth)."""
    if isinstance(value, str):
        for name, replacement in variables.items():
            value = value.replace("${" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables) for v in value]
    return value


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """Load ``path`` (over ``common.yaml`` beside it) and ``--set`` style overrides into a :class:`Config`.
    A relative ``path``, and every relative path in the files, is taken from the repository root.

    ``${output_dir}`` and ``${profile}`` in any string value are replaced by the final common settings (after
    the overrides), so ``--set output_dir=X`` moves every path of a run that is written that way.
    """
    path = Path(path)
    origins: dict[str, str] = {}
    merged: dict = {}
    common_path = path.parent / COMMON_FILE
    common_file = from_root(common_path)
    if common_file.is_symlink() and not common_file.exists():
        target = os.readlink(common_file)
        raise ConfigError(f"{common_path}: a link to {target}, which does not exist (fix or remove the link)")
    if common_file.is_file() and common_file.resolve() != from_root(path).resolve():
        merged = _merge(merged, _read_yaml(common_path), str(common_path), origins)
    merged = _merge(merged, _read_yaml(path), str(path), origins)
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        merged = _merge(merged, nested, f"--set {text}", origins)

    common_names = {f.name for f in dataclasses.fields(CommonConfig)}
    common_values = {k: v for k, v in merged.items() if k in common_names}
    common = _build(CommonConfig, common_values, "", origins, path)
    merged = _interpolate(merged, {"output_dir": str(common.output_dir), "profile": common.profile})
    sections = {}
    for key, value in merged.items():
        if key in common_names:
            continue
        origin = origins.get(key, str(path))
        if key not in SECTIONS:
            known = ", ".join(sorted(common_names | set(SECTIONS.names())))
            raise ConfigError(f"{origin}: unknown key {key!r} (known keys: {known})")
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key}: expected a mapping of the section's keys, got {value!r}")
        sections[key] = _build(SECTIONS.get(key), value, key, origins, origin)
    return Config(path=path, common=common, sections=sections)


def parse_options(cls: type, values: dict[str, Any], where: str) -> Any:
    """Validate a free-form mapping (e.g. a backend's ``options``) into dataclass ``cls``.

    Errors are one line starting with ``where`` (e.g. ``"model sd15 options"``) and naming the key.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    return _build(cls, values, "", {}, where)


def check_name(what: str, name: str) -> None:
    """A name that names folders and ids: non-empty, without '/', and not '.' or '..' (which name folders that
    exist already: a run called '..' would write into the output root)."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{what} name {name!r} must be non-empty, contain no '/' and not be '.' or '..'")


def check_component(what: str, name: str, batch_size: int) -> None:
    """A model or method entry: a valid name (:func:`check_name`) and a batch size >= 1."""
    check_name(what, name)
    if batch_size < 1:
        raise ValueError(f"{what} {name}: batch_size must be >= 1")


def check_named_list(key: str, items: list[Any]) -> None:
    """A non-empty list of entries with unique ``name`` fields."""
    if not items:
        raise ValueError(f"{key} is empty")
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f"{key}: names must be unique, got {names}")


REPORT_BLOCK = "report"


def method_values(value: Any) -> Any:
    """A config dataclass (or value) as plain JSON-able python (paths as strings, relative to the repository root
    when under it; tuples as lists) without the
    ``report`` block of any dataclass: the settings that decide what a stage computes, not how its figures and
    tables look."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.name != REPORT_BLOCK}
    if isinstance(value, dict):
        return {k: method_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [method_values(v) for v in value]
    return for_display(value) if isinstance(value, Path) else value


# settings of a model or method that never change its outputs: its name (already in each item's id), how many items
# go through it at once, whether its weights may be downloaded
EXECUTION_ONLY = ("name", "batch_size", "allow_download")
# backend options (in a component's ``options``) that change its memory use and speed, and its outputs at most by
# float rounding: CPU offload, attention slicing and kernel, VAE slicing (VAE tiling blends tiles: not listed)
EXECUTION_ONLY_OPTIONS = ("offload", "attention_slicing", "attention", "vae_slicing")


def output_settings(component: Any) -> dict[str, Any]:
    """The method values of a model / method config that decide its outputs (:data:`EXECUTION_ONLY` and, inside its
    ``options``, :data:`EXECUTION_ONLY_OPTIONS` left out)."""
    values = {k: v for k, v in method_values(component).items() if k not in EXECUTION_ONLY}
    if isinstance(values.get("options"), dict):
        values["options"] = {k: v for k, v in values["options"].items() if k not in EXECUTION_ONLY_OPTIONS}
    return values


def settings_digest(*parts: Any, length: int = 16) -> str:
    """A short hex digest of method settings (dataclasses, paths, plain values; report blocks left out, see
    :func:`method_values`): the key of a cache or output folder."""
    text = json.dumps(method_values(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
