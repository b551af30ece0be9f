"""Atomic steps on words of shared memory, for the kernel's atomic_ops(3).

Python has no compare-and-swap on a shared mapping.  The packages that add one
(``atomics``, ctypes over gcc's ``libatomic``) pay 0.4-3 us of foreign-call
overhead per operation, more than a whole kernel mutex_enter+mutex_exit; a
semaphore's sem_trywait/sem_post through multiprocess's SemLock costs well under
that.  So a read-modify-write of a word is made atomic by a *striped lock*: one of
``STRIPES`` semaphores, chosen by the word's cache line, held for the few
bytecodes of the update.  Every process of a kernel uses the same stripes, so an
update made by any CPU is atomic with respect to every other.

A holder never waits for anything while it holds a stripe, so a waiter checks it
for a moment (yielding the host core, never starving a holder that shares it)
before it sleeps on the semaphore.
"""

from __future__ import annotations

from _multiprocess import SemLock

from hypercalls.sync.pool import SyncPool
from hypercalls.thread import spin_until

STRIPES = 32
_LINE_SHIFT = 6  # words of one 64-byte cache line share a stripe


def stripes_create(pool: SyncPool) -> list[int]:
    """The pool slots of a kernel's stripes (made at boot, each semaphore free)."""
    return [pool.alloc(1) for _ in range(STRIPES)]


class Stripes:
    """This process's view of a kernel's stripes."""

    __slots__ = ("_fence", "locks", "pool")

    def __init__(self, pool: SyncPool, slots: list[int]) -> None:
        self.pool = pool
        self.locks = [pool.sem(slot) for slot in slots]
        self._fence = self.locks[0]

    def lock_of(self, byte_offset: int) -> SemLock:
        """The stripe guarding the word at ``byte_offset`` of the shared segment."""
        return self.locks[(byte_offset >> _LINE_SHIFT) % STRIPES]

    def wait(self, lock: SemLock) -> None:
        """Take a stripe that was busy: check it briefly, then sleep on it (Shutdown
        once the kernel is gone)."""
        if not spin_until(lambda: lock.acquire(False)):
            self.pool.wait_sem(lock)

    def fence(self) -> None:
        """A full memory barrier: sem_wait and sem_post are atomic instructions,
        which order every load and store of this process around them."""
        if not self._fence.acquire(False):
            self.wait(self._fence)
        self._fence.release()
