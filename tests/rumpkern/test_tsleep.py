"""A port of NetBSD's tests/rump/rumpkern/t_tsleep.c over kernspace/tsleep.c
(issue 23): ten non-MPSAFE kthreads whose interlock is the big kernel lock
(bigthread: tsleep, and mtsleep with PNORELOCK standing in for ltsleep on a
simplelock) and ten MPSAFE kthreads with a mutex as interlock (tinythread), each
waking the others and sleeping with no timeout.  A wake-up lost between a check
and the sleep would leave a thread asleep forever: the test would time out.
The loops run 200 rounds (1000 upstream)."""

from __future__ import annotations

import errno

import pytest

NTHREADS = 10
ROUNDS = 200


def bigthread(arg):
    from rumpmp.kern import PNORELOCK, mtsleep, mutex_enter, tsleep, wakeup

    i, wakeups, slock = arg
    for _ in range(ROUNDS):
        wakeup("bigthread")
        if wakeups[0] >= NTHREADS - 1:  # (the kernel lock guards the count)
            break
        if i % 2:
            mutex_enter(slock)
            mtsleep("bigthread", PNORELOCK, "hii", 0, slock)
        else:
            tsleep("bigthread", 0, "hii", 0)
    wakeup("bigthread")
    wakeups[0] += 1


def tinythread(arg):
    from rumpmp.kern import PNORELOCK, mtsleep, mutex_enter, mutex_exit, panic, wakeup

    i, wakeups, mymtx = arg
    relock = i % 2 == 0
    for _ in range(ROUNDS):
        mutex_enter(mymtx)
        wakeup("tinythread")
        if wakeups[0] >= NTHREADS - 1:
            mutex_exit(mymtx)
            break
        rv = mtsleep("tinythread", 0 if relock else PNORELOCK, "haa", 0, mymtx)
        if relock:
            mutex_exit(mymtx)
        if rv != 0:
            panic("mtsleep failed")
    mutex_enter(mymtx)
    wakeups[0] += 1
    wakeup("tinythread")
    rv = mtsleep("rumptest_tsleep", PNORELOCK, "kepuli", 1, mymtx)
    if rv != errno.EWOULDBLOCK:
        panic(f"mtsleep unexpected return value {rv}")


def rumptest_tsleep():
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_NONE,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        mutex_init,
    )

    big_count, tiny_count = kmem_zalloc(8), kmem_zalloc(8)
    slock, mymtx = mutex_init(), mutex_init()
    bigl = [
        kthread_create(PRI_NONE, KTHREAD_MUSTJOIN, None, bigthread, (i, big_count, slock), "b")
        for i in range(NTHREADS)
    ]
    notbigl = [
        kthread_create(
            PRI_NONE,
            KTHREAD_MUSTJOIN | KTHREAD_MPSAFE,
            None,
            tinythread,
            (i, tiny_count, mymtx),
            "nb",
        )
        for i in range(NTHREADS)
    ]
    for lid in bigl + notbigl:
        kthread_join(lid)
    return big_count[0], tiny_count[0]


@pytest.mark.timeout(120)
def test_tsleep(rump_boot):
    """t_tsleep.c tsleep, on more CPUs than cores."""
    k = rump_boot(4)
    assert k.run(rumptest_tsleep) == (NTHREADS, NTHREADS)
