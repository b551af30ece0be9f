"""pserialize(9), psref(9), localcount(9) on 8 CPUs (issue 23)."""

from __future__ import annotations

import pytest

DEAD = 0xDE


def reader(arg):
    from rumpmp.kern import (
        atomic_inc_64,
        atomic_load_relaxed,
        preempt,
        pserialize_read_enter,
        pserialize_read_exit,
    )

    objs, pub, stats = arg
    while not atomic_load_relaxed((stats, 8)):  # until the writer is done
        s = pserialize_read_enter()
        obj = objs[atomic_load_relaxed(pub)]
        for _ in range(20):
            if obj[0] == DEAD:
                atomic_inc_64(stats)  # a reader saw a freed object: a violation
            preempt()  # (passes over: preemption is off in a read section)
        pserialize_read_exit(s)
        preempt()


def publish_and_retire(ncpu, rounds):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        atomic_load_relaxed,
        atomic_store_release,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        pserialize_create,
        pserialize_destroy,
        pserialize_perform,
    )

    objs = [kmem_zalloc(8) for _ in range(rounds + 1)]
    pub, stats = kmem_zalloc(8), kmem_zalloc(16)
    psz = pserialize_create()
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, c, reader, (objs, pub, stats), "r")
        for c in range(ncpu)
    ]
    for i in range(1, rounds + 1):
        atomic_store_release(pub, i)  # publish the new object...
        pserialize_perform(psz)  # ...wait out every reader of the old one...
        objs[i - 1][0] = DEAD  # ...and only then free it
    atomic_store_release((stats, 8), 1)
    for lid in lids:
        kthread_join(lid)
    pserialize_destroy(psz)
    return atomic_load_relaxed(stats)


@pytest.mark.timeout(120)
def test_no_reader_sees_an_object_retired_after_pserialize_perform(rump_boot):
    k = rump_boot(8)
    assert k.run(publish_and_retire, 8, 30) == 0


def holder(arg):
    from rumpmp.kern import (
        atomic_inc_64,
        atomic_load_relaxed,
        kpause,
        psref_acquire,
        psref_release,
        psref_t,
    )

    target, cls, flags = arg
    ref = psref_t()
    psref_acquire(ref, target, cls)
    atomic_inc_64(flags)  # holding
    while not atomic_load_relaxed((flags, 8)):  # a psref may be held across a sleep
        kpause("hold", False, 1)
    atomic_inc_64((flags, 16))  # released (counted just before)
    psref_release(ref, target, cls)


def destroyer(arg):
    from rumpmp.kern import atomic_load_relaxed, atomic_store_relaxed, psref_target_destroy

    target, cls, flags = arg
    psref_target_destroy(target, cls)
    atomic_store_relaxed((flags, 24), 1 + atomic_load_relaxed((flags, 16)))


def destroy_waits_for_every_reference(ncpu):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        atomic_load_relaxed,
        atomic_store_relaxed,
        kmem_zalloc,
        kpause,
        kthread_create,
        kthread_join,
        psref_class_create,
        psref_class_destroy,
        psref_target_init,
    )

    cls = psref_class_create("test")
    target = psref_target_init(cls)
    flags = kmem_zalloc(32)  # holding, go, released, destroyer's view of released + 1
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, c, holder, (target, cls, flags), "h")
        for c in range(1, ncpu)
    ]
    while atomic_load_relaxed(flags) < ncpu - 1:
        kpause("wait", False, 1)
    d = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 0, destroyer, (target, cls, flags), "d")
    kpause("wait", False, 5)
    early = atomic_load_relaxed((flags, 24))  # must still be waiting: references are held
    atomic_store_relaxed((flags, 8), 1)
    for lid in [*lids, d]:
        kthread_join(lid)
    psref_class_destroy(cls)
    return early, atomic_load_relaxed((flags, 24)) - 1


@pytest.mark.timeout(120)
def test_psref_target_destroy_waits_for_references_on_every_cpu(rump_boot):
    k = rump_boot(8)
    early, released_when_done = k.run(destroy_waits_for_every_reference, 8)
    assert early == 0 and released_when_done == 7


def acquire_here(arg):
    from rumpmp.kern import localcount_acquire

    lc, n = arg
    for _ in range(n):
        localcount_acquire(lc)


def release_here(arg):
    from rumpmp.kern import localcount_release

    lc, cv, lock, n = arg
    for _ in range(n):
        localcount_release(lc, cv, lock)


def drainer(arg):
    from rumpmp.kern import localcount_drain, localcount_fini, mutex_enter, mutex_exit

    lc, cv, lock = arg
    mutex_enter(lock)
    localcount_drain(lc, cv, lock)
    mutex_exit(lock)
    localcount_fini(lc)


def counts_across_cpus(ncpu):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        cv_init,
        kthread_create,
        kthread_join,
        localcount_init,
        mutex_init,
    )

    def run_on(cpu, fn, arg):
        return kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, fn, arg, "l")

    lc, cv, lock = localcount_init(), cv_init("lc"), mutex_init()
    for lid in [run_on(c, acquire_here, (lc, 10)) for c in range(ncpu)]:
        kthread_join(lid)
    # Half released on other CPUs than took them, before the drain...
    for lid in [run_on((c + 1) % ncpu, release_here, (lc, cv, lock, 5)) for c in range(ncpu)]:
        kthread_join(lid)
    d = run_on(0, drainer, (lc, cv, lock))
    # ...and half while it drains: it returns only after the last.
    for lid in [run_on((c + 3) % ncpu, release_here, (lc, cv, lock, 5)) for c in range(ncpu)]:
        kthread_join(lid)
    kthread_join(d)
    return True


@pytest.mark.timeout(120)
def test_localcount_drains_references_released_on_other_cpus(rump_boot):
    k = rump_boot(8)
    assert k.run(counts_across_cpus, 8)
