"""Waiting for many objects at once (sys_select.c): selinfo, selrecord, selnotify
and the wait that select, poll and kevent make.

An object that can be waited for (a pipe end, a file, a kqueue) has a selinfo: a few
words in its record naming the lwps that wait for it.  A waiter scans its objects;
each one not ready records the waiter (``selrecord``, under the object's lock).  A
change to an object calls ``selnotify`` (under the same lock), which wakes the
recorded lwps.

No wake-up is lost between a scan and the sleep that follows it, wherever the two
sides run: as in NetBSD, the waiter marks itself SCANNING before it scans, and a
notification that arrives meanwhile turns that into RESET; the waiter goes to sleep
only if, under its select cluster's lock, it is still SCANNING, and a notifier
changes the mark under that same lock.  Each CPU has a cluster (``selsysinit``); a
waiter uses the one its lwp number picks.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from hypercalls import clock, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.locking.mutex import (
    IPL_VM,
    MUTEX_SPIN,
    kmutex_t,
    mutex_enter,
    mutex_exit,
    mutex_init_in,
)
from rumpmp.rumpkern.locking.sleepq import PCATCH, PNORELOCK, mtsleep, wakeup
from rumpmp.rumpkern.mem.blob import blob_get, blob_put
from rumpmp.sys.file import (
    SEL_BLOCKING,
    SEL_RESET,
    SEL_SCANNING,
    SI_COLL,
    SI_LIDS,
    SI_NLIDS,
    SI_SEQ,
)
from rumpmp.sys.lwp import L_SELFLAG, L_STATE, NLWP

T = TypeVar("T")

SC_LOCK = 0  # 3 words: blob of the cluster's lock (a spin kmutex_t)
RECORD_WORDS = 64  # one record per CPU, cache-line separated


def region(ncpu: int) -> tuple[str, int]:
    return ("select", ncpu * RECORD_WORDS * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("select") + cpu * RECORD_WORDS


def selsysinit(arena: Arena, cpu: int) -> None:
    """selsysinit: this CPU's select cluster and its lock."""
    lock = mutex_init_in(arena, MUTEX_SPIN, IPL_VM, f"selcluster{cpu}")
    blob_put(arena, lock, record(arena, cpu) + SC_LOCK)


def _cluster(arena: Arena, lid: int) -> kmutex_t:
    return blob_get(arena, record(arena, lid % arena.ncpu) + SC_LOCK, cache=True)


def selrecord(arena: Arena, si: int) -> None:
    """selrecord(9): the calling lwp waits for the object whose selinfo is at word
    ``si`` (the caller holds the object's lock)."""
    w, lid = arena.w, thread.curlwp()
    free = -1
    for i in range(si + SI_LIDS, si + SI_LIDS + SI_NLIDS):
        if w[i] == lid:
            return
        if not w[i] and free < 0:
            free = i
    if free >= 0:
        w[free] = lid
    else:
        w[si + SI_COLL] = 1


def selnotify(arena: Arena, si: int) -> None:
    """selnotify(9): the object whose selinfo is at word ``si`` changed (the caller
    holds its lock); wake whoever recorded themselves."""
    w = arena.w
    w[si + SI_SEQ] += 1
    lids = [lid for lid in w[si + SI_LIDS : si + SI_LIDS + SI_NLIDS] if lid]
    if not lids and not w[si + SI_COLL]:
        return
    if w[si + SI_COLL]:  # too many waited to name them all: wake every selecting lwp
        t = tables(arena)
        lids = [lid for lid in range(1, NLWP + 1) if w[t.lwp(lid) + L_SELFLAG]]
    w[si + SI_COLL : si + SI_LIDS + SI_NLIDS] = memoryview(bytes(8 * (SI_NLIDS + 1))).cast("q")
    for lid in lids:
        _notify(arena, lid)


def _notify(arena: Arena, lid: int) -> None:
    w = arena.w
    l = tables(arena).lwp(lid)
    lock = _cluster(arena, lid)
    mutex_enter(lock)
    flag = w[l + L_SELFLAG]
    if flag in (SEL_SCANNING, SEL_BLOCKING) and w[l + L_STATE]:
        w[l + L_SELFLAG] = SEL_RESET
        if flag == SEL_BLOCKING:
            wakeup(l * 8)
    mutex_exit(lock)


def selwait(scan: Callable[[], T | None], timeout_ns: int | None) -> T | None:
    """Call ``scan()`` until it returns something other than None, sleeping between
    scans until an object it recorded itself on changes.  None when ``timeout_ns``
    (None: no limit) passes first; EINTR if a signal arrives (RUMP_SIGMODEL_RECORD)."""
    arena = _arena.current()
    w, lid = arena.w, thread.curlwp()
    l = tables(arena).lwp(lid)
    lock = _cluster(arena, lid)
    deadline = None if timeout_ns is None else clock.monotonic_ns() + max(0, timeout_ns)
    try:
        while True:
            mutex_enter(lock)
            w[l + L_SELFLAG] = SEL_SCANNING
            mutex_exit(lock)
            found = scan()
            if found is not None:
                return found
            ticks = 0
            if deadline is not None:
                left = deadline - clock.monotonic_ns()
                if left <= 0:
                    return None
                ticks = max(1, -(-left * w[_arena.H_HZ] // 1_000_000_000))
            mutex_enter(lock)
            if w[l + L_SELFLAG] != SEL_SCANNING:  # something changed during the scan
                mutex_exit(lock)
                continue
            w[l + L_SELFLAG] = SEL_BLOCKING
            if mtsleep(l * 8, PCATCH | PNORELOCK, "select", ticks, lock) == errno.EINTR:
                raise InterruptedError(errno.EINTR, "interrupted by a signal")
    finally:
        w[l + L_SELFLAG] = 0
