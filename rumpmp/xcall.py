"""xcall(9): per-CPU cross-call state (subr_xcall.c).

Each CPU keeps the sequence number of the last cross-call it has run, so that a
caller can wait for every target to catch up."""

from __future__ import annotations

from hypercalls import sync

from .arena import Arena

XC_LOCK = 0  # pool slot of the per-CPU xcall lock
XC_DONE = 1  # cross-calls this CPU has finished
RECORD_WORDS = 64  # one record per CPU, cache-line separated


def region(ncpu: int) -> tuple[str, int]:
    return ("xcall", ncpu * RECORD_WORDS * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("xcall") + cpu * RECORD_WORDS


def xc_init_cpu(arena: Arena, cpu: int) -> None:
    """xc_init_cpu: this CPU's cross-call state and its lock."""
    r = record(arena, cpu)
    arena.w[r + XC_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
