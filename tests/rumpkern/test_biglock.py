"""The big kernel lock (issue 13): KERNEL_LOCK(9) counts, held across sleeps as
NetBSD holds it, and non-MPSAFE kthreads on different CPUs never run at once."""

from __future__ import annotations

import concurrent.futures
import errno

import pytest

from rumpmp import kern
from rumpmp.rumpkern.locking import biglock
from tests.helpers import wait_for

ROUNDS = 150


def critical(arg):
    """Count how often another thread was inside at the same moment."""
    from rumpmp.kern import DELAY, preempt

    buf, me = arg
    w = memoryview(buf).cast("B").cast("q")
    for _ in range(ROUNDS):
        w[0] += 1  # threads inside now (not atomic: only the big lock makes it safe)
        if w[0] > 1:
            w[1 + me] += 1
        DELAY(300)
        w[0] -= 1
        preempt()


def two_threads(mpsafe):
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        kmem_zalloc,
        kthread_create,
        kthread_join,
    )

    buf = kmem_zalloc(24)
    flags = KTHREAD_MUSTJOIN | (KTHREAD_MPSAFE if mpsafe else 0)
    lids = [kthread_create(0, flags, cpu, critical, (buf, cpu), f"crit{cpu}") for cpu in range(2)]
    for lid in lids:
        kthread_join(lid)
    w = memoryview(buf).cast("B").cast("q")
    return w[1] + w[2]


@pytest.mark.timeout(60)
def test_non_mpsafe_kthreads_never_run_at_once_mpsafe_ones_do(rump_kernel):
    assert rump_kernel.run(two_threads, False) == 0
    assert rump_kernel.run(two_threads, True) > 0  # the check can see an overlap


def counts():
    from rumpmp.kern import kpause

    out = [biglock.KERNEL_LOCKED_P()]
    biglock.KERNEL_LOCK(2)
    biglock.KERNEL_LOCK(1)
    out.append(biglock.KERNEL_LOCKED_P())
    kpause("sleep", False, 1)  # lets it go for the sleep, takes all three back
    biglock.KERNEL_UNLOCK_ONE()
    out.append(biglock.KERNEL_UNLOCK_ALL())  # the two left
    out.append(biglock.KERNEL_LOCKED_P())
    out.append(biglock.KERNEL_UNLOCK_ALL())
    return out


def held_by_other(_, __):
    """On another CPU while the first sleeps holding it: the lock is free to take."""
    biglock.KERNEL_LOCK(1)
    return biglock.KERNEL_UNLOCK_ALL()


def sleeper(buf):
    from rumpmp.kern import kpause

    w = memoryview(buf).cast("B").cast("q")
    biglock.KERNEL_LOCK(1)
    w[0] = 1
    while w[0] != 2:
        kpause("hold", False, 1)  # asleep: the lock is let go
    return biglock.KERNEL_UNLOCK_ALL()


def test_recursion_counts_and_release_across_sleep(rump_kernel):
    k = rump_kernel
    assert k.run(counts, cpu=1) == [False, True, 2, False, 0]
    buf = k.run(lambda: kern.kmem_zalloc(8))
    w = memoryview(buf).cast("B").cast("q")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(k.run, sleeper, buf, cpu=0, timeout=30)
        wait_for(lambda: w[0] == 1, 10, "the sleeper to take the lock")
        assert k.xc_unicast(0, held_by_other, None, None, 1) == 1
        w[0] = 2
        assert held.result(timeout=30) == 1
    w.release()


def test_the_host_has_no_big_lock():
    with pytest.raises(OSError) as info:
        biglock.KERNEL_LOCK(1)
    assert info.value.errno == errno.ENXIO
