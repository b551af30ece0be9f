"""callout(9): per-CPU callout queues (kern_timeout.c).

Each CPU owns a callout queue in shared memory, guarded by its own lock, so that
scheduling a callout on one CPU never contends with another."""

from __future__ import annotations

from hypercalls import sync

from .arena import Arena

CC_LOCK = 0  # pool slot of the per-CPU callout lock
CC_HEAD = 1  # first pending callout
CC_TICKS = 2  # ticks this CPU's clock has seen
RECORD_WORDS = 64  # one record per CPU, cache-line separated


def region(ncpu: int) -> tuple[str, int]:
    return ("callout", ncpu * RECORD_WORDS * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("callout") + cpu * RECORD_WORDS


def callout_init_cpu(arena: Arena, cpu: int) -> None:
    """callout_init_cpu: this CPU's callout queue and its lock."""
    r = record(arena, cpu)
    arena.w[r + CC_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
