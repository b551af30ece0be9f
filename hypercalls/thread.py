"""Host threads, the per-thread curlwp slot and the CPU release hooks (rumpuser(3)).

The kernel registers two hooks with ``thrinit``: ``unschedule`` (give up the virtual
CPU) and ``schedule`` (take it back).  Every hypercall that may block calls
``unschedule()`` before it blocks and ``schedule()`` after; the ``*_nowrap``
variants do not.  Outside a CPU process (the host) the hooks stay no-ops.

curlwp is an opaque int that the kernel gives each thread it runs (0: none).  Locks
record it as their owner; a thread without one is identified by a negative token
unique to the thread, so host threads can own hypercall locks too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable


class _ThreadState(threading.local):
    """Per-thread state; class defaults make a missing value a fast attribute hit."""

    curlwp = 0
    token = 0


#: The calling thread's state: ``current.curlwp`` is the fast read of curlwp().
current = _ThreadState()
_tls = current
_tokens = itertools.count(1)


def _nothing() -> None:
    pass


def _always() -> bool:
    return True


class _Hooks:
    def __init__(self) -> None:
        self.schedule: Callable[[], None] = _nothing
        self.unschedule: Callable[[], None] = _nothing
        self.worth_spinning: Callable[[], bool] = _always
        self.threads = True


hooks = _Hooks()


def thrinit(
    schedule: Callable[[], None],
    unschedule: Callable[[], None],
    threads: bool = True,
    worth_spinning: Callable[[], bool] = _always,
) -> None:
    """Install the kernel's CPU hooks (rumpuser_thrinit); ``worth_spinning`` says
    whether a hot wait may spin before it blocks (see ``spin_until``)."""
    hooks.schedule = schedule
    hooks.unschedule = unschedule
    hooks.worth_spinning = worth_spinning
    hooks.threads = threads


_no_spin = threading.local()


def never_spin() -> None:
    """The calling thread's hot waits block at once: one thread among many of a
    process (the sysproxy server's workers) only takes the GIL from the others by
    spinning."""
    _no_spin.on = True


def set_curlwp(lwp: int) -> None:
    """Bind the kernel's lwp id to the calling thread (0 unbinds)."""
    _tls.curlwp = lwp


def curlwp() -> int:
    """The lwp id bound to the calling thread, 0 if none."""
    return _tls.curlwp


def owner_token() -> int:
    """A nonzero int naming the calling thread as a lock owner."""
    lwp = _tls.curlwp
    if lwp:
        return lwp
    token = _tls.token
    if not token:
        # Unique across processes: pid in the high bits, a per-process counter below.
        token = _tls.token = -((os.getpid() << 24) | next(_tokens))
    return token


class ThreadExit(BaseException):
    """Raised by ``thread_exit`` to unwind the calling host thread."""


class Teardown(Exception):
    """Base of what a thread gets when the host objects it uses are torn down around
    it (its kernel halted, panicked or lost its host): not an error of the thread, so
    a thread of ``thread_create`` ends on it quietly."""


def thread_create(
    func: Callable[..., object], arg: object, name: str, joinable: bool = True
) -> threading.Thread:
    """Start a host thread running ``func(arg)`` (rumpuser_thread_create).  It ends
    quietly on ``thread_exit`` or a ``Teardown``; anything else it raises is
    printed, as Python prints what ends a thread."""

    def body() -> None:
        with contextlib.suppress(ThreadExit, Teardown):
            func(arg)

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    return t


def thread_join(t: threading.Thread, timeout: float | None = None) -> bool:
    """Wait for a joinable thread; True if it has ended (rumpuser_thread_join)."""
    hooks.unschedule()
    try:
        t.join(timeout)
    finally:
        hooks.schedule()
    return not t.is_alive()


def thread_exit() -> None:
    """End the calling thread (rumpuser_thread_exit); never returns."""
    raise ThreadExit


#: How long a hot wait checks its condition before it blocks, in ns.  A wake-up
#: between processes on two host cores costs 55-90 us; most hot waits (a reply to a
#: cross-call, the next cross-call of a loop) are over sooner than that.
SPIN_NS = 60_000


def spin_until(
    ready: Callable[[], bool],
    budget_ns: int = SPIN_NS,
    worth_it: Callable[[], bool] | None = None,
) -> bool:
    """Check ``ready()`` for up to ``budget_ns``, yielding the host core between
    checks (so a waiter never starves the process it waits for, even when they
    share a core); whether it became true.  The caller blocks afterwards if not.

    ``worth_it()`` is asked first (by default the kernel's ``worth_spinning`` hook):
    a spinner competes for the GIL with the other threads of its process, so a CPU
    process spins only while it has nothing else to run."""
    if ready():
        return True
    if getattr(_no_spin, "on", False) or not (worth_it or hooks.worth_spinning)():
        return False
    deadline = time.monotonic_ns() + budget_ns
    tries = 0
    try:
        while time.monotonic_ns() < deadline:
            os.sched_yield()
            tries += 1
            if ready():
                return True
        return False
    finally:
        _spun.n = getattr(_spun, "n", 0) + tries


_spun = threading.local()


def spins_taken() -> int:
    """The tries the calling thread's hot waits made since it last asked (lockstat
    counts them as spins)."""
    n = getattr(_spun, "n", 0)
    _spun.n = 0
    return n


def yield_host() -> None:
    """Give the host core to another process or thread for a moment (sched_yield)."""
    os.sched_yield()


def local() -> threading.local:
    """A fresh thread-local namespace, for kernel per-thread state."""
    return threading.local()
