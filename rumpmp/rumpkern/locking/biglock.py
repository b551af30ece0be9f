"""The big kernel lock (KERNEL_LOCK(9), kern_lock.c; rump's rump_giantlock).

One lock for the whole kernel, taken recursively by the lwp that holds it: its
count is kept in the lwp's record.  It is held across blocking the way NetBSD holds
it: an lwp that gives up its CPU to sleep lets go of it entirely and takes it back,
as many times, once it has its CPU again (the scheduler calls ``release_for_sleep``
and ``retake_after_sleep``).  Code that is not MPSAFE (kthreads, callouts, softints,
work items, system calls without the flag) runs holding it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import sync, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys.lwp import L_BIGLOCKS, L_BIGSAVED


def biglock_init(arena: Arena) -> None:
    """The lock's pool slot (the host, at boot)."""
    arena.w[_arena.H_GIANT] = sync.Mutex(arena.pool, sync.MTX_KMUTEX).slot


def _giant(arena: Arena) -> sync.Mutex:
    return arena.attached(
        "giant", lambda: sync.Mutex.attach(arena.pool, arena.w[_arena.H_GIANT], sync.MTX_KMUTEX)
    )


def _me() -> tuple[Arena, int]:
    """The kernel and the calling lwp's record."""
    arena = _arena.current()
    lid = thread.curlwp()
    if not lid:
        raise OSError(errno.ENXIO, "the big kernel lock is for kernel code")
    return arena, tables(arena).lwp(lid)


def KERNEL_LOCK(nlocks: int = 1, l: object = None) -> None:
    """KERNEL_LOCK(9): take the big lock ``nlocks`` times (again, if this lwp holds
    it).  Waiting for it gives the CPU up."""
    arena, rec = _me()
    if nlocks < 1:
        panic_in(arena, f"KERNEL_LOCK: {nlocks} locks")
    w = arena.w
    if not w[rec + L_BIGLOCKS]:
        _giant(arena).enter()
    w[rec + L_BIGLOCKS] += nlocks


def KERNEL_UNLOCK_ONE(l: object = None) -> None:
    """KERNEL_UNLOCK_ONE(9): let go of one hold; the last lets the lock go."""
    arena, rec = _me()
    w = arena.w
    if not w[rec + L_BIGLOCKS]:
        panic_in(arena, "KERNEL_UNLOCK_ONE: the big lock is not held")
    w[rec + L_BIGLOCKS] -= 1
    if not w[rec + L_BIGLOCKS]:
        _giant(arena).exit()


def KERNEL_UNLOCK_ALL(l: object = None) -> int:
    """KERNEL_UNLOCK_ALL(9): let go of every hold; how many there were (NetBSD
    returns them through a pointer)."""
    arena, rec = _me()
    w = arena.w
    held = w[rec + L_BIGLOCKS]
    if held:
        w[rec + L_BIGLOCKS] = 0
        _giant(arena).exit()
    return held


def KERNEL_LOCKED_P() -> bool:
    """KERNEL_LOCKED_P(9): whether the calling lwp holds the big lock."""
    arena, rec = _me()
    return arena.w[rec + L_BIGLOCKS] > 0


def call(mpsafe: int, func: Callable[..., object], *args: object) -> tuple[bool, object]:
    """``entry.call(func, *args)``, holding the big lock unless ``mpsafe`` (how a
    callout, softint or work item without its MPSAFE flag runs)."""
    if mpsafe:
        return entry.call(func, *args)
    KERNEL_LOCK(1)
    try:
        return entry.call(func, *args)
    finally:
        KERNEL_UNLOCK_ONE()


def release_for_sleep(arena: Arena, rec: int) -> None:
    """The scheduler, as an lwp gives its CPU up: let the big lock go for the sleep."""
    w = arena.w
    held = w[rec + L_BIGLOCKS]
    if held:
        w[rec + L_BIGSAVED], w[rec + L_BIGLOCKS] = held, 0
        _giant(arena).exit()


def retake_after_sleep(arena: Arena, rec: int) -> None:
    """The scheduler, once the lwp has its CPU again: take the big lock back."""
    w = arena.w
    saved = w[rec + L_BIGSAVED]
    if saved:
        w[rec + L_BIGSAVED] = 0  # first: waiting for it gives the CPU up and back
        _giant(arena).enter()
        w[rec + L_BIGLOCKS] = saved
