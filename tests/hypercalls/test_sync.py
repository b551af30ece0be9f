"""hypercalls/sync: the pool, park slots, mutex, rwlock and condvar on their own,
in one process and across several (no kernel involved)."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from hypercalls import shm, sync
from tests.helpers import forked

PROCS = 4


@pytest.fixture
def pool():
    prefix = f"rmp-test{os.getpid()}-{time.monotonic_ns() % 10**9}."
    p = sync.SyncPool.create(prefix, 64)
    yield p
    p.shutdown()
    shm.unlink_prefix(prefix)
    assert shm.list_prefix(prefix) == []


def run_in_processes(target, *args, n: int = PROCS) -> None:
    """Run target(i, *args) in n forked processes; each must exit 0 within the bound."""
    procs = forked(_child, [(target, i, args) for i in range(n)])
    for p in procs:
        p.join(50)
        assert p.exitcode == 0, f"child exited {p.exitcode}"
        p.close()


def _child(target, i, args) -> None:
    try:
        target(i, *args)
    except BaseException:  # noqa: BLE001 - the parent sees the exit status
        os._exit(1)
    os._exit(0)


# -- the pool ----------------------------------------------------------------------------


def test_slots_are_handed_out_zeroed_and_run_out_with_eagain(pool):
    slots = [pool.alloc(0) for _ in range(pool.nslots - 1)]  # slot 0 is the pool's lock
    assert len(set(slots)) == len(slots) and 0 not in slots
    with pytest.raises(OSError) as info:
        pool.alloc(0)
    assert info.value.errno == errno.EAGAIN
    pool.words(slots[0])[3] = 7
    pool.free(slots[0])
    again = pool.alloc(0)
    assert again == slots[0] and list(pool.words(again)) == [0] * 8


def test_shutdown_makes_a_waiter_raise_and_teardown_stops_creation(pool):
    slot = pool.alloc(0)
    raised = []

    def waiter():
        try:
            pool.park(slot, 30)
        except sync.Shutdown as e:
            raised.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    pool.teardown(lambda: None)
    t.join(10)
    assert raised and raised[0].errno == errno.ESHUTDOWN
    with pytest.raises(sync.Shutdown):
        pool.alloc(0)


def test_a_stale_post_wakes_a_park_but_not_a_queued_waiter(pool):
    me = pool.park_slot()
    pool.unpark(me)  # a post left over from an earlier wakeup
    assert pool.park(me, 0)  # a bare park sees it...
    m, cv = sync.Mutex(pool), sync.CondVar(pool)
    pool.unpark(me)
    m.enter()
    rc = cv.timedwait(m, 0, 50_000_000)  # ...but a condvar waiter is not fooled by it
    m.exit()
    assert rc == errno.ETIMEDOUT


@pytest.mark.timeout(30)
def test_stale_wakeups_do_not_stretch_a_timed_wait(pool):
    m, cv = sync.Mutex(pool), sync.CondVar(pool)
    me = pool.park_slot()
    stop = threading.Event()

    def stale_posts():  # wakeups for nobody: the waiter is never dequeued
        while not stop.wait(0.02):
            pool.unpark(me)

    poster = threading.Thread(target=stale_posts)
    poster.start()
    m.enter()
    start = time.monotonic()
    try:
        rc = cv.timedwait(m, 0, 200_000_000)
    finally:
        took = time.monotonic() - start
        m.exit()
        stop.set()
        poster.join(10)
    assert rc == errno.ETIMEDOUT
    assert took < 2.0  # 0.2 s asked; without a deadline it ran until the posts stopped


# -- the primitives across processes ------------------------------------------------------


def _count(i, prefix, mslot, seg_name, rounds):
    p = sync.SyncPool.attach(prefix)
    m = sync.Mutex.attach(p, mslot)
    w = shm.Segment.attach(seg_name).buf.cast("q")
    for _ in range(rounds):
        m.enter()
        w[0] += 1  # a read-add-write: only the lock keeps it whole
        m.exit()


@pytest.mark.timeout(60)
def test_a_mutex_keeps_a_counter_exact_across_processes(pool):
    seg = shm.Segment.create(pool.prefix + "counter", 4096)
    m = sync.Mutex(pool)
    run_in_processes(_count, pool.prefix, m.slot, seg.name, 3000)
    assert seg.buf.cast("q")[0] == PROCS * 3000


def _read_write(i, prefix, slot, seg_name, rounds):
    p = sync.SyncPool.attach(prefix)
    rw = sync.RWLock.attach(p, slot)
    w = shm.Segment.attach(seg_name).buf.cast("q")
    for _ in range(rounds):
        if i == 0:
            rw.enter(sync.RW_WRITER)
            w[0] += 1
            w[1] += 1  # the two words differ only inside the write hold
            rw.exit()
        else:
            rw.enter(sync.RW_READER)
            if w[0] != w[1]:
                w[2] = 1
            rw.exit()


@pytest.mark.timeout(60)
def test_an_rwlock_never_lets_a_reader_see_half_a_write(pool):
    seg = shm.Segment.create(pool.prefix + "pair", 4096)
    rw = sync.RWLock(pool)
    run_in_processes(_read_write, pool.prefix, rw.slot, seg.name, 1500)
    w = seg.buf.cast("q")
    assert w[0] == w[1] == 1500 and w[2] == 0


def _wait_for_broadcast(i, prefix, mslot, cvslot, seg_name):
    p = sync.SyncPool.attach(prefix)
    m, cv = sync.Mutex.attach(p, mslot), sync.CondVar.attach(p, cvslot)
    w = shm.Segment.attach(seg_name).buf.cast("q")
    m.enter()
    w[0] += 1  # waiting
    while not w[1]:
        if cv.timedwait(m, 20, 0):
            m.exit()
            raise TimeoutError
    w[2] += 1  # woken
    m.exit()


@pytest.mark.timeout(60)
def test_a_condvar_broadcast_wakes_every_waiting_process(pool):
    seg = shm.Segment.create(pool.prefix + "flags", 4096)
    w = seg.buf.cast("q")
    m, cv = sync.Mutex(pool), sync.CondVar(pool)
    t = threading.Thread(
        target=run_in_processes, args=(_wait_for_broadcast, pool.prefix, m.slot, cv.slot, seg.name)
    )
    t.start()
    deadline = time.monotonic() + 30
    while w[0] < PROCS:  # every process is waiting (or about to) on the condvar
        assert time.monotonic() < deadline
        time.sleep(0.01)
    m.enter()
    w[1] = 1
    cv.broadcast()
    m.exit()
    t.join(40)
    assert w[2] == PROCS


@pytest.mark.timeout(30)
def test_park_spinning_wakes_on_the_condition_or_the_post(pool):
    me = pool.park_slot()
    done = []

    def later():
        time.sleep(0.2)  # longer than the spin: the waiter has parked by now
        done.append(1)
        pool.unpark(me)  # the poster sets the condition, then always posts

    t = threading.Thread(target=later)
    t.start()
    pool.park_spinning(me, lambda: bool(done))
    t.join(10)
    assert done
    pool.park_spinning(me, lambda: True)  # already true: returns at once
