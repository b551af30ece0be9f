"""kthread(9): kernel threads.

A kernel thread is an lwp of proc0 running ``func(arg)``.  It is placed on CPU
``ci`` when given (bound there for life), otherwise on the least loaded CPU; an idle
CPU may steal it before it starts.  Without RUMP_THREADS, rump fakes the threads it
knows it can do without and panics for any other; rumpmp does the same.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.entry import KthreadExit
from rumpmp.rumpkern.base.prf import kprintf, panic_in
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.mem.blob import (
    RAW_MIN,
    dumps,
    payload_drop,
    payload_get,
    payload_is_raw,
    payload_put,
)
from rumpmp.rumpkern.sched import lwproc, scheduler
from rumpmp.sys.lwp import (
    IO_PAYLOAD_BYTES,
    L_FLAGS,
    L_REPLY,
    L_STATE,
    LSZOMB,
    LW_BIGLOCK,
    LW_SYSTEM,
    LW_WAITER,
    NLWP,
)

KTHREAD_IDLE = 0x01
KTHREAD_MPSAFE = 0x02
KTHREAD_INTR = 0x04
KTHREAD_TS = 0x08
KTHREAD_MUSTJOIN = 0x10

#: Threads rump starts without complaint when threads are off (it just warns).
_FAKEABLE = ("vrele", "cachegc", "nfssilly", "unpgc", "pmf", "xcall", "pdaemon", "aiodoned")


def lwp_create(
    arena: Arena,
    name: str,
    func: Callable,
    args: tuple,
    pri: int,
    bound: int,
    lflags: int,
    pid: int = 0,
    reply: int = 0,
) -> int:
    """A new lwp of process ``pid`` (proc0 by default) that will run ``func(*args)``,
    placed on a CPU; its id.  ``reply`` is the park slot it posts when it ends.
    ESRCH if there is no such process.  Nothing is left behind if ``func`` or
    ``args`` cannot be pickled."""
    t = tables(arena)
    t.lock.enter_nowrap()
    try:
        lid = lwproc.lwp_alloc(t, t.find_proc(pid), name, pri, bound, lflags)
        t.w[t.lwp(lid) + L_REPLY] = reply
    finally:
        t.lock.exit()
    try:
        entry = dumps((dumps(func), args))  # plain arguments then go through plain pickle
        payload_put(arena, t.entry(lid), IO_PAYLOAD_BYTES, entry)
    except BaseException:
        lwproc.lwp_release(t, lid)
        raise
    scheduler.setrunnable_new(arena, lid)
    return lid


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
    lflags = LW_SYSTEM | (LW_WAITER if flags & KTHREAD_MUSTJOIN else 0)
    if not flags & KTHREAD_MPSAFE:
        lflags |= LW_BIGLOCK  # it runs holding the big kernel lock
    return lwp_create(arena, name, func, (arg,), pri, -1 if ci is None else ci, lflags)


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


# -- waiting for an lwp (LW_WAITER): kthread_join, and the host's Kernel.run ----------


def wait_lwp(
    arena: Arena, lid: int, deadline: int | None = None, poll: Callable[[], None] | None = None
) -> None:
    """Park until lwp ``lid`` (created with LW_WAITER) has ended.

    ``deadline`` (monotonic ns) raises TimeoutError when it passes; ``poll`` runs
    between parks and may raise to give up (the host's held Ctrl-C).  A waiter that
    gives up must ``detach`` the lwp.
    """
    t = tables(arena)
    l = t.lwp(lid)
    w = arena.w
    me = arena.pool.park_slot()
    t.lock.enter_nowrap()
    if w[l + L_STATE] != LSZOMB:
        w[l + L_REPLY] = me
    t.lock.exit()

    def ended() -> bool:
        return w[l + L_STATE] == LSZOMB

    arena.pool.park_spinning(me, ended, deadline, poll, f"lwp {lid}")


def publish(
    arena: Arena, word: int, result: tuple[bool, object], capacity: int = IO_PAYLOAD_BYTES
) -> None:
    """Store an lwp's (ok, value) in the payload buffer at ``word`` (``capacity``
    bytes) for its waiter; a result that cannot be pickled becomes an error.  A large
    bytes value (what a read returns) goes as it is: ``read_result`` knows a raw
    payload is a successful one."""
    ok, value = result
    if ok and type(value) is bytes and len(value) >= RAW_MIN:
        payload_put(arena, word, capacity, value, raw=True)
        return
    try:
        data = dumps(result)
    except Exception as e:  # noqa: BLE001 - the waiter must learn what went wrong
        data = dumps((False, RuntimeError(f"result could not be pickled: {e!r}")))
    payload_put(arena, word, capacity, data)


def read_result(arena: Arena, word: int) -> tuple[bool, object]:
    """The (ok, value) ``publish`` stored at ``word``; (True, None) if nothing was."""
    if not arena.w[word]:
        return True, None
    value = payload_get(arena, word)
    return (True, value) if payload_is_raw(arena, word) else value


def take_result(arena: Arena, word: int) -> tuple[bool, object]:
    """``read_result``, and the buffer emptied."""
    result = read_result(arena, word)
    payload_drop(arena, word)
    return result


def collect(arena: Arena, lid: int) -> tuple[bool, object]:
    """Take the (ok, value) an ended LW_WAITER lwp published, and free the lwp."""
    t = tables(arena)
    result = take_result(arena, t.result(lid))
    lwproc.lwp_release(t, lid)
    return result


def detach(arena: Arena, lid: int) -> None:
    """Stop waiting for an LW_WAITER lwp: it frees itself and drops its result when it
    ends (cpu._exit_lwp), or, if it already has, it is collected now."""
    t = tables(arena)
    l = t.lwp(lid)
    t.lock.enter_nowrap()
    ended = arena.w[l + L_STATE] == LSZOMB
    if not ended:
        arena.w[l + L_FLAGS] &= ~LW_WAITER
    t.lock.exit()
    if ended:
        collect(arena, lid)


def kthread_join(lid: int) -> int:
    """kthread_join(9): wait for a KTHREAD_MUSTJOIN thread to exit and collect it.

    rumpmp raises what the thread raised (NetBSD's threads cannot raise); ESRCH for
    an lwp id out of range, EINVAL for an lwp that is not a joinable thread (or was
    joined already).
    """
    arena = _arena.current()
    if isinstance(lid, bool) or not isinstance(lid, int):
        raise TypeError(f"kthread_join: lid must be an int, not {type(lid).__name__}")
    if not 1 <= lid <= NLWP:
        raise ProcessLookupError(errno.ESRCH, f"kthread_join: no lwp {lid}")
    l = tables(arena).lwp(lid)
    joinable = LW_WAITER | LW_SYSTEM
    if not arena.w[l + L_STATE] or arena.w[l + L_FLAGS] & joinable != joinable:
        raise OSError(errno.EINVAL, f"kthread_join: lwp {lid} is not a joinable thread")
    wait_lwp(arena, lid)
    ok, value = collect(arena, lid)
    if not ok:
        raise value  # type: ignore[misc]
    return 0
