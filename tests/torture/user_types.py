"""Torture types written as a user writes them (issue 24): a correct counter under a
kernel mutex, and the same with an atomicity violation (check, release, act)."""

from __future__ import annotations

from rumpmp.kern import mutex_enter, mutex_exit, preempt
from rumpmp.torture import Torture, TortureLwp, TortureType

LOST = "count lost"


class CounterWriter(TortureLwp):
    def step(self) -> bool:
        lock = self.t.locks[0]
        mutex_enter(lock)
        before = self.s[0]
        self.hold()
        self.s[0] = before + 1
        mutex_exit(lock)
        return True


class Counter(TortureType):
    """Every step adds one under the lock: the total is the steps taken."""

    writer = CounterWriter
    violations = (LOST,)

    @staticmethod
    def check(t: Torture) -> None:
        if t.s[0] != t.acquisitions():
            t.fail(0, LOST, t.s[0], t.acquisitions())


class RacyWriter(TortureLwp):
    def step(self) -> bool:
        lock = self.t.locks[0]
        mutex_enter(lock)
        before = self.s[0]
        mutex_exit(lock)  # the bug: the lock is let go between the read and the write
        preempt()
        mutex_enter(lock)
        self.s[0] = before + 1
        mutex_exit(lock)
        return True


class RacyCounter(Counter):
    """An atomicity violation: it loses counts when two lwps interleave."""

    writer = RacyWriter


class UndeclaredWriter(TortureLwp):
    def step(self) -> bool:
        self.fail("something nobody declared", 1, 0)
        return False


class Undeclared(TortureType):
    writer = UndeclaredWriter
