"""softint(9): handlers run on the scheduling CPU once it is released, coalesce,
reach other CPUs with softint_schedule_cpu, and disestablish waits (issue 4)."""

from __future__ import annotations

import os
import struct

import pytest

from tests.helpers import kwait_for as wait_for


def note_run(buf):
    """Handler: count the run, note the CPU and the OS process it ran in."""
    from rumpmp.kern import cpu_index

    n = struct.unpack_from("<q", buf, 0)[0]
    struct.pack_into("<qqq", buf, 0, n + 1, cpu_index(), os.getpid())


def schedule_here():
    from rumpmp.kern import SOFTINT_NET, kmem_zalloc, softint_establish, softint_schedule

    buf = kmem_zalloc(24)
    sih = softint_establish(SOFTINT_NET, note_run, buf)
    for _ in range(10):  # all while this lwp holds the CPU: one run
        softint_schedule(sih)
    held = struct.unpack_from("<q", buf, 0)[0]  # nothing can run until the CPU is released
    wait_for(lambda: struct.unpack_from("<q", buf, 0)[0], "the handler")
    first = struct.unpack_from("<qqq", buf, 0)
    wait_for(lambda: True, "another tick")
    once = struct.unpack_from("<q", buf, 0)[0]
    softint_schedule(sih)
    wait_for(lambda: struct.unpack_from("<q", buf, 0)[0] == 2, "the second run")
    return held, first, once, os.getpid()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cpu", [0, 2])
def test_a_softint_runs_once_on_the_scheduling_cpu_after_release(rump_kernel, cpu):
    held, (count, ran_on, pid), once, mine = rump_kernel.run(schedule_here, cpu=cpu)
    assert held == 0 and count == 1 and once == 1
    assert ran_on == cpu and pid == mine == rump_kernel.cpu_pids()[cpu]


def schedule_elsewhere(target):
    from rumpmp.kern import SOFTINT_BIO, kmem_zalloc, softint_establish, softint_schedule_cpu

    buf = kmem_zalloc(24)
    sih = softint_establish(SOFTINT_BIO, note_run, buf)
    softint_schedule_cpu(sih, target)
    wait_for(lambda: struct.unpack_from("<q", buf, 0)[0], "the handler")
    return struct.unpack_from("<qqq", buf, 0)


@pytest.mark.timeout(60)
def test_softint_schedule_cpu_runs_on_the_other_cpu(rump_kernel):
    count, ran_on, pid = rump_kernel.run(schedule_elsewhere, 3, cpu=0)
    assert (count, ran_on, pid) == (1, 3, rump_kernel.cpu_pids()[3])


def slow_handler(buf):
    from rumpmp.kern import kpause

    buf[0] = 1
    kpause("slow", False, 10)
    buf[1] = 1


def disestablish_while_running():
    from rumpmp.kern import (
        SOFTINT_SERIAL,
        kmem_zalloc,
        softint_disestablish,
        softint_establish,
        softint_schedule_cpu,
    )
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.intr import softint

    w, g = current().w, current().region_word("softint")
    handles = w[g + softint.G_COUNT]
    buf = kmem_zalloc(2)
    sih = softint_establish(SOFTINT_SERIAL, slow_handler, buf)
    softint_schedule_cpu(sih, 1)
    wait_for(lambda: buf[0] == 1, "the handler to start")
    softint_disestablish(sih)
    return buf[1], w[g + softint.G_COUNT] - handles


@pytest.mark.timeout(60)
def test_softint_disestablish_waits_for_a_running_handler(rump_kernel):
    # It returned after the handler finished, and the handle is free again.
    assert rump_kernel.run(disestablish_while_running, cpu=0) == (1, 0)


def cancelled_pending():
    from rumpmp.kern import (
        SOFTINT_CLOCK,
        kmem_zalloc,
        softint_disestablish,
        softint_establish,
        softint_schedule,
    )

    buf = kmem_zalloc(24)
    sih = softint_establish(SOFTINT_CLOCK, note_run, buf)
    softint_schedule(sih)
    softint_disestablish(sih)  # still holding the CPU: the run is cancelled
    wait_for(lambda: True, "a tick")
    return struct.unpack_from("<q", buf, 0)[0]


@pytest.mark.timeout(60)
def test_disestablish_cancels_pending_runs(rump_kernel):
    assert rump_kernel.run(cancelled_pending) == 0
