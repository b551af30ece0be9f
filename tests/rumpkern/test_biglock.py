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


def record_locked(buf):
    buf[0] = 2 if biglock.KERNEL_LOCKED_P() else 1


def handlers_hold_it_unless_mpsafe():
    from rumpmp.kern import (
        CALLOUT_MPSAFE,
        SOFTINT_MPSAFE,
        SOFTINT_NET,
        WQ_MPSAFE,
        callout_init,
        callout_reset,
        kmem_zalloc,
        softint_establish,
        softint_schedule,
        workqueue_create,
        workqueue_enqueue,
        workqueue_wait,
    )
    from tests.helpers import kwait_for

    out = {}
    for name, mpsafe in (("plain", False), ("mpsafe", True)):
        bufs = [kmem_zalloc(1) for _ in range(3)]
        callout_reset(callout_init(CALLOUT_MPSAFE if mpsafe else 0), 1, record_locked, bufs[0])
        sih = softint_establish(
            SOFTINT_NET | (SOFTINT_MPSAFE if mpsafe else 0), record_locked, bufs[1]
        )
        softint_schedule(sih)
        wq = workqueue_create(
            f"wq{name}",
            lambda wk, arg: record_locked(arg),
            bufs[2],
            0,
            0,
            WQ_MPSAFE if mpsafe else 0,
        )
        workqueue_enqueue(wq, 1, None)
        workqueue_wait(wq, 1)
        kwait_for(lambda bufs=bufs: all(b[0] for b in bufs), "the handlers")
        out[name] = [b[0] for b in bufs]
    return out


@pytest.mark.timeout(60)
def test_callouts_softints_and_work_items_hold_it_unless_mpsafe(rump_kernel):
    assert rump_kernel.run(handlers_hold_it_unless_mpsafe) == {
        "plain": [2, 2, 2],
        "mpsafe": [1, 1, 1],
    }
