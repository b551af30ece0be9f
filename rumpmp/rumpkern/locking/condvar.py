"""condvar(9): condition variables that work across CPU processes.

Built on the rumpuser condvar hypercall: each waiter queues its own park semaphore
in FIFO order, so signal wakes the longest waiter and broadcast wakes every waiter
that was waiting, none lost.  Waiting releases the CPU.  Timeouts are in ticks of
the kernel's ``hz``.
"""

from __future__ import annotations

import errno

from hypercalls import sync
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import detsched, kernhist, perturb
from rumpmp.rumpkern.base.arena import Arena, onproc
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.locking import lockdebug, lockstat
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit, mutex_owned
from rumpmp.rumpkern.mem import kmem


class kcondvar_t(Handle):
    """A condition variable handle; pickles by reference."""

    __slots__ = ("_debug", "_hc", "arena", "name", "rec")

    def __init__(self, arena: Arena, rec: kmem.KBuf, name: str | None = None) -> None:
        self.arena = arena
        self.rec = rec
        self._hc = sync.CondVar.attach(arena.pool, arena.w[rec.offset // 8 + lockdebug.R_SLOT])
        self._debug = lockdebug.enabled(arena)
        self.name = name or f"condvar@{rec.offset:#x}"

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.name)

    def _what(self) -> str:
        return self.name


def cv_init(wmesg: str | None = None) -> kcondvar_t:
    """cv_init(9): a new condition variable (``wmesg`` names it in diagnostics)."""
    return cv_init_in(_arena.current(), wmesg)


def cv_init_in(arena: Arena, wmesg: str | None = None) -> kcondvar_t:
    """A new condition variable on a given kernel (the host uses it at boot)."""
    slot = sync.CondVar(arena.pool).slot
    return kcondvar_t(arena, lockdebug.new_record(arena, slot), wmesg)


def _wait(cv: kcondvar_t, mtx: kmutex_t, ticks: int, func: str) -> int:
    if cv._debug and not mutex_owned(mtx):
        lockdebug.abort(cv.arena, "condvar", func, mtx.name, "mutex not held by this lwp")
    if detsched.state.on and detsched.participant() is not None:
        mutex_exit(mtx)  # a deterministic run: blocked on the condvar in its model
        timed_out = detsched.block(cv.rec.offset, ticks)
        mutex_enter(mtx)
        return errno.EWOULDBLOCK if timed_out else 0
    spin = mtx.spin and mtx._debug
    if spin:
        lockdebug.spin_released()  # the interlock is dropped while we sleep
    if mtx._stat:  # ... and taken again after: a hold ends and another begins
        lockstat.released(mtx, mtx._kind)
    if kernhist.state.on:  # the trace says what the lwp blocks on
        onproc.wchan = cv.rec.offset
    try:
        if ticks <= 0:
            cv._hc.wait(mtx._hm)
            return 0
        rc = cv._hc.timedwait(
            mtx._hm, *divmod(ticks * 1_000_000_000 // cv.arena.w[_arena.H_HZ], 1_000_000_000)
        )
        return errno.EWOULDBLOCK if rc else 0
    finally:
        if kernhist.state.on:
            onproc.wchan = 0
        if spin:
            lockdebug.spin_acquired()
        if mtx._stat:
            lockstat.acquired(mtx, mtx._kind)


def cv_wait(cv: kcondvar_t, mtx: kmutex_t) -> None:
    """cv_wait(9): release ``mtx``, sleep until signalled, take ``mtx`` again."""
    _wait(cv, mtx, 0, "cv_wait")


def cv_timedwait(cv: kcondvar_t, mtx: kmutex_t, ticks: int) -> int:
    """cv_timedwait(9): as cv_wait for at most ``ticks``; EWOULDBLOCK on timeout.

    As in NetBSD, 0 ticks means no timeout.
    """
    return _wait(cv, mtx, ticks, "cv_timedwait")


def cv_signal(cv: kcondvar_t) -> None:
    """cv_signal(9): wake the longest waiter, if any."""
    if perturb.state.on:
        perturb.point()
    ts = kernhist.now() if kernhist.state.on else 0
    woken = cv._hc.signal()
    if ts and woken:
        kernhist.woke(cv.arena, woken, ts)
    if detsched.state.on:
        detsched.unblock(cv.rec.offset, one=True)
        detsched.point()


def cv_broadcast(cv: kcondvar_t) -> None:
    """cv_broadcast(9): wake every waiter."""
    if perturb.state.on:
        perturb.point()
    ts = kernhist.now() if kernhist.state.on else 0
    woken = cv._hc.broadcast()
    if ts and woken:
        kernhist.woke(cv.arena, woken, ts)
    if detsched.state.on:
        detsched.unblock(cv.rec.offset)
        detsched.point()


def cv_has_waiters(cv: kcondvar_t) -> bool:
    """cv_has_waiters(9)."""
    return cv._hc.has_waiters()


def cv_destroy(cv: kcondvar_t) -> None:
    """cv_destroy(9): free the condition variable; nobody may be waiting on it."""
    if not lockdebug.record_live(cv.arena, cv.rec):
        lockdebug.abort(cv.arena, "condvar", "cv_destroy", cv.name, "uninitialized condvar")
    if cv._debug and cv._hc.has_waiters():
        lockdebug.abort(cv.arena, "condvar", "cv_destroy", cv.name, "has waiters")
    cv._hc.destroy()
    lockdebug.free_record(cv.arena, cv.rec)
