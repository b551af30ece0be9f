"""Sleep queues and tsleep/wakeup/kpause (kern_sleepq.c, kern_synch.c).

Sleeping lwps hang on queues hashed by wait channel, in shared memory, linked
through the lwp table; each bucket has its own short spin lock.  A sleeper parks on
its own park semaphore; ``wakeup`` takes every lwp sleeping on the channel off the
queue and posts them, whichever CPU they are on.

A wait channel is any kernel object: an int, a kernel handle (kmem buffer, lock,
condvar) or a string.  rumpmp differs from NetBSD in that the channel is not an
address: handles map to their offset in the arena, strings to a stable hash.
"""

from __future__ import annotations

import errno
import zlib

from hypercalls import clock, sync, thread, waitq
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import detsched, kernhist, perturb
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.proc import Tables, tables
from rumpmp.rumpkern.locking.mutex import kmutex_t, mutex_enter, mutex_exit
from rumpmp.sys.kernhist import EV_WAKE
from rumpmp.sys.lwp import (
    L_CATCH,
    L_CPU,
    L_PARK,
    L_PID,
    L_SLEEPQ,
    L_STATE,
    L_WCHAN,
    LSONPROC,
    LSSLEEP,
)
from rumpmp.sys.proc import P_SIGPEND

NBUCKETS = 64
_BUCKET_WORDS = 4  # lock slot, head, tail, pad
B_LOCK, B_HEAD, B_TAIL = 0, 1, 2  # the lock, then a waitq list of sleeping lwps

PCATCH = 0x100  # a pending signal (RUMP_SIGMODEL_RECORD) ends the sleep with EINTR
PNORELOCK = 0x200

REGION = ("sleepq", NBUCKETS * _BUCKET_WORDS * 8)


def sleepq_init(arena: Arena) -> None:
    """Create each bucket's lock (at boot)."""
    base = arena.region_word("sleepq")
    for b in range(NBUCKETS):
        arena.w[base + b * _BUCKET_WORDS + B_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


def wchan_key(ident: object) -> int:
    """A nonzero int naming a wait channel the same way in every process."""
    if isinstance(ident, bool) or ident is None:
        raise TypeError(f"not a wait channel: {ident!r}")
    if isinstance(ident, int):
        key = ident
    elif isinstance(ident, (str, bytes)):
        raw = ident.encode() if isinstance(ident, str) else ident
        key = (1 << 48) | zlib.crc32(raw)
    elif hasattr(ident, "rec"):  # kernel locks and condvars
        key = ident.rec.offset
    elif hasattr(ident, "offset"):  # kmem buffers
        key = ident.offset
    else:
        raise TypeError(f"not a wait channel: {ident!r}")
    return key or (1 << 49)


class _Bucket:
    def __init__(self, arena: Arena, key: int) -> None:
        self.b = arena.region_word("sleepq") + (hash(key) % NBUCKETS) * _BUCKET_WORDS
        self.lock = arena.spin_lock(self.b + B_LOCK)


def _sleep(key: int, timo: int, mtx: kmutex_t | None, relock: bool, catch: bool = False) -> int:
    """Sleep on channel ``key`` for up to ``timo`` ticks (0: forever); 0, EWOULDBLOCK,
    or with ``catch`` EINTR when a signal is pending for the process (psignal wakes
    the lwp to look)."""
    if detsched.state.on and detsched.participant() is not None:
        return _det_sleep(key, timo, mtx, relock)
    arena = _arena.current()
    t = tables(arena)
    w = arena.w
    lid = thread.curlwp()
    l = t.lwp(lid)
    bucket = _Bucket(arena, key)
    bucket.lock.enter_nowrap()
    waitq.append(w, bucket.b + B_HEAD, l, L_SLEEPQ)
    w[l + L_WCHAN] = key
    w[l + L_STATE] = LSSLEEP
    w[l + L_CATCH] = int(catch)
    bucket.lock.exit()
    if mtx is not None:
        mutex_exit(mtx)
    rc = _park_until_woken(arena, l, timo, t if catch else None)
    w[l + L_CATCH] = 0
    if rc:
        bucket.lock.enter_nowrap()
        if waitq.remove(w, bucket.b + B_HEAD, l, L_SLEEPQ):
            w[l + L_WCHAN] = 0
        else:  # woken just as the time ran out: take the post, count it a wakeup
            arena.pool.sem(w[l + L_PARK]).acquire(False)
            rc = 0
        bucket.lock.exit()
    w[l + L_STATE] = LSONPROC
    if mtx is not None and relock:
        mutex_enter(mtx)
    return rc


def _det_sleep(key: int, timo: int, mtx: kmutex_t | None, relock: bool) -> int:
    """_sleep in a deterministic run: blocked on the channel until a wakeup, or until
    ``timo`` virtual ticks have passed (signals do not interrupt it)."""
    if mtx is not None:
        mutex_exit(mtx)
    timed_out = detsched.block(key, timo)
    if mtx is not None and relock:
        mutex_enter(mtx)
    return errno.EWOULDBLOCK if timed_out else 0


def _park_until_woken(arena: Arena, l: int, timo: int, catching: Tables | None) -> int:
    w = arena.w
    deadline = None
    if timo > 0:
        deadline = clock.monotonic_ns() + timo * 1_000_000_000 // w[_arena.H_HZ]
    while w[l + L_WCHAN]:
        if catching is not None and signal_pending(catching, l):
            return errno.EINTR
        remaining = None if deadline is None else (deadline - clock.monotonic_ns()) / 1e9
        if remaining is not None and remaining <= 0:
            return errno.EWOULDBLOCK
        arena.pool.park(w[l + L_PARK], remaining)
    return 0


def signal_pending(t: Tables, l: int) -> bool:
    """Whether a signal is pending for the process of lwp record ``l``."""
    return bool(t.w[t.find_proc(t.w[l + L_PID]) + P_SIGPEND])


def mtsleep(ident: object, priority: int, wmesg: str, timo: int, mtx: kmutex_t) -> int:
    """mtsleep(9): release ``mtx``, sleep on ``ident`` until wakeup or ``timo`` ticks
    (0: no limit), take ``mtx`` back unless PNORELOCK.  0, or EWOULDBLOCK on timeout."""
    return _sleep(wchan_key(ident), timo, mtx, not priority & PNORELOCK, bool(priority & PCATCH))


def tsleep(ident: object, priority: int, wmesg: str, timo: int) -> int:
    """tsleep(9): sleep on ``ident`` until wakeup or ``timo`` ticks; 0, EWOULDBLOCK,
    or EINTR for a signal with PCATCH."""
    return _sleep(wchan_key(ident), timo, None, False, bool(priority & PCATCH))


def kpause(wmesg: str, intr: bool, timo: int, mtx: kmutex_t | None = None) -> int:
    """kpause(9): sleep for ``timo`` ticks on a channel nobody wakes; EWOULDBLOCK,
    or EINTR for a signal when ``intr``."""
    return _sleep(-thread.curlwp(), timo, mtx, True, bool(intr))


def wakeup(ident: object) -> None:
    """wakeup(9): wake every lwp sleeping on ``ident``, on any CPU."""
    if perturb.state.on:
        perturb.point()
    arena = _arena.current()
    key = wchan_key(ident)
    w = arena.w
    bucket = _Bucket(arena, key)
    bucket.lock.enter_nowrap()
    q = bucket.b + B_HEAD
    for l in waitq.items(w, q, L_SLEEPQ):
        if w[l + L_WCHAN] == key:
            if kernhist.state.on:
                woken = tables(arena).lid_of(l)
                kernhist.emit(EV_WAKE, woken, thread.curlwp(), w[l + L_CPU])
            waitq.remove(w, q, l, L_SLEEPQ)
            w[l + L_WCHAN] = 0
            arena.pool.unpark(w[l + L_PARK])
    bucket.lock.exit()
    if detsched.state.on:  # a deterministic run's lwps asleep on it may run again
        detsched.unblock(key)
