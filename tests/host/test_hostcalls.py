"""A host thread keeps its lwp (issue 20, ARCHITECTURE.md section 2): made at the
thread's first call in a process, reused by every later call, ended with the thread,
with its process, or when a call is given up."""

from __future__ import annotations

import collections
import errno
import threading

import pytest

import rumpmp
from rumpmp import kern
from rumpmp.sys.cpu import cpu_word
from rumpmp.sys.sched import SPC_BASE, SPC_LOAD, SPC_NSYSTEM
from tests.helpers import wait_for


def whoami():
    """(lwp, CPU, rump_lwproc_curlwp(), pid) of the lwp running this call; the lwp is
    (its index in the table, its number in its process): the pair names one lwp."""
    from hypercalls import thread
    from rumpmp.kern import cpu_index, rump_lwproc_curlwp, rump_sys_getpid
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.base.proc import tables
    from rumpmp.sys.lwp import L_LID

    index = thread.curlwp()
    lwp = (index, current().w[tables(current()).lwp(index) + L_LID])
    return lwp, cpu_index(), rump_lwproc_curlwp(), rump_sys_getpid()


def user_lwps(k: rumpmp.Kernel) -> int:
    """lwps living on the CPUs that are not kernel threads."""
    return k.run(_user_lwps_in_kernel) - 1  # not counting the lwp that counts


def _user_lwps_in_kernel():
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.sched.scheduler import spc

    arena = current()
    cpus = [spc(arena, i) for i in range(arena.ncpu)]
    return sum(sp.w[sp.s + SPC_LOAD] - sp.w[sp.s + SPC_NSYSTEM] for sp in cpus)


def in_thread(func, *args):
    """``func(*args)`` in a new host thread that then ends; its result."""
    out = []
    t = threading.Thread(target=lambda: out.append(func(*args)))
    t.start()
    t.join(30)
    assert not t.is_alive()
    return out[0]


@pytest.mark.timeout(60)
def test_a_thread_keeps_its_lwp_across_calls(rump_kernel):
    first = rump_kernel.run(whoami)
    assert all(rump_kernel.run(whoami) == first for _ in range(50))
    lid, _, curlwp, pid = first
    assert curlwp is None and pid == 0  # an implicit context of proc0, as in rump
    on_cpu2 = rump_kernel.run(whoami, cpu=2)  # a CPU asked for: an lwp of its own there
    assert on_cpu2[0] != lid and on_cpu2[1] == 2
    assert rump_kernel.run(whoami, cpu=2) == on_cpu2
    assert rump_kernel.run(whoami) == first


@pytest.mark.timeout(60)
def test_threads_have_lwps_of_their_own(rump_kernel):
    mine = rump_kernel.run(whoami)[0]
    theirs = {in_thread(rump_kernel.run, whoami)[0] for _ in range(5)}
    assert mine not in theirs


@pytest.mark.timeout(60)
def test_a_threads_lwps_end_with_the_thread(rump_kernel):
    before = user_lwps(rump_kernel)

    def calls():
        with rump_kernel.process() as p:
            p.sys.getpid()
            rump_kernel.run(whoami, cpu=1)
            rump_kernel.run(whoami, cpu=3)
            rump_kernel.sys.getpid()
            return user_lwps(rump_kernel)

    during = in_thread(calls)
    assert during >= before + 3  # its lwps on cpu1, cpu3, in proc0 and in its own process
    wait_for(lambda: user_lwps(rump_kernel) == before, 10, "the thread's lwps to end")


@pytest.mark.timeout(60)
def test_an_ended_threads_park_slot_is_given_back(rump_kernel):
    pool = rump_kernel._arena.pool
    in_thread(rump_kernel.run, whoami)
    wait_for(lambda: user_lwps(rump_kernel) == 0, 10, "the thread's lwp to end")
    in_use = pool.w[3]  # the pool header's count of slots in use
    for _ in range(20):
        in_thread(rump_kernel.run, whoami)
    wait_for(lambda: pool.w[3] <= in_use, 10, "20 threads' park slots to come back")


@pytest.mark.timeout(60)
def test_releasing_a_process_ends_every_threads_lwp_in_it(rump_kernel):
    before = user_lwps(rump_kernel)
    p = rump_kernel.process()
    go, done = threading.Event(), threading.Barrier(4)
    pids = []

    def caller():
        pids.append(p.sys.getpid())
        done.wait(30)  # alive, its lwp in p parked
        go.wait(30)
        with pytest.raises(ProcessLookupError) as info:
            p.sys.getpid()  # a new lwp in a process that has gone
        assert info.value.errno == errno.ESRCH

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        done.wait(30)
        assert len(set(pids)) == 1 and user_lwps(rump_kernel) == before + 3
        p.release()
        assert user_lwps(rump_kernel) == before  # gone when release returns
    finally:
        go.set()
        for t in threads:
            t.join(30)


def barrier_in_kernel(counter, n):
    """Count this call in and wait (sleeping, so the CPU runs others) until ``n`` are in."""
    from rumpmp.kern import mutex_enter, mutex_exit
    from tests.helpers import kwait_for

    m, buf = counter
    mutex_enter(m)
    buf[0] += 1
    mutex_exit(m)
    kwait_for(lambda: buf[0] >= n, f"{n} calls in the kernel at once")
    return whoami()[:2]


@pytest.mark.timeout(60)
@pytest.mark.rump(ncpu=4)
def test_eight_threads_call_in_parallel_each_on_its_own_lwp(rump_kernel):
    counter = (rump_kernel.run(kern.mutex_init), rump_kernel.run(kern.kmem_zalloc, 8))
    ready = threading.Barrier(8)
    seen = {}

    def caller(i):
        seen[i] = [rump_kernel.run(whoami)[:2]]  # one after another: the lwps spread
        ready.wait(30)
        seen[i].append(rump_kernel.run(barrier_in_kernel, counter, 8))

    threads = []
    for i in range(8):
        threads.append(threading.Thread(target=caller, args=(i,)))
        threads[-1].start()
        wait_for(lambda i=i: i in seen, 10, f"thread {i}'s first call")
    for t in threads:
        t.join(30)
    assert all(first == second for first, second in seen.values())  # the same lwp each time
    lids = {lid for (lid, _), _ in seen.values()}
    per_cpu = sorted(collections.Counter(cpu for (_, cpu), _ in seen.values()).values())
    assert len(lids) == 8
    # Spread evenly: with the main thread's lwp, 9 lwps on 4 CPUs, 2 or 3 on each.
    assert per_cpu in ([2, 2, 2, 2], [1, 2, 2, 3])


def sleep_ticks(n):
    from rumpmp.kern import kpause

    kpause("nap", False, n)
    return n


@pytest.mark.timeout(60)
def test_a_timed_out_call_is_detached_and_the_next_gets_a_fresh_lwp(rump_kernel):
    lid = rump_kernel.run(whoami, cpu=1)[0]
    before = user_lwps(rump_kernel)
    with pytest.raises(TimeoutError):
        rump_kernel.run(sleep_ticks, 100, cpu=1, timeout=0.2)
    fresh = rump_kernel.run(whoami, cpu=1)[0]
    assert fresh != lid
    assert rump_kernel.run(whoami, cpu=1)[0] == fresh
    # The detached call finishes, its answer is dropped and its lwp ends.
    wait_for(lambda: user_lwps(rump_kernel) == before, 10, "the detached lwp to end")


def exit_thread():
    from rumpmp.kern import kthread_exit

    kthread_exit(7)


@pytest.mark.timeout(60)
def test_a_call_that_ends_its_lwp_returns_and_the_next_gets_another(rump_kernel):
    lid = rump_kernel.run(whoami)[0]
    assert rump_kernel.run(exit_thread) == 7
    assert rump_kernel.run(whoami)[0] != lid


@pytest.mark.timeout(60)
def test_a_process_calls_run_with_its_ids_in_the_threads_lwp(rump_kernel):
    with rump_kernel.process() as p:
        lid, _, curlwp, pid = p.run(whoami)
        assert pid == p.sys.getpid() and curlwp is None
        assert p.run(whoami)[0] == lid
        p.sys.setuid(1000)
        assert p.run(kern.rump_sys_geteuid) == 1000
        assert rump_kernel.sys.geteuid() == 0  # the host's own process is another


@pytest.mark.timeout(60)
def test_a_halt_ends_the_threads_lwps_at_once(rump_boot):
    k = rump_boot(4)
    for cpu in range(4):
        k.run(whoami, cpu=cpu)
    in_thread(k.run, whoami)
    k.halt()  # each CPU would wait reboot.HALT_GRACE for lwps that did not leave, then exit
    w = k._arena.w  # the copy the host keeps after a halt
    left = [w[cpu_word(k._arena, i) + SPC_BASE + SPC_LOAD] for i in range(4)]
    system = [w[cpu_word(k._arena, i) + SPC_BASE + SPC_NSYSTEM] for i in range(4)]
    assert left == system  # every user lwp had left: only kernel threads remained
    with pytest.raises(rumpmp.KernelHalted):
        k.run(whoami)


@pytest.mark.timeout(60)
def test_a_thread_keeps_at_most_per_thread_lwps(rump_kernel):
    from rumpmp.host.hostlwp import PER_THREAD

    procs = [rump_kernel.process() for _ in range(PER_THREAD + 4)]
    try:
        assert len({p.sys.getpid() for p in procs}) == len(procs)  # an lwp in each
        wait_for(lambda: user_lwps(rump_kernel) <= PER_THREAD, 10, "the oldest lwps to end")
        assert all(p.sys.getpid() == p.pid for p in procs)  # a new lwp where one ended
    finally:
        for p in procs:
            p.release()
