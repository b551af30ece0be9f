"""rumpuser_mutex: a cross-process lock whose slot semaphore is the lock itself."""

from __future__ import annotations

from hypercalls.sync.pool import SyncPool, _Guarded
from hypercalls.thread import hooks, owner_token, spin_until

MTX_SPIN = 0x01
MTX_KMUTEX = 0x02

#: How long a waiter for a busy mutex keeps trying before it gives up the CPU and
#: sleeps, in ns.  The holder is usually running on another CPU and about to let go
#: (NetBSD's adaptive mutexes spin for the same reason); a few microseconds of trying
#: beats a sleep and wakeup.  The tries yield the host core, so a holder that shares
#: it is never starved.
SPIN_NS = 20_000


class Mutex(_Guarded):
    """rumpuser_mutex: a cross-process lock; the slot semaphore is the lock itself."""

    __slots__ = ("_w",)

    def __init__(self, pool: SyncPool, flags: int = 0, slot: int | None = None) -> None:
        super().__init__(pool, flags, slot)
        self._w = pool.w

    def enter(self) -> None:
        """rumpuser_mutex_enter: take the lock, releasing the CPU if it must wait.

        A spin mutex is taken as with ``enter_nowrap``, keeping the CPU, as rump does:
        its holders take it while holding their CPU, so a waiter that gave its CPU up
        would have to take the CPU back while holding the mutex, and deadlock with a
        holder of that CPU waiting for the mutex."""
        if self.flags & MTX_SPIN:
            self.enter_nowrap()
            return
        if not self._guard.acquire(False) and not self._spin():
            hooks.unschedule()
            try:
                self.pool.wait_sem(self._guard)
            finally:
                hooks.schedule()
        self._w[self.r] = owner_token()

    def _spin(self) -> bool:
        acquire = self._guard.acquire
        return spin_until(lambda: acquire(False), SPIN_NS)

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
