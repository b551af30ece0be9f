"""mutex_obj(9) and rw_obj: reference-counted locks held and freed from every CPU
(issue 23)."""

from __future__ import annotations

import pytest


def hold_and_use(arg):
    from rumpmp.kern import mutex_enter, mutex_exit, mutex_obj_free, mutex_obj_hold

    m, rounds = arg
    for _ in range(rounds):
        mutex_obj_hold(m)
        mutex_enter(m)
        mutex_exit(m)
        assert not mutex_obj_free(m), "a held reference was the last"


def shared_lock_object(ncpu):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        mutex_obj_alloc,
        mutex_obj_free,
        mutex_obj_hold,
        mutex_obj_refcnt,
    )

    m = mutex_obj_alloc()
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, i % ncpu, hold_and_use, (m, 300), "m")
        for i in range(2 * ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    refs = mutex_obj_refcnt(m)
    mutex_obj_hold(m)
    return refs, mutex_obj_free(m), mutex_obj_free(m)


@pytest.mark.timeout(120)
def test_mutex_obj_counts_references_from_every_cpu(rump_boot):
    k = rump_boot(8)
    assert k.run(shared_lock_object, 8) == (1, False, True)


def rw_obj_cycle():
    from rumpmp.kern import RW_READER, rw_enter, rw_exit, rw_obj_alloc, rw_obj_free, rw_obj_hold

    rw = rw_obj_alloc()
    rw_obj_hold(rw)
    rw_enter(rw, RW_READER)
    rw_exit(rw)
    return rw_obj_free(rw), rw_obj_free(rw)


@pytest.mark.timeout(60)
def test_rw_obj_free_is_true_on_the_last_reference(rump_kernel):
    assert rump_kernel.run(rw_obj_cycle) == (False, True)


def free_too_often():
    from rumpmp.kern import mutex_obj_alloc, mutex_obj_free

    m = mutex_obj_alloc()
    mutex_obj_free(m)
    mutex_obj_free(m)


def hold_a_plain_mutex():
    from rumpmp.kern import mutex_init, mutex_obj_hold

    mutex_obj_hold(mutex_init())


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("body", "why"),
    [(free_too_often, "not a live lock object"), (hold_a_plain_mutex, "not a live lock object")],
)
def test_misuse_of_a_lock_object_panics(rump_boot, body, why):
    from rumpmp import RumpPanic

    k = rump_boot(2)
    with pytest.raises(RumpPanic, match=why):
        k.run(body)
