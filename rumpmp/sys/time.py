"""Time layouts and constants (NetBSD's sys/time.h, time.h)."""

from __future__ import annotations

from typing import NamedTuple

CLOCK_REALTIME = 0
CLOCK_VIRTUAL = 1
CLOCK_PROF = 2
CLOCK_MONOTONIC = 3
TIMER_RELTIME = 0x0
TIMER_ABSTIME = 0x1


class timespec(NamedTuple):
    tv_sec: int
    tv_nsec: int


class timeval(NamedTuple):
    tv_sec: int
    tv_usec: int


class bintime(NamedTuple):
    """Seconds and a binary fraction of a second (units of 2**-64 s)."""

    sec: int
    frac: int
