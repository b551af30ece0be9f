"""percpu(9): private per-CPU slots in shared memory, foreach, foreach_xcall, and an
exact per-CPU counter under true parallelism (issue 4)."""

from __future__ import annotations

import struct

import pytest


def write_own_slot(pc, _):
    from rumpmp.kern import cpu_index, percpu_getref, percpu_putref

    slot = percpu_getref(pc)
    struct.pack_into("<q", slot, 0, 100 + cpu_index())
    percpu_putref(pc)


def collect(slot, out, cpu):
    out.append((cpu, struct.unpack_from("<q", slot, 0)[0]))


def private_slots():
    from rumpmp.kern import percpu_alloc, percpu_foreach, xc_broadcast, xc_wait

    pc = percpu_alloc(8)
    fresh = []
    percpu_foreach(pc, collect, fresh)
    xc_wait(xc_broadcast(0, write_own_slot, pc, None))
    seen = []
    percpu_foreach(pc, collect, seen)
    return fresh, seen


@pytest.mark.timeout(60)
def test_slots_are_private_per_cpu_and_foreach_sees_all(rump_kernel):
    fresh, seen = rump_kernel.run(private_slots)
    assert fresh == [(cpu, 0) for cpu in range(4)]
    assert seen == [(cpu, 100 + cpu) for cpu in range(4)]


def count_on_my_cpu(arg):
    from rumpmp.kern import percpu_getref, percpu_putref, preempt

    pc, rounds = arg
    for i in range(rounds):
        slot = percpu_getref(pc)
        (v,) = struct.unpack_from("<q", slot, 0)
        struct.pack_into("<q", slot, 0, v + 1)
        percpu_putref(pc)
        if i % 100 == 0:
            preempt()  # let the other lwp of this CPU interleave


def sum_slot(slot, acc, cpu):
    acc.append(struct.unpack_from("<q", slot, 0)[0])


def per_cpu_counter(ncpu, rounds):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        percpu_alloc,
        percpu_foreach,
    )

    pc = percpu_alloc(8)
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, i % ncpu, count_on_my_cpu, (pc, rounds), "c")
        for i in range(2 * ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    per_cpu = []
    percpu_foreach(pc, sum_slot, per_cpu)
    return per_cpu


@pytest.mark.timeout(120)
def test_a_per_cpu_counter_sums_exactly(rump_boot):
    k = rump_boot(8)
    per_cpu = k.run(per_cpu_counter, 8, 2000)
    assert per_cpu == [2 * 2000] * 8


def own_slot_cpu(slot, arg, cpu):
    from rumpmp.kern import cpu_index

    struct.pack_into("<qq", slot, 0, cpu, cpu_index())


def foreach_xcall():
    from rumpmp.kern import percpu_alloc, percpu_foreach, percpu_foreach_xcall

    pc = percpu_alloc(16)
    percpu_foreach_xcall(pc, 0, own_slot_cpu, None)
    seen = []
    percpu_foreach(pc, lambda slot, out, cpu: out.append(struct.unpack("<qq", slot)), seen)
    return seen


@pytest.mark.timeout(60)
def test_foreach_xcall_runs_each_slot_on_its_own_cpu(rump_kernel):
    assert rump_kernel.run(foreach_xcall) == [(cpu, cpu) for cpu in range(4)]


def reuse_is_zeroed():
    from rumpmp.kern import percpu_alloc, percpu_foreach, percpu_free, xc_broadcast, xc_wait

    pc = percpu_alloc(8)
    xc_wait(xc_broadcast(0, write_own_slot, pc, None))
    percpu_free(pc, 8)
    again = percpu_alloc(8)
    seen = []
    percpu_foreach(again, collect, seen)
    return again.offset == pc.offset, [v for _, v in seen]


@pytest.mark.timeout(60)
def test_a_new_slot_starts_zeroed(rump_kernel):
    same_place, values = rump_kernel.run(reuse_is_zeroed)
    assert same_place and values == [0] * 4
