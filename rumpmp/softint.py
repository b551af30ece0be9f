"""softint(9): per-CPU software interrupts (kern_softint.c).

Each CPU keeps, per level, the handlers pending on it, under its own lock."""

from __future__ import annotations

from hypercalls import sync

from .arena import Arena

SI_LOCK = 0  # pool slot of the per-CPU softint lock
SI_PENDING = 1  # bitmask of levels with pending handlers
RECORD_WORDS = 64  # one record per CPU, cache-line separated


def region(ncpu: int) -> tuple[str, int]:
    return ("softint", ncpu * RECORD_WORDS * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("softint") + cpu * RECORD_WORDS


def softint_init(arena: Arena, cpu: int) -> None:
    """softint_init: this CPU's softint state and its lock."""
    r = record(arena, cpu)
    arena.w[r + SI_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
