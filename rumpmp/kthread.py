"""kthread(9): kernel threads.

A kernel thread is an lwp of proc0 running ``func(arg)``.  It is placed on CPU
``ci`` when given (bound there for life), otherwise on the least loaded CPU; an idle
CPU may steal it before it starts.  Without RUMP_THREADS, rump fakes the threads it
knows it can do without and panics for any other; rumpmp does the same.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from . import arena as _arena
from . import lwproc, scheduler
from .arena import Arena
from .blob import blob_free, blob_put
from .lwproc import L_ENTRY, L_FLAGS, L_REPLY, L_RESULT, L_STATE, LSZOMB, LW_SYSTEM, LW_WAITER
from .prf import kprintf, panic_in

KTHREAD_IDLE = 0x01
KTHREAD_MPSAFE = 0x02
KTHREAD_INTR = 0x04
KTHREAD_TS = 0x08
KTHREAD_MUSTJOIN = 0x10

#: Threads rump starts without complaint when threads are off (it just warns).
_FAKEABLE = ("vrele", "cachegc", "nfssilly", "unpgc", "pmf", "xcall", "pdaemon", "aiodoned")


class KthreadExit(BaseException):
    """Raised by kthread_exit to end the calling kernel thread."""

    def __init__(self, ecode: int) -> None:
        super().__init__(ecode)
        self.ecode = ecode


def kthread_create_in(
    arena: Arena, pri: int, flags: int, ci: int | None, func: Callable, arg: object, name: str
) -> int:
    """kthread_create on a given kernel (the boot path uses it from the host)."""
    if not arena.w[_arena.H_THREADS]:
        if name in _FAKEABLE:
            kprintf(arena, f"rump kernel threads not enabled, {name} not functional\n")
            return 0
        panic_in(arena, f"threads not available (kthread_create {name}), setenv RUMP_THREADS 1")
    if ci is not None and not 0 <= ci < arena.ncpu:
        raise OSError(errno.EINVAL, f"kthread_create: no cpu{ci}")
    t = lwproc.tables(arena)
    lflags = LW_SYSTEM | (LW_WAITER if flags & KTHREAD_MUSTJOIN else 0)
    t.lock.enter_nowrap()
    try:
        lid = lwproc.lwp_alloc(t, t.find_proc(0), name, pri, -1 if ci is None else ci, lflags)
    finally:
        t.lock.exit()
    blob_put(arena, (func, (arg,)), t.lwp(lid) + L_ENTRY)
    scheduler.setrunnable_new(arena, lid)
    return lid


def kthread_create(
    pri: int, flags: int, ci: int | None, func: Callable, arg: object, name: str
) -> int:
    """kthread_create(9): start ``func(arg)`` as a kernel thread; returns its lwp id.

    ``ci`` is a CPU index or None.  rumpmp returns the new lwp instead of filling in
    an ``lwp_t **``; with KTHREAD_MUSTJOIN it must be collected with kthread_join.
    """
    return kthread_create_in(_arena.current(), pri, flags, ci, func, arg, name)


def kthread_exit(ecode: int = 0) -> None:
    """kthread_exit(9): end the calling kernel thread.  Never returns."""
    raise KthreadExit(ecode)


def wait_lwp(arena: Arena, lid: int) -> None:
    """Park until lwp ``lid`` (created with LW_WAITER) has ended."""
    t = lwproc.tables(arena)
    l = t.lwp(lid)
    me = arena.pool.park_slot()
    t.lock.enter_nowrap()
    if arena.w[l + L_STATE] != LSZOMB:
        arena.w[l + L_REPLY] = me
    t.lock.exit()
    while arena.w[l + L_STATE] != LSZOMB:
        arena.pool.park(me)


def kthread_join(lid: int) -> int:
    """kthread_join(9): wait for a KTHREAD_MUSTJOIN thread to exit and collect it."""
    arena = _arena.current()
    t = lwproc.tables(arena)
    l = t.lwp(lid)
    if not arena.w[l + L_FLAGS] & LW_WAITER or not arena.w[l + L_STATE]:
        raise OSError(errno.EINVAL, f"kthread_join: lwp {lid} is not a joinable thread")
    wait_lwp(arena, lid)
    if arena.w[l + L_RESULT]:
        blob_free(arena, l + L_RESULT)
    lwproc.lwp_release(t, lid)
    return 0
