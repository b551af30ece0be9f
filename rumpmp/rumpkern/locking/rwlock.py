"""rwlock(9): reader/writer locks that work across CPU processes.

Built on the rumpuser rwlock hypercall: once a writer waits, new readers queue
behind it, so writers are not starved by a stream of readers.  Waiting releases the
CPU.  One consequence, as in NetBSD: a reader that enters again while a writer
waits deadlocks, so do not take a read hold twice.
"""

from __future__ import annotations

import errno

from hypercalls import sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import detsched, kernhist, perturb
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.locking import lockdebug, lockstat
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys.lockstat import LS_RW_READER, LS_RW_WRITER

RW_READER = sync.RW_READER
RW_WRITER = sync.RW_WRITER


class krwlock_t(Handle):
    """A reader/writer lock handle; pickles by reference."""

    __slots__ = ("_debug", "_hr", "_ls", "_stat", "arena", "name", "rec", "site")

    def __init__(
        self, arena: Arena, rec: kmem.KBuf, name: str | None = None, site: str = ""
    ) -> None:
        self.arena = arena
        self.rec = rec
        self._hr = sync.RWLock.attach(arena.pool, arena.w[rec.offset // 8 + lockdebug.R_SLOT])
        self._debug = lockdebug.enabled(arena)
        self._stat = lockstat.enabled(arena)
        self._ls = lockstat.entries()
        self.name = name or f"rwlock@{rec.offset:#x}"
        self.site = site

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.name, self.site)

    def _what(self) -> str:
        return self.name


def rw_init(name: str | None = None) -> krwlock_t:
    """rw_init(9): a new, unheld reader/writer lock."""
    return rw_init_in(_arena.current(), name)


def rw_init_in(arena: Arena, name: str | None = None) -> krwlock_t:
    """A new reader/writer lock on a given kernel (the host uses it at boot)."""
    slot = sync.RWLock(arena.pool).slot
    site = lockstat.init_site() if lockstat.named(arena) else ""
    return krwlock_t(arena, lockdebug.new_record(arena, slot), name, site)


def _mine(rw: krwlock_t) -> bool:
    return rw._hr.writer() == thread.owner_token()


def _check_enter(rw: krwlock_t, op: int, func: str) -> None:
    if not lockdebug.record_live(rw.arena, rw.rec):
        lockdebug.abort(rw.arena, "rwlock", func, rw.name, "uninitialized lock")
    if _mine(rw) or (op == RW_WRITER and lockdebug.reads().get(id_of(rw))):
        lockdebug.abort(rw.arena, "rwlock", func, rw.name, "locking against myself")


def id_of(rw: krwlock_t) -> int:
    return rw.rec.offset


def _note_read(rw: krwlock_t, delta: int) -> None:
    reads, key = lockdebug.reads(), id_of(rw)
    n = reads.get(key, 0) + delta
    if n:
        reads[key] = n
    else:
        del reads[key]


def _check_args(rw: object, op: object, func: str) -> None:
    if not isinstance(rw, krwlock_t):
        raise TypeError(f"{func}: rw must be a krwlock_t, not {type(rw).__name__}")
    if op not in (RW_READER, RW_WRITER) or isinstance(op, bool):
        raise OSError(errno.EINVAL, f"{func}: op must be RW_READER or RW_WRITER, not {op!r}")


def rw_enter(rw: krwlock_t, op: int) -> None:
    """rw_enter(9): take the lock as RW_READER or RW_WRITER, releasing the CPU to wait.

    Taking it again for writing, or for reading while write-holding it, panics even
    without LOCKDEBUG (it could only deadlock), as with rump's host rwlocks."""
    if detsched.state.on and detsched.participant() is not None:
        while True:  # a deterministic run: a hand-over point, then the lock or a wait
            detsched.point()
            if rw_tryenter(rw, op):
                return
            detsched.block(rw.rec.offset, 0)
    _check_args(rw, op, "rw_enter")
    if rw._debug:
        _check_enter(rw, op, "rw_enter")
    if rw._hr.tryenter(op):
        waited = 0
    else:  # the slow path: see that it is not our own hold
        if perturb.state.on:
            perturb.point()
        if _mine(rw):
            lockdebug.abort(rw.arena, "rwlock", "rw_enter", rw.name, "locking against myself")
        waited = _wait_for(rw, op)
    if op == RW_READER:
        _note_read(rw, 1)
    if rw._stat:
        lockstat.acquired(rw, _kind(op), waited)


def _kind(op: int) -> int:
    return LS_RW_READER if op == RW_READER else LS_RW_WRITER


def _wait_for(rw: krwlock_t, op: int) -> int:
    """Take a busy rwlock; the ns it waited, when lockstat or the trace wants it
    (else 0)."""
    start = kernhist.now() if rw._stat or kernhist.state.on else 0
    rw._hr.enter(op)
    if not start:
        return 0
    waited = max(kernhist.now() - start, 1)
    if kernhist.state.on:
        lockstat.traced_wait(rw, _kind(op), thread.curlwp(), waited)
    return waited


def rw_tryenter(rw: krwlock_t, op: int) -> bool:
    """rw_tryenter(9): take the lock only if that needs no wait."""
    _check_args(rw, op, "rw_tryenter")
    if rw._debug:
        _check_enter(rw, op, "rw_tryenter")
    ok = rw._hr.tryenter(op)
    if ok and op == RW_READER:
        _note_read(rw, 1)
    if ok and rw._stat:
        lockstat.acquired(rw, _kind(op))
    return ok


def rw_exit(rw: krwlock_t) -> None:
    """rw_exit(9): release the caller's hold."""
    writer = _mine(rw)
    if not writer:
        if rw._debug and not lockdebug.reads().get(id_of(rw)):
            lockdebug.abort(rw.arena, "rwlock", "rw_exit", rw.name, "not held by this lwp")
        _note_read(rw, -1)
    if rw._stat:
        lockstat.released(rw, LS_RW_WRITER if writer else LS_RW_READER)
    rw._hr.exit()
    if detsched.state.on:  # a deterministic run's lwps waiting for it may run again
        detsched.unblock(rw.rec.offset)


def rw_tryupgrade(rw: krwlock_t) -> bool:
    """rw_tryupgrade(9): turn the caller's read hold into the write hold if it is alone."""
    ok = rw._hr.tryupgrade()
    if ok:
        _note_read(rw, -1)
        if rw._stat:
            lockstat.released(rw, LS_RW_READER)
            lockstat.acquired(rw, LS_RW_WRITER)
    return ok


def rw_downgrade(rw: krwlock_t) -> None:
    """rw_downgrade(9): turn the caller's write hold into a read hold."""
    if rw._debug and not _mine(rw):
        lockdebug.abort(rw.arena, "rwlock", "rw_downgrade", rw.name, "not write-held by this lwp")
    rw._hr.downgrade()
    _note_read(rw, 1)
    if rw._stat:
        lockstat.released(rw, LS_RW_WRITER)
        lockstat.acquired(rw, LS_RW_READER)


def rw_read_held(rw: krwlock_t) -> bool:
    """rw_read_held(9): held by some reader (for assertions)."""
    return rw._hr.readers() > 0


def rw_write_held(rw: krwlock_t) -> bool:
    """rw_write_held(9): write-held by the calling lwp."""
    return _mine(rw)


def rw_lock_held(rw: krwlock_t) -> bool:
    """rw_lock_held(9): read-held by anyone or write-held by the caller."""
    return rw_read_held(rw) or rw_write_held(rw)


def rw_destroy(rw: krwlock_t) -> None:
    """rw_destroy(9): free the lock; it must not be held."""
    if not lockdebug.record_live(rw.arena, rw.rec):
        lockdebug.abort(rw.arena, "rwlock", "rw_destroy", rw.name, "uninitialized lock")
    if rw._debug and (rw._hr.readers() or rw._hr.writer()):
        lockdebug.abort(rw.arena, "rwlock", "rw_destroy", rw.name, "is locked or in use")
    rw._hr.destroy()
    lockdebug.free_record(rw.arena, rw.rec)
