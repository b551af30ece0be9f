"""workqueue(9): every item runs once, in order, on the enqueuing CPU with
WQ_PERCPU; wait and destroy wait; aiodoned exists at boot (issue 4)."""

from __future__ import annotations

import errno
import os
import pickle
import struct

import pytest

from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys.lwp import L_STATE, NLWP
from tests.helpers import kwait_for as wait_for


def live_lwps(name):
    """Kernel side: how many workers of queue ``name`` (``name`` or ``name/<cpu>``)
    are alive."""
    from rumpmp.rumpkern.base import arena

    t = tables(arena.current())
    return sum(
        1
        for lid in range(1, NLWP + 1)
        if t.w[t.lwp(lid) + L_STATE] and t.lwp_name(lid).split("/")[0] == name
    )


# -- every item once, in order ---------------------------------------------------------


def record_item(wk, buf):
    """Work function: append item ``wk`` (a small int) and the CPU it ran on."""
    from rumpmp.kern import cpu_index

    n = buf[0]
    buf[1 + 2 * n], buf[2 + 2 * n] = wk, cpu_index()
    buf[0] = n + 1


def fifo_single_queue():
    from rumpmp.kern import (
        PRI_KTHREAD,
        WQ_MPSAFE,
        kmem_zalloc,
        workqueue_create,
        workqueue_destroy,
        workqueue_enqueue,
    )

    buf = kmem_zalloc(1 + 2 * 100)
    wq = workqueue_create("fifo", record_item, buf, PRI_KTHREAD, 0, WQ_MPSAFE)
    for i in range(100):
        workqueue_enqueue(wq, i, None)
    workqueue_destroy(wq)  # runs everything queued first
    return buf[0], list(buf[1 : 1 + 2 * 100 : 2])


@pytest.mark.timeout(60)
def test_a_single_queue_runs_every_item_once_in_order(rump_kernel):
    before = rump_kernel.kmem_stats()[0]
    count, order = rump_kernel.run(fifo_single_queue)
    assert count == 100 and order == list(range(100))
    assert rump_kernel.kmem_stats()[0] == before + 1  # only the test's own buffer remains


def count_item(wk, buf):
    buf[wk] += 1


def enqueue_from_here(arg):
    from rumpmp.kern import cpu_index, workqueue_enqueue

    wq, base, percpu = arg
    for i in range(base, base + 100):
        # A per-CPU queue gets items for every CPU, not only this one.
        workqueue_enqueue(wq, i, (i + cpu_index()) % 8 if percpu else None)


def many_enqueuers(flags):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        WQ_PERCPU,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        workqueue_create,
        workqueue_destroy,
    )

    buf = kmem_zalloc(500)
    wq = workqueue_create("many", count_item, buf, PRI_KTHREAD, 0, flags)
    arg = (wq, flags & WQ_PERCPU)
    lids = [
        kthread_create(
            PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, enqueue_from_here, (arg[0], n * 100, arg[1]), "e"
        )
        for n, cpu in enumerate((1, 3, 4, 6, 7))
    ]
    for lid in lids:
        kthread_join(lid)
    workqueue_destroy(wq)
    return bytes(buf), live_lwps("many")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("percpu", [False, True], ids=["single", "percpu"])
def test_500_items_from_five_cpus_all_run_exactly_once(rump_boot, percpu):
    from rumpmp.kern import WQ_MPSAFE, WQ_PERCPU

    k = rump_boot(8)
    counts, workers_left = k.run(many_enqueuers, WQ_MPSAFE | (WQ_PERCPU if percpu else 0))
    assert counts == b"\x01" * 500
    assert workers_left == 0


# -- WQ_PERCPU --------------------------------------------------------------------------


def note_cpu_and_pid(wk, buf):
    from rumpmp.kern import cpu_index

    struct.pack_into("<qq", buf, 16 * wk, cpu_index(), os.getpid())


def enqueue_own_cpu(wq, _):
    from rumpmp.kern import cpu_index, workqueue_enqueue

    workqueue_enqueue(wq, cpu_index(), None)


def percpu_queue(ncpu):
    from rumpmp.kern import (
        PRI_KTHREAD,
        WQ_MPSAFE,
        WQ_PERCPU,
        kmem_zalloc,
        workqueue_create,
        workqueue_destroy,
        xc_broadcast,
        xc_wait,
    )

    buf = kmem_zalloc(16 * ncpu)
    wq = workqueue_create("percpu", note_cpu_and_pid, buf, PRI_KTHREAD, 0, WQ_MPSAFE | WQ_PERCPU)
    # Each CPU enqueues its own index with ci=None: the item must run right there.
    xc_wait(xc_broadcast(0, enqueue_own_cpu, wq, None))
    workqueue_destroy(wq)
    return [struct.unpack_from("<qq", buf, 16 * i) for i in range(ncpu)]


@pytest.mark.timeout(60)
def test_wq_percpu_runs_on_the_enqueuing_cpu(rump_boot):
    k = rump_boot(8)
    seen = k.run(percpu_queue, 8)
    assert seen == [(cpu, pid) for cpu, pid in enumerate(k.cpu_pids())]


def percpu_targets(ncpu):
    """From one lwp, queue 20 items for each CPU (``ci`` given); per-CPU FIFO order."""
    from rumpmp.kern import (
        PRI_KTHREAD,
        WQ_PERCPU,
        kmem_zalloc,
        workqueue_create,
        workqueue_destroy,
        workqueue_enqueue,
    )

    buf = kmem_zalloc(ncpu * (1 + 2 * 20))
    wq = workqueue_create("target", record_on_cpu, (buf, ncpu), PRI_KTHREAD, 0, WQ_PERCPU)
    for i in range(20):
        for cpu in range(ncpu):
            workqueue_enqueue(wq, (cpu, i), cpu)
    workqueue_destroy(wq)
    return [bytes(buf[c * 41 : (c + 1) * 41]) for c in range(ncpu)]


def record_on_cpu(wk, arg):
    """Each worker appends (item, its CPU) to its own slice: no two share a byte."""
    from rumpmp.kern import cpu_index

    buf, _ = arg
    cpu, i = wk
    base = cpu * 41
    n = buf[base]
    buf[base + 1 + 2 * n], buf[base + 2 + 2 * n] = i, cpu_index()
    buf[base] = n + 1


@pytest.mark.timeout(60)
def test_wq_percpu_ci_picks_the_cpu_and_each_cpu_keeps_fifo_order(rump_boot):
    k = rump_boot(8)
    for cpu, raw in enumerate(k.run(percpu_targets, 8)):
        assert raw[0] == 20
        assert list(raw[1::2]) == list(range(20))
        assert set(raw[2::2]) == {cpu}


# -- workqueue_wait ---------------------------------------------------------------------

STARTED, RELEASE, FINISHED, WAITED, SAW = range(5)


def blocking_item(wk, buf):
    """Item 7 blocks until the test releases it; item 8 just finishes."""
    if wk == 7:
        buf[STARTED] = 1
        wait_for(lambda: buf[RELEASE] == 1, "the release")
    buf[FINISHED] += 1


def waiter(arg):
    from rumpmp.kern import workqueue_wait

    wq, wk, buf = arg
    workqueue_wait(wq, wk)
    buf[SAW] = buf[FINISHED]  # how many items had finished when the wait returned
    buf[WAITED] = 1


def wait_for_items(target):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        WQ_MPSAFE,
        cv_has_waiters,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        workqueue_create,
        workqueue_destroy,
        workqueue_enqueue,
    )

    buf = kmem_zalloc(5)
    wq = workqueue_create("slow", blocking_item, buf, PRI_KTHREAD, 0, WQ_MPSAFE)
    workqueue_enqueue(wq, 7, None)
    workqueue_enqueue(wq, 8, None)  # queued behind the running item 7
    wait_for(lambda: buf[STARTED] == 1, "item 7 to start")
    lid = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, None, waiter, (wq, target, buf), "w")
    _, cv = wq.locks[0]
    wait_for(lambda: cv_has_waiters(cv), "the waiter to block")
    blocked = buf[WAITED] == 0  # item 7 cannot finish before the release below
    buf[RELEASE] = 1
    kthread_join(lid)
    saw = buf[SAW]
    workqueue_destroy(wq)
    return blocked, saw


@pytest.mark.timeout(60)
def test_workqueue_wait_waits_for_a_running_item(rump_kernel):
    blocked, saw = rump_kernel.run(wait_for_items, 7)
    assert blocked and saw >= 1


@pytest.mark.timeout(60)
def test_workqueue_wait_waits_for_a_queued_item(rump_kernel):
    blocked, saw = rump_kernel.run(wait_for_items, 8)
    assert blocked and saw == 2


def wait_on_idle_queue():
    from rumpmp.kern import PRI_KTHREAD, workqueue_create, workqueue_destroy, workqueue_wait

    wq = workqueue_create("idle", count_item, None, PRI_KTHREAD, 0, 0)
    workqueue_wait(wq, 42)  # never queued: returns at once
    workqueue_wait(wq, "some channel")
    workqueue_destroy(wq)
    return True


@pytest.mark.timeout(60)
def test_workqueue_wait_for_an_item_not_queued_returns(rump_kernel):
    assert rump_kernel.run(wait_on_idle_queue)


# -- destroy ----------------------------------------------------------------------------


def create_and_destroy(flags, ipl):
    from rumpmp.kern import PRI_KTHREAD, workqueue_create, workqueue_destroy, workqueue_enqueue

    wq = workqueue_create("gone", count_item, bytearray(8), PRI_KTHREAD, ipl, flags)
    workers = live_lwps("gone")
    for i in range(8):
        workqueue_enqueue(wq, i, i % wq.nworkers if wq.nworkers > 1 else None)
    workqueue_destroy(wq)
    return workers, live_lwps("gone")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("percpu", [False, True], ids=["single", "percpu"])
def test_destroy_joins_the_workers_and_frees_everything(rump_boot, percpu):
    from rumpmp.kern import IPL_VM, WQ_PERCPU

    k = rump_boot(8)
    for ipl in (0, IPL_VM):  # IPL_VM: the queue's mutexes spin
        before = k.kmem_stats()[0]
        workers, after = k.run(create_and_destroy, WQ_PERCPU if percpu else 0, ipl)
        assert (workers, after) == ((8 if percpu else 1), 0)
        assert k.kmem_stats()[0] == before


def destroy_from_worker(wk, buf):
    from rumpmp.kern import workqueue_destroy

    try:
        workqueue_destroy(wk)
    except OSError as e:
        buf[0] = e.errno


def destroy_itself():
    from rumpmp.kern import PRI_KTHREAD, kmem_zalloc, workqueue_create, workqueue_destroy
    from rumpmp.kern import workqueue_enqueue as enqueue

    buf = kmem_zalloc(1)
    wq = workqueue_create("self", destroy_from_worker, buf, PRI_KTHREAD, 0, 0)
    enqueue(wq, wq, None)  # the handle itself travels by reference
    workqueue_destroy(wq)
    return buf[0]


@pytest.mark.timeout(60)
def test_a_worker_destroying_its_own_queue_is_edeadlk(rump_kernel):
    assert rump_kernel.run(destroy_itself) == errno.EDEADLK


# -- handles, re-enqueueing ----------------------------------------------------------


def chain_item(wk, buf):
    """Each item queues the next one from inside the worker."""
    from rumpmp.kern import workqueue_enqueue

    wq, n = wk
    buf[n] = 1
    if n < 9:
        workqueue_enqueue(wq, (wq, n + 1), None)


def handle_by_reference():
    from rumpmp.kern import PRI_KTHREAD, kmem_zalloc, workqueue_create, workqueue_destroy
    from rumpmp.kern import workqueue_enqueue as enqueue

    buf = kmem_zalloc(10)
    wq = workqueue_create("chain", chain_item, buf, PRI_KTHREAD, 0, 0)
    same = pickle.loads(pickle.dumps(wq)) is wq  # one handle per process
    size = len(pickle.dumps(wq))
    enqueue(wq, (wq, 0), None)
    wait_for(lambda: bytes(buf) == b"\x01" * 10, "the chain of items")
    workqueue_destroy(wq)
    return same, size


@pytest.mark.timeout(60)
def test_the_handle_pickles_by_reference_and_items_may_requeue(rump_kernel):
    same, size = rump_kernel.run(handle_by_reference)
    assert same and size < 200


# -- errors -----------------------------------------------------------------------------


def bad_calls():
    from rumpmp.kern import (
        PRI_KTHREAD,
        WQ_PERCPU,
        workqueue_create,
        workqueue_destroy,
        workqueue_enqueue,
        workqueue_wait,
    )

    def errno_of(func, *args):
        try:
            func(*args)
        except OSError as e:
            return e.errno
        return 0

    plain = workqueue_create("plain", count_item, None, PRI_KTHREAD, 0, 0)
    percpu = workqueue_create("pcpu", count_item, None, PRI_KTHREAD, 0, WQ_PERCPU)
    codes = [
        errno_of(workqueue_enqueue, plain, 1, 1),  # a CPU for a queue without WQ_PERCPU
        errno_of(workqueue_enqueue, plain, 1, 0),
        errno_of(workqueue_enqueue, percpu, 1, 4),  # no such CPU
        errno_of(workqueue_enqueue, percpu, 1, -1),
        errno_of(workqueue_wait, plain, print),  # an item with no identity
        errno_of(workqueue_create, "x", count_item, None, PRI_KTHREAD, 0, 0x80),
        errno_of(workqueue_create, "x", count_item, None, 1000, 0, 0),
        errno_of(workqueue_create, "x", count_item, None, PRI_KTHREAD, 99, 0),
        errno_of(workqueue_create, "x", "not callable", None, PRI_KTHREAD, 0, 0),
    ]
    workqueue_destroy(plain)
    workqueue_destroy(percpu)
    codes.append(errno_of(workqueue_enqueue, plain, 1, None))  # destroyed
    codes.append(errno_of(workqueue_destroy, plain))
    return codes


@pytest.mark.timeout(60)
def test_bad_arguments_are_einval(rump_kernel):
    before = rump_kernel.kmem_stats()[0]
    assert rump_kernel.run(bad_calls) == [errno.EINVAL] * 11
    assert rump_kernel.kmem_stats()[0] == before


# -- aiodoned ---------------------------------------------------------------------------


class Buf:
    """A stand-in struct buf: aiodoned completes it with b_iodone(bp)."""

    def __init__(self, flag):
        self.flag = flag

    def b_iodone(self, bp):
        bp.flag[1] = 1


def use_aiodoned():
    from rumpmp.kern import aiodoned, kmem_zalloc, workqueue_enqueue

    buf = kmem_zalloc(2)

    def done():
        buf[0] = 1

    wq = aiodoned()
    workqueue_enqueue(wq, done, None)
    bp = Buf(buf)
    workqueue_enqueue(wq, bp, None)
    wait_for(lambda: buf[0] == 1, "the aiodone callback")
    wait_for(lambda: buf[1] == 1, "the buf's b_iodone")
    return wq.name, live_lwps("aiodoned")


@pytest.mark.timeout(60)
def test_aiodoned_runs_completions_from_boot_on(rump_kernel):
    assert rump_kernel.run(use_aiodoned) == ("aiodoned", 1)


def aiodoned_without_threads():
    from rumpmp.kern import WQ_MPSAFE, aiodoned, workqueue_create, workqueue_destroy
    from rumpmp.kern import workqueue_enqueue as enqueue

    try:
        aiodoned()
    except OSError as e:
        missing = e.errno
    wq = workqueue_create("aiodoned", count_item, None, 0, 0, WQ_MPSAFE)  # rump fakes it
    try:
        enqueue(wq, 1, None)
    except OSError as e:
        dead = e.errno
    workqueue_destroy(wq)
    return missing, dead


@pytest.mark.timeout(60)
def test_without_threads_there_is_no_aiodoned(rump_boot):
    k = rump_boot(1, threads=False)
    before = k.kmem_stats()[0]
    assert "aiodoned" not in k.dmesg()  # rump.c does not even try
    assert k.run(aiodoned_without_threads) == (errno.ENXIO, errno.ENXIO)
    assert "aiodoned not functional" in k.dmesg()
    assert k.kmem_stats()[0] == before
