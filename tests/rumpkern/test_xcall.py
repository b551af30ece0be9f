"""xcall(9): broadcasts run once on every CPU, in parallel, in distinct processes;
unicasts hit one CPU; XC_HIGHPRI runs from a softint ahead of ordinary cross-calls;
the host's fast path returns per-CPU results (issue 4)."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import subprocess
import sys
import time

import pytest

from rumpmp import kern
from rumpmp.rumpkern.base.proc import tables
from rumpmp.sys.sched import SPC_NRUN
from tests.helpers import kwait_for as wait_for


def busy_interval(seconds, _):
    """Spin for ``seconds`` of wall time; return (cpu, pid, start, end)."""
    from rumpmp.kern import cpu_index

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pass
    return cpu_index(), os.getpid(), start, time.monotonic()


@pytest.mark.timeout(120)
def test_broadcast_runs_once_on_every_cpu_in_parallel(rump_boot):
    k = rump_boot(8)
    results = k.xc_broadcast(0, busy_interval, 0.3)
    assert [cpu for cpu, *_ in results] == list(range(8))
    assert [pid for _, pid, *_ in results] == k.cpu_pids()
    spans = sorted((start, end) for *_, start, end in results)
    # Parallel: some cross-call started before another had finished.
    assert any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def bump_slot(buf, _):
    from rumpmp.kern import cpu_index

    buf[cpu_index()] += 1


@pytest.mark.timeout(60)
def test_unicast_hits_only_its_cpu(rump_kernel):
    buf = rump_kernel.run(lambda: __import__("rumpmp.kern").kern.kmem_zalloc(4))
    assert rump_kernel.xc_unicast(0, bump_slot, buf, None, 2) is None
    assert bytes(buf) == b"\x00\x00\x01\x00"
    rump_kernel.xc_broadcast(0, bump_slot, buf)
    assert bytes(buf) == b"\x01\x01\x02\x01"


def kernel_broadcast_and_wait(flags):
    from rumpmp.kern import kmem_zalloc, xc_broadcast, xc_wait

    buf = kmem_zalloc(4)
    xc_wait(xc_broadcast(flags, bump_slot, buf, None))
    return bytes(buf)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("high", [False, True])
def test_kernel_side_broadcast_and_xc_wait(rump_kernel, high):
    flags = kern.XC_HIGHPRI if high else 0
    assert rump_kernel.run(kernel_broadcast_and_wait, flags, cpu=1) == b"\x01" * 4


def whoami(_a, _b):
    from hypercalls import thread
    from rumpmp.kern import cpu_index
    from rumpmp.rumpkern.base.arena import current

    arena = current()
    return cpu_index(), tables(arena).lwp_name(thread.curlwp())


@pytest.mark.timeout(60)
def test_highpri_runs_in_the_softint_and_ordinary_ones_in_the_xcall_lwp(rump_kernel):
    assert rump_kernel.xc_unicast(kern.XC_HIGHPRI, whoami, None, None, 3) == (3, "softser/3")
    assert rump_kernel.xc_unicast(0, whoami, None, None, 3) == (3, "xcall/3")


def append_tag(buf, tag):
    n = buf[0]
    buf[1 + n] = tag
    buf[0] = n + 1


def hold_cpu(buf):
    """Keep the CPU (never block) until buf[10] is set."""
    buf[11] = 1
    while not buf[10]:
        pass


def queue_both_behind_a_busy_cpu(buf):
    from rumpmp.kern import XC_HIGHPRI, xc_unicast, xc_wait
    from rumpmp.rumpkern.base.arena import current
    from rumpmp.rumpkern.sched import scheduler

    wait_for(lambda: buf[11], "cpu1 to be held")
    low = xc_unicast(0, append_tag, buf, ord("L"), 1)
    high = xc_unicast(XC_HIGHPRI, append_tag, buf, ord("H"), 1)
    sp = scheduler.spc(current(), 1)
    wait_for(lambda: sp.w[sp.s + SPC_NRUN] >= 2, "both to queue on cpu1")
    buf[10] = 1
    xc_wait(low)
    xc_wait(high)
    return bytes(buf[1:3])


def highpri_first():
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kmem_zalloc, kthread_create, kthread_join

    buf = kmem_zalloc(16)
    holder = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 1, hold_cpu, buf, "holder")
    order = queue_both_behind_a_busy_cpu(buf)
    kthread_join(holder)
    return order


@pytest.mark.timeout(60)
def test_highpri_runs_ahead_of_an_ordinary_cross_call(rump_kernel):
    assert rump_kernel.run(highpri_first, cpu=0) == b"HL"


def fail_on_two(_a, _b):
    from rumpmp.kern import cpu_index

    if cpu_index() == 2:
        raise ValueError("cpu2 says no")
    return cpu_index()


@pytest.mark.timeout(60)
def test_host_cross_calls_raise_the_function_exception(rump_kernel):
    with pytest.raises(ValueError, match="cpu2 says no"):
        rump_kernel.xc_broadcast(0, fail_on_two)
    assert rump_kernel.xc_unicast(0, fail_on_two, None, None, 1) == 1  # and the kernel goes on
    with pytest.raises(OSError):
        rump_kernel.xc_unicast(0, fail_on_two, None, None, 9)


@pytest.mark.timeout(60)
def test_large_arguments_and_results_travel_through_the_heap(rump_kernel):
    before = rump_kernel.kmem_stats()[0]
    big = bytes(range(256)) * 64  # 16 KiB: more than the inline buffers hold
    assert rump_kernel.xc_broadcast(0, lambda a, b: a[::-1], big) == [big[::-1]] * 4
    rump_kernel.xc_unicast(0, lambda a, b: None, None, None, 0)  # frees the last arguments
    assert rump_kernel.kmem_stats()[0] - before <= 2  # cached function blobs


@pytest.mark.timeout(60)
def test_no_threads_means_no_cross_calls(rump_boot):
    k = rump_boot(2, threads=False)
    with pytest.raises(OSError, match="RUMP_THREADS"):
        k.xc_broadcast(0, fail_on_two)
    assert "xcall not functional" in k.dmesg()


LATE_CLASSES = """
import rumpmp

with rumpmp.boot(ncpu=1) as k:
    class Point:  # defined in __main__ after the CPUs started: they cannot import it
        def __init__(self, x):
            self.x = x

    def bump(p, _):
        return Point(p.x + 1)

    print(k.xc_unicast(0, bump, Point(1), None, 0).x, k.run(lambda p: Point(p.x + 2), Point(1)).x)

    class LateError(Exception):
        pass

    def fail():
        raise LateError("late")

    try:
        k.run(fail)
    except LateError:  # the host's own class, not a copy or a stand-in
        print("caught")
"""


@pytest.mark.timeout(60)
def test_arguments_results_and_exceptions_of_classes_made_after_boot(tmp_path):
    script = tmp_path / "late.py"
    script.write_text(LATE_CLASSES)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "3", "caught"]


def issue_many(n):
    from rumpmp.kern import cpu_index, xc_broadcast, xc_unicast, xc_wait

    for i in range(n):
        xc_wait(xc_broadcast(0, bump_slot_noop, None, None))
        xc_wait(xc_unicast(0, bump_slot_noop, None, None, (cpu_index() + i) % 4))
    return n


def bump_slot_noop(_, __):
    return None


@pytest.mark.timeout(120)
def test_cross_calls_issued_from_every_cpu_at_once(rump_boot):
    """Found by the xcall torture type: an lwp waiting for the cross-call state's
    spin lock gave its CPU up, then took the CPU back holding the lock, while that
    CPU's xcall lwp held the CPU waiting for the lock (rump takes spin mutexes
    keeping the CPU, for this reason)."""
    k = rump_boot(4)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(k.run, issue_many, 50, cpu=c, timeout=60) for c in range(4)]
        assert [f.result() for f in runs] == [50] * 4
