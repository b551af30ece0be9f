"""Synchronisation hypercalls that work across processes (rumpuser(3) mutex, rw, cv).

Everything rests on one ``SyncPool`` per kernel: a fixed number of slots, each a
named POSIX semaphore plus a 64-byte record in one shared segment.  The pool bounds
the named objects a kernel creates; a slot's semaphore is created the first time
the slot is used, so boot stays cheap.

- ``Mutex``: the slot's semaphore is the lock (1 = free); the record holds the owner.
- ``RWLock`` and ``CondVar``: the semaphore is a short guard over the record; waiters
  queue their own *park slot* (one per thread) in a FIFO in shared memory and sleep
  on it.  A semaphore shared by all waiters would lose wakeups under broadcast.

Every wait is sliced (``SLICE``) so that ``SyncPool.shutdown`` reaches waiters in all
processes: after a shutdown they raise ``Shutdown`` instead of hanging.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import TypeVar

import posix_ipc

# posix_ipc creates and names the semaphores, but its acquire(0) goes through
# sem_timedwait and costs ~4x more than a sem_trywait.  multiprocess's SemLock,
# opened on the same named semaphore, does plain sem_trywait / sem_wait /
# sem_timedwait / sem_post, releasing the GIL only when it blocks.
from _multiprocess import SemLock

from . import shm
from .thread import hooks, local, owner_token

MTX_SPIN = 0x01
MTX_KMUTEX = 0x02
RW_READER = 0
RW_WRITER = 1

T = TypeVar("T")

SLICE = 0.1  # seconds between checks of the shutdown flag
#: Tries of a busy mutex before its waiter gives up the CPU and sleeps.  The holder
#: is usually running on another CPU and about to let go (NetBSD's adaptive mutexes
#: spin for the same reason); a few microseconds of trying beats a sleep and wakeup.
SPIN_TRIES = 100
_SEM_MAX = 2**30
_SEMAPHORE = 1  # SemLock kind

# pool header words
_H_NSLOTS = 0
_H_SHUTDOWN = 1
_H_FREE = 2
_H_INUSE = 3
_H_WORDS = 8
_R_WORDS = 8  # words per slot record: 64 bytes, one cache line

# park-slot record words (a waiter's own slot)
_W_NEXT = 0  # next waiter's park slot in the queue, 0 at the end
_W_QUEUED = 1  # slot of the object it waits on, 0 once granted / woken
_W_TOKEN = 2  # the waiter's owner token (for rwlock writers)


class Shutdown(OSError):
    """The pool has been shut down (the kernel halted or panicked)."""

    def __init__(self, prefix: str) -> None:
        super().__init__(errno.ESHUTDOWN, f"synchronisation pool {prefix} is shut down")


_pools: dict[str, SyncPool] = {}


class SyncPool:
    """A bounded pool of named semaphores with a shared record each."""

    def __init__(self, prefix: str, seg: shm.Segment) -> None:
        self.prefix = prefix
        self.seg = seg
        self.w = seg.buf.cast("q")
        self.nslots = self.w[_H_NSLOTS]
        self._sems: dict[int, SemLock] = {}
        self._tls = local()
        self._parks: set[int] = set()  # park slots of this process's threads

    @classmethod
    def create(cls, prefix: str, nslots: int) -> SyncPool:
        """Make a new pool; slot 0 is the pool's own allocation lock."""
        seg = shm.Segment.create(prefix + "sync", (_H_WORDS + nslots * _R_WORDS) * 8)
        w = seg.buf.cast("q")
        w[_H_NSLOTS] = nslots
        for slot in range(1, nslots - 1):
            w[_H_WORDS + slot * _R_WORDS] = slot + 1
        w[_H_FREE] = 1
        w.release()
        pool = _pools[prefix] = cls(prefix, seg)
        pool._make_sem(0, 1)
        return pool

    @classmethod
    def attach(cls, prefix: str) -> SyncPool:
        """This process's view of an existing pool (one per prefix per process)."""
        pool = _pools.get(prefix)
        if pool is None:
            pool = _pools[prefix] = cls(prefix, shm.Segment.attach(prefix + "sync"))
        return pool

    def close(self) -> None:
        """Let go of the pool in this process (its kernel has stopped).  The shared
        records give way to a private copy of the header marked shut down, so a host
        thread still waiting raises Shutdown; the segment is unmapped and each
        semaphore closed once nothing uses them."""
        _pools.pop(self.prefix, None)
        header = bytearray(bytes(self.w[:_H_WORDS].cast("B")))
        self.w = memoryview(header).cast("q")
        self.w[_H_SHUTDOWN] = 1
        self._sems.clear()
        self.seg.close()

    # -- slots ---------------------------------------------------------------

    def rec(self, slot: int) -> int:
        """Word index (in ``self.w``) of a slot's record."""
        return _H_WORDS + slot * _R_WORDS

    def words(self, slot: int) -> memoryview:
        """A slot's record: 8 int64 words in shared memory."""
        r = self.rec(slot)
        return self.w[r : r + _R_WORDS]

    def _name(self, slot: int) -> str:
        return f"/{self.prefix}s{slot}"

    def _make_sem(self, slot: int, initial: int) -> None:
        """Create the slot's semaphore if it is new, and set its value to ``initial``."""
        posix_ipc.Semaphore(self._name(slot), posix_ipc.O_CREAT, initial_value=initial).close()
        sem = self.sem(slot)
        while sem.acquire(False):  # a reused slot may hold leftover posts
            pass
        for _ in range(initial):
            sem.release()

    def sem(self, slot: int) -> SemLock:
        """The slot's semaphore, opened once per process."""
        sem = self._sems.get(slot)
        if sem is None:
            try:
                sem = SemLock._rebuild(0, _SEMAPHORE, _SEM_MAX, self._name(slot))
            except FileNotFoundError:
                if self.w[_H_SHUTDOWN]:
                    raise Shutdown(self.prefix) from None
                raise
            self._sems[slot] = sem
        return sem

    def alloc(self, initial: int = 0) -> int:
        """Take a free slot, its record zeroed and its semaphore set to ``initial``."""
        return self.create_named(lambda: self._alloc_locked(initial))

    def _alloc_locked(self, initial: int) -> int:
        slot = self.w[_H_FREE]
        if not slot:
            raise OSError(errno.EAGAIN, f"all {self.nslots} synchronisation slots are in use")
        self.w[_H_FREE] = self.w[self.rec(slot)]
        self.w[_H_INUSE] += 1
        r = self.rec(slot)
        self.w[r : r + _R_WORDS] = _ZERO_RECORD
        self._make_sem(slot, initial)
        return slot

    def create_named(self, create: Callable[[], T]) -> T:
        """Run ``create`` (which makes named objects of this kernel) under the pool's
        lock, unless the pool is shut down (Shutdown).  ``teardown`` takes the same
        lock, so nothing is created after the kernel's objects have been unlinked."""
        lock = self.sem(0)
        self.wait_sem(lock)
        try:
            if self.w[_H_SHUTDOWN]:
                raise Shutdown(self.prefix)
            return create()
        finally:
            lock.release()

    def teardown(self, unlink: Callable[[], object], patience: float = 1.0) -> None:
        """Shut the pool down and ``unlink`` the kernel's objects with creation held
        off (``create_named``): a thread of another CPU that is creating one right
        now finishes first, and none starts after, since creators look at the
        shutdown flag under the same lock.  After ``patience`` seconds (its holder
        died) it unlinks anyway."""
        self.shutdown()
        lock = self.sem(0)
        held = lock.acquire(True, patience)
        try:
            unlink()
        finally:
            if held:
                lock.release()

    def free(self, slot: int) -> None:
        """Give a slot back."""
        lock = self.sem(0)
        self.wait_sem(lock)
        self.w[self.rec(slot)] = self.w[_H_FREE]
        self.w[_H_FREE] = slot
        self.w[_H_INUSE] -= 1
        lock.release()

    def in_use(self) -> int:
        return self.w[_H_INUSE]

    # -- shutdown and waiting ------------------------------------------------------

    def shutdown(self) -> None:
        """Make every waiter, in every process, raise Shutdown within SLICE seconds;
        the park slots of this process's threads are posted, so those wake at once."""
        self.w[_H_SHUTDOWN] = 1
        for slot in list(self._parks):
            try:
                self.unpark(slot)
            except OSError:
                pass  # the semaphore is gone already: nobody waits on it

    @property
    def is_shut_down(self) -> bool:
        return bool(self.w[_H_SHUTDOWN])

    def wait_sem(self, sem: SemLock, timeout: float | None = None) -> bool:
        """Take ``sem``, waiting in slices; False on timeout, Shutdown after shutdown."""
        if sem.acquire(False):
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.w[_H_SHUTDOWN]:
                raise Shutdown(self.prefix)
            left = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
            if left <= 0:
                return False
            if sem.acquire(True, left):
                return True

    # -- park slots: one per thread, for sleeping ---------------------------------

    def park_slot(self) -> int:
        """The calling thread's own park slot (allocated on first use)."""
        slot = getattr(self._tls, "park", 0)
        if not slot:
            slot = self._tls.park = self.alloc(0)
            self._parks.add(slot)
        return slot

    def release_park_slot(self) -> None:
        """Give the calling thread's park slot back (when a kernel lwp ends)."""
        slot = getattr(self._tls, "park", 0)
        if slot:
            self._tls.park = 0
            self._parks.discard(slot)
            self.free(slot)

    def park(self, slot: int, timeout: float | None = None, wrap: bool = True) -> bool:
        """Wait for a post on a park slot; False on timeout.

        With ``wrap`` the caller's CPU is released while it waits (KLOCK_WRAP).
        """
        sem = self.sem(slot)
        if sem.acquire(False):
            return True
        if not wrap:
            return self.wait_sem(sem, timeout)
        hooks.unschedule()
        try:
            return self.wait_sem(sem, timeout)
        finally:
            hooks.schedule()

    def unpark(self, slot: int) -> None:
        """Post a park slot."""
        self.sem(slot).release()

    # -- FIFO queues of park slots (caller holds the owning object's guard) --------

    def enqueue(self, owner: int, head: int, me: int) -> None:
        """Append park slot ``me`` to the queue whose head/tail words are at head, head+1."""
        w = self.w
        m = self.rec(me)
        w[m + _W_NEXT] = 0
        w[m + _W_QUEUED] = owner
        w[m + _W_TOKEN] = owner_token()
        if w[head]:
            w[self.rec(w[head + 1]) + _W_NEXT] = me
        else:
            w[head] = me
        w[head + 1] = me

    def dequeue(self, head: int) -> int:
        """Pop the first waiter of a queue and mark it granted; 0 if empty."""
        w = self.w
        me = w[head]
        if me:
            m = self.rec(me)
            w[head] = w[m + _W_NEXT]
            if not w[head]:
                w[head + 1] = 0
            w[m + _W_QUEUED] = 0
        return me

    def remove(self, head: int, me: int) -> bool:
        """Take ``me`` out of a queue (after a timeout); False if it was not there."""
        w = self.w
        prev, cur = 0, w[head]
        while cur and cur != me:
            prev, cur = cur, w[self.rec(cur) + _W_NEXT]
        if not cur:
            return False
        nxt = w[self.rec(me) + _W_NEXT]
        if prev:
            w[self.rec(prev) + _W_NEXT] = nxt
        else:
            w[head] = nxt
        if w[head + 1] == me:
            w[head + 1] = prev
        w[self.rec(me) + _W_QUEUED] = 0
        return True

    def queued(self, me: int) -> bool:
        return bool(self.w[self.rec(me) + _W_QUEUED])

    def token(self, me: int) -> int:
        return self.w[self.rec(me) + _W_TOKEN]

    def sleep_until_granted(self, me: int, wrap: bool, timeout: float | None = None) -> bool:
        """Park until a waker has dequeued ``me``; False if ``timeout`` ran out first.

        The park slot may carry a stale post, so each park waits only for what is
        left until the deadline: a stale wakeup must not stretch the wait.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.queued(me):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.park(me, left, wrap)
        return True


_ZERO_RECORD = memoryview(bytes(_R_WORDS * 8)).cast("q")


def _pool(prefix: str) -> SyncPool:
    return SyncPool.attach(prefix)


class _Guarded:
    """Base of the objects whose slot semaphore is a short guard over their record."""

    __slots__ = ("_guard", "flags", "pool", "r", "slot")

    def __init__(self, pool: SyncPool, flags: int = 0, slot: int | None = None) -> None:
        self.pool = pool
        self.flags = flags
        self.slot = pool.alloc(1) if slot is None else slot
        self.r = pool.rec(self.slot)
        self._guard = pool.sem(self.slot)

    @classmethod
    def attach(cls, pool: SyncPool, slot: int, flags: int = 0):
        """The object living in an existing slot (another process made it)."""
        return cls(pool, flags, slot)

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self.pool.prefix, self.slot, self.flags))

    def _lock(self) -> None:
        self.pool.wait_sem(self._guard)

    def _unlock(self) -> None:
        self._guard.release()

    def destroy(self) -> None:
        """Give the slot back to the pool."""
        self.pool.free(self.slot)


def _rebuild(cls: type, prefix: str, slot: int, flags: int) -> object:
    return cls(_pool(prefix), flags, slot)


class Mutex(_Guarded):
    """rumpuser_mutex: a cross-process lock; the slot semaphore is the lock itself."""

    __slots__ = ("_w",)

    def __init__(self, pool: SyncPool, flags: int = 0, slot: int | None = None) -> None:
        super().__init__(pool, flags, slot)
        self._w = pool.w

    def enter(self) -> None:
        """rumpuser_mutex_enter: take the lock, releasing the CPU if it must wait."""
        if not self._guard.acquire(False) and not self._spin():
            hooks.unschedule()
            try:
                self.pool.wait_sem(self._guard)
            finally:
                hooks.schedule()
        self._w[self.r] = owner_token()

    def _spin(self) -> bool:
        acquire = self._guard.acquire
        for _ in range(SPIN_TRIES):
            if acquire(False):
                return True
        return False

    def enter_nowrap(self) -> None:
        """rumpuser_mutex_enter_nowrap: take the lock, keeping the CPU while waiting."""
        if not self._guard.acquire(False) and not self._spin():
            self.pool.wait_sem(self._guard)
        self._w[self.r] = owner_token()

    def enter_nowrap_within(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds, keeping the CPU, even once the
        pool is shut down (a dying kernel's last messages); False if it stayed busy."""
        if self._guard.acquire(True, timeout):
            self._w[self.r] = owner_token()
            return True
        return False

    def tryenter(self) -> bool:
        """rumpuser_mutex_tryenter: take the lock if it is free."""
        if self._guard.acquire(False):
            self._w[self.r] = owner_token()
            return True
        return False

    def exit(self) -> None:
        """rumpuser_mutex_exit."""
        self._w[self.r] = 0
        self._guard.release()

    def owner(self) -> int:
        """rumpuser_mutex_owner: the holder's owner token, 0 if free."""
        return self._w[self.r]

    def owner_word(self) -> tuple[memoryview, int]:
        """(words, index) of the owner word, for callers that inline enter/exit:
        take the semaphore with trywait, then store their owner token there."""
        return self._w, self.r


# condvar record words
_C_HEAD = 0  # and _C_HEAD + 1: tail
_C_WAITERS = 2


class CondVar(_Guarded):
    """rumpuser_cv: waiters queue their park slots in FIFO order."""

    __slots__ = ()

    def _wait(self, m: Mutex, timeout: float | None, wrap: bool) -> bool:
        pool, w = self.pool, self.pool.w
        me = pool.park_slot()
        self._lock()
        pool.enqueue(self.slot, self.r + _C_HEAD, me)
        w[self.r + _C_WAITERS] += 1
        self._unlock()
        m.exit()
        try:
            woken = pool.sleep_until_granted(me, wrap, timeout)
            if not woken:
                self._lock()
                if pool.remove(self.r + _C_HEAD, me):
                    w[self.r + _C_WAITERS] -= 1
                else:  # signalled as the timeout ran out: take the post, count it a wakeup
                    pool.sem(me).acquire(False)
                    woken = True
                self._unlock()
        finally:
            m.enter() if wrap else m.enter_nowrap()
        return woken

    def wait(self, m: Mutex) -> None:
        """rumpuser_cv_wait: release ``m``, sleep until signalled, re-take ``m``."""
        self._wait(m, None, True)

    def wait_nowrap(self, m: Mutex) -> None:
        """rumpuser_cv_wait_nowrap: as ``wait``, keeping the CPU."""
        self._wait(m, None, False)

    def timedwait(self, m: Mutex, sec: int, nsec: int) -> int:
        """rumpuser_cv_timedwait: 0 if signalled, ETIMEDOUT if the time ran out."""
        return 0 if self._wait(m, sec + nsec / 1e9, True) else errno.ETIMEDOUT

    def _wake(self, limit: int) -> None:
        pool, w = self.pool, self.pool.w
        self._lock()
        for _ in range(limit):
            me = pool.dequeue(self.r + _C_HEAD)
            if not me:
                break
            w[self.r + _C_WAITERS] -= 1
            pool.unpark(me)
        self._unlock()

    def signal(self) -> None:
        """rumpuser_cv_signal: wake the longest waiter."""
        if self.pool.w[self.r + _C_WAITERS]:
            self._wake(1)

    def broadcast(self) -> None:
        """rumpuser_cv_broadcast: wake every waiter."""
        if self.pool.w[self.r + _C_WAITERS]:
            self._wake(self.pool.nslots)

    def has_waiters(self) -> bool:
        """rumpuser_cv_has_waiters."""
        return self.pool.w[self.r + _C_WAITERS] > 0


# rwlock record words
_RW_READERS = 0
_RW_WRITER = 1
_RW_WWAIT = 2  # writers waiting
_RW_RQ = 3  # and 4: queue of waiting readers
_RW_WQ = 5  # and 6: queue of waiting writers


class RWLock(_Guarded):
    """rumpuser_rw: many readers or one writer.  Once a writer waits, new readers
    queue behind it, so a stream of readers cannot starve writers; a writer leaving
    lets the queued readers in first, so writers cannot starve readers either."""

    __slots__ = ()

    def _try(self, rw: int) -> bool:
        w, r = self.pool.w, self.r
        if rw == RW_READER:
            if not w[r + _RW_WRITER] and not w[r + _RW_WWAIT]:
                w[r + _RW_READERS] += 1
                return True
        elif not w[r + _RW_WRITER] and not w[r + _RW_READERS]:
            w[r + _RW_WRITER] = owner_token()
            return True
        return False

    def _enter(self, rw: int, wrap: bool) -> None:
        pool, w, r = self.pool, self.pool.w, self.r
        self._lock()
        if self._try(rw):
            self._unlock()
            return
        me = pool.park_slot()
        if rw == RW_WRITER:
            w[r + _RW_WWAIT] += 1
        pool.enqueue(self.slot, r + (_RW_RQ if rw == RW_READER else _RW_WQ), me)
        self._unlock()
        pool.sleep_until_granted(me, wrap)  # the releaser made us owner

    def enter(self, rw: int) -> None:
        """rumpuser_rw_enter: take the lock as RW_READER or RW_WRITER."""
        self._enter(rw, True)

    def enter_nowrap(self, rw: int) -> None:
        self._enter(rw, False)

    def tryenter(self, rw: int) -> bool:
        """rumpuser_rw_tryenter."""
        self._lock()
        ok = self._try(rw)
        self._unlock()
        return ok

    def exit(self) -> None:
        """rumpuser_rw_exit: release a read or the write hold."""
        w, r = self.pool.w, self.r
        self._lock()
        if w[r + _RW_WRITER]:
            w[r + _RW_WRITER] = 0
            self._grant(readers_first=True)
        else:
            w[r + _RW_READERS] -= 1
            if not w[r + _RW_READERS]:
                self._grant(readers_first=False)
        self._unlock()

    def _grant(self, readers_first: bool) -> None:
        """Hand the free lock to waiters (holds the guard)."""
        pool, w, r = self.pool, self.pool.w, self.r
        if readers_first and w[r + _RW_RQ]:
            self._grant_readers()
        elif w[r + _RW_WQ]:
            me = pool.dequeue(r + _RW_WQ)
            w[r + _RW_WWAIT] -= 1
            w[r + _RW_WRITER] = pool.token(me)
            pool.unpark(me)
        else:
            self._grant_readers()

    def _grant_readers(self) -> None:
        pool, w, r = self.pool, self.pool.w, self.r
        while me := pool.dequeue(r + _RW_RQ):
            w[r + _RW_READERS] += 1
            pool.unpark(me)

    def tryupgrade(self) -> bool:
        """rumpuser_rw_tryupgrade: turn the caller's sole read hold into the write hold."""
        w, r = self.pool.w, self.r
        self._lock()
        ok = w[r + _RW_READERS] == 1 and not w[r + _RW_WRITER]
        if ok:
            w[r + _RW_READERS] = 0
            w[r + _RW_WRITER] = owner_token()
        self._unlock()
        return ok

    def downgrade(self) -> None:
        """rumpuser_rw_downgrade: turn the write hold into a read hold."""
        w, r = self.pool.w, self.r
        self._lock()
        w[r + _RW_WRITER] = 0
        w[r + _RW_READERS] = 1
        self._grant_readers()
        self._unlock()

    def held(self, rw: int) -> bool:
        """rumpuser_rw_held: write-held by the caller, or read-held by anyone."""
        w, r = self.pool.w, self.r
        if rw == RW_WRITER:
            return w[r + _RW_WRITER] == owner_token()
        return w[r + _RW_READERS] > 0

    def readers(self) -> int:
        return self.pool.w[self.r + _RW_READERS]

    def writer(self) -> int:
        return self.pool.w[self.r + _RW_WRITER]
