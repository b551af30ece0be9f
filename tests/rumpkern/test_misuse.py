"""Misuse that panics the kernel, whatever the subsystem: each case names the call
that must panic and the message it must say.  (Lock misuse has its own table, with
the lwp named, in test_locks.py; kmem's is in test_kmem.py.)"""

from __future__ import annotations

import pytest

import rumpmp


def destroy_pending():
    from rumpmp.kern import callout_destroy, callout_init, callout_reset

    c = callout_init(0)
    callout_reset(c, 100, print, None)
    callout_destroy(c)


def sleep_with_ref():
    from rumpmp.kern import kpause, percpu_alloc, percpu_getref

    pc = percpu_alloc(8)
    percpu_getref(pc)
    kpause("oops", False, 1)


def double_free():
    from rumpmp.kern import percpu_alloc, percpu_free

    pc = percpu_alloc(8)
    percpu_free(pc, 8)
    percpu_free(pc, 8)


def detach_twice():
    from rumpmp.kern import EVCNT_TYPE_MISC, evcnt_attach_dynamic, evcnt_detach

    ev = evcnt_attach_dynamic(EVCNT_TYPE_MISC, None, "x", "y")
    evcnt_detach(ev)
    evcnt_detach(ev)


def release_without_context():
    from rumpmp.kern import rump_lwproc_releaselwp

    rump_lwproc_releaselwp()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "misuse, message",
    [
        (destroy_pending, "callout_destroy: .* is pending"),  # under LOCKDEBUG
        (sleep_with_ref, "sleeping with a percpu reference held"),
        (double_free, "percpu_free"),
        (detach_twice, "evcnt_detach"),
        (release_without_context, "no lwp context to release"),
    ],
)
def test_misuse_panics_the_kernel_with_a_clear_message(rump_boot, misuse, message):
    k = rump_boot(2)
    with pytest.raises(rumpmp.RumpPanic, match=message):
        k.run(misuse, timeout=30)
