"""LOCKDEBUG (subr_lockdebug.c): catch lock misuse and panic naming the lock and lwp.

Switched per kernel at boot (``boot(lockdebug=...)`` or RUMP_LOCKDEBUG).  The
checks cost a few attribute reads on every lock operation, so the fast paths test
one cached flag first.  Per-thread bookkeeping (spin mutexes held, read holds)
lives in a thread-local: an lwp never changes threads.
"""

from __future__ import annotations

from hypercalls import thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem import kmem

# Every kernel lock (mutex, rwlock, condvar) has a small record in the kernel heap:
# its hypercall slot and type.  LOCKDEBUG uses it to tell a live lock from one that
# was destroyed; a freed record fails the heap's generation check.
R_MAGIC = 0
R_SLOT = 1
R_SPIN = 2
R_IPL = 3
R_REFS = 4  # references to a mutex_obj/rw_obj (0 for a lock made by mutex_init/rw_init)
RECORD_BYTES = 40
LOCK_MAGIC = 0x6B6C6F636B  # "klock"


def new_record(arena: Arena, slot: int, spin: bool = False, ipl: int = 0) -> kmem.KBuf:
    rec = kmem.kmem_zalloc_in(arena, RECORD_BYTES)
    r = rec.offset // 8
    arena.w[r + R_SLOT] = slot
    arena.w[r + R_SPIN] = int(spin)
    arena.w[r + R_IPL] = ipl
    arena.w[r + R_MAGIC] = LOCK_MAGIC
    return rec


def record_at(arena: Arena, ref: int) -> kmem.KBuf:
    """The lock record whose (offset, generation) are at words ``ref``, ``ref + 1``
    (how a shared structure keeps a lock it made)."""
    return kmem.kbuf_at(arena, arena.w[ref], RECORD_BYTES, arena.w[ref + 1])


def record_live(arena: Arena, rec: kmem.KBuf) -> bool:
    return kmem.is_live(arena, rec) and arena.w[rec.offset // 8 + R_MAGIC] == LOCK_MAGIC


def free_record(arena: Arena, rec: kmem.KBuf) -> None:
    arena.w[rec.offset // 8 + R_MAGIC] = 0
    kmem.kmem_free_in(arena, rec, RECORD_BYTES)


_held = thread.local()


def enabled(arena: Arena) -> bool:
    return bool(arena.w[_arena.H_LOCKDEBUG])


def describe_curlwp(arena: Arena) -> str:
    lid = thread.curlwp()
    if not lid:
        return "no lwp"
    return f"lwp {lid} '{tables(arena).lwp_name(lid)}'"


def abort(arena: Arena, kind: str, func: str, lock: str, why: str) -> None:
    """Panic as NetBSD's lockdebug_abort does: '<kind> error: <func>: <why>'."""
    panic_in(arena, f"{kind} error: {func}: {why} (lock {lock}, {describe_curlwp(arena)})")


def thread_reset() -> None:
    """Forget this thread's bookkeeping: it starts carrying another lwp."""
    _held.__dict__.clear()


# -- spin mutexes held by this thread ---------------------------------------------


def spin_acquired() -> None:
    _held.spin = getattr(_held, "spin", 0) + 1


def spin_released() -> None:
    _held.spin = getattr(_held, "spin", 0) - 1


def percpu_ref(delta: int) -> None:
    """Count this thread's percpu references (percpu_getref/putref)."""
    _held.percpu = getattr(_held, "percpu", 0) + delta


def check_sleep(arena: Arena, what: str) -> None:
    """Panic if the calling lwp is about to sleep with a spin mutex held, or while it
    holds a percpu reference (it would give up its CPU, and the slot with it)."""
    if getattr(_held, "spin", 0) > 0:
        abort(arena, "mutex", what, "spin mutex", "sleeping with spin mutex held")
    if getattr(_held, "percpu", 0) > 0:
        panic_in(arena, f"percpu error: {what}: sleeping with a percpu reference held")


# -- read holds of rwlocks by this thread ------------------------------------------


def reads() -> dict[int, int]:
    r = getattr(_held, "reads", None)
    if r is None:
        r = _held.reads = {}
    return r
