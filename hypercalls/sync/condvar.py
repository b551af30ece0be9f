"""rumpuser_cv: condition variables whose waiters queue their park slots in FIFO
order, so broadcast wakes every waiter that was waiting and none is lost."""

from __future__ import annotations

import errno

from hypercalls.sync.mutex import Mutex
from hypercalls.sync.pool import _Guarded

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

    def _wake(self, limit: int) -> list[int]:
        pool, w = self.pool, self.pool.w
        woken = []
        self._lock()
        for _ in range(limit):
            if not w[self.r + _C_HEAD]:
                break
            w[self.r + _C_WAITERS] -= 1  # before the waiter, which may be spinning, goes
            slot = pool.dequeue(self.r + _C_HEAD)
            woken.append(pool.token(slot))
            pool.unpark(slot)
        self._unlock()
        return woken

    def signal(self) -> list[int]:
        """rumpuser_cv_signal: wake the longest waiter; the owner tokens of those woken
        (the kernel's trace records who woke whom)."""
        return self._wake(1) if self.pool.w[self.r + _C_WAITERS] else []

    def broadcast(self) -> list[int]:
        """rumpuser_cv_broadcast: wake every waiter; their owner tokens."""
        return self._wake(self.pool.nslots) if self.pool.w[self.r + _C_WAITERS] else []

    def has_waiters(self) -> bool:
        """rumpuser_cv_has_waiters."""
        return self.pool.w[self.r + _C_WAITERS] > 0
