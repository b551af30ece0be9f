"""The kernel clock (kern_clock.c, kern_tc.c): hz, ticks, uptime, boottime, hardclock.

Ticks count from boot on the host's monotonic clock: ``getticks()`` is the number of
whole 1/hz periods since the kernel booted, so every CPU and the host agree on it
without sharing a counter.  Each CPU runs a hardclock: a host thread of the CPU
process that wakes at every tick boundary with an absolute monotonic sleep, so a
late wakeup never shifts the ticks that follow (no drift).  It counts its ticks
(``hardclock_ticks`` of that CPU) and hands expired callouts to the CPU's clock
softint.  It is not an lwp and never holds the CPU: like an interrupt, it only
posts work for lwps to do.
"""

from __future__ import annotations

from collections.abc import Callable

from hypercalls import clock, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.sys import time as _t

NS = 1_000_000_000


def DELAY(us: int) -> None:
    """DELAY(9): busy-wait ``us`` microseconds, keeping the CPU."""
    until = clock.monotonic_ns() + us * 1000
    while clock.monotonic_ns() < until:
        pass


def hz() -> int:
    """The kernel's clock rate in ticks per second."""
    return _arena.current().w[_arena.H_HZ]


def mstohz(ms: int) -> int:
    """mstohz(9): milliseconds to ticks, rounded up."""
    return -(-ms * hz() // 1000)


def hztoms(ticks: int) -> int:
    """hztoms(9): ticks to milliseconds."""
    return ticks * 1000 // hz()


def ticks_in(arena: Arena) -> int:
    """getticks() of a given kernel (the host may ask too)."""
    w = arena.w
    return (clock.monotonic_ns() - w[_arena.H_BOOT_MONO]) * w[_arena.H_HZ] // NS


def getticks() -> int:
    """getticks(9): hardclock ticks since boot."""
    return ticks_in(_arena.current())


def tick_deadline_ns(arena: Arena, tick: int) -> int:
    """Monotonic time at which tick number ``tick`` begins."""
    w = arena.w
    return w[_arena.H_BOOT_MONO] + tick * NS // w[_arena.H_HZ]


# -- timecounters (kern_tc.c) ---------------------------------------------------------
#
# The kernel has one timecounter, "rumpclk": the host's monotonic clock in
# nanoseconds (rump's own is the same: a rumpuser clock).  ``inittimecounter``
# records where it stood at boot (uptime 0); ``tc_setclock`` sets the wall clock by
# moving the boot time, as NetBSD's does.  The precise calls (nanotime, microtime,
# bintime, ...) read the counter now; the get* calls return the time of the last
# tick, as NetBSD's cheap variants do.

TC_FREQUENCY = NS


def inittimecounter(arena: Arena) -> None:
    """inittimecounter: uptime starts now."""
    arena.w[_arena.H_BOOT_MONO] = clock.monotonic_ns()


def tc_setclock_in(arena: Arena, ts: tuple[int, int]) -> None:
    """tc_setclock on a given kernel: the wall clock reads ``ts`` (sec, nsec) now."""
    up = clock.monotonic_ns() - arena.w[_arena.H_BOOT_MONO]
    boot = ts[0] * NS + ts[1] - up
    arena.w[_arena.H_BOOT_SEC], arena.w[_arena.H_BOOT_NSEC] = divmod(boot, NS)


def tc_setclock(ts: tuple[int, int]) -> None:
    """tc_setclock(9): set the wall clock to ``ts`` (sec, nsec)."""
    tc_setclock_in(_arena.current(), ts)


def tc_getfrequency() -> int:
    """tc_getfrequency(9): the timecounter's frequency in Hz."""
    return TC_FREQUENCY


def uptime_ns(arena: Arena, coarse: bool) -> int:
    up = clock.monotonic_ns() - arena.w[_arena.H_BOOT_MONO]
    if coarse:  # the time of the last tick
        hz = arena.w[_arena.H_HZ]
        up = up * hz // NS * NS // hz
    return up


def wall_ns(arena: Arena, coarse: bool) -> int:
    w = arena.w
    return w[_arena.H_BOOT_SEC] * NS + w[_arena.H_BOOT_NSEC] + uptime_ns(arena, coarse)


def _timespec(ns: int) -> _t.timespec:
    return _t.timespec(*divmod(ns, NS))


def _timeval(ns: int) -> _t.timeval:
    sec, rest = divmod(ns, NS)
    return _t.timeval(sec, rest // 1000)


def _bintime(ns: int) -> _t.bintime:
    sec, rest = divmod(ns, NS)
    return _t.bintime(sec, (rest << 64) // NS)


def nanouptime() -> _t.timespec:
    """nanouptime(9): (sec, nsec) since boot."""
    return _timespec(uptime_ns(_arena.current(), False))


def microuptime() -> _t.timeval:
    """microuptime(9): (sec, usec) since boot."""
    return _timeval(uptime_ns(_arena.current(), False))


def binuptime() -> _t.bintime:
    """binuptime(9): (sec, frac) since boot."""
    return _bintime(uptime_ns(_arena.current(), False))


def getnanouptime() -> _t.timespec:
    """getnanouptime(9): uptime at the last tick."""
    return _timespec(uptime_ns(_arena.current(), True))


def getmicrouptime() -> _t.timeval:
    """getmicrouptime(9): uptime at the last tick."""
    return _timeval(uptime_ns(_arena.current(), True))


def getbinuptime() -> _t.bintime:
    """getbinuptime(9): uptime at the last tick."""
    return _bintime(uptime_ns(_arena.current(), True))


def getboottime() -> tuple[int, int]:
    """getnanoboottime(9): the wall-clock (sec, nsec) at which the kernel booted."""
    w = _arena.current().w
    return w[_arena.H_BOOT_SEC], w[_arena.H_BOOT_NSEC]


def nanotime() -> _t.timespec:
    """nanotime(9): wall-clock time, boottime plus uptime."""
    return _timespec(wall_ns(_arena.current(), False))


def microtime() -> _t.timeval:
    """microtime(9): wall-clock time."""
    return _timeval(wall_ns(_arena.current(), False))


def bintime() -> _t.bintime:
    """bintime(9): wall-clock time."""
    return _bintime(wall_ns(_arena.current(), False))


def getnanotime() -> _t.timespec:
    """getnanotime(9): wall-clock time at the last tick."""
    return _timespec(wall_ns(_arena.current(), True))


def getmicrotime() -> _t.timeval:
    """getmicrotime(9): wall-clock time at the last tick."""
    return _timeval(wall_ns(_arena.current(), True))


def getbintime() -> _t.bintime:
    """getbintime(9): wall-clock time at the last tick."""
    return _bintime(wall_ns(_arena.current(), True))


def start_hardclock(arena: Arena, cpu: int, on_tick: Callable[[int], None]) -> None:
    """Start ``cpu``'s hardclock; it calls ``on_tick(tick)`` once per tick until halt.

    When the host is overloaded a wakeup may come late; the ticks it missed are not
    replayed one by one (``on_tick`` gets the current tick, and callouts due at any
    earlier tick are due at it too).
    """

    def hardclock(_: object) -> None:
        tick = ticks_in(arena)
        while arena.state in (_arena.BOOTING, _arena.RUNNING):
            tick += 1
            clock.clock_sleep(clock.CLOCK_ABSMONO, *divmod(tick_deadline_ns(arena, tick), NS))
            tick = max(tick, ticks_in(arena))
            on_tick(tick)

    thread.thread_create(hardclock, None, f"hardclock{cpu}")
