"""rumpuser_dl_bootstrap: find the kernel modules and components the host provides.

rump finds them in the objects the host has loaded; rumpmp finds them in the Python
distributions installed on the host's path, as entry points (groups
``rumpmp.modules`` and ``rumpmp.components``), and loads an entry only when asked.
The scan reads each distribution's ``entry_points.txt`` directly: importlib.metadata
would cost a boot some 25 ms to import and scan.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

#: (group) -> [(name, "module:attribute")], once per process
_found: dict[str, list[tuple[str, str]]] = {}


def entry_points(group: str) -> list[tuple[str, str]]:
    """(name, "module:attribute") of every entry point in ``group``, each name once
    (the first distribution on the path wins, as for imports)."""
    if group not in _found:
        seen: dict[str, str] = {}
        for path in sys.path:
            for text in _entry_point_files(path or "."):
                for name, value in _section(text, group):
                    seen.setdefault(name, value)
        _found[group] = list(seen.items())
    return _found[group]


def scanned() -> dict[str, list[tuple[str, str]]]:
    """The entry points this process has scanned, by group (a process that starts a
    new one hands them over, sparing it the scan)."""
    return dict(_found)


def adopt(found: dict[str, list[tuple[str, str]]]) -> None:
    """Take over another process's scan (``scanned``)."""
    _found.update(found)


def load(value: str) -> Any:
    """The object an entry point names ("module:attribute" or "module")."""
    module, _, attribute = value.partition(":")
    obj: Any = importlib.import_module(module.strip())
    for part in attribute.strip().split(".") if attribute else ():
        obj = getattr(obj, part)
    return obj


def _entry_point_files(path: str) -> list[str]:
    try:
        entries = os.scandir(path)
    except OSError:
        return []
    texts = []
    with entries:
        for entry in entries:
            if entry.name.endswith((".dist-info", ".egg-info")) and entry.is_dir():
                try:
                    with open(os.path.join(entry.path, "entry_points.txt"), encoding="utf-8") as f:
                        texts.append(f.read())
                except OSError:
                    continue
    return texts


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of ``[group]`` in an entry_points.txt."""
    out, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            out.append((name.strip(), value.strip()))
    return out


def caller_site(skip_dir: str) -> str:
    """``file:line`` of the innermost caller outside ``skip_dir`` (and outside this
    layer): the return address NetBSD's lockstat symbolises.  A file under the
    working directory is named relative to it."""
    here = os.path.dirname(__file__)
    f = sys._getframe(1)
    while f.f_back is not None and f.f_code.co_filename.startswith((skip_dir, here)):
        f = f.f_back
    name = f.f_code.co_filename
    cwd = os.getcwd()
    if name.startswith(cwd + os.sep):
        name = name[len(cwd) + 1 :]
    return f"{name}:{f.f_lineno}"
