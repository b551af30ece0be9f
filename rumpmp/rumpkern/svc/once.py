"""once(9): run an initialisation exactly once across every CPU (subr_once.c).

A ``once_t`` is a state word in the kernel heap, a mutex and a condvar, so it
pickles by reference and works from any CPU: the first caller runs the function
while later callers, on any CPU, wait for it and get the same result.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from rumpmp.rumpkern.locking.condvar import cv_broadcast, cv_init, cv_wait, kcondvar_t
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit, mutex_init
from rumpmp.rumpkern.mem.kmem import KBuf, kmem_zalloc

_INIT, _RUNNING, _DONE = 0, 1, 2
_STATE, _ERROR = 0, 1


@dataclass(frozen=True)
class once_t:
    """ONCE_DECL: a once control, made with ``once_init()``."""

    words: KBuf
    lock: kmutex_t
    cv: kcondvar_t


def once_init() -> once_t:
    """ONCE_DECL(9) for rumpmp: a new once control (kernel code)."""
    return once_t(kmem_zalloc(16), mutex_init(), cv_init("once"))


def _words(o: once_t) -> memoryview:
    return memoryview(o.words).cast("B").cast("q")


def RUN_ONCE(o: once_t, fn: Callable[[], int | None]) -> int:
    """RUN_ONCE(9): run ``fn`` if no caller has, on any CPU; its result (an errno,
    0 for success) to every caller.  A caller that comes while ``fn`` runs waits.
    If ``fn`` raises, the once is left as it was before, and the exception goes to
    the caller that ran it."""
    if not isinstance(o, once_t):
        raise TypeError(f"RUN_ONCE: o must be a once_t, not {type(o).__name__}")
    w = _words(o)
    mutex_enter(o.lock)
    while w[_STATE] == _RUNNING:
        cv_wait(o.cv, o.lock)
    if w[_STATE] == _DONE:
        error = w[_ERROR]
        mutex_exit(o.lock)
        return error
    w[_STATE] = _RUNNING
    mutex_exit(o.lock)
    state, error = _INIT, 0
    try:
        error = fn() or 0
        if not isinstance(error, int) or isinstance(error, bool):
            raise OSError(errno.EINVAL, f"RUN_ONCE: the function returned {error!r}, not an errno")
        state = _DONE
        return error
    finally:
        mutex_enter(o.lock)
        w[_STATE], w[_ERROR] = state, error
        cv_broadcast(o.cv)
        mutex_exit(o.lock)
