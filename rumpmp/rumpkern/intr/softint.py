"""softint(9): software interrupts (kern_softint.c), one handler lwp per CPU and level.

A handle is a record in the "softint" region: the handler as a blob, its level and,
for every CPU, whether it is pending there and its link in that CPU's pending list.
Each CPU keeps one FIFO of pending handles per level under its own spin lock, so
scheduling a softint on one CPU never touches another CPU's state.

The first ``softint_establish`` of a level starts that level's softint lwp on every
CPU: a kernel thread bound to the CPU at the level's priority (PRI_SOFTCLOCK ...
PRI_SOFTSERIAL, above every other lwp).  ``softint_schedule`` marks the handle
pending and wakes the lwp, which then waits in the run queue; the scheduler hands
it the CPU as soon as the current lwp releases it, ahead of everything else, so the
handler runs when the CPU is released or goes idle, as rump does.  Scheduling a
pending handle again does nothing until it has run (softints coalesce).

rumpmp differs from NetBSD in that handles are objects returned to the caller (not
``void *`` cookies) and pickle by reference; a handler cannot preempt the lwp that
scheduled it, because no Python frame can be interrupted by another lwp.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypercalls import sync, thread, waitq
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry, evcnt, kernhist
from rumpmp.rumpkern.base.arena import Arena, onproc
from rumpmp.rumpkern.base.handle import Handle
from rumpmp.rumpkern.base.prf import kprintf, panic_in
from rumpmp.rumpkern.base.proc import tables
from rumpmp.rumpkern.locking import biglock
from rumpmp.rumpkern.locking.sleepq import kpause
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.rumpkern.sched import kthread
from rumpmp.sys.kernhist import EV_SOFTINT
from rumpmp.sys.lwp import L_PARK
from rumpmp.sys.param import PRI_SOFTBIO, PRI_SOFTCLOCK, PRI_SOFTNET, PRI_SOFTSERIAL

SOFTINT_CLOCK = 0
SOFTINT_BIO = 1
SOFTINT_NET = 2
SOFTINT_SERIAL = 3
SOFTINT_COUNT = 4
SOFTINT_LVLMASK = 0xFF
SOFTINT_MPSAFE = 0x100

LEVEL_PRI = (
    PRI_SOFTCLOCK,
    PRI_SOFTBIO,
    PRI_SOFTNET,
    PRI_SOFTSERIAL,
)
LEVEL_NAMES = ("softclk", "softbio", "softnet", "softser")

NSOFTINT = 256  # handles a kernel can have established at once

# global header words
G_LOCK = 0  # pool slot of the spin lock guarding the handle table
G_LEVELS = 1  # bitmask of levels whose lwps exist
G_COUNT = 2  # live handles
_G_WORDS = 8

# per-CPU record words (one cache-line-aligned record per CPU)
SI_LOCK = 0
SI_HEAD = 1  # per level: a waitq list (head, tail) of pending handle records
SI_LWP = SI_HEAD + 2 * SOFTINT_COUNT  # per level: the softint lwp's id
SI_RUNNING = SI_LWP + SOFTINT_COUNT  # per level: handle index + 1 being run
RECORD_WORDS = 64

# handle record words; then, per CPU, a pending flag and a next link
SH_STATE = 0  # 0 free, 1 established, 2 being disestablished
SH_LEVEL = 1
SH_FLAGS = 2
SH_FUNC = 3  # 3 words: blob of (func, arg)
SH_FIXED = 8
SH_LIVE, SH_DYING = 1, 2


def _handle_words(ncpu: int) -> int:
    return SH_FIXED + 2 * ncpu


def _link(cpu: int) -> int:
    """Offset of a handle's waitq link in ``cpu``'s pending list (after its flag)."""
    return SH_FIXED + 2 * cpu + 1


def _index_of(arena: Arena, h: int) -> int:
    """The index of the handle whose record starts at word ``h``."""
    return (h - _handle(arena, 0)) // _handle_words(arena.ncpu)


def region(ncpu: int) -> tuple[str, int]:
    words = _G_WORDS + ncpu * RECORD_WORDS + NSOFTINT * _handle_words(ncpu)
    return ("softint", words * 8)


def record(arena: Arena, cpu: int) -> int:
    """Word index of ``cpu``'s record."""
    return arena.region_word("softint") + _G_WORDS + cpu * RECORD_WORDS


def _handle(arena: Arena, index: int) -> int:
    """Word index of handle ``index``."""
    base = record(arena, arena.ncpu)  # the handle table follows the last CPU record
    return base + index * _handle_words(arena.ncpu)


def _lock(arena: Arena, word: int) -> sync.Mutex:
    return arena.spin_lock(word)


def softint_init(arena: Arena, cpu: int) -> None:
    """softint_init: this CPU's pending lists and their lock (per-CPU boot step)."""
    arena.w[record(arena, cpu) + SI_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


def softint_startup(arena: Arena) -> None:
    """The handle table's lock (at boot, in the host, before the CPUs start)."""
    arena.w[arena.region_word("softint") + G_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


class softint_t(Handle):
    """A softint handle; pickles by reference, can be scheduled from every CPU."""

    __slots__ = ("arena", "index")

    def __init__(self, arena: Arena, index: int) -> None:
        self.arena = arena
        self.index = index

    def _args(self) -> tuple:
        return (self.arena, self.index)

    def _what(self) -> str:
        return str(self.index)


# -- establishing ---------------------------------------------------------------------


def softint_establish_in(
    arena: Arena, flags: int, func: Callable[[object], None], arg: object
) -> softint_t:
    """softint_establish on a given kernel (boot uses it from the host)."""
    level = flags & SOFTINT_LVLMASK
    if not 0 <= level < SOFTINT_COUNT:
        raise OSError(errno.EINVAL, f"softint_establish: bad level {level}")
    g = arena.region_word("softint")
    w = arena.w
    lock = _lock(arena, g + G_LOCK)
    lock.enter_nowrap()
    try:
        index = next((i for i in range(NSOFTINT) if not w[_handle(arena, i) + SH_STATE]), -1)
        if index < 0:
            raise OSError(errno.ENOSPC, f"softint_establish: all {NSOFTINT} handles in use")
        h = _handle(arena, index)
        w[h : h + _handle_words(arena.ncpu)] = memoryview(
            bytes(8 * _handle_words(arena.ncpu))
        ).cast("q")
        w[h + SH_STATE], w[h + SH_LEVEL], w[h + SH_FLAGS] = SH_LIVE, level, flags
        w[g + G_COUNT] += 1
        start = not w[g + G_LEVELS] & (1 << level)
        w[g + G_LEVELS] |= 1 << level
    finally:
        lock.exit()
    blob_put(arena, (func, arg), h + SH_FUNC)
    if start:
        _start_level(arena, level)
    return softint_t(arena, index)


def softint_establish(flags: int, func: Callable[[object], None], arg: object) -> softint_t:
    """softint_establish(9): a handle that runs ``func(arg)`` at level
    ``flags & SOFTINT_LVLMASK`` each time it is scheduled.  NetBSD returns NULL when
    out of handles; rumpmp raises OSError (ENOSPC, or EINVAL for a bad level)."""
    return softint_establish_in(_arena.current(), flags, func, arg)


def _start_level(arena: Arena, level: int) -> None:
    """Start the level's softint lwp on every CPU."""
    if not arena.w[_arena.H_THREADS]:
        kprintf(arena, f"rump kernel threads not enabled, {LEVEL_NAMES[level]} not functional\n")
        return
    for cpu in range(arena.ncpu):
        lid = kthread.kthread_create_in(
            arena,
            LEVEL_PRI[level],
            kthread.KTHREAD_MPSAFE | kthread.KTHREAD_INTR,
            cpu,
            _softint_thread,
            level,
            f"{LEVEL_NAMES[level]}/{cpu}",
        )
        arena.w[record(arena, cpu) + SI_LWP + level] = lid


# -- scheduling ---------------------------------------------------------------------


def schedule_in(arena: Arena, sih: softint_t, cpu: int) -> None:
    """Make ``sih`` pending on ``cpu`` and wake that CPU's lwp for its level.

    Works from any process, the host included: it only touches shared memory and
    posts a semaphore.
    """
    w = arena.w
    h = _handle(arena, sih.index)
    r = record(arena, cpu)
    pend = h + SH_FIXED + 2 * cpu  # pending flag; the next link follows it
    lock = _lock(arena, r + SI_LOCK)
    lock.enter_nowrap()
    # The state is read under this CPU's lock: softint_disestablish marks the handle
    # dying before it takes each CPU's lock to unlink it, so a handle linked here is
    # either seen and unlinked by it, or seen dying here and never linked.
    if w[h + SH_STATE] != SH_LIVE:
        lock.exit()
        panic_in(arena, f"softint_schedule: {sih!r} is not established")
    level = w[h + SH_LEVEL]
    wake = not w[pend]
    if wake:  # not pending yet: append to this CPU's list for the level
        w[pend] = 1
        waitq.append(w, r + SI_HEAD + 2 * level, h, _link(cpu))
    lock.exit()
    if wake:
        _kick(arena, cpu, level)


def _kick(arena: Arena, cpu: int, level: int) -> None:
    """Wake ``cpu``'s softint lwp of ``level`` (before it has started, it will look
    at its list as soon as it does)."""
    lid = arena.w[record(arena, cpu) + SI_LWP + level]
    if lid:
        park = arena.w[tables(arena).lwp(lid) + L_PARK]
        if park:
            arena.pool.unpark(park)


def softint_schedule(sih: softint_t) -> None:
    """softint_schedule(9): run the handler on this CPU once the CPU is released."""
    arena = _arena.current()
    schedule_in(arena, sih, _arena.here.cpu)


def softint_schedule_cpu(sih: softint_t, ci: int) -> None:
    """softint_schedule_cpu(9): run the handler on CPU ``ci`` (an index here)."""
    arena = _arena.current()
    if not 0 <= ci < arena.ncpu:
        raise OSError(errno.EINVAL, f"softint_schedule_cpu: no cpu{ci}")
    schedule_in(arena, sih, ci)


# -- the softint lwp ------------------------------------------------------------------


def _take(arena: Arena, cpu: int, level: int) -> int:
    """Pop the first pending handle of ``level`` on ``cpu`` and mark it running;
    its index + 1, or 0."""
    w = arena.w
    r = record(arena, cpu)
    lock = _lock(arena, r + SI_LOCK)
    lock.enter_nowrap()
    h = waitq.pop(w, r + SI_HEAD + 2 * level, _link(cpu))
    first = 0
    if h:
        w[h + SH_FIXED + 2 * cpu] = 0  # no longer pending
        first = _index_of(arena, h) + 1
        w[r + SI_RUNNING + level] = first
    lock.exit()
    return first


def _softint_thread(level: int) -> None:
    """Body of a softint lwp: run this CPU's pending handlers of one level, in order."""
    arena = _arena.current()
    cpu = _arena.here.cpu
    r = record(arena, cpu)
    w = arena.w
    park = w[tables(arena).lwp(thread.curlwp()) + L_PARK]
    onproc.softintr = True  # cpu_softintr_p(), for every handler this lwp runs
    while True:
        first = _take(arena, cpu, level)
        if not first:
            arena.pool.park(park)  # releases the CPU until something is scheduled
            continue
        h = _handle(arena, first - 1)
        if w[h + SH_STATE] == SH_LIVE:
            func, arg = blob_get(arena, h + SH_FUNC, cache=True)
            start = kernhist.now() if kernhist.state.on else 0
            ok, e = biglock.call(w[h + SH_FLAGS] & SOFTINT_MPSAFE, func, arg)
            if start:
                kernhist.emit(EV_SOFTINT, thread.curlwp(), level, kernhist.now() - start)
            if not ok:  # nobody waits for a softint: dmesg says what it raised
                entry.report(arena, f"softint handler {func!r} on cpu{cpu}", e)  # type: ignore[arg-type]
            w[evcnt.count_word(arena, cpu, evcnt.EV_SOFTINT + level)] += 1
        w[r + SI_RUNNING + level] = 0


# -- disestablishing ---------------------------------------------------------------


def _unlink_pending(arena: Arena, index: int, cpu: int, level: int) -> None:
    """Take handle ``index`` off ``cpu``'s pending list (caller holds its lock)."""
    h = _handle(arena, index)
    if waitq.remove(arena.w, record(arena, cpu) + SI_HEAD + 2 * level, h, _link(cpu)):
        arena.w[h + SH_FIXED + 2 * cpu] = 0


def softint_disestablish(sih: softint_t) -> None:
    """softint_disestablish(9): forget the handle; pending runs are cancelled and a
    handler running on any CPU is waited for."""

    arena = _arena.current()
    w = arena.w
    h = _handle(arena, sih.index)
    if w[h + SH_STATE] != SH_LIVE:
        panic_in(arena, f"softint_disestablish: {sih!r} is not established")
    w[h + SH_STATE] = SH_DYING
    level = w[h + SH_LEVEL]
    for cpu in range(arena.ncpu):
        lock = _lock(arena, record(arena, cpu) + SI_LOCK)
        lock.enter_nowrap()
        _unlink_pending(arena, sih.index, cpu, level)
        lock.exit()
    for cpu in range(arena.ncpu):  # a running handler finishes within a few ticks
        while w[record(arena, cpu) + SI_RUNNING + level] == sih.index + 1:
            kpause("sidisest", False, 1)
    blob_free(arena, h + SH_FUNC)
    g = arena.region_word("softint")
    lock = _lock(arena, g + G_LOCK)
    lock.enter_nowrap()
    w[h + SH_STATE] = 0
    w[g + G_COUNT] -= 1
    lock.exit()
