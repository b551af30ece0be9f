"""workqueue(9): every item runs once, in order, on the enqueuing CPU with
WQ_PERCPU; wait and destroy wait; aiodoned exists at boot (issue 4)."""

from __future__ import annotations

import errno
import os

import pytest

from tests.test_callout import wait_for


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
def test_a_single_queue_runs_every_item_once_in_order(kernel):
    before = kernel.kmem_stats()[0]
    count, order = kernel.run(fifo_single_queue)
    assert count == 100 and order == list(range(100))
    assert kernel.kmem_stats()[0] == before + 1  # only the test's own buffer remains


def count_item(wk, buf):
    buf[wk] += 1


def enqueue_from_here(arg):
    from rumpmp.kern import workqueue_enqueue

    wq, base = arg
    for i in range(base, base + 100):
        workqueue_enqueue(wq, i, None)


def many_enqueuers():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        WQ_MPSAFE,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        workqueue_create,
        workqueue_destroy,
    )

    buf = kmem_zalloc(500)
    wq = workqueue_create("many", count_item, buf, PRI_KTHREAD, 0, WQ_MPSAFE)
    lids = [
        kthread_create(
            PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu % 8, enqueue_from_here, (wq, cpu * 100), "e"
        )
        for cpu in range(5)
    ]
    for lid in lids:
        kthread_join(lid)
    workqueue_destroy(wq)
    return bytes(buf)


@pytest.mark.timeout(120)
def test_items_from_every_cpu_all_run_exactly_once(boot):
    k = boot(8)
    assert k.run(many_enqueuers) == b"\x01" * 500


def note_cpu_and_pid(wk, buf):
    import struct

    from rumpmp.kern import cpu_index

    struct.pack_into("<qq", buf, 16 * wk, cpu_index(), os.getpid())


def percpu_queue(ncpu):
    import struct

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


def enqueue_own_cpu(wq, _):
    from rumpmp.kern import cpu_index, workqueue_enqueue

    workqueue_enqueue(wq, cpu_index(), None)


@pytest.mark.timeout(60)
def test_wq_percpu_runs_on_the_enqueuing_cpu(kernel):
    seen = kernel.run(percpu_queue, 4)
    assert seen == [(cpu, pid) for cpu, pid in enumerate(kernel.cpu_pids())]


def slow_item(wk, buf):
    from rumpmp.kern import kpause

    buf[0] = 1
    kpause("slow", False, 10)
    buf[1] = 1


def wait_for_running_item():
    from rumpmp.kern import (
        PRI_KTHREAD,
        WQ_MPSAFE,
        kmem_zalloc,
        workqueue_create,
        workqueue_destroy,
        workqueue_enqueue,
        workqueue_wait,
    )

    buf = kmem_zalloc(2)
    wq = workqueue_create("slow", slow_item, buf, PRI_KTHREAD, 0, WQ_MPSAFE)
    workqueue_enqueue(wq, 7, None)
    wait_for(lambda: buf[0] == 1, "the item to start")
    workqueue_wait(wq, 7)
    done = buf[1]
    workqueue_destroy(wq)
    return done


@pytest.mark.timeout(60)
def test_workqueue_wait_waits_for_a_running_item(kernel):
    assert kernel.run(wait_for_running_item) == 1


def bad_enqueue():
    from rumpmp.kern import PRI_KTHREAD, workqueue_create, workqueue_destroy, workqueue_enqueue

    wq = workqueue_create("plain", count_item, None, PRI_KTHREAD, 0, 0)
    with pytest.raises(OSError) as info:
        workqueue_enqueue(wq, 1, 1)
    workqueue_destroy(wq)
    return info.value.errno


@pytest.mark.timeout(60)
def test_a_cpu_for_a_plain_queue_is_einval(kernel):
    assert kernel.run(bad_enqueue) == errno.EINVAL


def use_aiodoned():
    from rumpmp.kern import aiodoned, kmem_zalloc, workqueue_enqueue

    buf = kmem_zalloc(1)

    def done():
        buf[0] = 1

    workqueue_enqueue(aiodoned(), done, None)
    wait_for(lambda: buf[0] == 1, "the aiodone callback")
    return True


@pytest.mark.timeout(60)
def test_aiodoned_runs_completions_from_boot_on(kernel):
    assert kernel.run(use_aiodoned)
