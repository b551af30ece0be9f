"""lockstat (issue 25): counts per lock and kind of hold, checked against workloads
whose contention is known exactly."""

from __future__ import annotations

import concurrent.futures as cf
import errno

import pytest

from tests.helpers import errno_of

ROUNDS = 12


def _alternate(lock, shared, me: int, rounds: int) -> None:
    """Two lwps on two CPUs take turns on ``lock``: in round r, lwp r % 2 takes it and
    holds it until the other lwp waits for it, so exactly one acquisition a round is
    contended.  ``shared`` words: 0 the round whose holder holds the lock, 1 rounds
    finished (both lwps count)."""
    from hypercalls.thread import curlwp
    from rumpmp.kern import (
        DELAY,
        atomic_inc_64,
        atomic_load_acquire,
        atomic_store_release,
        kpause,
        mutex_enter,
        mutex_exit,
    )
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.base.proc import tables
    from rumpmp.sys.lwp import L_WAITLOCK

    arena = current()
    t = tables(arena)
    me_lid = curlwp()

    def until(cond, what: str) -> None:
        for _ in range(20_000):  # a bound: some 20 s
            if cond():
                return
            if lock.spin:
                DELAY(1000)  # a spin mutex's holder may not sleep
            else:
                kpause("poll", False, 1)
        raise AssertionError(f"timed out waiting for {what}")

    atomic_store_release((shared, 16 + 8 * me), me_lid)
    until(lambda: atomic_load_acquire((shared, 16 + 8 * (1 - me))), "the other lwp")
    other = atomic_load_acquire((shared, 16 + 8 * (1 - me)))
    for r in range(rounds):
        if r % 2 == me:
            mutex_enter(lock)
            atomic_store_release((shared, 0), r + 1)
            until(lambda: arena.w[t.lwp(other) + L_WAITLOCK] == lock.rec.offset, "a waiter")
            mutex_exit(lock)
        else:
            until(lambda r=r: atomic_load_acquire((shared, 0)) == r + 1, "the holder")
            mutex_enter(lock)  # it is held until we wait for it: contended
            mutex_exit(lock)
        atomic_inc_64((shared, 8))
        until(lambda r=r: atomic_load_acquire((shared, 8)) >= 2 * (r + 1), "the round's end")


def _make(spin: bool, name: str):
    from rumpmp.kern import IPL_NONE, IPL_VM, KM_SLEEP, MUTEX_DEFAULT, kmem_zalloc, mutex_init

    return mutex_init(MUTEX_DEFAULT, IPL_VM if spin else IPL_NONE, name=name), kmem_zalloc(
        32, KM_SLEEP
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("spin", [False, True], ids=["adaptive", "spin"])
def test_two_lwps_alternating_on_one_lock(rump_boot, spin):
    k = rump_boot(2, lockstat=True)
    lock, shared = k.run(_make, spin, "alternating")
    with cf.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(k.run, _alternate, lock, shared, i, ROUNDS, cpu=i) for i in (0, 1)]
        for f in runs:
            f.result(timeout=100)
    (row,) = [r for r in k.lockstat() if r.name == "alternating"]
    assert row.kind == ("spin" if spin else "adaptive")
    assert row.acquisitions == 2 * ROUNDS
    assert row.contended == ROUNDS
    assert row.wait_ns > 0 and 0 < row.wait_max_ns <= row.wait_ns
    assert row.hold_ns > 0 and 0 < row.hold_max_ns <= row.hold_ns
    assert row.site.startswith("tests/rumpkern/test_lockstat.py:"), row.site
    assert row.spins > 0  # a waiter alone on its CPU tries for a while before it sleeps


def _rw_reads(n: int) -> None:
    from rumpmp.kern import RW_READER, RW_WRITER, rw_enter, rw_exit, rw_init

    rw = rw_init("counted rwlock")
    for _ in range(n):
        rw_enter(rw, RW_READER)
        rw_exit(rw)
    rw_enter(rw, RW_WRITER)
    rw_exit(rw)


def test_rwlock_holds_are_counted_by_kind(rump_boot):
    k = rump_boot(2, lockstat=True)
    k.run(_rw_reads, 7)
    rows = {r.kind: r for r in k.lockstat() if r.name == "counted rwlock"}
    assert rows["rw reader"].acquisitions == 7 and rows["rw reader"].contended == 0
    assert rows["rw writer"].acquisitions == 1
    assert all(r.hold_ns > 0 for r in rows.values())


def test_the_tables_are_readable_through_sysctl(rump_boot):
    k = rump_boot(2, lockstat=True)
    k.run(_rw_reads, 3)
    assert k.sysctl("kern.lockstat.enabled") is True
    rows = k.sysctl("kern.lockstat.stats")
    assert [tuple(r) for r in k.lockstat()] == rows


def test_off_by_default(rump_boot):
    k = rump_boot(1)
    assert errno_of(k.lockstat) == errno.EINVAL
    assert k.sysctl("kern.lockstat.enabled") is False


def test_rump_lockstat_switches_it_on(rump_boot, monkeypatch):
    monkeypatch.setenv("RUMP_LOCKSTAT", "1")
    k = rump_boot(1)
    k.run(_rw_reads, 1)
    assert any(r.name == "counted rwlock" for r in k.lockstat())


def test_sched_nodes_show_each_cpu(rump_boot):
    """top's numbers: kern.sched.cpuN.* per CPU, kern.evcnt for every counter."""
    k = rump_boot(2)
    k.xc_broadcast(0, lambda *_: None)
    for c in range(2):
        got = {n: k.sysctl(f"kern.sched.cpu{c}.{n}") for n in ("curlwp", "nrun", "xcalls")}
        assert got["xcalls"] >= 1 and got["nrun"] >= 0 and got["curlwp"] >= 0
    assert ("xcall", "broadcast", 2) in [tuple(e) for e in k.sysctl("kern.evcnt")]


def _many_locks(n: int) -> None:
    from rumpmp.kern import mutex_destroy, mutex_enter, mutex_exit, mutex_init

    for i in range(n):
        m = mutex_init(name=f"lock {i}")
        mutex_enter(m)
        mutex_exit(m)
        mutex_destroy(m)


@pytest.mark.timeout(120)
def test_a_full_table_says_so_and_counts_what_it_holds(rump_boot):
    from rumpmp.sys.lockstat import DEFAULT_CAP

    k = rump_boot(1, lockstat=True)
    k.run(_many_locks, DEFAULT_CAP + 10, cpu=0)
    assert "lockstat: cpu0's table is full (1024 locks)" in k.dmesg()
    rows = k.lockstat()
    assert len(rows) == DEFAULT_CAP and all(
        r.acquisitions == 1 for r in rows if r.name[:5] == "lock "
    )
