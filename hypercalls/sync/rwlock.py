"""rumpuser_rw: reader/writer locks whose waiters queue their park slots."""

from __future__ import annotations

from hypercalls.sync.pool import _Guarded
from hypercalls.thread import owner_token

RW_READER = 0
RW_WRITER = 1


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
            # Make the waiter the owner before it is dequeued: a waiter that spins
            # sees itself granted the moment it leaves the queue, and goes on to
            # use (and release) the lock at once.
            w[r + _RW_WRITER] = pool.token(pool.slot_of(w[r + _RW_WQ]))
            me = pool.dequeue(r + _RW_WQ)
            w[r + _RW_WWAIT] -= 1
            pool.unpark(me)
        else:
            self._grant_readers()

    def _grant_readers(self) -> None:
        pool, w, r = self.pool, self.pool.w, self.r
        while w[r + _RW_RQ]:
            w[r + _RW_READERS] += 1  # counted before dequeued, as for a writer
            pool.unpark(pool.dequeue(r + _RW_RQ))

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
