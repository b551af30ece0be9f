"""mutex(9): kernel mutexes that work across CPU processes (rump's locks.c model).

A kmutex is a hypercall mutex (a named POSIX semaphore and an owner word in shared
memory) plus a small record in the kernel heap holding its type and state.  The
owner is the lwp (curlwp), so ownership is checked across CPUs.  Adaptive mutexes
release the CPU while they wait, so another lwp of the same CPU can run; spin
mutexes keep it (and must never be held across a sleep).

rumpmp differs from NetBSD in the call shape: ``mutex_init(type, ipl)`` returns a
new mutex.  ``mutex_init(m, type, ipl)`` re-initialises storage that was destroyed,
and with LOCKDEBUG catches initialising a live mutex twice.
"""

from __future__ import annotations

import errno

from hypercalls import sync, thread
from hypercalls.thread import current as _thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import detsched, kernhist, perturb
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.locking import lockdebug, lockstat
from rumpmp.rumpkern.mem import kmem
from rumpmp.sys.lockstat import LS_ADAPTIVE, LS_SPIN
from rumpmp.sys.lwp import L_WAITLOCK

MUTEX_DEFAULT = 0
MUTEX_SPIN = 1
MUTEX_ADAPTIVE = 2

# Interrupt priority levels (NetBSD's order).  Default mutexes at IPL_VM and above spin.
IPL_NONE = 0
IPL_SOFTCLOCK = 1
IPL_SOFTBIO = 2
IPL_SOFTNET = 3
IPL_SOFTSERIAL = 4
IPL_VM = 5
IPL_SCHED = 6
IPL_HIGH = 7


class kmutex_t(Handle):
    """A kernel mutex handle; pickles by reference, works on every CPU."""

    __slots__ = (
        "_acq", "_debug", "_hm", "_kind", "_ls", "_o", "_r", "_rel", "_slow", "_stat", "_w",
        "arena", "name", "rec", "site", "spin",
    )  # fmt: skip

    def __init__(
        self, arena: Arena, rec: kmem.KBuf, name: str | None = None, site: str = ""
    ) -> None:
        self.arena = arena
        self.rec = rec
        self._r = rec.offset // 8
        w = arena.w
        self.spin = bool(w[self._r + lockdebug.R_SPIN])
        flags = sync.MTX_KMUTEX | (sync.MTX_SPIN if self.spin else 0)
        self._hm = sync.Mutex.attach(arena.pool, w[self._r + lockdebug.R_SLOT], flags)
        self._debug = lockdebug.enabled(arena)
        self._stat = lockstat.enabled(arena)
        self._slow = self._debug or self._stat  # the fast paths test this one flag
        self._ls = lockstat.entries()
        self._kind = LS_SPIN if self.spin else LS_ADAPTIVE  # lockstat's kind of hold
        self.name = name or f"{'spin' if self.spin else 'adaptive'} mutex@{rec.offset:#x}"
        self.site = site
        # The fast path below touches the semaphore and the owner word directly.
        self._w, self._o = self._hm.owner_word()
        sem = arena.pool.sem(self._hm.slot)
        self._acq, self._rel = sem.acquire, sem.release

    def _args(self) -> tuple:
        return (self.arena, self.rec, self.name, self.site)

    def _what(self) -> str:
        return self.name


def _is_spin(mtx_type: int, ipl: int) -> bool:
    return mtx_type == MUTEX_SPIN or (mtx_type == MUTEX_DEFAULT and ipl >= IPL_VM)


def mutex_init(*args: object, name: str | None = None) -> kmutex_t:
    """mutex_init(9): ``mutex_init(type, ipl)`` returns a new mutex.

    MUTEX_DEFAULT at IPL_VM or above, or MUTEX_SPIN, makes a spin mutex; otherwise
    the mutex is adaptive.  ``mutex_init(m, type, ipl)`` initialises ``m`` again
    after ``mutex_destroy`` (LOCKDEBUG panics if it is still initialised).
    """
    arena = _arena.current()
    if args and isinstance(args[0], kmutex_t):
        m, rest = args[0], args[1:]
        if _live(m) and m._debug:
            lockdebug.abort(arena, "mutex", "mutex_init", m.name, "already initialized")
    else:
        m, rest = None, args
    if len(rest) > 2:
        raise TypeError(f"mutex_init: too many arguments ({len(args)})")
    mtx_type, ipl = ((*tuple(rest), MUTEX_DEFAULT, IPL_NONE))[:2]
    new = mutex_init_in(arena, mtx_type, ipl, name)  # type: ignore[arg-type]
    if m is not None:  # re-initialised storage: the caller's handle now names the new lock
        for field in kmutex_t.__slots__:
            setattr(m, field, getattr(new, field))
        return m
    return new


def mutex_init_in(
    arena: Arena, mtx_type: int = MUTEX_DEFAULT, ipl: int = IPL_NONE, name: str | None = None
) -> kmutex_t:
    """A new mutex on a given kernel (the host uses it at boot)."""
    for value, what in ((mtx_type, "type"), (ipl, "ipl")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"mutex_init: {what} must be an int, not {type(value).__name__}")
    if mtx_type not in (MUTEX_DEFAULT, MUTEX_SPIN, MUTEX_ADAPTIVE) or not 0 <= ipl <= IPL_HIGH:
        raise OSError(errno.EINVAL, f"mutex_init: bad type {mtx_type} or ipl {ipl}")
    slot = sync.Mutex(arena.pool, sync.MTX_KMUTEX).slot
    rec = lockdebug.new_record(arena, slot, _is_spin(mtx_type, ipl), ipl)
    return kmutex_t(arena, rec, name, lockstat.init_site() if lockstat.named(arena) else "")


def mutex_enter(m: kmutex_t) -> None:
    """mutex_enter(9).  An adaptive mutex releases the CPU while it waits."""
    if detsched.state.on and detsched.participant() is not None:
        _det_enter(m)
        return
    try:
        lwp = _thread.curlwp
        if lwp and not m._slow and m._acq(False):  # the fast path: an lwp, a free lock
            m._w[m._o] = lwp
            return
    except AttributeError:
        _not_a_mutex(m, "mutex_enter")
    if m._stat and lwp and not m._debug and m._acq(False):  # lockstat's fast path
        m._w[m._o] = lwp
        lockstat.acquired(m, m._kind)
        return
    if not lwp:
        _arena.current()  # ENXIO in the host: kernel locks are for kernel code
    if perturb.state.on:
        perturb.point()
    if m._debug:
        _debug_enter(m)
    elif m._hm.owner() == lwp:  # error-checking, as rump's host mutexes are
        lockdebug.abort(m.arena, "mutex", "mutex_enter", m.name, "locking against myself")
    waited = 0 if m._hm.tryenter() else _wait_for(m, lwp)
    if m.spin and m._debug:
        lockdebug.spin_acquired()
    if m._stat:
        spins = thread.spins_taken() if waited else 0
        lockstat.acquired(m, m._kind, waited, spins)


def _det_enter(m: kmutex_t) -> None:
    """mutex_enter in a deterministic run: a hand-over point, then the lock if it is
    free, else the baton goes on until mutex_exit makes this lwp runnable again."""
    w = m.arena.w
    l = tables(m.arena).lwp(_thread.curlwp)
    while True:
        detsched.point()
        if m._hm.tryenter():
            return
        w[l + L_WAITLOCK] = m.rec.offset
        detsched.block(m.rec.offset, 0)
        w[l + L_WAITLOCK] = 0


def _wait_for(m: kmutex_t, lwp: int) -> int:
    """Take a busy mutex, saying meanwhile which lock this lwp waits for (a stalled
    stress run's report builds its wait-for graph from it); the ns it waited, when
    lockstat or the trace wants it (else 0)."""
    l = tables(m.arena).lwp(lwp) if lwp > 0 else 0
    if l:
        m.arena.w[l + L_WAITLOCK] = m.rec.offset
    start = kernhist.now() if m._stat or kernhist.state.on else 0
    if m._stat:
        thread.spins_taken()  # (from zero: lockstat counts this wait's spins)
    try:
        if m.spin:
            m._hm.enter_nowrap()
        else:
            m._hm.enter()
    finally:
        if l:
            m.arena.w[l + L_WAITLOCK] = 0
    if not start:
        return 0
    waited = max(kernhist.now() - start, 1)
    if kernhist.state.on:
        lockstat.traced_wait(m, m._kind, lwp, waited)
    return waited


def _not_a_mutex(m: object, func: str) -> None:
    raise TypeError(f"{func}: mtx must be a kmutex_t, not {type(m).__name__}")


def _debug_enter(m: kmutex_t) -> None:
    if not _live(m):
        lockdebug.abort(m.arena, "mutex", "mutex_enter", m.name, "uninitialized lock")
    if m._hm.owner() == thread.owner_token():
        lockdebug.abort(m.arena, "mutex", "mutex_enter", m.name, "locking against myself")


def mutex_exit(m: kmutex_t) -> None:
    """mutex_exit(9).  LOCKDEBUG panics if the caller does not own it."""
    try:
        slow = m._slow
    except AttributeError:
        _not_a_mutex(m, "mutex_exit")
    if slow:
        if m._debug:
            _debug_exit(m)
        if m._stat:
            lockstat.released(m, m._kind)
    m._w[m._o] = 0
    m._rel()
    if detsched.state.on:  # a deterministic run: its lwps waiting for m may run again
        detsched.unblock(m.rec.offset)


def _debug_exit(m: kmutex_t) -> None:
    if m._hm.owner() != thread.owner_token():
        kind = "spin" if m.spin else "adaptive"
        lockdebug.abort(m.arena, "mutex", "mutex_exit", m.name, f"exiting unheld {kind} mutex")
    if m.spin:
        lockdebug.spin_released()


def mutex_tryenter(m: kmutex_t) -> bool:
    """mutex_tryenter(9): take the mutex only if it is free."""
    if not isinstance(m, kmutex_t):
        _not_a_mutex(m, "mutex_tryenter")
    if not _thread.curlwp:
        _arena.current()
    ok = m._hm.tryenter()
    if ok and m.spin and m._debug:
        lockdebug.spin_acquired()
    if ok and m._stat:
        lockstat.acquired(m, m._kind)
    return ok


def mutex_owned(m: kmutex_t) -> bool:
    """mutex_owned(9): whether the calling lwp holds the mutex."""
    return m._hm.owner() == thread.owner_token()


def mutex_owner(m: kmutex_t) -> int:
    """The lwp id holding the mutex, 0 if free (rumpuser_mutex_owner)."""
    return max(m._hm.owner(), 0)


def _live(m: kmutex_t) -> bool:
    return lockdebug.record_live(m.arena, m.rec)


def mutex_destroy(m: kmutex_t) -> None:
    """mutex_destroy(9): free the mutex; it must not be held."""
    if not _live(m):
        panic_in(m.arena, f"mutex_destroy: {m.name}: uninitialized lock")
    if m._hm.owner():  # caught without LOCKDEBUG too: rump's mutexes are error-checking
        lockdebug.abort(m.arena, "mutex", "mutex_destroy", m.name, "is locked or in use")
    m._hm.destroy()
    lockdebug.free_record(m.arena, m.rec)
