"""vmem(9): allocation with constraints, fits, sleeping and freeing across CPUs
(issue 23; the cases follow subr_vmem.c's own self-test: alloc, xalloc with align,
phase, nocross, min/max, and free in any order)."""

from __future__ import annotations

import errno

import pytest


def constraints():
    from rumpmp.kern import (
        VM_BESTFIT,
        VM_INSTANTFIT,
        VM_NOSLEEP,
        VM_SLEEP,
        VMEM_ALLOC,
        VMEM_FREE,
        vmem_add,
        vmem_alloc,
        vmem_create,
        vmem_destroy,
        vmem_free,
        vmem_size,
        vmem_xalloc,
        vmem_xfree,
    )

    vm = vmem_create("test", 0x1000, 0x1000, 0x10)
    got = {}
    got["alloc"] = vmem_alloc(vm, 0x20, VM_SLEEP | VM_INSTANTFIT)
    got["rounded to quantum"] = vmem_alloc(vm, 1, VM_SLEEP | VM_INSTANTFIT)
    got["align"] = vmem_xalloc(vm, 0x10, 0x100, 0, 0, 0, 2**62, VM_SLEEP | VM_INSTANTFIT)
    got["phase"] = vmem_xalloc(vm, 0x10, 0x100, 0x30, 0, 0, 2**62, VM_SLEEP | VM_INSTANTFIT)
    got["nocross"] = vmem_xalloc(vm, 0x40, 0, 0, 0x100, 0x10F0, 2**62, VM_SLEEP | VM_INSTANTFIT)
    got["min/max"] = vmem_xalloc(vm, 0x10, 0, 0, 0, 0x1800, 0x1900, VM_SLEEP | VM_INSTANTFIT)
    try:
        vmem_xalloc(vm, 0x200, 0, 0, 0, 0x1800, 0x1900, VM_NOSLEEP | VM_INSTANTFIT)
    except OSError as e:
        got["too big for the range"] = e.errno
    # Best fit: a 0x30 hole and a 0x10 hole; a 0x10 request goes to the smaller.
    vmem_add(vm, 0x4000, 0x30)
    vmem_add(vm, 0x5000, 0x10)
    got["bestfit"] = vmem_alloc(vm, 0x10, VM_NOSLEEP | VM_BESTFIT)
    got["sizes"] = vmem_size(vm, VMEM_ALLOC), vmem_size(vm, VMEM_FREE)
    for addr, size in ((got["alloc"], 0x20), (got["rounded to quantum"], 1)):
        vmem_free(vm, addr, size)
    vmem_xfree(vm, got["align"], 0x10)
    got["reused after free"] = vmem_alloc(vm, 0x30, VM_NOSLEEP | VM_INSTANTFIT)
    vmem_destroy(vm)
    return got


@pytest.mark.timeout(60)
def test_vmem_constraints_and_fits(rump_kernel):
    got = rump_kernel.run(constraints)
    assert got["alloc"] == 0x1000
    assert got["rounded to quantum"] == 0x1020
    assert got["align"] == 0x1100
    assert got["phase"] == 0x1030
    nc = got["nocross"]
    assert nc >= 0x10F0 and nc // 0x100 == (nc + 0x3F) // 0x100
    assert got["min/max"] == 0x1800
    assert got["too big for the range"] == errno.ENOMEM
    assert got["bestfit"] == 0x5000
    assert got["sizes"] == (0xB0, 0x1000 + 0x40 - 0xB0)
    assert got["reused after free"] == 0x1000  # the first two frees merged again


def ids(arg):
    from rumpmp.kern import VM_INSTANTFIT, VM_SLEEP, vmem_alloc, vmem_free

    vm, rounds, _ = arg
    mine = []
    for i in range(rounds):
        mine.append(vmem_alloc(vm, 1, VM_SLEEP | VM_INSTANTFIT))
        if len(mine) == 4 or i == rounds - 1:
            out_ids = mine[:]
            for a in mine:
                vmem_free(vm, a, 1)
            mine.clear()
            assert len(set(out_ids)) == len(out_ids)


def many_cpus_share_an_arena(ncpu):
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        VMEM_ALLOC,
        VMEM_FREE,
        kthread_create,
        kthread_join,
        vmem_create,
        vmem_destroy,
        vmem_size,
    )

    # 16 identifiers for 2 * ncpu lwps each holding up to 4: VM_SLEEP must wait.
    vm = vmem_create("ids", 1, 16, 1)
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, i % ncpu, ids, (vm, 100, None), "v")
        for i in range(2 * ncpu)
    ]
    for lid in lids:
        kthread_join(lid)
    sizes = vmem_size(vm, VMEM_ALLOC), vmem_size(vm, VMEM_FREE)
    vmem_destroy(vm)
    return sizes


@pytest.mark.timeout(120)
def test_vm_sleep_waits_and_every_cpu_shares_the_arena(rump_boot):
    k = rump_boot(8)
    assert k.run(many_cpus_share_an_arena, 8) == (0, 16)


def bad_free():
    from rumpmp.kern import vmem_alloc, vmem_create, vmem_free

    vm = vmem_create("bad", 0, 100, 1)
    a = vmem_alloc(vm, 10)
    vmem_free(vm, a, 11)


@pytest.mark.timeout(60)
def test_freeing_with_the_wrong_size_panics(rump_boot):
    from rumpmp import RumpPanic

    k = rump_boot(2)
    with pytest.raises(RumpPanic, match="was not allocated"):
        k.run(bad_free)


def bad_args():
    from rumpmp.kern import VM_NOSLEEP, VM_SLEEP, vmem_alloc, vmem_create

    out = []
    vm = vmem_create("args", 0, 100, 1)
    for call in (
        lambda: vmem_create("q", 0, 10, 3),
        lambda: vmem_alloc(vm, 1, VM_SLEEP | VM_NOSLEEP),
        lambda: vmem_alloc(vm, "1"),
        lambda: vmem_create("s", 0, 10, 1, None, None, vm),
    ):
        try:
            call()
        except TypeError as e:
            out.append(str(e).split(":")[1].split()[0])
        except OSError as e:
            out.append(e.errno)
    return out


@pytest.mark.timeout(60)
def test_bad_arguments(rump_kernel):
    assert rump_kernel.run(bad_args) == [errno.EINVAL, errno.EINVAL, "size", errno.EOPNOTSUPP]
