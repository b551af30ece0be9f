"""Torture types written as a user writes them, in a module of their own (issue 24): a
correct counter under a kernel mutex, and a type that reports a violation it did not
declare.  (The failing example types are rumpmp.torture.examples'.)"""

from __future__ import annotations

from rumpmp.kern import mutex_enter, mutex_exit
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


class UndeclaredWriter(TortureLwp):
    def step(self) -> bool:
        self.fail("something nobody declared", 1, 0)
        return False


class Undeclared(TortureType):
    writer = UndeclaredWriter
