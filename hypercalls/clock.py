"""Clocks (rumpuser_clock_gettime, rumpuser_clock_sleep)."""

from __future__ import annotations

import time

from .thread import hooks

#: rumpuser's clock ids.
CLOCK_RELWALL = 0
CLOCK_ABSMONO = 1


def clock_gettime(which: int) -> tuple[int, int]:
    """(sec, nsec) of the wall clock (RELWALL) or the monotonic clock (ABSMONO)."""
    ns = time.time_ns() if which == CLOCK_RELWALL else time.monotonic_ns()
    return divmod(ns, 1_000_000_000)


def monotonic_ns() -> int:
    """Nanoseconds of the monotonic clock."""
    return time.monotonic_ns()


def clock_sleep(which: int, sec: int, nsec: int) -> None:
    """Sleep; RELWALL for a relative interval, ABSMONO until a monotonic time.

    Releases the caller's CPU while sleeping, as every blocking hypercall does.
    Absolute monotonic sleeps let a periodic clock keep its phase without drift.
    """
    delay = sec + nsec / 1e9
    if which == CLOCK_ABSMONO:
        delay -= time.monotonic()
    hooks.unschedule()
    try:
        if delay > 0:
            time.sleep(delay)
    finally:
        hooks.schedule()
