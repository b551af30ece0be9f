"""psref(9) (subr_psref.c): passive references, counted per CPU.

A target keeps one counter per CPU in the kernel heap; ``psref_acquire`` and
``psref_release`` change only the caller's CPU's counter, which no other lwp can
touch meanwhile (the caller holds that CPU; an lwp never leaves its CPU, so it
releases where it acquired, as psref(9) requires).  ``psref_target_destroy`` marks
the target as draining, runs a cross-call so that every acquire already under way
has finished, then sleeps on the class's condvar until every CPU's counter is zero;
each release of a draining target wakes it.  As in NetBSD, the caller must first
have made the target unreachable to new readers (pserialize_perform).
"""

from __future__ import annotations

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.intr.xcall import xc_broadcast, xc_wait
from rumpmp.rumpkern.locking.condvar import (
    cv_broadcast,
    cv_destroy,
    cv_init,
    cv_timedwait,
    kcondvar_t,
)
from rumpmp.rumpkern.locking.mutex import (
    kmutex_t,
    mutex_destroy,
    mutex_enter,
    mutex_exit,
    mutex_init,
)
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.mem.kmem import KBuf

T_DRAINING = 0
T_COUNTS = 1  # one word per CPU


class psref_class_t(Handle):
    """A class of passive references: the lock and condvar its destroyers sleep on."""

    __slots__ = ("cv", "lock", "name")

    def __init__(self, name: str, lock: kmutex_t, cv: kcondvar_t) -> None:
        self.name, self.lock, self.cv = name, lock, cv

    def _args(self) -> tuple:
        return (self.name, self.lock, self.cv)

    def _what(self) -> str:
        return self.name


class psref_target_t(Handle):
    """A target of passive references: its per-CPU counters in the kernel heap."""

    __slots__ = ("arena", "rec")

    def __init__(self, arena: Arena, rec: KBuf) -> None:
        self.arena, self.rec = arena, rec

    def _args(self) -> tuple:
        return (self.arena, self.rec)

    def _what(self) -> str:
        return f"at {self.rec.offset:#x}"


class psref_t:
    """One reference (NetBSD's struct psref, the caller's): where it was taken."""

    __slots__ = ("cpu", "target")

    def __init__(self) -> None:
        self.cpu = -1
        self.target: psref_target_t | None = None


def psref_class_create(name: str, ipl: int = 0) -> psref_class_t:
    """psref_class_create(9)."""
    if not isinstance(name, str):
        raise TypeError(f"psref_class_create: name must be a str, not {type(name).__name__}")
    return psref_class_t(name, mutex_init(), cv_init(name))


def psref_class_destroy(cls: psref_class_t) -> None:
    """psref_class_destroy(9)."""
    cv_destroy(cls.cv)
    mutex_destroy(cls.lock)


def psref_target_init(cls: psref_class_t) -> psref_target_t:
    """psref_target_init(9): a new target (returned, where NetBSD fills one in)."""
    arena = _arena.current()
    rec = kmem.kmem_zalloc_in(arena, (T_COUNTS + arena.ncpu) * 8)
    return psref_target_t(arena, rec)


def _word(target: psref_target_t, cpu: int) -> int:
    return target.rec.offset // 8 + T_COUNTS + cpu


def psref_acquire(psref: psref_t, target: psref_target_t, cls: psref_class_t) -> None:
    """psref_acquire(9): take a reference to ``target`` on this CPU."""
    if not isinstance(psref, psref_t) or not isinstance(target, psref_target_t):
        raise TypeError("psref_acquire: psref must be a psref_t and target a psref_target_t")
    w = target.arena.w
    if w[target.rec.offset // 8 + T_DRAINING]:
        panic_in(target.arena, f"psref_acquire: target {target._what()} is being destroyed")
    cpu = _arena.here.cpu
    w[_word(target, cpu)] += 1
    psref.cpu, psref.target = cpu, target


def psref_release(psref: psref_t, target: psref_target_t, cls: psref_class_t) -> None:
    """psref_release(9): give the reference back (on the CPU that took it)."""
    if psref.target is None or psref.target.rec.offset != target.rec.offset:
        panic_in(target.arena, "psref_release: not a reference to this target")
    if psref.cpu != _arena.here.cpu:
        panic_in(target.arena, f"psref_release: taken on cpu{psref.cpu}, released elsewhere")
    w = target.arena.w
    w[_word(target, psref.cpu)] -= 1
    psref.target = None
    if w[target.rec.offset // 8 + T_DRAINING]:
        mutex_enter(cls.lock)
        cv_broadcast(cls.cv)
        mutex_exit(cls.lock)


def psref_copy(pto: psref_t, pfrom: psref_t, cls: psref_class_t) -> None:
    """psref_copy(9): ``pto`` becomes another reference to what ``pfrom`` holds."""
    if pfrom.target is None:
        raise ValueError("psref_copy: pfrom holds no reference")
    psref_acquire(pto, pfrom.target, cls)


def _references(target: psref_target_t) -> int:
    w, base = target.arena.w, target.rec.offset // 8 + T_COUNTS
    return sum(w[base : base + target.arena.ncpu])


def _settle(_a: object, _b: object) -> None:
    """Cross-call: any acquire that began on this CPU before it has finished."""


def psref_target_destroy(target: psref_target_t, cls: psref_class_t) -> None:
    """psref_target_destroy(9): wait until no CPU holds a reference, then free it."""
    w = target.arena.w
    w[target.rec.offset // 8 + T_DRAINING] = 1
    xc_wait(xc_broadcast(0, _settle, None, None))
    mutex_enter(cls.lock)
    while _references(target):
        cv_timedwait(
            cls.cv, cls.lock, 1
        )  # (timed: a release may come between the look and the wait)
    mutex_exit(cls.lock)
    kmem.kmem_free_in(target.arena, target.rec, len(target.rec))


def psref_held(target: psref_target_t, cls: psref_class_t) -> bool:
    """psref_held(9), as far as rumpmp counts: whether this CPU holds a reference."""
    return target.arena.w[_word(target, _arena.here.cpu)] > 0
