"""The CPU scheduler: who holds each virtual CPU, and where lwps run.

rump_schedule/rump_unschedule keep rump's names, but the design is closer to
NetBSD's kern_runq.c than to rump's scheduler.c.  rump lets a thread take any free
virtual CPU with one compare-and-swap, because any host thread can run on any CPU.
Here a CPU is an OS process and an lwp is a host thread inside one of them: it can
never move to another CPU once started.  So each CPU needs what kern_runq.c keeps
per CPU: its own run queue of the lwps that may take it, a queue of lwps placed on
it that have not started yet, a load figure for placement, and stealing of
unstarted lwps by idle CPUs (the only migration a Python frame allows).

A thread runs kernel code only while it holds its CPU.  ``rump_schedule`` takes the
CPU if it is free, or queues the lwp on the CPU's run queue and parks it;
``rump_unschedule`` hands the CPU straight to the highest-priority queued lwp (FIFO
within a level) and wakes it.  There is no preemption: an lwp runs until it blocks
or yields (``preempt``).  Blocking hypercalls call these two hooks around every wait,
so an lwp blocked on a lock lets the other lwps of its CPU run.

Each CPU's scheduler state (``spc``, NetBSD's schedstate_percpu; layout in
``rumpmp.sys.sched``) lives in its cpu_info record in shared memory: the lock,
curlwp, the run queue (a bitmap of busy priority levels and a FIFO per level,
linked through the lwp table), the unstarted queue, the load and counters.
"""

from __future__ import annotations

from collections.abc import Callable

from hypercalls import sync, thread, waitq
from rumpmp.rumpkern.base import detsched, evcnt, kernhist, perturb
from rumpmp.rumpkern.base.arena import H_LOCKDEBUG, H_STATE, HALTING, Arena, here, onproc
from rumpmp.rumpkern.base.evcnt import (
    EV_FAST,
    EV_NSWTCH,
    EV_SLOW,
    EV_SOFTINT,
    EV_STARTED,
    EV_STEALS,
    EV_XC_UNICAST,
)
from rumpmp.rumpkern.base.prf import panic_in
from rumpmp.rumpkern.base.proc import Tables, tables
from rumpmp.rumpkern.locking import biglock, lockdebug
from rumpmp.sys.cpu import cpu_word
from rumpmp.sys.kernhist import EV_OFF, EV_RUN
from rumpmp.sys.lwp import (
    L_BIGLOCKS,
    L_BIGSAVED,
    L_BOUND,
    L_CPU,
    L_FLAGS,
    L_NEWQ,
    L_PARK,
    L_PRI,
    L_RUNQ,
    L_STATE,
    L_WAITLOCK,
    L_WCHAN,
    LSONPROC,
    LSRUN,
    LW_HOSTCALL,
    LW_SYSTEM,
)
from rumpmp.sys.param import PRI_COUNT
from rumpmp.sys.sched import (
    BITMAP_WORDS,
    SPC_BASE,
    SPC_BITMAP,
    SPC_CURLWP,
    SPC_DOORBELL,
    SPC_LOAD,
    SPC_LOCK,
    SPC_NEWQ_HEAD,
    SPC_NNEW,
    SPC_NRUN,
    SPC_NSYSTEM,
    SPC_RUNQ,
)

#: How often an idle CPU looks for lwps to steal, in seconds.
STEAL_INTERVAL = 0.05


def spc_init(arena: Arena, ci: int) -> None:
    """Create a CPU's scheduler lock and doorbell (at boot, before the CPU starts)."""
    s = ci + SPC_BASE
    arena.w[s + SPC_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot
    arena.w[s + SPC_DOORBELL] = arena.pool.alloc(0)


class _Spc:
    """One CPU's schedstate as seen by this process."""

    def __init__(self, arena: Arena, ci: int, cpu: int) -> None:
        self.w = arena.w
        self.s = ci + SPC_BASE
        self.ev = evcnt.block(arena, cpu)  # this CPU's slots of the "sched" counters
        self.lock = sync.Mutex.attach(arena.pool, self.w[self.s + SPC_LOCK], sync.MTX_SPIN)
        self.doorbell = self.w[self.s + SPC_DOORBELL]


def spc(arena: Arena, cpu: int) -> _Spc:

    return arena.attached(("spc", cpu), lambda: _Spc(arena, cpu_word(arena, cpu), cpu))


# -- run queue (caller holds the spc lock) ----------------------------------------


def _enqueue(sp: _Spc, t: Tables, lid: int, front: bool = False) -> None:
    w, s = sp.w, sp.s
    l = t.lwp(lid)
    pri = min(max(w[l + L_PRI], 0), PRI_COUNT - 1)
    (waitq.prepend if front else waitq.append)(w, s + SPC_RUNQ + 2 * pri, l, L_RUNQ)
    w[s + SPC_BITMAP + pri // 32] |= 1 << (pri % 32)
    w[s + SPC_NRUN] += 1


def _dequeue(sp: _Spc, t: Tables) -> int:
    """The highest-priority queued lwp (FIFO within its level), or 0."""
    w, s = sp.w, sp.s
    for i in range(BITMAP_WORDS - 1, -1, -1):
        bits = w[s + SPC_BITMAP + i]
        if bits:
            pri = i * 32 + bits.bit_length() - 1
            break
    else:
        return 0
    head = s + SPC_RUNQ + 2 * pri
    l = waitq.pop(w, head, L_RUNQ)
    if not w[head]:
        w[s + SPC_BITMAP + pri // 32] &= ~(1 << (pri % 32))
    w[s + SPC_NRUN] -= 1
    return t.lid_of(l)


# -- rump_schedule / rump_unschedule -------------------------------------------------


def _context() -> tuple[Arena, Tables, _Spc, int] | None:
    lid = thread.curlwp()
    if not lid or here.arena is None:
        return None
    arena = here.arena
    return arena, tables(arena), spc(arena, here.cpu), lid


def rump_schedule() -> None:
    """Take the calling lwp's CPU, waiting in the run queue if another lwp holds it."""
    if getattr(onproc, "scheduled", False):
        return
    ctx = _context()
    if ctx is None:
        return  # a host thread of the CPU process with no lwp: nothing to hold
    arena, t, sp, lid = ctx
    w, s = sp.w, sp.s
    sp.lock.enter_nowrap()
    if w[s + SPC_CURLWP] in (0, lid):  # free, or reserved for this lwp as it started
        w[s + SPC_CURLWP] = lid
        w[sp.ev + EV_FAST] += 1
        sp.lock.exit()
    else:
        _enqueue(sp, t, lid)
        w[t.lwp(lid) + L_STATE] = LSRUN
        w[sp.ev + EV_SLOW] += 1
        sp.lock.exit()
        # The unscheduler hands the CPU over explicitly (and posts our park slot).
        arena.pool.wait_until(w[t.lwp(lid) + L_PARK], lambda: w[s + SPC_CURLWP] == lid)
    l = t.lwp(lid)
    w[l + L_STATE] = LSONPROC
    onproc.scheduled = True
    if kernhist.state.on:
        kernhist.emit(EV_RUN, lid)
    if w[l + L_BIGSAVED]:  # it slept holding the big lock: take it back
        biglock.retake_after_sleep(arena, l)


def _handoff(sp: _Spc, t: Tables, arena: Arena) -> None:
    """Give the CPU to the next queued lwp, or leave it idle (holds the spc lock)."""
    w, s = sp.w, sp.s
    nxt = _dequeue(sp, t)
    w[s + SPC_CURLWP] = nxt
    if nxt:
        w[sp.ev + EV_NSWTCH] += 1
        arena.pool.unpark(w[t.lwp(nxt) + L_PARK])
    elif w[s + SPC_NEWQ_HEAD]:
        arena.pool.unpark(sp.doorbell)  # idle now: start the lwps waiting to begin


def rump_unschedule() -> None:
    """Release the calling lwp's CPU, handing it to the next runnable lwp."""
    if not getattr(onproc, "scheduled", False):
        return
    ctx = _context()
    if ctx is None:
        onproc.scheduled = False
        return
    on_block = getattr(onproc, "on_block", None)
    if on_block is not None:
        onproc.on_block = None
        on_block()
    arena, t, sp, lid = ctx
    if arena.w[H_LOCKDEBUG]:
        lockdebug.check_sleep(arena, "rump_unschedule")
        if getattr(onproc, "nopreempt", 0):
            who = lockdebug.describe_curlwp(arena)
            panic_in(arena, f"rump_unschedule: sleeping with preemption disabled ({who})")
    l = t.lwp(lid)
    if arena.w[l + L_BIGLOCKS]:  # the big lock is not held across a sleep
        biglock.release_for_sleep(arena, l)
    if kernhist.state.on:  # what it waits for: a mutex, a sleep channel or a condvar
        wchan = arena.w[l + L_WCHAN] or getattr(onproc, "wchan", 0)
        kernhist.emit(EV_OFF, lid, arena.w[l + L_WAITLOCK], wchan)
    onproc.scheduled = False
    sp.lock.enter_nowrap()
    _handoff(sp, t, arena)
    sp.lock.exit()


def preempt() -> None:
    """preempt(9), yield(9): let other runnable lwps of this CPU run first.

    Runnable includes lwps placed here that have not started yet: the CPU is left
    idle for a moment so the idle loop can start the next one.
    """
    if detsched.state.on and detsched.participant() is not None:
        detsched.point()  # a deterministic run: the seed decides who runs next
        return
    if perturb.state.on:
        perturb.point()
    ctx = _context()
    if ctx is None or not getattr(onproc, "scheduled", False) or kpreempt_disabled():
        return
    arena, t, sp, lid = ctx
    w, s = sp.w, sp.s
    if not w[s + SPC_NRUN] and not w[s + SPC_NNEW]:
        return
    if kernhist.state.on:
        kernhist.emit(EV_OFF, lid)
    sp.lock.enter_nowrap()
    if w[s + SPC_NRUN]:
        _enqueue(sp, t, lid)
        _handoff(sp, t, arena)
    else:  # only unstarted lwps: go idle so one starts, and queue for the CPU behind it
        w[s + SPC_CURLWP] = 0
        _enqueue(sp, t, lid)
        arena.pool.unpark(sp.doorbell)
    w[t.lwp(lid) + L_STATE] = LSRUN
    sp.lock.exit()
    arena.pool.wait_until(w[t.lwp(lid) + L_PARK], lambda: w[s + SPC_CURLWP] == lid)
    w[t.lwp(lid) + L_STATE] = LSONPROC
    if kernhist.state.on:
        kernhist.emit(EV_RUN, lid)


# -- kernel preemption (kpreempt(9)) and context ---------------------------------------
#
# rumpmp's kernel is not preemptive: an lwp keeps its CPU until it blocks or yields.
# kpreempt_disable makes the yield points (preempt, yield) pass over too, so a section
# of code runs on this CPU without another lwp of the CPU in its middle; with
# LOCKDEBUG, sleeping inside such a section panics.  The count belongs to the thread
# carrying the lwp (``onproc``), reset when it starts carrying another.


def kpreempt_disable() -> None:
    """kpreempt_disable(9): keep this CPU until kpreempt_enable (nests)."""
    onproc.nopreempt = getattr(onproc, "nopreempt", 0) + 1


def kpreempt_enable() -> None:
    """kpreempt_enable(9): undo one kpreempt_disable."""
    n = getattr(onproc, "nopreempt", 0)
    if n <= 0:
        raise RuntimeError("kpreempt_enable: preemption is not disabled")
    onproc.nopreempt = n - 1


def kpreempt_disabled() -> bool:
    """kpreempt_disabled(9): whether the calling lwp cannot lose its CPU at a yield
    point: preemption disabled, or a softint handler running (NetBSD's LP_INTR)."""
    return getattr(onproc, "nopreempt", 0) > 0 or getattr(onproc, "softintr", False)


def cpu_intr_p() -> bool:
    """cpu_intr_p(9): whether in a hardware interrupt handler.  Never in rumpmp, as in
    rump: the clock interrupt is a host thread that runs no kernel code."""
    return False


def cpu_softintr_p() -> bool:
    """cpu_softintr_p(9): whether in a softint handler (softints, callouts, XC_HIGHPRI
    cross-calls run in the softint lwps)."""
    return getattr(onproc, "softintr", False)


def curcpu_stable() -> bool:
    """curcpu_stable(9): whether curcpu() can be relied on not to change.  Always, for
    kernel code: an lwp lives and dies in one CPU process (ARCHITECTURE section 4)."""
    return getattr(onproc, "scheduled", False)


def context_reset() -> None:
    """The calling thread starts carrying a new lwp: preemption enabled, no softint."""
    onproc.nopreempt = 0
    onproc.softintr = False


def switch_curlwp(arena: Arena, old: int, new: int) -> None:
    """The calling thread now runs as lwp ``new``: if ``old`` held this CPU, ``new``
    holds it instead (rump_lwproc_switch)."""
    sp = spc(arena, here.cpu)
    sp.lock.enter_nowrap()
    if sp.w[sp.s + SPC_CURLWP] == old:
        sp.w[sp.s + SPC_CURLWP] = new
    sp.lock.exit()


# -- placement -------------------------------------------------------------------------


def runnable(sp: _Spc) -> int:
    """lwps that want this CPU now: running, queued for it, or waiting to start.
    Sleeping lwps do not count, as in NetBSD's run-queue based placement."""
    w, s = sp.w, sp.s
    return w[s + SPC_NRUN] + w[s + SPC_NNEW] + (1 if w[s + SPC_CURLWP] else 0)


def _least_loaded(arena: Arena, residents: bool) -> int:
    """The first CPU with the fewest runnable lwps.  With ``residents`` (for a host
    thread's lwp, which lives long and mostly waits between calls), the first with
    the fewest lwps of users living there, then the fewest runnable: so the host's
    threads' lwps spread evenly over the CPUs."""

    def load(cpu: int) -> tuple[int, int]:
        sp = spc(arena, cpu)
        if not residents:
            return runnable(sp), 0
        sp.lock.enter_nowrap()  # the two counts change together under it
        users = sp.w[sp.s + SPC_LOAD] - sp.w[sp.s + SPC_NSYSTEM]
        sp.lock.exit()
        return users, runnable(sp)

    return min(range(arena.ncpu), key=load)


def setrunnable_new(arena: Arena, lid: int) -> int:
    """Place a new lwp on its bound CPU or the least loaded one and wake that CPU.

    Returns the CPU chosen.  The lwp's thread is started by that CPU's idle loop,
    unless an idle CPU steals it first.  A host thread's lwp is bound where it is
    placed: stolen, it would undo the spread of those lwps over the CPUs.
    """
    t = tables(arena)
    l = t.lwp(lid)
    cpu = arena.w[l + L_BOUND]
    if cpu < 0:
        hostcall = bool(arena.w[l + L_FLAGS] & LW_HOSTCALL)
        cpu = _least_loaded(arena, hostcall)
        if hostcall:
            arena.w[l + L_BOUND] = cpu
    sp = spc(arena, cpu)
    system = _is_system(t, lid)
    sp.lock.enter_nowrap()
    arena.w[l + L_CPU] = cpu
    _newq_insert(sp, t, lid)
    sp.w[sp.s + SPC_LOAD] += 1
    sp.w[sp.s + SPC_NSYSTEM] += system
    sp.lock.exit()
    arena.pool.unpark(sp.doorbell)
    return cpu


def _newq_insert(sp: _Spc, t: Tables, lid: int) -> None:
    """Queue an unstarted lwp: higher priority first, FIFO within a priority (holds lock)."""
    w = sp.w
    waitq.insert_sorted(w, sp.s + SPC_NEWQ_HEAD, t.lwp(lid), L_NEWQ, lambda l: -w[l + L_PRI])
    w[sp.s + SPC_NNEW] += 1


def _pop_new(sp: _Spc, t: Tables, unbound_only: bool) -> int:
    """Take the first (unbound, if asked) lwp off a CPU's new queue, or 0 (holds lock)."""
    w, q = sp.w, sp.s + SPC_NEWQ_HEAD
    for l in waitq.items(w, q, L_NEWQ):
        if not unbound_only or w[l + L_BOUND] < 0:
            waitq.remove(w, q, l, L_NEWQ)
            w[sp.s + SPC_NNEW] -= 1
            return t.lid_of(l)
    return 0


def wanted_by_others(arena: Arena, cpu: int) -> Callable[[], bool]:
    """A test of whether lwps wait for ``cpu`` (queued to run, or to start): a
    holder that has nothing to do should then let go at once."""
    sp = spc(arena, cpu)
    w, nrun, nnew = sp.w, sp.s + SPC_NRUN, sp.s + SPC_NNEW
    return lambda: bool(w[nrun] or w[nnew])


def startable(sp: _Spc) -> bool:
    """lwps wait to start on this CPU, and it is free to start one."""
    return bool(sp.w[sp.s + SPC_NEWQ_HEAD]) and not sp.w[sp.s + SPC_CURLWP]


def take_new(arena: Arena, cpu: int) -> int:
    """If ``cpu`` is idle, the next lwp waiting to start there, with the CPU reserved
    for it (so the lwps of a CPU start one at a time, in priority order); else 0."""
    sp = spc(arena, cpu)
    t = tables(arena)
    sp.lock.enter_nowrap()
    lid = 0
    if not sp.w[sp.s + SPC_CURLWP]:
        lid = _pop_new(sp, t, unbound_only=False)
        sp.w[sp.s + SPC_CURLWP] = lid
        if not lid:  # nothing to start (stolen meanwhile): an lwp may be queued to run
            _handoff(sp, t, arena)
    sp.lock.exit()
    return lid


def steal(arena: Arena, cpu: int) -> int:
    """For an idle ``cpu``: take an unbound, unstarted lwp from a busier CPU, or 0."""
    t = tables(arena)
    mine = spc(arena, cpu)
    for victim in range(arena.ncpu):
        if victim == cpu:
            continue
        sp = spc(arena, victim)
        if not sp.w[sp.s + SPC_NEWQ_HEAD] or not sp.w[sp.s + SPC_CURLWP]:
            continue  # nothing waiting, or the victim is idle and starts them itself
        sp.lock.enter_nowrap()
        lid = _pop_new(sp, t, unbound_only=True)
        system = _is_system(t, lid) if lid else 0
        if lid:
            sp.w[sp.s + SPC_LOAD] -= 1
            sp.w[sp.s + SPC_NSYSTEM] -= system
        sp.lock.exit()
        if lid:
            mine.lock.enter_nowrap()
            arena.w[t.lwp(lid) + L_CPU] = cpu
            mine.w[mine.s + SPC_LOAD] += 1
            mine.w[mine.s + SPC_NSYSTEM] += system
            mine.w[mine.ev + EV_STEALS] += 1
            if mine.w[mine.s + SPC_CURLWP]:  # busy after all: queue it here like any other
                _newq_insert(mine, t, lid)
                lid = 0
            else:
                mine.w[mine.s + SPC_CURLWP] = lid
            mine.lock.exit()
            return lid
    return 0


def _is_system(t: Tables, lid: int) -> int:
    """1 for a kernel thread (a halt does not wait for it), else 0."""
    return 1 if t.w[t.lwp(lid) + L_FLAGS] & LW_SYSTEM else 0


def lwp_done(arena: Arena, cpu: int, system: bool) -> None:
    """Account for an lwp of ``cpu`` that has ended (at a halt, ring the CPU's
    doorbell: it waits for its lwps to end before it exits)."""
    sp = spc(arena, cpu)
    sp.lock.enter_nowrap()
    sp.w[sp.s + SPC_LOAD] -= 1
    sp.w[sp.s + SPC_NSYSTEM] -= system
    sp.lock.exit()
    if arena.w[H_STATE] == HALTING:
        arena.pool.unpark(sp.doorbell)


def user_lwps_running(arena: Arena, cpu: int) -> int:
    """lwps of ``cpu`` that a halt lets finish: started, and not kernel threads.
    (Kernel threads are counted from their placement, so a kernel halted right
    after boot does not wait for its boot threads to start.)"""
    sp = spc(arena, cpu)
    t = tables(arena)
    w, s = sp.w, sp.s
    sp.lock.enter_nowrap()
    n = w[s + SPC_LOAD] - w[s + SPC_NSYSTEM]
    for l in waitq.items(w, s + SPC_NEWQ_HEAD, L_NEWQ):  # they will never start now
        n -= 1 - _is_system(t, t.lid_of(l))
    sp.lock.exit()
    return n


#: The counters kern.sched.cpuN shows.
STAT_KEYS = ("nswtch", "fast", "slow", "steals", "started", "curlwp", "nrun", "xcalls", "softints")


def sysctl_stat(arena: Arena, arg: int) -> int:
    """The value of the sysctl node kern.sched.cpuN.<key>: ``arg`` is 16 * N plus
    the key's index in STAT_KEYS."""
    cpu, k = divmod(arg, 16)
    return stats(arena, cpu)[STAT_KEYS[k]]


def stats(arena: Arena, cpu: int) -> dict[str, int]:
    """The scheduler counters of one CPU, and the cross-calls and softints it ran."""
    sp = spc(arena, cpu)
    w, s = sp.w, sp.s
    ran = {
        what: sum(w[evcnt.count_word(arena, cpu, ev)] for ev in range(first, first + n))
        for what, first, n in (("xcalls", EV_XC_UNICAST, 3), ("softints", EV_SOFTINT, 4))
    }
    return {
        "nswtch": w[sp.ev + EV_NSWTCH],
        "fast": w[sp.ev + EV_FAST],
        "slow": w[sp.ev + EV_SLOW],
        "steals": w[sp.ev + EV_STEALS],
        "started": w[sp.ev + EV_STARTED],
        "load": w[s + SPC_LOAD],
        "unstarted": w[s + SPC_NNEW],  # lwps placed here that have not started yet
        "curlwp": w[s + SPC_CURLWP],  # the lwp holding the CPU, 0 if idle
        "nrun": w[s + SPC_NRUN],  # lwps queued for it
        **ran,
    }
