"""Three classic concurrency bugs, written as torture types (``--type
rumpmp.torture.examples:Name``): what a run that finds a bug looks like.

- ``LostWakeup``: a waiter checks its condition under the lock, lets the lock go and
  only then goes to sleep; a wake-up sent in between is lost.  Each lwp passes a
  token to the next with ``wakeup``; a waiter that missed its wake-up sleeps with the
  token its own, and everyone else waits for it: the run stalls (deterministically:
  nobody can run), and the report shows the lwp asleep.
- ``RacyCounter``: an atomicity violation: read the counter under the lock, let the
  lock go, take it again and write the value read plus one.  Two lwps that
  interleave there lose a count: "count lost" at the end of the run.
- ``LockOrder``: half the lwps take lock A then B, half B then A.  Two of them
  deadlock: the run stalls, and the report names the lwps that did not finish and
  the lock each holds.
"""

from __future__ import annotations

from rumpmp.kern import kpause, mutex_enter, mutex_exit, mutex_init, preempt, tsleep, wakeup
from rumpmp.torture import layout as L
from rumpmp.torture.base import Torture, TortureLwp, TortureType

COUNT_LOST = "count lost"


class _TokenPasser(TortureLwp):
    """Waits for the token (shared word 0) to be its own, then passes it on."""

    def step(self) -> bool:
        t, s, m = self.t, self.s, self.t.locks[0]
        while True:
            mutex_enter(m)
            mine = s[0] == self.i
            mutex_exit(m)
            if mine or self.w[L.H_STOP]:
                break
            preempt()  # the bug's window: the token may be passed to us right now...
            # ...and its wake-up is lost, since this sleep does not begin under the lock
            # the token was checked under (mtsleep with m would close the window).
            tsleep(f"token{self.i}", 0, "token", 0)
        if self.w[L.H_STOP]:
            for j in range(t.nwriters):  # nobody sleeps past the end of the run
                wakeup(f"token{j}")
            return False
        mutex_enter(m)
        s[0] = (self.i + 1) % t.nwriters
        mutex_exit(m)
        wakeup(f"token{s[0]}")
        return True


class LostWakeup(TortureType):
    """Sleeps that can miss their wake-up: found as lwps asleep that nobody will wake
    (a deadlock in a deterministic run, a stall in a parallel one)."""

    writer = _TokenPasser
    writers_per_cpu = 1


class _RacyIncrement(TortureLwp):
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


class RacyCounter(TortureType):
    """Check, release the lock, act: found as "count lost"."""

    writer = _RacyIncrement
    violations = (COUNT_LOST,)

    @staticmethod
    def check(t: Torture) -> None:
        if t.s[0] != t.acquisitions():
            t.fail(0, COUNT_LOST, t.s[0], t.acquisitions())


class _OrderedTaker(TortureLwp):
    def step(self) -> bool:
        a, b = self.t.locks
        first, second = (a, b) if self.i % 2 == 0 else (b, a)  # the bug: two orders
        mutex_enter(first)
        self.hold()
        kpause("between", False, 1)  # hold the first lock while the other lwp takes its own
        mutex_enter(second)
        mutex_exit(second)
        mutex_exit(first)
        return True


class LockOrder(TortureType):
    """An AB/BA lock-order deadlock: found as a stall naming who holds which lock."""

    writer = _OrderedTaker
    writers_per_cpu = 1

    @staticmethod
    def setup(t: Torture) -> None:
        t.locks = [mutex_init(name="lock A"), mutex_init(name="lock B")]
