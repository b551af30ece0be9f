"""lwp-specific data (issue 13): keys for every CPU, a value per lwp, destructors run
when the lwp ends, values that follow an lwp context from CPU to CPU."""

from __future__ import annotations

import errno

import pytest

from rumpmp import kern
from tests.helpers import kwait_for


def note_destroyed(value):
    buf, n = value
    buf[n] = 1


def per_lwp_values_and_destructors():
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        lwp_getspecific,
        lwp_setspecific,
        lwp_specific_key_create,
        lwp_specific_key_delete,
    )

    key = lwp_specific_key_create(note_destroyed)
    plain = lwp_specific_key_create()
    destroyed = kmem_zalloc(4)
    seen = kmem_zalloc(4)

    def body(n):
        assert lwp_getspecific(key) is None  # a new lwp starts with none
        lwp_setspecific(key, (destroyed, n))
        lwp_setspecific(plain, f"thread {n}")
        seen[n] = lwp_getspecific(plain) == f"thread {n}"

    lids = [
        kthread_create(0, KTHREAD_MPSAFE | KTHREAD_MUSTJOIN, n % 2, body, n, "spec")
        for n in range(3)
    ]
    for lid in lids:
        kthread_join(lid)
    kwait_for(lambda: bytes(destroyed[:3]) == b"\1\1\1", "the destructors")
    lwp_setspecific(plain, "mine")
    mine = lwp_getspecific(plain)
    lwp_setspecific(plain, None)
    out = (bytes(seen[:3]), mine, lwp_getspecific(plain))
    lwp_specific_key_delete(key)
    lwp_specific_key_delete(plain)
    return out


def test_values_are_per_lwp_and_destructors_run_at_its_end(rump_kernel):
    assert rump_kernel.run(per_lwp_values_and_destructors) == (b"\1\1\1", "mine", None)


def set_in_context(key):
    from rumpmp.kern import (
        lwp_setspecific,
        rump_lwproc_curlwp,
        rump_lwproc_newlwp,
        rump_lwproc_switch,
        rump_sys_getpid,
    )

    rump_lwproc_newlwp(rump_sys_getpid())
    lwp_setspecific(key, {"set on": kern.cpu_index()})
    context = rump_lwproc_curlwp()
    rump_lwproc_switch(None)
    return context


def read_in_context(context, key):
    from rumpmp.kern import lwp_getspecific, rump_lwproc_releaselwp, rump_lwproc_switch

    rump_lwproc_switch(context)
    value = lwp_getspecific(key)
    rump_lwproc_releaselwp()
    return value


def test_an_lwp_context_carries_its_values_to_another_cpu(rump_kernel):
    k = rump_kernel
    key = k.run(kern.lwp_specific_key_create)
    context = k.run(set_in_context, key, cpu=0)
    assert k.run(read_in_context, context, key, cpu=3) == {"set on": 0}


def too_many_keys():
    from rumpmp.kern import lwp_specific_key_create, lwp_specific_key_delete

    made = []
    try:
        while True:
            made.append(lwp_specific_key_create())
    except OSError as e:
        return len(made), e.errno
    finally:
        for key in made:
            lwp_specific_key_delete(key)


def test_keys_run_out_with_eagain_and_bad_keys_are_einval(rump_kernel):
    n, err = rump_kernel.run(too_many_keys)
    assert n == 32 and err == errno.EAGAIN
    with pytest.raises(OSError) as info:
        rump_kernel.run(kern.lwp_getspecific, 99)
    assert info.value.errno == errno.EINVAL
