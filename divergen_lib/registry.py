"""One registry mechanism for every extension point (stages, engines, generation backends, annotators).

A :class:`Registry` maps a name to its target: an object, or a ``"module:attribute"`` string imported the first
time the entry is used, so that listing or checking names (as loading a params file does) imports nothing heavy.
A config field whose value must be a registered name is typed ``Annotated[str, Choice(REGISTRY)]``; the params
loader then rejects any other value with the known names, like a ``Literal``, while the names are listed once,
in the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import InputError

T = TypeVar("T")


def load_target(target: str) -> Any:
    """The object a ``"module:attribute"`` string names."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    """Names of one kind of extension (``kind``, e.g. ``"training engine"``) and what each resolves to."""

    def __init__(self, kind: str, entries: Mapping[str, str | T] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str | T] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str | T) -> None:
        """Add ``name``; a name registered twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._entries[name] = target

    def remove(self, name: str) -> None:
        """Take ``name`` out again (a plug-in registered for a while, as tests do)."""
        del self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> T:
        """The target of ``name`` (imported on first use); an unknown name raises InputError listing the known."""
        if name not in self._entries:
            raise InputError(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries)})")
        target = self._entries[name]
        if isinstance(target, str):
            target = self._entries[name] = load_target(target)
        return target  # type: ignore[return-value]


@dataclass(frozen=True)
class Choice:
    """Marker for ``Annotated[str, Choice(registry)]``: the value must be one of the registry's names."""

    registry: Registry[Any]
