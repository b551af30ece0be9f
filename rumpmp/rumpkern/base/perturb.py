"""Seeded perturbation of the points where kernel code hands over, for the torture suite.

At a lock's slow path, in ``preempt`` and at condvar and sleep-queue wake-ups, kernel
code calls ``point()`` while perturbation is on.  Each CPU draws its decisions from
its own generator, seeded from the run's seed and the CPU index: do nothing, yield
the host core, or busy-wait a few microseconds (DELAY(9): the CPU is kept).

What a seed reproduces: the n-th decision on each CPU.  What it does not: which point
meets the n-th decision, since the host still interleaves the CPU processes as it
likes.  Each CPU keeps the count of its decisions, a digest of them all and the first
``TRACE`` of them, so two runs can be compared.

Off by default: a point costs its callers one test of ``on``.
"""

from __future__ import annotations

import random

from hypercalls import thread
from rumpmp.rumpkern.base import clock

NOTHING, YIELD, DELAY = 0, 1, 2
#: Decisions kept in full per CPU (the rest only count and feed the digest).
TRACE = 300
#: The longest busy-wait a decision makes, in microseconds.
DELAY_MAX_US = 50

_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


class _Perturb:
    """This CPU process's generator and record (one CPU per process)."""

    def __init__(self) -> None:
        self.on = False
        self.rng = random.Random()
        self.p_yield = self.p_delay = 0.0
        self.count = 0
        self.digest = 0xCBF29CE484222325  # FNV-1a offset basis
        self.trace: list[int] = []


state = _Perturb()


def start(seed: int, cpu: int, p_yield: float = 0.25, p_delay: float = 0.125) -> None:
    """Turn perturbation on for this CPU, with a generator seeded from (seed, cpu)."""
    state.rng.seed(f"rumpmp-perturb:{seed}:{cpu}", version=2)
    state.p_yield, state.p_delay = p_yield, p_delay
    state.count, state.digest, state.trace = 0, 0xCBF29CE484222325, []
    state.on = True


def stop() -> dict[str, object]:
    """Turn it off; this CPU's record: count, digest (hex) and the first decisions."""
    state.on = False
    return {"count": state.count, "digest": f"{state.digest:016x}", "trace": list(state.trace)}


def decide() -> int:
    """The next decision, encoded as ``kind`` or ``DELAY + 4 * microseconds``."""
    r = state.rng.random()
    if r < state.p_yield:
        decision = YIELD
    elif r < state.p_yield + state.p_delay:
        decision = DELAY + 4 * (1 + int((r - state.p_yield) / state.p_delay * DELAY_MAX_US))
    else:
        decision = NOTHING
    state.count += 1
    state.digest = ((state.digest ^ decision) * _FNV_PRIME) & _MASK
    if len(state.trace) < TRACE:
        state.trace.append(decision)
    return decision


def point() -> None:
    """A hand-over point: act on the next decision (callers test ``state.on`` first)."""
    decision = decide()
    if decision == YIELD:
        thread.yield_host()
    elif decision & 3 == DELAY:
        clock.DELAY(decision >> 2)
