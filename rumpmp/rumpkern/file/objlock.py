"""Object locks for files and what they open: a fixed set of mutexes, shared by number.

Pipes, kqueues, open files, descriptor tables and processes' kevent state each
need a mutex, and there may be thousands of them; a kernel's semaphores are a
bounded resource, so each object uses the mutex its number picks among those of
its kind (NOBJLOCKS made at boot, an equal share per kind).  Objects of different
kinds never share a mutex, so code may hold one lock of each kind (a file's and
its descriptor table's); it never holds two of one kind.
"""

from __future__ import annotations

from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_init_in
from rumpmp.rumpkern.mem.blob import blob_get, blob_put
from rumpmp.sys.file import FH_LOCKS, NOBJLOCKS

#: Which share of the locks an object's number picks its lock in.
PIPE, KQUEUE, FILE, FDTAB, PROC = 0, 1, 2, 3, 4
NKINDS = 5


def objlock_init(arena: Arena) -> None:
    """Make the locks (the host, at boot)."""
    locks = [mutex_init_in(arena, name=f"objlock{i}") for i in range(NOBJLOCKS)]
    blob_put(arena, locks, arena.region_word("file") + FH_LOCKS)


def objlock(arena: Arena, kind: int, number: int) -> kmutex_t:
    """The mutex of object ``number`` of a kind."""
    locks = arena.cache.get("objlocks")
    if locks is None:
        locks = arena.cache["objlocks"] = blob_get(arena, arena.region_word("file") + FH_LOCKS)
    return locks[(number * NKINDS + kind) % NOBJLOCKS]  # type: ignore[index]
