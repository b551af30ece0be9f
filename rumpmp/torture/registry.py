"""Which torture type a name means: the built-ins, the entry point group
``rumpmp.torture_types``, or ``package.module:Class``."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from rumpmp.torture.base import TortureType
from rumpmp.torture.lwps import BUILTIN


def type_spec(kind: type[TortureType]) -> str:
    """How a command line names ``kind``: its built-in name, else module:Class."""
    if BUILTIN.get(kind.type_name()) is kind:
        return kind.type_name()
    return f"{kind.__module__}:{kind.__qualname__}"


def resolve_type(spec: str | type[TortureType]) -> type[TortureType]:
    """The torture type ``spec`` names: a TortureType subclass, a built-in name, a
    name under the entry point group ``rumpmp.torture_types``, or ``module:Class``."""
    if isinstance(spec, type) and issubclass(spec, TortureType):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"type must be a TortureType or a name, not {type(spec).__name__}")
    found: Any = BUILTIN.get(spec)
    if found is None and ":" in spec:
        found = _import(spec)
    if found is None:
        found = _entry_point(spec)
    if not (isinstance(found, type) and issubclass(found, TortureType)):
        names = ", ".join([*BUILTIN, *_entry_point_names()])
        raise ValueError(
            f"type: unknown torture type {spec!r} (one of {names}, or package.module:Class)"
        )
    return found


def _import(spec: str) -> object:
    module, _, qualname = spec.partition(":")
    try:
        obj: object = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"type: cannot import {module!r}: {e}") from None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _entry_points() -> Any:
    return entry_points(group="rumpmp.torture_types")


def _entry_point(name: str) -> object:
    for ep in _entry_points():
        if ep.name == name:
            return ep.load()
    return None


def _entry_point_names() -> list[str]:
    return [ep.name for ep in _entry_points()]
