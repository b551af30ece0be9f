"""The time system calls (kern_time.c): clock_gettime, clock_getres, gettimeofday,
nanosleep, clock_nanosleep, on the kernel's timecounter (base/clock.py).

Sleeps are kpause(9) sleeps of whole ticks, as NetBSD's are, repeated until the
requested time has passed on the requested clock: they never end early.  A signal
recorded for the process (RUMP_SIGMODEL_RECORD) interrupts them with EINTR; the
exception's ``remaining`` attribute holds the time left unslept (NetBSD's rmtp).
"""

from __future__ import annotations

import errno

from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.clock import NS, TC_FREQUENCY, uptime_ns, wall_ns
from rumpmp.rumpkern.locking.sleepq import kpause
from rumpmp.sys.time import (
    CLOCK_MONOTONIC,
    CLOCK_REALTIME,
    TIMER_ABSTIME,
    TIMER_RELTIME,
    timespec,
    timeval,
)


def _now_ns(arena: Arena, clock_id: int, func: str) -> int:
    if clock_id == CLOCK_REALTIME:
        return wall_ns(arena, False)
    if clock_id == CLOCK_MONOTONIC:
        return uptime_ns(arena, False)
    raise OSError(errno.EINVAL, f"{func}: no clock {clock_id!r}")


def rump_sys_clock_gettime(clock_id: int) -> timespec:
    """clock_gettime(2): CLOCK_REALTIME or CLOCK_MONOTONIC (time since boot)."""
    return timespec(*divmod(_now_ns(_arena.current(), clock_id, "clock_gettime"), NS))


def rump_sys_clock_getres(clock_id: int) -> timespec:
    """clock_getres(2): the timecounter's resolution (one nanosecond)."""
    _now_ns(_arena.current(), clock_id, "clock_getres")
    return timespec(0, NS // TC_FREQUENCY)


def rump_sys_gettimeofday() -> timeval:
    """gettimeofday(2): the wall clock in (sec, usec)."""
    sec, ns = divmod(wall_ns(_arena.current(), False), NS)
    return timeval(sec, ns // 1000)


def _request_ns(rqtp: object, func: str) -> int:
    """A timespec argument in nanoseconds: EFAULT if it is not one, EINVAL if out of range."""
    if not isinstance(rqtp, tuple | list) or len(rqtp) != 2:
        raise OSError(errno.EFAULT, f"{func}: rqtp is not a (tv_sec, tv_nsec) timespec")
    sec, nsec = rqtp
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (sec, nsec)):
        raise OSError(errno.EFAULT, f"{func}: rqtp is not a (tv_sec, tv_nsec) timespec")
    if sec < 0 or not 0 <= nsec < NS:
        raise OSError(errno.EINVAL, f"{func}: bad time ({sec}, {nsec})")
    return sec * NS + nsec


def rump_sys_clock_nanosleep(clock_id: int, flags: int, rqtp: tuple[int, int]) -> timespec:
    """clock_nanosleep(2): sleep for ``rqtp``, or until it with TIMER_ABSTIME, on
    ``clock_id``; returns the time left unslept (zero: it slept in full)."""
    arena = _arena.current()
    if flags not in (TIMER_RELTIME, TIMER_ABSTIME):
        raise OSError(errno.EINVAL, f"clock_nanosleep: bad flags {flags!r}")
    request = _request_ns(rqtp, "clock_nanosleep")
    now = _now_ns(arena, clock_id, "clock_nanosleep")
    deadline = request if flags & TIMER_ABSTIME else now + request
    hz = arena.w[_arena.H_HZ]
    while now < deadline:
        if kpause("nanoslp", True, max(1, -(-(deadline - now) * hz // NS))) == errno.EINTR:
            left = max(0, deadline - _now_ns(arena, clock_id, "clock_nanosleep"))
            e = OSError(errno.EINTR, "nanosleep: interrupted by a signal")
            e.remaining = timespec(0, 0) if flags & TIMER_ABSTIME else timespec(*divmod(left, NS))  # type: ignore[attr-defined]
            raise e
        now = _now_ns(arena, clock_id, "clock_nanosleep")
    return timespec(0, 0)


def rump_sys_nanosleep(rqtp: tuple[int, int]) -> timespec:
    """nanosleep(2): sleep for ``rqtp`` (tv_sec, tv_nsec) on the monotonic clock."""
    return rump_sys_clock_nanosleep(CLOCK_MONOTONIC, TIMER_RELTIME, rqtp)
