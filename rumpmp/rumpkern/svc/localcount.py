"""localcount(9) (subr_localcount.c): reference counts kept per CPU, drained once.

Each CPU counts its own acquires and releases in its word (it may go below zero:
an object acquired on one CPU may be released on another), so the common path
touches no shared line and takes no lock.  ``localcount_drain`` switches the count
to one total under the caller's interlock: it marks the count as draining, has
every CPU add its word into the total (a cross-call; a CPU runs it only between
two of its own acquires or releases), then sleeps on the caller's condvar until
the total is zero.  A release that sees the count draining takes the interlock,
decrements the total and wakes the drainer when it reaches zero.
"""

from __future__ import annotations

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.intr.xcall import xc_broadcast, xc_wait
from rumpmp.rumpkern.locking.condvar import cv_broadcast, cv_wait, kcondvar_t
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit, mutex_owned
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.kmem import KBuf

L_DRAINING = 0
L_TOTAL = 1
L_COUNTS = 2  # one word per CPU


class localcount_t(Handle):
    """A local count: its words in the kernel heap; pickles by reference."""

    __slots__ = ("arena", "rec")

    def __init__(self, arena: Arena, rec: KBuf) -> None:
        self.arena, self.rec = arena, rec

    def _args(self) -> tuple:
        return (self.arena, self.rec)

    def _what(self) -> str:
        return f"at {self.rec.offset:#x}"


def localcount_init() -> localcount_t:
    """localcount_init(9): a new count (returned, where NetBSD fills one in)."""
    arena = _arena.current()
    return localcount_t(arena, kmem.kmem_zalloc_in(arena, (L_COUNTS + arena.ncpu) * 8))


def _r(lc: localcount_t) -> int:
    return lc.rec.offset // 8


def localcount_acquire(lc: localcount_t) -> None:
    """localcount_acquire(9): take a reference (never once draining has begun)."""
    w, r = lc.arena.w, _r(lc)
    if w[r + L_DRAINING]:
        panic_in(lc.arena, "localcount_acquire: the count is draining")
    w[r + L_COUNTS + _arena.here.cpu] += 1


def localcount_release(lc: localcount_t, cv: kcondvar_t, interlock: kmutex_t) -> None:
    """localcount_release(9): drop a reference; wakes a drainer on ``cv`` when the
    last one goes."""
    w, r = lc.arena.w, _r(lc)
    if not w[r + L_DRAINING]:
        w[r + L_COUNTS + _arena.here.cpu] -= 1
        return
    mutex_enter(interlock)
    w[r + L_TOTAL] -= 1
    if w[r + L_TOTAL] == 0:
        cv_broadcast(cv)
    mutex_exit(interlock)


def _collect(lc: localcount_t, interlock: kmutex_t) -> None:
    """Cross-call: this CPU's word goes into the total."""
    w, r = lc.arena.w, _r(lc)
    mutex_enter(interlock)
    w[r + L_TOTAL] += w[r + L_COUNTS + _arena.here.cpu]
    w[r + L_COUNTS + _arena.here.cpu] = 0
    mutex_exit(interlock)


def localcount_drain(lc: localcount_t, cv: kcondvar_t, interlock: kmutex_t) -> None:
    """localcount_drain(9): with ``interlock`` held, wait until every reference is
    released; returns with ``interlock`` held.  No acquire may start meanwhile."""
    w, r = lc.arena.w, _r(lc)
    if not mutex_owned(interlock):
        panic_in(lc.arena, "localcount_drain: the interlock is not held")
    w[r + L_DRAINING] = 1
    mutex_exit(interlock)
    xc_wait(xc_broadcast(0, _collect, lc, interlock))
    mutex_enter(interlock)
    while w[r + L_TOTAL] != 0:
        cv_wait(cv, interlock)


def localcount_fini(lc: localcount_t) -> None:
    """localcount_fini(9): free a drained count."""
    w, r = lc.arena.w, _r(lc)
    if not w[r + L_DRAINING] or w[r + L_TOTAL]:
        panic_in(lc.arena, "localcount_fini: the count was not drained")
    kmem.kmem_free_in(lc.arena, lc.rec, len(lc.rec))
