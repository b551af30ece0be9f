"""Virtual CPUs (rump_cpus_bootstrap, rump_cpu_attach, cpu_lookup) and their processes.

Each virtual CPU is an OS process forked from the host.  It attaches the arena, runs
its per-CPU initialisation in parallel with the other CPUs (the loop in the seed's
``rump__init``), reports ``cpuN at thinair0: rump virtual cpu`` and enters its idle
loop, which starts the lwps placed on it as host threads and steals unstarted lwps
from busier CPUs when it has nothing to do.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable

import hypercalls
from hypercalls import clock, param, proc, shm, sp, thread
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base import entry, evcnt
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.entry import KthreadExit
from rumpmp.rumpkern.base.msgbuf import msgbuf_write
from rumpmp.rumpkern.base.prf import panic
from rumpmp.rumpkern.base.proc import Tables, tables
from rumpmp.rumpkern.locking import biglock, lockdebug
from rumpmp.rumpkern.mem import specificdata
from rumpmp.rumpkern.mem.blob import payload_drop, payload_get
from rumpmp.rumpkern.sched import kthread, lwproc, reboot, scheduler
from rumpmp.sys.cpu import (
    CI_INDEX,
    CI_INITED,
    CI_PID,
    CI_READY_NS,
    CI_STATE,
    CPU_ATTACHED,
    CPU_READY,
    CPU_STOPPED,
    cpu_word,
)
from rumpmp.sys.lwp import (
    L_FLAGS,
    L_PARK,
    L_REPLY,
    L_SPECIFIC,
    L_STATE,
    LSZOMB,
    LW_BIGLOCK,
    LW_SYSTEM,
    LW_WAITER,
)
from rumpmp.sys.sched import SPC_CURLWP


def cpu_index() -> int:
    """cpu_index(curcpu()): the CPU this process is."""
    _arena.current()
    return _arena.here.cpu


def cpus_bootstrap(arena: Arena) -> None:
    """Lay out every cpu_info and its scheduler state (in the host, before forking)."""
    for cpu in range(arena.ncpu):
        ci = cpu_word(arena, cpu)
        arena.w[ci + CI_INDEX] = cpu
        scheduler.spc_init(arena, ci)


# -- the CPU process ---------------------------------------------------------------


def cpu_prepare(prefix: str, slots: list[int]) -> Callable[[], None]:
    """In the fork server, before it forks a kernel's CPUs: what a fork from the host
    gave them, done once for all (the kernel attached, the semaphores the host has
    open, ``slots``, opened: a few microseconds each, hundreds of them); returns what
    lets go of it in the server afterwards."""
    arena = Arena.attach(prefix)
    for slot in slots:
        arena.pool.sem(slot)
    return arena.forget


def cpu_preopen(prefix: str) -> tuple[Callable[[], bool], Callable[[], None]]:
    """In the fork server while the host sets a kernel up: open the kernel's
    semaphores as the host creates them (slots are handed out in order at boot).
    Returns the step to repeat (False once the kernel has gone) and what lets go of
    the kernel if its CPUs are never asked for."""
    try:
        arena = Arena.attach(prefix)
    except OSError:
        return (lambda: False), (lambda: None)
    pool, nxt = arena.pool, [1]

    def step() -> bool:
        for _ in range(16):
            try:
                pool.sem(nxt[0])
            except FileNotFoundError:
                return True  # not created yet (or the kernel is gone: the limit ends it)
            except hypercalls.sync.Shutdown:
                return False
            nxt[0] += 1
        return True

    return step, arena.forget


def cpu_main(prefix: str, cpu: int, percpu_init: list, lifeline_fd: int, channel_fd: int) -> None:
    """Body of a vCPU process: attach, initialise, report ready, run lwps until halt.
    The channel at ``channel_fd`` brings it the remote clients' connections the host
    hands over; ``lifeline_fd`` breaks when the host dies."""
    proc.ignore_group_signals()  # the lifeline, not a group signal, ends a CPU
    proc.detach_stdio_if_daemon()
    channel = sp.Channel.in_cpu(channel_fd)
    arena = Arena.attach(prefix)
    _arena.here.arena, _arena.here.cpu, _arena.here.channel = arena, cpu, channel
    proc.watch_parent(lifeline_fd, lambda: _host_died(prefix))
    ci = cpu_word(arena, cpu)
    arena.w[ci + CI_PID] = param.getpid()
    arena.w[ci + CI_STATE] = CPU_ATTACHED
    curlwp = scheduler.spc(arena, cpu).s + SPC_CURLWP
    thread.thrinit(
        scheduler.rump_schedule,
        scheduler.rump_unschedule,
        bool(arena.w[_arena.H_THREADS]),
        # A hot wait spins only while no other lwp runs on this CPU: a spinner would
        # take the GIL from the very lwp it may be waiting for.
        lambda: arena.w[curlwp] in (0, thread.current.curlwp),
    )
    try:
        for bit, init in enumerate(percpu_init):
            init(arena, cpu)
            arena.w[ci + CI_INITED] |= 1 << bit
    except Exception as e:  # noqa: BLE001 - any failure here is this CPU's panic
        panic(
            "cpu%d: per-CPU init failed: %s",
            cpu,
            "".join(traceback.format_exception_only(e)).strip(),
        )
    msgbuf_write(arena, f"cpu{cpu} at thinair0: rump virtual cpu\n")
    arena.w[ci + CI_READY_NS] = clock.monotonic_ns()
    arena.w[ci + CI_STATE] = CPU_READY
    arena.pool.unpark(arena.w[_arena.H_BOOT_SLOT])
    idle_loop(arena, cpu)


def _host_died(prefix: str) -> None:
    """The host is gone: nobody else will clean up, so this CPU does, then exits.
    (Every CPU does; the teardown keeps the others from creating objects after.)"""
    if _arena.here.channel is not None:  # the remote clients it serves see the end first
        _arena.here.channel.hang_up()
    arena = Arena.attach(prefix)
    sockets = arena.get_str(_arena.SOCKETS_OFF, _arena.SOCKETS_LEN).split()

    def clean_up() -> None:
        shm.unlink_prefix(prefix)
        sp.unlink_sockets(sockets)

    arena.pool.teardown(clean_up)
    proc.exit(hypercalls.PANIC)


def idle_loop(arena: Arena, cpu: int) -> None:
    """Start the lwps placed on this CPU while it is idle; steal unstarted ones from
    busy CPUs; exit at halt.

    New lwps start one at a time, highest priority first, each with the CPU reserved
    for it: while another lwp holds the CPU they stay unstarted, so an idle CPU can
    steal them.  Releasing the CPU rings the doorbell when lwps wait to start.
    """
    sp = scheduler.spc(arena, cpu)
    while arena.state in (_arena.BOOTING, _arena.RUNNING):
        try:
            if not thread.spin_until(lambda: scheduler.startable(sp)):
                arena.pool.park(sp.doorbell, scheduler.STEAL_INTERVAL, wrap=False)
        except hypercalls.sync.Shutdown:
            break
        if sp.w[sp.s + SPC_CURLWP]:
            continue
        lid = scheduler.take_new(arena, cpu) or scheduler.steal(arena, cpu)
        if lid:
            start_lwp(arena, cpu, lid)
    _shutdown(arena, cpu)


#: How long a CPU whose kernel stopped without a halt (a panic, the host's death)
#: waits to be ended by whoever cleans up: the host, or its own lifeline thread.
LINGER = 10.0


def _shutdown(arena: Arena, cpu: int) -> None:
    """Leave the kernel at halt: let this CPU's lwps finish unless told not to, exit."""
    if arena.state != _arena.HALTING:
        # A panic or the host's death.  Exiting now could cut short the lifeline
        # thread's cleanup; the host (SIGKILL) or that thread (after unlinking) ends us.
        clock.clock_sleep(clock.CLOCK_RELWALL, int(LINGER), 0)
        proc.exit(hypercalls.PANIC)
    howto = arena.w[_arena.H_HOWTO]
    if howto & reboot.RB_DUMP:
        proc.exit(hypercalls.PANIC)
    sp = scheduler.spc(arena, cpu)
    deadline = clock.monotonic_ns() + int(reboot.HALT_GRACE * 1e9)
    while not howto & reboot.RB_NOSYNC and scheduler.user_lwps_running(arena, cpu) > 0:
        if clock.monotonic_ns() > deadline or arena.state != _arena.HALTING:
            break
        try:
            arena.pool.park(sp.doorbell, 0.01, wrap=False)
        except hypercalls.sync.Shutdown:
            break
    arena.w[cpu_word(arena, cpu) + CI_STATE] = CPU_STOPPED
    proc.exit(0)


# -- lwp threads ------------------------------------------------------------------------
#
# Starting a host thread costs tens of microseconds, so a thread whose lwp has ended
# stays a while to carry the next lwp started on this CPU (and keeps its park slot).
# Idle threads wait in _idle as (park slot, mailbox): the starter pops one, puts the
# lwp in its mailbox and posts its slot.  list.append/pop/remove are atomic, so a
# thread that gives up waiting removes itself, or, if it is gone from the list
# already, knows an lwp is on its way.

#: How long an lwp's thread waits for another lwp of its CPU before it ends, and how
#: many may wait at once (each keeps a park slot of the kernel's pool).
THREAD_LINGER = 2.0
MAX_IDLE_THREADS = 8

_idle: list[tuple[int, list[int]]] = []


def start_lwp(arena: Arena, cpu: int, lid: int) -> None:
    """Start an lwp on this CPU: in a thread that waits for one, or a new thread."""
    sp = scheduler.spc(arena, cpu)
    sp.w[sp.ev + evcnt.EV_STARTED] += 1
    try:
        slot, mailbox = _idle.pop()
    except IndexError:
        thread.thread_create(_lwp_thread, (arena, cpu, lid), f"lwp{lid}")
        return
    mailbox.append(lid)
    arena.pool.unpark(slot)


def _lwp_thread(args: tuple[Arena, int, int]) -> None:
    """Body of an lwp thread: run lwps of this CPU one after another."""
    arena, cpu, lid = args
    slot = arena.pool.park_slot()
    try:
        while lid and _run_lwp(arena, cpu, lid, slot):
            lid = _take_next(arena, cpu) or _next_lwp(arena, slot)
    finally:
        arena.pool.release_park_slot()


def _take_next(arena: Arena, cpu: int) -> int:
    """An lwp placed on this CPU soon after ours ended (the next call of a loop),
    taken here directly: no hand-off to the idle loop, no wake-up.  0 if none
    comes within the spin."""
    sp = scheduler.spc(arena, cpu)
    if not thread.spin_until(lambda: scheduler.startable(sp)):
        return 0
    lid = scheduler.take_new(arena, cpu)
    if lid:
        sp.w[sp.ev + evcnt.EV_STARTED] += 1
    return lid


def _next_lwp(arena: Arena, slot: int) -> int:
    """Wait for the next lwp to carry; 0 after THREAD_LINGER seconds without one."""
    if len(_idle) >= MAX_IDLE_THREADS:
        return 0
    mailbox: list[int] = []
    entry = (slot, mailbox)
    _idle.append(entry)
    while not mailbox:
        try:
            posted = arena.pool.park(slot, THREAD_LINGER, wrap=False)
        except hypercalls.sync.Shutdown:
            posted = False
        if not posted and not mailbox:
            try:
                _idle.remove(entry)
                return 0
            except ValueError:
                continue  # a starter took us: its lwp is on its way
    return mailbox.pop()


def _run_lwp(arena: Arena, cpu: int, lid: int, slot: int) -> bool:
    """Carry lwp ``lid``: take the CPU, run the entry, publish the result, end the
    lwp.  False if the kernel went down meanwhile."""
    t = tables(arena)
    l = t.lwp(lid)
    w = arena.w
    lwproc.thread_started(lid)
    lockdebug.thread_reset()
    scheduler.context_reset()
    w[l + L_PARK] = slot
    system = bool(w[l + L_FLAGS] & LW_SYSTEM)
    try:
        scheduler.rump_schedule()
        result = _run_entry(arena, l, cpu)
        if w[l + L_SPECIFIC]:  # it set lwp-specific data: destructors run now
            specificdata.lwp_specific_exit(arena, l)
        if w[l + L_FLAGS] & LW_WAITER:
            kthread.publish(arena, t.result(lid), result)
    except hypercalls.sync.Shutdown:
        return False  # the kernel is going down around us
    finally:
        lwproc.switch_home(arena)  # an lwp context the entry switched to stays behind
        scheduler.context_reset()  # an entry that raised may have left preemption off
        scheduler.rump_unschedule()
    scheduler.lwp_done(arena, cpu, system)
    _exit_lwp(arena, t, lid)
    thread.set_curlwp(0)
    return True


def _exit_lwp(arena: Arena, t: Tables, lid: int) -> None:
    """Become a zombie for a waiter to collect, or free the lwp if nobody waits.

    The waiter may leave (a timeout, Ctrl-C) at any moment: it clears LW_WAITER
    under proc_lock, and the zombie state is set under the same lock, so exactly
    one of the two frees the lwp and any result published meanwhile.
    """
    l = t.lwp(lid)
    w = arena.w
    t.lock.enter_nowrap()
    w[l + L_STATE] = LSZOMB
    reply = w[l + L_REPLY]
    waited = w[l + L_FLAGS] & LW_WAITER
    t.lock.exit()
    if waited:
        if reply:
            arena.pool.unpark(reply)
        return
    payload_drop(arena, t.result(lid))  # published before the waiter left: nobody reads it
    lwproc.lwp_release(t, lid)


def _run_entry(arena: Arena, l: int, cpu: int) -> tuple[bool, object]:
    """Run the lwp's (func, args) entry; (True, value) or (False, exception).  A
    thread that is not MPSAFE runs holding the big kernel lock."""
    giant = arena.w[l + L_FLAGS] & LW_BIGLOCK
    if giant:
        biglock.KERNEL_LOCK(1)
    try:
        ok, value = entry.call(_take_entry_and_call, arena, l)
    except KthreadExit as e:
        return True, e.ecode
    finally:
        if giant:
            biglock.KERNEL_UNLOCK_ALL()
    if ok:
        return True, value
    assert isinstance(value, BaseException)
    if not arena.w[l + L_FLAGS] & LW_WAITER:  # nobody to hand it to: say so in dmesg
        entry.report(arena, f"kernel thread {tables(arena).lwp_name(thread.curlwp())}", value)
    return False, entry.portable(value, cpu)


def _take_entry_and_call(arena: Arena, l: int) -> object:
    t = tables(arena)
    word = t.entry(t.lid_of(l))
    func, args = payload_get(arena, word)
    func = pickle.loads(func)
    payload_drop(arena, word)
    return func(*args)
