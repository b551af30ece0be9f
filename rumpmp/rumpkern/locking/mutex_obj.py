"""mutex_obj(9) and rw_obj (kern_mutex_obj.c, kern_rwlock_obj.c): reference-counted
locks, for objects whose lifetime no single owner decides.

A lock object is an ordinary kmutex_t or krwlock_t whose record counts its
references (``lockdebug.R_REFS``); the count is changed with atomic_ops(3), so any
CPU may hold or free a reference.  The last ``*_obj_free`` destroys the lock and
returns True.
"""

from __future__ import annotations

from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.locking import lockdebug
from rumpmp.rumpkern.locking.atomic import atomic_dec_64_nv, atomic_inc_64_nv, atomic_store_relaxed
from rumpmp.rumpkern.locking.mutex import (
    IPL_NONE,
    MUTEX_DEFAULT,
    kmutex_t,
    mutex_destroy,
    mutex_init,
)
from rumpmp.rumpkern.locking.rwlock import krwlock_t, rw_destroy, rw_init

_REFS = lockdebug.R_REFS * 8  # byte offset of the count in the lock's record


def _first_ref(lock: kmutex_t | krwlock_t) -> None:
    atomic_store_relaxed((lock.rec, _REFS), 1)


def _hold(lock: kmutex_t | krwlock_t, func: str) -> None:
    if not lockdebug.record_live(lock.arena, lock.rec) or atomic_inc_64_nv((lock.rec, _REFS)) < 2:
        panic_in(lock.arena, f"{func}: {lock.name} is not a live lock object")


def _release(lock: kmutex_t | krwlock_t, func: str) -> bool:
    """Drop a reference; True if it was the last."""
    if not lockdebug.record_live(lock.arena, lock.rec):
        panic_in(lock.arena, f"{func}: {lock.name} is not a live lock object")
    left = atomic_dec_64_nv((lock.rec, _REFS))
    if left >= 1 << 63:  # went below zero: freed more often than held
        panic_in(lock.arena, f"{func}: {lock.name}: no reference left to free")
    return left == 0


def mutex_obj_alloc(mtx_type: int = MUTEX_DEFAULT, ipl: int = IPL_NONE) -> kmutex_t:
    """mutex_obj_alloc(9): a new mutex holding one reference."""
    m = mutex_init(mtx_type, ipl)
    _first_ref(m)
    return m


def mutex_obj_hold(m: kmutex_t) -> None:
    """mutex_obj_hold(9): take another reference."""
    _hold(m, "mutex_obj_hold")


def mutex_obj_free(m: kmutex_t) -> bool:
    """mutex_obj_free(9): drop a reference; the last destroys the mutex and returns True."""
    if not _release(m, "mutex_obj_free"):
        return False
    mutex_destroy(m)
    return True


def mutex_obj_refcnt(m: kmutex_t) -> int:
    """The references held on a mutex object (NetBSD's mo_refcnt, for tests)."""
    return m.arena.w[m.rec.offset // 8 + lockdebug.R_REFS]


def rw_obj_alloc() -> krwlock_t:
    """rw_obj_alloc(9): a new reader/writer lock holding one reference."""
    rw = rw_init()
    _first_ref(rw)
    return rw


def rw_obj_hold(rw: krwlock_t) -> None:
    """rw_obj_hold(9): take another reference."""
    _hold(rw, "rw_obj_hold")


def rw_obj_free(rw: krwlock_t) -> bool:
    """rw_obj_free(9): drop a reference; the last destroys the lock and returns True."""
    if not _release(rw, "rw_obj_free"):
        return False
    rw_destroy(rw)
    return True
