"""Kernel synchronisation across CPU processes: mutex(9), rwlock(9), condvar(9),
tsleep/wakeup, kthread(9), the scheduler, and LOCKDEBUG (issue 3)."""

from __future__ import annotations

import errno
import os
import struct
import time

import pytest

import rumpmp
from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys.lwp import L_STATE, LSSLEEP
from rumpmp.sys.sched import SPC_CURLWP


def _spawn_bound(fn, args_per_thread, cpus):
    """Start one MUSTJOIN kthread per args tuple, bound to the given CPUs; join all."""
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kthread_create, kthread_join

    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, fn, arg, f"t{i}")
        for i, (arg, cpu) in enumerate(zip(args_per_thread, cpus, strict=True))
    ]
    for lid in lids:
        kthread_join(lid)


def _count_under_mutex(arg):
    from rumpmp.kern import mutex_enter, mutex_exit

    m, buf, i, rounds = arg
    for _ in range(rounds):
        mutex_enter(m)
        (v,) = struct.unpack_from("<q", buf, 0)
        struct.pack_into("<q", buf, 0, v + 1)
        mutex_exit(m)
    struct.pack_into("<q", buf, 8 + 8 * i, os.getpid())


def mutex_counter(nthreads, rounds):
    from rumpmp.kern import kmem_zalloc, mutex_init

    m = mutex_init()
    buf = kmem_zalloc(8 + 8 * nthreads)
    _spawn_bound(
        _count_under_mutex,
        [(m, buf, i, rounds) for i in range(nthreads)],
        [i // 2 for i in range(nthreads)],
    )
    total = struct.unpack_from("<q", buf, 0)[0]
    pids = set(struct.unpack_from(f"<{nthreads}q", buf, 8))
    return total, pids


@pytest.mark.timeout(120)
def test_mutex_counter_is_exact_across_processes(rump_boot):
    k = rump_boot(4)
    total, pids = k.run(mutex_counter, 8, 5000, cpu=0)
    assert total == 8 * 5000
    assert len(pids) >= 2 and pids <= set(k.cpu_pids())


@pytest.mark.timeout(120)
def test_mutex_counter_on_eight_cpus(rump_boot):
    k = rump_boot(8)
    total, pids = k.run(mutex_counter, 16, 500)
    assert total == 16 * 500
    assert len(pids) == 8


def _rw_worker(arg):
    from rumpmp.kern import RW_READER, RW_WRITER, rw_enter, rw_exit

    rw, buf, writer, rounds = arg
    for _ in range(rounds):
        if writer:
            rw_enter(rw, RW_WRITER)
            a, b = struct.unpack_from("<qq", buf, 0)
            struct.pack_into("<q", buf, 0, a + 1)  # a and b differ only inside the write hold
            struct.pack_into("<q", buf, 8, b + 1)
            rw_exit(rw)
        else:
            rw_enter(rw, RW_READER)
            a, b = struct.unpack_from("<qq", buf, 0)
            if a != b:
                struct.pack_into("<q", buf, 16, 1)  # a torn read: the invariant broke
            rw_exit(rw)


def rw_invariant():
    from rumpmp.kern import kmem_zalloc, rw_init

    rw = rw_init()
    buf = kmem_zalloc(24)
    roles = [True, False, False, True, False, False, True, False]
    _spawn_bound(_rw_worker, [(rw, buf, r, 400) for r in roles], [i // 2 for i in range(8)])
    a, b, torn = struct.unpack_from("<qqq", buf, 0)
    return a, b, torn


@pytest.mark.timeout(120)
def test_rwlock_invariant_holds_under_parallel_readers_and_writers(rump_boot):
    k = rump_boot(4)
    a, b, torn = k.run(rw_invariant, cpu=0)
    assert a == b == 3 * 400
    assert torn == 0


def rw_semantics():
    from rumpmp.kern import (
        RW_READER,
        RW_WRITER,
        rw_destroy,
        rw_downgrade,
        rw_enter,
        rw_exit,
        rw_init,
        rw_lock_held,
        rw_read_held,
        rw_tryenter,
        rw_tryupgrade,
        rw_write_held,
    )

    rw = rw_init()
    out = []
    rw_enter(rw, RW_READER)
    out.append((rw_read_held(rw), rw_write_held(rw), rw_lock_held(rw)))
    out.append(rw_tryupgrade(rw))  # the only reader: upgrade succeeds
    out.append((rw_read_held(rw), rw_write_held(rw)))
    rw_downgrade(rw)
    out.append((rw_read_held(rw), rw_write_held(rw)))
    rw_exit(rw)
    out.append(rw_lock_held(rw))
    out.append(rw_tryenter(rw, RW_WRITER))
    rw_exit(rw)
    rw_destroy(rw)
    return out


@pytest.mark.timeout(60)
def test_rwlock_upgrade_downgrade_and_held(rump_kernel):
    assert rump_kernel.run(rw_semantics) == [
        (True, False, True),
        True,
        (False, True),
        (True, False),
        False,
        True,
    ]


def _writer_waits(arg):
    from rumpmp.kern import RW_WRITER, rw_enter, rw_exit

    rw, buf = arg
    rw_enter(rw, RW_WRITER)
    struct.pack_into("<q", buf, 0, 1)
    rw_exit(rw)


def writer_not_starved():
    """Readers keep the lock read-held, overlapping; a writer must still get in."""
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        RW_READER,
        kmem_zalloc,
        kpause,
        kthread_create,
        kthread_join,
        rw_enter,
        rw_exit,
        rw_init,
        rw_tryenter,
    )

    rw = rw_init()
    buf = kmem_zalloc(8)
    rw_enter(rw, RW_READER)
    writer = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 1, _writer_waits, (rw, buf), "w")
    for _ in range(2000):  # wait (bounded) until the writer is queued
        if not rw_tryenter(rw, RW_READER):
            break
        rw_exit(rw)
        kpause("wait", False, 1)
    blocked_new_reader = not rw_tryenter(rw, RW_READER)
    rw_exit(rw)  # the first read hold: now the writer goes
    kthread_join(writer)
    return blocked_new_reader, struct.unpack_from("<q", buf, 0)[0]


@pytest.mark.timeout(60)
def test_waiting_writer_blocks_new_readers(rump_boot):
    k = rump_boot(2)
    assert k.run(writer_not_starved, cpu=0) == (True, 1)


def _pong(arg):
    from rumpmp.kern import cv_broadcast, cv_wait, mutex_enter, mutex_exit

    m, cv, buf, me, rounds = arg
    for _ in range(rounds):
        mutex_enter(m)
        while struct.unpack_from("<q", buf, 0)[0] != me:
            cv_wait(cv, m)
        struct.pack_into("<q", buf, 0, 1 - me)
        (n,) = struct.unpack_from("<q", buf, 8)
        struct.pack_into("<q", buf, 8, n + 1)
        struct.pack_into("<q", buf, 16 + 8 * me, os.getpid())
        cv_broadcast(cv)
        mutex_exit(m)


def condvar_ping_pong(rounds):
    from rumpmp.kern import cv_init, kmem_zalloc, mutex_init

    m, cv, buf = mutex_init(), cv_init("pingpong"), kmem_zalloc(32)
    _spawn_bound(_pong, [(m, cv, buf, me, rounds) for me in (0, 1)], [0, 1])
    n, pid0, pid1 = struct.unpack_from("<qqq", buf, 8)
    return n, pid0 != pid1


@pytest.mark.timeout(60)
def test_condvar_ping_pong_between_cpus(rump_boot):
    k = rump_boot(2)
    assert k.run(condvar_ping_pong, 300) == (600, True)


def timed_out():
    from rumpmp.kern import cv_init, cv_timedwait, hz, mutex_enter, mutex_exit, mutex_init

    m, cv = mutex_init(), cv_init()
    mutex_enter(m)
    start = time.monotonic()
    rc = cv_timedwait(cv, m, hz() // 10)
    elapsed = time.monotonic() - start
    from rumpmp.kern import mutex_owned

    owned = mutex_owned(m)
    mutex_exit(m)
    return rc, elapsed, owned


@pytest.mark.timeout(30)
def test_cv_timedwait_times_out(rump_kernel):
    rc, elapsed, owned = rump_kernel.run(timed_out)
    assert rc == errno.EWOULDBLOCK
    assert elapsed >= 0.1
    assert owned


def _take_and_release(arg):
    from rumpmp.kern import mutex_enter, mutex_exit

    mutex_enter(arg)
    mutex_exit(arg)


def _raise_flag(buf):
    from rumpmp.kern import wakeup

    struct.pack_into("<q", buf, 0, 1)
    wakeup(buf)


def blocked_lwp_lets_another_run():
    """cpu0 runs A, which blocks on a mutex this lwp (on cpu1) holds, and B, which
    raises the flag this lwp waits for before letting go.  If A kept cpu0 while
    blocked, B could never run."""
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        mstohz,
        mutex_enter,
        mutex_exit,
        mutex_init,
        tsleep,
    )

    m, buf = mutex_init(), kmem_zalloc(8)
    mutex_enter(m)
    a = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 0, _take_and_release, m, "A")
    b = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 0, _raise_flag, buf, "B")
    for _ in range(100):
        if struct.unpack_from("<q", buf, 0)[0]:
            break
        tsleep(buf, 0, "flag", mstohz(100))
    ran = struct.unpack_from("<q", buf, 0)[0] == 1
    mutex_exit(m)
    kthread_join(a)
    kthread_join(b)
    return ran


@pytest.mark.timeout(60)
def test_lwp_blocked_on_mutex_releases_its_cpu(rump_boot):
    k = rump_boot(2)
    assert k.run(blocked_lwp_lets_another_run, cpu=1) is True


def _record_order(arg):
    from rumpmp.kern import mutex_enter, mutex_exit

    m, buf, tag = arg
    mutex_enter(m)
    (n,) = struct.unpack_from("<q", buf, 0)
    struct.pack_into("<q", buf, 8 + 8 * n, tag)
    struct.pack_into("<q", buf, 0, n + 1)
    mutex_exit(m)


def priority_handoff():
    """While this lwp holds cpu0, a low- and then a high-priority lwp are placed there;
    once it lets go, the CPU goes to the higher priority first."""
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        PRI_XCALL,
        kmem_zalloc,
        kthread_create,
        mutex_init,
    )

    m, buf = mutex_init(), kmem_zalloc(32)
    low = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 0, _record_order, (m, buf, 1), "low")
    high = kthread_create(PRI_XCALL, KTHREAD_MUSTJOIN, 0, _record_order, (m, buf, 2), "high")
    return (low, high, buf)


def _join_both(low, high, buf):
    from rumpmp.kern import kthread_join

    kthread_join(low)
    kthread_join(high)
    return struct.unpack_from("<qqq", buf, 0)


@pytest.mark.timeout(60)
def test_run_queue_hands_the_cpu_to_the_highest_priority(rump_boot):
    k = rump_boot(2)
    low, high, buf = k.run(priority_handoff, cpu=0)
    assert k.run(_join_both, low, high, buf, cpu=1) == (2, 2, 1)


def _spin_until_flag(buf):
    while not struct.unpack_from("<q", buf, 0)[0]:
        pass  # hold cpu1 without blocking


def _report_cpu(buf):
    from rumpmp.kern import cpu_index

    struct.pack_into("<q", buf, 8, cpu_index() + 1)


def steal_scenario():
    """cpu1 is busy, so an unbound kthread made here lands on cpu0 (a tie) and cannot
    start while this lwp holds cpu0; once cpu1 goes idle it steals the kthread."""
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kmem_zalloc, kthread_create

    buf = kmem_zalloc(24)
    busy = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 1, _spin_until_flag, buf, "busy")
    deadline = time.monotonic() + 10
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.sched import scheduler

    sp1 = scheduler.spc(current(), 1)
    while not sp1.w[sp1.s + SPC_CURLWP] and time.monotonic() < deadline:
        pass
    thief_target = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, None, _report_cpu, buf, "stolen")
    struct.pack_into("<q", buf, 0, 1)  # let cpu1 go idle
    while not struct.unpack_from("<q", buf, 8)[0] and time.monotonic() < deadline:
        pass  # keep cpu0 so the kthread cannot start here
    return busy, thief_target, buf


@pytest.mark.timeout(60)
def test_idle_cpu_steals_an_unstarted_lwp(rump_boot):
    k = rump_boot(2)
    busy, stolen, buf = k.run(steal_scenario, cpu=0)
    k.run(_join_both, busy, stolen, buf, cpu=1)
    assert struct.unpack_from("<q", buf, 8)[0] == 2  # it ran on cpu1
    assert k.sched_stats()[1]["steals"] >= 1


def _sleeper(buf):
    from rumpmp.kern import tsleep

    rc = tsleep(buf, 0, "test", 0)
    struct.pack_into("<q", buf, 8, 100 + rc)


def tsleep_wakeup_across_cpus():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kpause,
        kthread_create,
        kthread_join,
        mstohz,
        wakeup,
    )
    from rumpmp.rumpkern.base.arena import current

    buf = kmem_zalloc(16)
    sleeper = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 1, _sleeper, buf, "sleeper")
    t = tables(current())
    for _ in range(1000):  # bounded wait until it sleeps
        if current().w[t.lwp(sleeper) + L_STATE] == LSSLEEP:
            break
        kpause("wait", False, 1)
    wakeup(buf)
    kthread_join(sleeper)
    start = time.monotonic()
    rc = kpause("nap", False, mstohz(50))
    return struct.unpack_from("<q", buf, 8)[0], rc, time.monotonic() - start


@pytest.mark.timeout(30)
def test_tsleep_wakeup_and_kpause(rump_boot):
    k = rump_boot(2)
    woken, rc, slept = k.run(tsleep_wakeup_across_cpus, cpu=0)
    assert woken == 100
    assert rc == errno.EWOULDBLOCK and slept >= 0.05


def threads_create_join():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_exit,
        kthread_join,
    )

    def body(x):
        kthread_exit(x)

    lids = [kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, None, body, i, f"j{i}") for i in range(8)]
    results = [kthread_join(lid) for lid in lids]
    try:
        kthread_join(lids[0])  # already collected
    except OSError as e:
        return results, e.errno
    return results, None


@pytest.mark.timeout(30)
def test_kthread_create_and_join(rump_kernel):
    results, err = rump_kernel.run(threads_create_join)
    assert results == [0] * 8
    assert err == errno.EINVAL


@pytest.mark.timeout(30)
def test_no_threads_fakes_known_threads_and_panics_otherwise(rump_boot):
    k = rump_boot(1, threads=False)
    assert "pdaemon not functional" in k.dmesg()

    def create():
        from rumpmp.kern import PRI_KTHREAD, kthread_create

        kthread_create(PRI_KTHREAD, 0, None, print, None, "mythread")

    with pytest.raises(rumpmp.RumpPanic, match="threads not available"):
        k.run(create)


# -- LOCKDEBUG -------------------------------------------------------------------------


def _exit_unowned():
    from rumpmp.kern import mutex_exit, mutex_init

    mutex_exit(mutex_init(name="lonely"))


def _enter_twice():
    from rumpmp.kern import mutex_enter, mutex_init

    m = mutex_init(name="twice")
    mutex_enter(m)
    mutex_enter(m)


def _rw_double_writer():
    from rumpmp.kern import RW_WRITER, rw_enter, rw_init

    rw = rw_init("rwx")
    rw_enter(rw, RW_WRITER)
    rw_enter(rw, RW_WRITER)


def _rw_read_then_write():
    from rumpmp.kern import RW_READER, RW_WRITER, rw_enter, rw_init

    rw = rw_init("rwrx")
    rw_enter(rw, RW_READER)
    rw_enter(rw, RW_WRITER)


def _rw_write_then_read():
    from rumpmp.kern import RW_READER, RW_WRITER, rw_enter, rw_init

    rw = rw_init("rwxr")
    rw_enter(rw, RW_WRITER)
    rw_enter(rw, RW_READER)


def _double_init():
    from rumpmp.kern import mutex_init

    m = mutex_init(name="again")
    mutex_init(m, 0, 0)


def _destroy_held():
    from rumpmp.kern import mutex_destroy, mutex_enter, mutex_init

    m = mutex_init(name="busy")
    mutex_enter(m)
    mutex_destroy(m)


def _destroy_twice():
    from rumpmp.kern import mutex_destroy, mutex_init

    m = mutex_init(name="gone")
    mutex_destroy(m)
    mutex_destroy(m)


def _sleep_with_spin():
    from rumpmp.kern import IPL_VM, MUTEX_DEFAULT, kpause, mutex_enter, mutex_init

    m = mutex_init(MUTEX_DEFAULT, IPL_VM, name="spinner")
    mutex_enter(m)
    kpause("bad", False, 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "misuse, message",
    [
        (_exit_unowned, r"mutex error: mutex_exit: exiting unheld adaptive mutex \(lock lonely"),
        (_enter_twice, r"mutex error: mutex_enter: locking against myself \(lock twice"),
        (_rw_double_writer, r"rwlock error: rw_enter: locking against myself \(lock rwx"),
        (_rw_read_then_write, r"rwlock error: rw_enter: locking against myself \(lock rwrx"),
        (_rw_write_then_read, r"rwlock error: rw_enter: locking against myself \(lock rwxr"),
        (_double_init, r"mutex error: mutex_init: already initialized \(lock again"),
        (_destroy_held, r"mutex error: mutex_destroy: is locked or in use \(lock busy"),
        (_destroy_twice, r"mutex_destroy: gone: uninitialized lock"),
        (_sleep_with_spin, r"sleeping with spin mutex held"),
    ],
)
def test_lockdebug_panics_name_the_lock_and_lwp(rump_boot, misuse, message):
    k = rump_boot(2, lockdebug=True)
    with pytest.raises(rumpmp.RumpPanic, match=message) as info:
        k.run(misuse, cpu=1)
    assert info.value.cpu == 1
    if "uninitialized" not in message:
        assert f"'{misuse.__name__}'" in info.value.cause  # the lwp, by name


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "misuse, message",
    [
        (_enter_twice, r"mutex error: mutex_enter: locking against myself"),  # lockme_MTX
        (_rw_double_writer, r"rwlock error: rw_enter: locking against myself"),  # RWDOUBLEX
        (_rw_write_then_read, r"rwlock error: rw_enter: locking against myself"),  # RWXR
        (_destroy_held, r"mutex error: mutex_destroy: is locked or in use"),  # DESTROYHELD
        (_destroy_twice, r"mutex_destroy: gone: uninitialized lock"),  # DOUBLEFREE
    ],
)
def test_t_kern_misuse_panics_without_lockdebug_too(rump_boot, misuse, message):
    """NetBSD tests/rump/rumpkern/t_kern.c: the lockme_* cases that need no LOCKDEBUG
    (rump's host locks are error-checking), caught on the slow path only."""
    k = rump_boot(2, lockdebug=False)
    with pytest.raises(rumpmp.RumpPanic, match=message):
        k.run(misuse, cpu=1, timeout=20)


@pytest.mark.timeout(30)
def test_lockdebug_off_lets_a_foreign_exit_through(rump_boot):
    k = rump_boot(1, lockdebug=False)

    def foreign_exit():
        from rumpmp.kern import mutex_enter, mutex_exit, mutex_init, mutex_tryenter

        m = mutex_init()
        mutex_enter(m)
        mutex_exit(m)
        mutex_exit(m)  # not owned: unchecked without LOCKDEBUG
        return mutex_tryenter(m)

    assert k.run(foreign_exit) is True


def _raise_flag_plain(buf):
    struct.pack_into("<q", buf, 0, 1)


def preempt_lets_others_run():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        yield_,
    )

    buf = kmem_zalloc(8)
    other = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 0, _raise_flag_plain, buf, "other")
    for _ in range(100_000):  # never blocks: only yielding lets the other lwp run
        if struct.unpack_from("<q", buf, 0)[0]:
            break
        yield_()
    ran = struct.unpack_from("<q", buf, 0)[0] == 1
    kthread_join(other)
    return ran


@pytest.mark.timeout(30)
def test_yield_lets_another_lwp_of_the_cpu_run(rump_boot):
    k = rump_boot(1)
    assert k.run(preempt_lets_others_run, cpu=0) is True
