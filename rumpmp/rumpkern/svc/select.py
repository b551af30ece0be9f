"""select(2) support: per-CPU selcluster state (sys_select.c).

Each CPU has a select cluster with its own lock and a sequence number bumped by
every selnotify, as NetBSD's selsysinit sets up."""

from __future__ import annotations

from hypercalls import sync
from rumpmp.rumpkern.arena import Arena

SC_LOCK = 0  # pool slot of the cluster lock
SC_NCOLL = 1  # collision count
SC_SEQ = 2  # notification sequence
RECORD_WORDS = 64  # one record per CPU, cache-line separated


def region(ncpu: int) -> tuple[str, int]:
    return ("select", ncpu * RECORD_WORDS * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("select") + cpu * RECORD_WORDS


def selsysinit(arena: Arena, cpu: int) -> None:
    """selsysinit: this CPU's select cluster and its lock."""
    r = record(arena, cpu)
    arena.w[r + SC_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
