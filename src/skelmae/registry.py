"""Named registries of plug-in classes, each with a typed config dataclass.

A backbone, a pre-training method, a head, a masking strategy, a dataset format or a
transform is one class in one file, registered under a name::

    @BACKBONES.register("transformer", config=TransformerConfig)
    class SkeletonEncoder(Encoder): ...

Checkpoints store ``{"name": ..., "config": {...}}`` (see :meth:`Registry.describe`) and
:meth:`Registry.build` rebuilds the object from that, so nothing dispatches on strings in
if-chains. A class without ``config`` is its own config when it is a dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from skelmae.errors import ConfigError

T = TypeVar("T")

__all__ = ["Entry", "Registry", "config_from_dict"]


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    cls: type[T]
    config: type | None  # the typed config dataclass, or None for a class without options
    summary: str  # first line of the class docstring, for listings


def config_from_dict(schema: type, values: Mapping[str, Any], where: str) -> Any:
    """``schema(**values)`` with an error that names ``where`` and the unknown or missing keys."""
    names = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; {schema.__name__} has {sorted(names)}")
    try:
        return schema(**dict(values))
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


class Registry(Generic[T]):
    """Name -> class (+ config dataclass). ``kind`` names the registry in error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, config: type | None = None) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self._entries[name].cls.__qualname__}, {cls.__qualname__})")
            schema = config if config is not None else (cls if dataclasses.is_dataclass(cls) else None)
            doc = (cls.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, cls, schema, doc[0] if doc else "")
            return cls

        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def get(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; expected one of {', '.join(self._entries)}")
        return self._entries[name]

    def config(self, name: str, values: Mapping[str, Any] | Any | None = None) -> Any:
        """The typed config of ``name`` from a mapping (or an instance of the schema itself)."""
        entry = self.get(name)
        if entry.config is None:
            if values:
                raise ConfigError(f"{self.kind} {name!r} takes no options, got {sorted(values)}")
            return None
        if isinstance(values, entry.config):
            return values
        return config_from_dict(entry.config, values or {}, f"{self.kind} {name!r}")

    def build(self, name: str, config: Mapping[str, Any] | Any | None = None, *args: Any, **kwargs: Any) -> T:
        """An instance of ``name``: ``cls(*args, config, **kwargs)``, or ``cls(*args, **kwargs)``
        for a class without options; a dataclass that is its own config is built from it."""
        entry = self.get(name)
        typed = self.config(name, config)
        if typed is None:
            return entry.cls(*args, **kwargs)
        if entry.config is entry.cls:
            return typed
        return entry.cls(*args, typed, **kwargs)

    def describe(self, name: str, config: Any) -> dict[str, Any]:
        """What a checkpoint stores to rebuild the object: its name and config as plain data."""
        self.get(name)
        return {"name": name, "config": dataclasses.asdict(config) if config is not None else {}}
