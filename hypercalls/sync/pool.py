"""The synchronisation pool (rumpuser(3) locks rest on it): named semaphores in slots.

One ``SyncPool`` per kernel: a fixed number of slots, each a named POSIX semaphore
plus a 64-byte record in one shared segment.  The pool bounds the named objects a
kernel creates; a slot's semaphore is created the first time the slot is used, so
boot stays cheap.  Each thread has a *park slot* to sleep on; objects that make
threads wait queue their park slots (``waitq``) and post them to wake them.

Every wait is sliced (``SLICE``) so that ``SyncPool.shutdown`` reaches waiters in all
processes: after a shutdown they raise ``Shutdown`` instead of hanging.  Hot waits
check their condition for a moment before they block (``thread.spin_until``); the
poster always posts after making the condition true, and whoever grants a waiter
completes the grant before taking it off its queue, so a spinning waiter never sees
a half-made grant and no wake-up is lost.
"""

from __future__ import annotations

import contextlib
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

from hypercalls import shm, waitq
from hypercalls.thread import Teardown, hooks, local, owner_token, spin_until

T = TypeVar("T")

SLICE = 0.1  # seconds between checks of the shutdown flag
POLL = 0.05  # longest park of a waiter that has a deadline or a poll function
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
_W_NEXT = 0  # the next waiter's record in the queue (waitq link)
_W_QUEUED = 1  # slot of the object it waits on, 0 once granted / woken
_W_TOKEN = 2  # the waiter's owner token (for rwlock writers)


class Shutdown(OSError, Teardown):
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
        """Create the slot's semaphore if it is new, and set its value to ``initial``.
        One this process has opened before exists still (names go only at teardown):
        it is only reset, which spares a sem_open for every reused park slot."""
        if slot not in self._sems:
            posix_ipc.Semaphore(self._name(slot), posix_ipc.O_CREAT, initial_value=initial).close()
        sem = self.sem(slot)
        while sem.acquire(False):  # a reused slot may hold leftover posts
            pass
        for _ in range(initial):
            sem.release()

    def open_slots(self) -> list[int]:
        """The slots whose semaphores this process has open."""
        return list(self._sems)

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

    # -- shutdown and waiting ------------------------------------------------------

    def shutdown(self) -> None:
        """Make every waiter, in every process, raise Shutdown within SLICE seconds;
        the park slots of this process's threads are posted, so those wake at once."""
        self.w[_H_SHUTDOWN] = 1
        for slot in list(self._parks):
            with contextlib.suppress(OSError):  # a semaphore gone already has no waiter
                self.unpark(slot)

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
            self.free_park_slot(slot)

    def free_park_slot(self, slot: int) -> None:
        """Give back the park slot of a thread that has ended."""
        self._parks.discard(slot)
        self.free(slot)

    def park_spinning(
        self,
        slot: int,
        ready: Callable[[], bool],
        deadline: int | None = None,
        poll: Callable[[], None] | None = None,
        what: str = "wait",
    ) -> None:
        """Wait until ``ready()``: with the CPU released, check it for a moment
        (``spin_until``), then park on ``slot`` until posted, and look again.  The
        poster sets the condition first and always posts, so nothing is lost; a
        post that finds the waiter already gone stays behind as a stale post, which
        every waiter tolerates because it loops on its condition.

        For a host caller: ``deadline`` (monotonic ns) raises TimeoutError when it
        passes, and ``poll`` runs between parks, at most POLL seconds apart, and may
        raise to give up (a held Ctrl-C)."""
        if ready():
            return
        hooks.unschedule()
        try:
            self.wait_until(slot, ready, deadline, poll, what)
        finally:
            hooks.schedule()

    def wait_until(
        self,
        slot: int,
        ready: Callable[[], bool],
        deadline: int | None = None,
        poll: Callable[[], None] | None = None,
        what: str = "wait",
    ) -> None:
        """``park_spinning`` for a caller that holds no CPU (or must not give it up)."""
        while not spin_until(ready):
            if deadline is None and poll is None:
                self.wait_sem(self.sem(slot))
                continue
            left = POLL if deadline is None else min(POLL, (deadline - time.monotonic_ns()) / 1e9)
            if left <= 0:
                raise TimeoutError(errno.ETIMEDOUT, f"{what} timed out")
            self.wait_sem(self.sem(slot), left)
            if poll is not None:
                poll()

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
    #
    # A queue is a waitq list in the pool's words; its elements are the records of
    # the waiters' park slots.

    def slot_of(self, rec: int) -> int:
        """The slot whose record starts at word ``rec``."""
        return (rec - _H_WORDS) // _R_WORDS

    def enqueue(self, owner: int, head: int, me: int) -> None:
        """Append park slot ``me`` to the queue whose head/tail words are at head, head+1."""
        m = self.rec(me)
        self.w[m + _W_QUEUED] = owner
        self.w[m + _W_TOKEN] = owner_token()
        waitq.append(self.w, head, m, _W_NEXT)

    def dequeue(self, head: int) -> int:
        """Pop the first waiter of a queue and mark it granted; 0 if empty."""
        m = waitq.pop(self.w, head, _W_NEXT)
        if not m:
            return 0
        self.w[m + _W_QUEUED] = 0
        return self.slot_of(m)

    def remove(self, head: int, me: int) -> bool:
        """Take ``me`` out of a queue (after a timeout); False if it was not there."""
        m = self.rec(me)
        if not waitq.remove(self.w, head, m, _W_NEXT):
            return False
        self.w[m + _W_QUEUED] = 0
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

        def granted() -> bool:
            return not self.queued(me)

        if granted():
            return True
        if wrap:
            hooks.unschedule()
        try:
            while not spin_until(granted):  # the waker is often about to grant
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.park(me, left, wrap=False)
            return True
        finally:
            if wrap:
                hooks.schedule()


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
