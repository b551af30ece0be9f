"""Faults and misuse a user will hit (issue 8): no hang, no wrong answer, no leak.

Each test names the item of the issue it covers.  Every wait is bounded: a hang
fails the test, it never stalls the run.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import signal
import subprocess
import sys
import threading

import pytest

import rumpmp
from hypercalls import shm
from rumpmp import kern
from rumpmp.rumpkern.intr import softint
from rumpmp.rumpkern.mem import kmem
from rumpmp.rumpkern.sched import reboot
from tests.helpers import assert_no_leak, pid_gone, wait_for

# -- 1. whatever kernel code raises ends its lwp and reaches its caller ------------------


def exits(code):
    sys.exit(code)


def interrupts():
    raise KeyboardInterrupt


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("func", "raised"), [(exits, "SystemExit(3)"), (interrupts, "KeyboardInterrupt()")]
)
def test_base_exception_in_run_reaches_the_caller(rump_kernel, func, raised):
    args = (3,) if func is exits else ()
    with pytest.raises(rumpmp.KernelCodeExit) as info:
        rump_kernel.run(func, *args, cpu=1, timeout=30)
    assert info.value.raised == raised
    assert "raised on cpu1" in "".join(info.value.__notes__)
    assert rump_kernel.run(lambda: 14, cpu=1, timeout=30) == 14


@pytest.mark.timeout(60)
def test_base_exception_in_a_cross_call_leaves_cross_calls_working(rump_kernel):
    with pytest.raises(rumpmp.KernelCodeExit, match="SystemExit"):
        rump_kernel.xc_unicast(0, lambda a, b: sys.exit(a), 3, None, 2, timeout=30)
    with pytest.raises(rumpmp.KernelCodeExit):
        rump_kernel.xc_broadcast(0, lambda a, b: sys.exit(a), 3, timeout=30)
    assert rump_kernel.xc_broadcast(0, lambda a, b: a + b, 1, 2, timeout=30) == [3] * 4
    assert rump_kernel.xc_unicast(kern.XC_HIGHPRI, lambda a, b: a, 5, None, 1, timeout=30) == 5


def join_a_thread_that_exits():
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kthread_create, kthread_join

    lid = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 1, exits, 4, "exits")
    try:
        kthread_join(lid)
    except rumpmp.KernelCodeExit as e:
        return e.raised
    return None


@pytest.mark.timeout(60)
def test_base_exception_in_a_joinable_kthread_reaches_kthread_join(rump_kernel):
    assert rump_kernel.run(join_a_thread_that_exits, timeout=30) == "SystemExit(4)"


def mark_or_exit(buf, slot):
    """The first call marks ``slot`` and raises SystemExit; later ones mark slot + 8."""
    if buf[slot]:
        buf[slot + 8] = 1
    else:
        buf[slot] = 1
        sys.exit(1)


def fire_each_entry(buf, handles):
    """Make a kernel thread, a softint, a callout, a work item and a kernel-issued
    cross-call each call mark_or_exit; returns the handles to fire them again."""
    from rumpmp.kern import (
        PRI_KTHREAD,
        SOFTINT_BIO,
        callout_init,
        callout_reset,
        kthread_create,
        softint_establish,
        softint_schedule_cpu,
        workqueue_create,
        workqueue_enqueue,
        xc_broadcast,
        xc_wait,
    )

    if handles is None:
        handles = (
            softint_establish(SOFTINT_BIO, lambda slot: mark_or_exit(buf, slot), 1),
            callout_init(),
            workqueue_create("bad", lambda wk, a: mark_or_exit(buf, wk), None, PRI_KTHREAD, 0, 0),
        )
    sih, c, wq = handles
    kthread_create(PRI_KTHREAD, 0, None, lambda slot: mark_or_exit(buf, slot), 0, "bad")
    softint_schedule_cpu(sih, 2)
    callout_reset(c, 1, lambda slot: mark_or_exit(buf, slot), 2)
    workqueue_enqueue(wq, 3, None)
    xc_wait(xc_broadcast(0, lambda a, b: kern.cpu_index() or mark_or_exit(buf, 4), 0, 0))
    return handles


@pytest.mark.timeout(60)
def test_base_exception_where_nobody_waits_goes_to_dmesg_and_the_kernel_carries_on(rump_kernel):
    buf = rump_kernel.run(kern.kmem_zalloc, 16)
    handles = rump_kernel.run(fire_each_entry, buf, None, cpu=0, timeout=30)
    wait_for(lambda: all(buf[0:5]), 10, "every entry to have raised")
    for what in (
        "kernel thread bad raised SystemExit",
        "softint handler",
        "callout handler",
        "work item of bad raised SystemExit",
        "cross-call on cpu0 raised SystemExit",
    ):
        wait_for(lambda what=what: what in rump_kernel.dmesg(), 10, f"dmesg to say {what!r}")
    rump_kernel.run(fire_each_entry, buf, handles, cpu=0, timeout=30)
    wait_for(lambda: all(buf[8:13]), 10, "every entry to run again")
    assert rump_kernel.state == "running"


# -- 2 and 5. Ctrl-C and timeouts detach the call safely ---------------------------------


def interrupt_host_then_wait(host_pid, flag):
    """SIGINT the host while it waits for this call, then run on until ``flag``."""
    from rumpmp.kern import kpause

    os.kill(host_pid, signal.SIGINT)
    for _ in range(3000):
        if flag[0]:
            return 1
        kpause("flag", False, 1)
    return -1


@pytest.mark.timeout(60)
def test_ctrl_c_in_run_detaches_the_call_and_later_results_are_right(rump_kernel):
    flag = rump_kernel.run(kern.kmem_zalloc, 8, cpu=1)  # this thread's lwp on cpu1 is made
    load = sum(s["load"] for s in rump_kernel.sched_stats())
    with pytest.raises(KeyboardInterrupt):
        rump_kernel.run(interrupt_host_then_wait, os.getpid(), flag, cpu=1)
    flag[0] = 1  # the abandoned lwp returns 1 now: nobody may see it
    for i in range(20):  # in a new lwp of this thread on cpu1
        assert rump_kernel.run(lambda i=i: i, cpu=1, timeout=30) == i
    # The detached lwp ends: one lwp of this thread is left on cpu1, as before.
    wait_for(lambda: sum(s["load"] for s in rump_kernel.sched_stats()) == load, 10, "the lwp to go")


def spin(flag):
    """Run without ever blocking (no preemption) until ``flag`` is set."""
    import time

    deadline = time.monotonic() + 30
    while not flag[0] and time.monotonic() < deadline:
        pass
    return "done"


@pytest.mark.timeout(60)
def test_timeouts_raise_and_abandon_the_call(rump_kernel):
    flag = rump_kernel.run(kern.kmem_zalloc, 8)
    with pytest.raises(TimeoutError):
        rump_kernel.run(spin, flag, cpu=1, timeout=0.3)
    # CPU 1 is held by the spinner: its xcall lwp cannot run, so neither can these.
    with pytest.raises(TimeoutError):
        rump_kernel.xc_broadcast(0, lambda a, b: a, 1, timeout=0.3)
    with pytest.raises(TimeoutError):  # the abandoned broadcast still holds the slot
        rump_kernel.xc_unicast(0, lambda a, b: a, 2, None, 0, timeout=0.3)
    flag[0] = 1
    assert rump_kernel.xc_broadcast(0, lambda a, b: a, 9, timeout=30) == [9] * 4
    assert rump_kernel.run(lambda: 3, cpu=1, timeout=30) == 3


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", ["1", -1.0, True])
def test_bad_timeouts_are_refused(rump_kernel, timeout):
    with pytest.raises((TypeError, ValueError), match="timeout"):
        rump_kernel.run(len, "abc", timeout=timeout)


# The hold on Ctrl-C itself is tested in tests/hypercalls/test_host.py.


# -- 3. an unpicklable cross-call function ----------------------------------------------


@pytest.mark.timeout(30)
def test_an_unpicklable_cross_call_does_not_wedge_cross_calls(rump_kernel):
    lock = threading.Lock()
    with pytest.raises(TypeError):
        rump_kernel.xc_broadcast(0, lambda a, b: lock, timeout=10)
    assert rump_kernel.xc_broadcast(0, lambda a, b: 1, timeout=10) == [1] * 4


# -- 4. os.fork() with a kernel up -------------------------------------------------------


FORK_SCRIPT = """
import errno, os, sys, rumpmp

def my_lwp():
    from hypercalls import thread
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.base.proc import tables
    from rumpmp.sys.lwp import L_LID
    return thread.curlwp(), current().w[tables(current()).lwp(thread.curlwp()) + L_LID]

k = rumpmp.boot(2)
mine = k.run(my_lwp)
pid = os.fork()
if pid == 0:
    try:
        k.run(os.getpid)
    except OSError as e:
        print("child:", errno.errorcode[e.errno], "belongs to process" in str(e), flush=True)
    sys.exit(0)  # a normal exit runs the inherited exit handlers
os.waitpid(pid, 0)
print("parent:", k.run(lambda: 5), k.state, k.run(my_lwp) == mine, flush=True)
k.halt()
"""


@pytest.mark.timeout(60)
def test_a_forked_child_cannot_touch_its_parents_kernel():
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], check=False, capture_output=True, text=True, timeout=50
    )
    assert out.returncode == 0, out.stderr
    assert "child: ENXIO True" in out.stdout
    assert "parent: 5 running True" in out.stdout  # the child left the parent's lwp alone
    assert "Error" not in out.stderr


# -- 6. halting right after boot ---------------------------------------------------------


@pytest.mark.timeout(20)
def test_halt_right_after_boot_does_not_wait_for_boot_threads(monkeypatch):
    # A grace far longer than the test's timeout: waiting it out fails the test.
    monkeypatch.setattr(reboot, "HALT_GRACE", 60.0)
    for _ in range(5):
        k = rumpmp.boot(4)
        k.halt()
        assert k.state == "halted"
        assert_no_leak(k.prefix)


# -- 7. payloads bigger than the heap ----------------------------------------------------


@pytest.mark.timeout(60)
def test_arguments_and_results_bigger_than_the_heap(rump_boot, monkeypatch):
    monkeypatch.setenv("RUMP_MEMLIMIT", "1m")
    k = rump_boot(2)
    big = b"x" * 5_000_000
    assert k.run(len, big, timeout=30) == len(big)
    assert len(k.run(lambda n: b"y" * n, 3_000_000, timeout=30)) == 3_000_000
    assert k.xc_unicast(0, lambda a, b: len(a), big, None, 1, timeout=30) == len(big)
    assert k.state == "running"
    k.xc_unicast(0, lambda a, b: 0, None, None, 1)  # frees the last call's arguments
    assert not [e for e in shm.list_prefix(k.prefix) if "blob" in e]  # none left over


# -- 8. printf keeps its CPU -------------------------------------------------------------


def printf_under_a_spin_mutex():
    from rumpmp.kern import IPL_VM, MUTEX_DEFAULT, mutex_enter, mutex_exit, mutex_init, printf

    m = mutex_init(MUTEX_DEFAULT, IPL_VM)
    mutex_enter(m)
    printf("printed under a spin mutex\n")
    mutex_exit(m)


@pytest.mark.timeout(30)
def test_printf_waits_for_the_message_buffer_without_giving_up_its_cpu(rump_kernel):
    from rumpmp.rumpkern.base import msgbuf

    lock = msgbuf._lock(rump_kernel._arena)
    lock.enter_nowrap()  # contended: printf must wait, holding its CPU (LOCKDEBUG is on)
    try:
        rump_kernel.run(printf_under_a_spin_mutex, timeout=20)
    finally:
        lock.exit()
    assert "printed under a spin mutex" in rump_kernel.dmesg()


# -- 9 and 10. lock misuse without LOCKDEBUG, and kernel locks in the host ---------------


# Lock misuse without LOCKDEBUG (t_kern.c lockme_*): tests/rumpkern/test_locks.py.


@pytest.mark.timeout(30)
def test_the_host_cannot_take_a_kernel_mutex(rump_kernel):
    m = rump_kernel.run(kern.mutex_init)
    with pytest.raises(OSError) as info:
        kern.mutex_enter(m)
    assert info.value.errno == errno.ENXIO
    with pytest.raises(OSError):
        kern.mutex_tryenter(m)


# -- 11. signals to the whole process group; leftovers of dead hosts ---------------------

HOST_SCRIPT = """
import faulthandler, sys, time, rumpmp
faulthandler.dump_traceback_later(40, exit=True)  # a hang shows where, then ends
k = rumpmp.boot(2)
print(k.prefix, *k.cpu_pids(), flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_process_group_leaves_nothing_behind(sig):
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    prefix, *pids = host.stdout.readline().split()
    assert shm.list_prefix(prefix)
    os.killpg(host.pid, sig)
    _, err = host.communicate(timeout=50)
    assert host.returncode == -sig, err  # died of the signal, after its exit handlers
    for pid in map(int, pids):
        wait_for(lambda pid=pid: pid_gone(pid), 10, f"cpu process {pid} to exit")
    wait_for(lambda: not shm.list_prefix(prefix), 10, "the named objects to go")


@pytest.mark.timeout(60)
def test_boot_sweeps_what_dead_hosts_left(rump_boot):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix = f"rmp-{dead.stdout.strip()}-0-abcdef."
    shm.new_segment(prefix + "arena", 4096).close()  # as a SIGKILL of a whole group leaves it
    # What a process SIGKILLed inside sem_open leaves: glibc's temporary file.
    old, fresh = (os.path.join(shm.SHM_DIR, f"sem.{n}") for n in ("Zq9old", "Zq9new"))
    for path in (old, fresh):
        open(path, "wb").close()
    os.utime(old, (0, 0))
    try:
        assert shm.list_prefix(prefix)
        rump_boot(1)
        assert shm.list_prefix(prefix) == []
        assert not os.path.exists(old) and os.path.exists(fresh)  # fresh: may be in use
    finally:
        for path in (old, fresh):
            if os.path.exists(path):
                os.unlink(path)


# -- 12. halted kernels are unmapped -----------------------------------------------------


def rumpmp_mappings() -> list[str]:
    with open("/proc/self/maps") as maps:
        return [line for line in maps if "rmp-" in line]


@pytest.mark.timeout(60)
def test_halted_kernels_are_unmapped():
    gc.collect()
    before = len(rumpmp_mappings())
    kernels = []
    for _ in range(5):
        k = rumpmp.boot(2)
        assert k.run(lambda: 1, timeout=30) == 1
        k.halt()
        kernels.append(k)  # the host keeps its Kernel objects: dmesg still works
    gc.collect()
    assert len(rumpmp_mappings()) == before
    assert all("halted" in k.dmesg() and k.state == "halted" for k in kernels)


# -- 13. a memory limit the host cannot hold ---------------------------------------------


@pytest.mark.timeout(30)
def test_an_impossible_memlimit_names_the_variable_and_leaves_nothing(monkeypatch):
    monkeypatch.setenv("RUMP_MEMLIMIT", "99999999g")
    before = set(os.listdir(shm.SHM_DIR))
    with pytest.raises(OSError, match="RUMP_MEMLIMIT") as info:
        rumpmp.boot(1)
    assert info.value.errno == errno.ENOMEM
    assert set(os.listdir(shm.SHM_DIR)) <= before


# -- 14. cross-calls: sequence number and target read together ---------------------------


@pytest.mark.timeout(60)
def test_back_to_back_unicasts_run_once_each_on_their_target(rump_kernel):
    before = {n: c for g, n, c in rump_kernel.evcnts() if g == "xcall"}
    n = 400
    for i in range(n):  # every CPU looks at every call; only the target may run it
        target = i % rump_kernel.ncpu
        assert (
            rump_kernel.xc_unicast(0, lambda a, b: kern.cpu_index(), None, None, target) == target
        )
    after = {n: c for g, n, c in rump_kernel.evcnts() if g == "xcall"}
    assert after["unicast"] - before["unicast"] == n


# -- 15. rump_lwproc_switch claims the lwp under proc_lock -------------------------------


def two_threads_adopt_one_lwp():
    import time

    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        rump_lwproc_curlwp,
        rump_lwproc_newlwp,
        rump_lwproc_switch,
        rump_sys_getpid,
    )

    rump_lwproc_newlwp(rump_sys_getpid())
    l = rump_lwproc_curlwp()
    rump_lwproc_switch(None)  # l is idle now: anyone may adopt it, but only one
    go = kmem_zalloc(8)

    def adopt(_):
        while not go[0]:
            pass
        rump_lwproc_switch(l)  # the loser panics the kernel; the winner keeps l till then
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pass

    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MPSAFE | KTHREAD_MUSTJOIN, cpu, adopt, None, "adopt")
        for cpu in (1, 2)  # MPSAFE: at the same moment, which the big lock would forbid
    ]
    go[0] = 1
    for lid in lids:
        kthread_join(lid)


@pytest.mark.timeout(60)
def test_two_threads_switching_to_one_lwp_cannot_both_adopt_it(rump_kernel):
    with pytest.raises(rumpmp.RumpPanic, match="running on another thread"):
        rump_kernel.run(two_threads_adopt_one_lwp, cpu=0, timeout=30)


# -- 16. softint_schedule reads the handle's state under the CPU's lock ------------------


@pytest.mark.timeout(60)
def test_a_softint_scheduled_while_it_is_disestablished_is_never_linked(rump_kernel):
    arena = rump_kernel._arena
    sih = rump_kernel.run(kern.softint_establish, kern.SOFTINT_NET, print, None)
    r = softint.record(arena, 1)
    lock = softint._lock(arena, r + softint.SI_LOCK)
    h = softint._handle(arena, sih.index)
    outcome = []
    started = threading.Event()

    def schedule():
        started.set()
        try:
            softint.schedule_in(arena, sih, 1)
        except rumpmp.RumpPanic as e:
            outcome.append(str(e))

    lock.enter_nowrap()  # CPU 1's softint lock: the scheduler waits for it
    t = threading.Thread(target=schedule)
    t.start()
    wait_for(started.is_set, 10, "the scheduler to start")
    arena.w[h + softint.SH_STATE] = softint.SH_DYING  # what softint_disestablish does first
    lock.exit()
    t.join(30)
    assert outcome and "is not established" in outcome[0]
    level = kern.SOFTINT_NET
    assert arena.w[r + softint.SI_HEAD + 2 * level] == 0  # nothing linked on CPU 1


# -- 17. the first panic wins, whole -----------------------------------------------------


def panic_everywhere(arena_cpu, _):
    from rumpmp.rumpkern.base import arena, prf

    cpu = kern.cpu_index()
    prf.record_panic(arena.current(), cpu, f"panic from cpu{cpu}")


@pytest.mark.timeout(60)
def test_simultaneous_panics_do_not_mix_cpu_and_message(rump_boot):
    for _ in range(3):
        k = rump_boot(8)
        # The results may or may not come back before the panic stops everything.
        with contextlib.suppress(rumpmp.RumpPanic):
            k.xc_broadcast(0, panic_everywhere, None, timeout=30)
        with pytest.raises(rumpmp.RumpPanic) as info:
            k.run(len, "")
        assert info.value.cause == f"panic from cpu{info.value.cpu}"


# -- 18. two frees of one block cannot both pass -----------------------------------------


def claim_all(blocks, _):
    from rumpmp.rumpkern.base import arena

    heap = kmem.heap_of(arena.current())
    return sum(kmem.claim(heap, buf, 64) is None for buf in blocks)


@pytest.mark.timeout(60)
def test_two_cpus_freeing_the_same_blocks_claim_each_once(rump_boot):
    k = rump_boot(2)
    arena = k._arena
    blocks = [kmem.kmem_alloc_in(arena, 64) for _ in range(3000)]
    claimed = k.xc_broadcast(0, claim_all, blocks, timeout=30)  # both CPUs, in parallel
    assert sum(claimed) == len(blocks)


# -- 19. timed waits wait against a deadline ---------------------------------------------


# A stale wakeup must not stretch a timed wait: tests/hypercalls/test_sync.py.


# -- 20. kthread_create leaks nothing; halt reaps against one deadline; evcnt_inc -------


def create_unpicklable_threads(n):
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kthread_create, kthread_join

    lock = threading.Lock()
    failed = 0
    for _ in range(n):
        try:
            kthread_create(PRI_KTHREAD, 0, None, lambda _: lock, None, "unpicklable")
        except TypeError:
            failed += 1
    lid = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, None, lambda _: None, None, "fine")
    kthread_join(lid)
    return failed


@pytest.mark.timeout(60)
def test_kthread_create_that_cannot_pickle_leaks_no_lwp(rump_kernel):
    n = 1500  # more than the lwp table holds: a leak would fill it
    assert rump_kernel.run(create_unpicklable_threads, n, timeout=50) == n


@pytest.mark.timeout(20)
def test_halt_reaps_stuck_cpus_against_one_deadline(monkeypatch):
    monkeypatch.setattr(reboot, "HALT_GRACE", 1.0)
    k = rumpmp.boot(4)
    for pid in k.cpu_pids():
        os.kill(pid, signal.SIGSTOP)  # stuck: they will never exit by themselves
    k.halt()  # one grace for all (2 s), then SIGKILL; one grace each would be 8 s
    assert k.state == "halted"
    for pid in k.cpu_pids():
        wait_for(lambda pid=pid: pid_gone(pid), 5, f"cpu process {pid} to go")
    assert_no_leak(k.prefix)


@pytest.mark.timeout(60)
def test_evcnt_inc_from_threads_without_a_cpu_loses_no_count(rump_kernel, monkeypatch):
    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        ev = rump_kernel.run(kern.evcnt_attach_dynamic, kern.EVCNT_TYPE_MISC, None, "test", "host")

        def bump():
            for _ in range(20_000):
                kern.evcnt_inc(ev)

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
    finally:
        sys.setswitchinterval(0.005)
    assert ("test", "host", 80_000) in rump_kernel.evcnts()


# -- clear errors for bad input ----------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("call", "exc", "names"),
    [
        (lambda k: rumpmp.boot(ncpu=2.7), TypeError, "ncpu"),
        (lambda k: rumpmp.boot(ncpu="2"), TypeError, "ncpu"),
        (lambda k: k.run(os.getpid, cpu=True), TypeError, "cpu"),
        (lambda k: k.run(os.getpid, cpu="x"), TypeError, "cpu"),
        (lambda k: k.run(kern.kmem_alloc, "x"), TypeError, "size"),
        (lambda k: k.run(kern.kmem_alloc, 8.5), TypeError, "size"),
        (lambda k: k.run(kern.mutex_enter, 42), TypeError, "mtx"),
        (lambda k: k.run(kern.mutex_init, "x", "y"), TypeError, "type"),
        (lambda k: k.run(lambda: kern.rw_enter(kern.rw_init(), 12345)), OSError, "op"),
        (lambda k: k.xc_unicast(0, max, 1, 2, -1), OSError, "cpu-1"),
        (lambda k: k.xc_unicast(0, max, 1, 2, "1"), TypeError, "ci"),
        (lambda k: k.halt("x"), TypeError, "howto"),
        (lambda k: k.run(kern.kthread_join, 999_999), ProcessLookupError, "999999"),
        (lambda k: k.run(lambda kk: kk, k), TypeError, "cannot be sent into a kernel"),
    ],
)
def test_bad_arguments_get_clear_errors(rump_kernel, call, exc, names):
    with pytest.raises(exc, match=names):
        call(rump_kernel)
    assert rump_kernel.run(lambda: 1, timeout=20) == 1  # the kernel is still up


@pytest.mark.timeout(30)
@pytest.mark.parametrize("var", ["RUMP_LOCKDEBUG", "RUMP_THREADS", "RUMP_VERBOSE", "RUMP_NCPU"])
def test_rump_variables_that_are_not_numbers_name_themselves(monkeypatch, var):
    monkeypatch.setenv(var, "yes")
    with pytest.raises(OSError, match=var) as info:
        rumpmp.boot(None if var == "RUMP_NCPU" else 1)
    assert info.value.errno == errno.EINVAL
    out = subprocess.run(
        [sys.executable, "-m", "rumpmp", "boot", *([] if var == "RUMP_NCPU" else ["--ncpu", "1"])],
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, var: "yes"},
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and var in out.stderr


# -- 18. a quiet teardown: the kernel's own threads end without a word -------------------

TEARDOWN_SCRIPT = """
import os, signal, sys, threading, rumpmp
from rumpmp import kern
k = rumpmp.boot(4)
for cpu in range(4):
    k.run(kern.cpu_index, cpu=cpu)  # lwps of this thread parked on every CPU
t = threading.Thread(target=lambda: (k.sys.getpid(), k.run(kern.cpu_index)))
t.start()
t.join()
print(*k.cpu_pids(), flush=True)
how = sys.argv[1]
if how == "halt":
    k.halt()
elif how == "panic":
    try:
        k.run(kern.panic, "on purpose")
    except rumpmp.RumpPanic:
        pass
elif how == "_exit":
    os._exit(0)
else:
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["halt", "panic", "_exit", "SIGKILL"])
def test_no_cpu_prints_a_traceback_when_its_kernel_goes(how):
    """Issue 20: the CPUs' lwp, idle, clock and lifeline threads meet the kernel's
    teardown (Shutdown) and end without a traceback on the terminal."""
    host = subprocess.Popen(
        [sys.executable, "-c", TEARDOWN_SCRIPT, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids = host.stdout.readline().split()
    assert len(pids) == 4
    _, err = host.communicate(timeout=50)  # stderr's end: the CPUs have exited too
    assert "Traceback" not in err, err
    assert "Exception in thread" not in err, err
