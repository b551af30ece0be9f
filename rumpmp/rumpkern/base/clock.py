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


def nanouptime() -> tuple[int, int]:
    """nanouptime(9): (sec, nsec) since boot."""
    up = clock.monotonic_ns() - _arena.current().w[_arena.H_BOOT_MONO]
    return divmod(up, NS)


def getboottime() -> tuple[int, int]:
    """getnanoboottime(9): the wall-clock (sec, nsec) at which the kernel booted."""
    w = _arena.current().w
    return w[_arena.H_BOOT_SEC], w[_arena.H_BOOT_NSEC]


def nanotime() -> tuple[int, int]:
    """nanotime(9): wall-clock time as boottime plus uptime (the seed's tc_setclock)."""
    up_s, up_ns = nanouptime()
    boot_s, boot_ns = getboottime()
    return divmod((boot_s + up_s) * NS + boot_ns + up_ns, NS)


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
