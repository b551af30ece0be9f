"""Synchronisation hypercalls that work across processes (rumpuser(3) mutex, rw, cv).

One module per primitive: ``pool`` (slots, park slots, shutdown), ``mutex``,
``condvar``, ``rwlock``; this package re-exports them.

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

from hypercalls.sync.condvar import CondVar
from hypercalls.sync.mutex import MTX_KMUTEX, MTX_SPIN, SPIN_NS, Mutex
from hypercalls.sync.pool import POLL, SLICE, Shutdown, SyncPool
from hypercalls.sync.rwlock import RW_READER, RW_WRITER, RWLock

__all__ = [
    "MTX_KMUTEX",
    "MTX_SPIN",
    "POLL",
    "RW_READER",
    "RW_WRITER",
    "SLICE",
    "SPIN_NS",
    "CondVar",
    "Mutex",
    "RWLock",
    "Shutdown",
    "SyncPool",
]
