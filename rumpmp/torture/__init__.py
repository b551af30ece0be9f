"""The torture suite (``python -m rumpmp stress``): locktorture for a rump kernel.

``run(type, ncpu=..., duration=..., seed=...)`` boots a fresh kernel, hammers one kind
of lock or kernel service from writer and reader lwps on every CPU, checks each
acquisition for a violation, and returns a ``Result``; ``self_check()`` runs the
deliberately broken lock, which must fail.  ``TortureType`` and ``TortureLwp`` are
what a type of your own is written with (``base.py`` shows one).
"""

from typing import Any

_DRIVER = ["TYPES", "Counts", "Failure", "Params", "Result", "Snapshot", "run", "self_check"]
_BASE = ["Torture", "TortureLwp", "TortureType"]
__all__ = [*_DRIVER, *_BASE]


def __getattr__(name: str) -> Any:
    """The suite loads when first used (``python -m rumpmp boot`` parses the stress
    options without it)."""
    if name in _DRIVER:
        from rumpmp.torture import driver  # noqa: PLC0415 - loaded on first use

        return getattr(driver, name)
    if name in _BASE:
        from rumpmp.torture import base  # noqa: PLC0415 - loaded on first use

        return getattr(base, name)
    raise AttributeError(f"module 'rumpmp.torture' has no attribute {name!r}")
