"""evcnt(9): counters attached, counted per CPU without a lock, summed on read; the
kernel's own counters; rump_printevcnts and ``boot --evcnt`` (issue 4)."""

from __future__ import annotations

import errno

import pytest

from rumpmp.rumpkern.base import evcnt
from rumpmp.rumpkern.base.arena import current


def count_here(arg):
    from rumpmp.kern import evcnt_inc

    ev, n = arg
    for _ in range(n):
        evcnt_inc(ev)


def parallel_counting(ncpu, rounds):
    from rumpmp.kern import (
        EVCNT_TYPE_MISC,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        evcnt_attach_dynamic,
        kthread_create,
        kthread_join,
    )

    ev = evcnt_attach_dynamic(EVCNT_TYPE_MISC, None, "test", "bumps")
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, count_here, (ev, rounds), "ev")
        for cpu in range(ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    arena = current()
    slots = [arena.w[evcnt.count_word(arena, cpu, ev.index)] for cpu in range(ncpu)]
    return ev.ev_count, slots


@pytest.mark.timeout(120)
def test_counting_on_every_cpu_sums_exactly_in_private_slots(rump_boot):
    k = rump_boot(8)
    total, slots = k.run(parallel_counting, 8, 2000)
    assert total == 8 * 2000 and slots == [2000] * 8
    assert ("test", "bumps", 16000) in k.evcnts()


def attach_detach():
    from rumpmp.kern import (
        EVCNT_TYPE_INTR,
        evcnt_attach_dynamic,
        evcnt_detach,
        evcnt_inc,
        rump_printevcnts,
    )

    parent = evcnt_attach_dynamic(EVCNT_TYPE_INTR, None, "dev", "intr")
    child = evcnt_attach_dynamic(EVCNT_TYPE_INTR, parent, "dev", "intr0")
    evcnt_inc(child, 5)
    facts = [child.ev_parent.index == parent.index, child.ev_type, child.ev_count]
    rump_printevcnts()
    evcnt_detach(child)
    again = evcnt_attach_dynamic(EVCNT_TYPE_INTR, None, "dev", "reused")
    facts.append((again.index == child.index, again.ev_count))
    return facts


@pytest.mark.timeout(60)
def test_attach_parent_detach_and_reuse(rump_kernel):
    assert rump_kernel.run(attach_detach) == [True, evcnt.EVCNT_TYPE_INTR, 5, (True, 0)]
    assert "dev / intr0: 5" in rump_kernel.dmesg()


def fill_table():
    from rumpmp.kern import EVCNT_TYPE_MISC, evcnt_attach_dynamic

    with pytest.raises(OSError) as info:
        for i in range(evcnt.NEVCNT + 1):
            evcnt_attach_dynamic(EVCNT_TYPE_MISC, None, "fill", str(i))
    return info.value.errno


@pytest.mark.timeout(60)
def test_a_full_table_is_enospc(rump_kernel):
    assert rump_kernel.run(fill_table) == errno.ENOSPC


@pytest.mark.timeout(60)
def test_the_kernel_counts_its_own_events(rump_kernel):
    rump_kernel.xc_broadcast(0, lambda a, b: None)
    rump_kernel.xc_unicast(0, lambda a, b: None, None, None, 1)
    counts = {f"{g}/{n}": c for g, n, c in rump_kernel.evcnts()}
    assert counts["xcall/broadcast"] == 4 and counts["xcall/unicast"] == 1
    assert counts["sched/started"] >= 4 and counts["sched/fast"] >= 4
    assert set(counts) >= {f"{g}/{n}" for g, n in evcnt.KERNEL_COUNTERS}
