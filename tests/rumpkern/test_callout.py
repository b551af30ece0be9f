"""The clock and callout(9): per-CPU hardclocks, callouts that fire once, on their
CPU and never early, stop/halt semantics, and many callouts on 8 CPUs (issue 4)."""

from __future__ import annotations

import errno
import struct

import pytest

import rumpmp
from rumpmp.rumpkern.base.arena import current
from rumpmp.rumpkern.base.clock import ticks_in
from rumpmp.rumpkern.intr.callout import callout_stats
from tests.helpers import BOUND_TICKS
from tests.helpers import kwait_for as wait_for


def record_fire(buf):
    """Handler: count the firing and note tick and CPU (words 0, 1, 2 of buf)."""
    from rumpmp.kern import cpu_index, getticks

    n, _, _ = struct.unpack_from("<qqq", buf, 0)
    struct.pack_into("<qqq", buf, 0, n + 1, getticks(), cpu_index())


def fire_once(ticks):
    from rumpmp.kern import (
        callout_active,
        callout_expired,
        callout_init,
        callout_pending,
        callout_reset,
        callout_stop,
        cpu_index,
        getticks,
        kmem_zalloc,
    )

    buf = kmem_zalloc(24)
    c = callout_init(0)
    before = (callout_pending(c), callout_expired(c), callout_active(c))
    t0 = getticks()
    callout_reset(c, ticks, record_fire, buf)
    pending = (callout_pending(c), callout_active(c))
    wait_for(lambda: struct.unpack_from("<q", buf, 0)[0], "the handler to run")
    fired_at = struct.unpack_from("<q", buf, 8)[0]
    wait_for(lambda: getticks() > fired_at + 2 * ticks, "a few more ticks")
    count, tick, cpu = struct.unpack_from("<qqq", buf, 0)
    after = (callout_pending(c), callout_active(c), callout_stop(c), callout_active(c))
    return before, pending, count, tick - t0, cpu == cpu_index(), after


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cpu", [0, 3])
def test_a_callout_fires_once_on_its_cpu_and_never_early(rump_kernel, cpu):
    before, pending, count, delay, same_cpu, after = rump_kernel.run(fire_once, 5, cpu=cpu)
    assert before == (False, False, False)
    assert pending == (True, True)
    assert count == 1 and delay >= 5 and same_cpu
    # Fired: no longer pending, still active; callout_stop reports it had expired.
    assert after == (False, True, True, False)


def stop_before_due():
    from rumpmp.kern import callout_init, callout_reset, callout_stop, getticks, kmem_zalloc

    buf = kmem_zalloc(24)
    c = callout_init(0)
    callout_reset(c, 3, record_fire, buf)
    expired = callout_stop(c)
    due = getticks() + 3
    wait_for(lambda: getticks() > due + 10, "the due tick to pass")
    return expired, struct.unpack_from("<q", buf, 0)[0]


@pytest.mark.timeout(60)
def test_callout_stop_cancels_a_pending_callout(rump_kernel):
    assert rump_kernel.run(stop_before_due) == (False, 0)


def reschedule_self(arg):
    from rumpmp.kern import callout_ack, callout_invoking, callout_schedule, cpu_index

    c, buf = arg
    n = buf[0] + 1
    buf[0] = n
    buf[n] = cpu_index()
    buf[10] = int(callout_invoking(c))
    callout_ack(c)
    if n < 5:
        callout_schedule(c, 1)


def rescheduling():
    from rumpmp.kern import (
        callout_init,
        callout_invoking,
        callout_schedule,
        callout_setfunc,
        cpu_index,
        kmem_zalloc,
    )

    buf = kmem_zalloc(16)
    c = callout_init(0)
    callout_setfunc(c, reschedule_self, (c, buf))
    callout_schedule(c, 1)
    wait_for(lambda: buf[0] == 5, "five firings")
    return set(bytes(buf[1:6])) == {cpu_index()}, buf[10], callout_invoking(c)


@pytest.mark.timeout(60)
def test_a_handler_reschedules_itself(rump_kernel):
    # Each run saw itself invoking and acknowledged it; all ran on the same CPU.
    assert rump_kernel.run(rescheduling, cpu=1) == (True, 1, False)


def handler_needs_mutex(arg):
    from rumpmp.kern import mutex_enter, mutex_exit

    m, buf = arg
    buf[0] = 1  # started
    mutex_enter(m)
    buf[1] = 1  # got the mutex, finished
    mutex_exit(m)


def halt_with_interlock():
    from rumpmp.kern import (
        callout_halt,
        callout_init,
        callout_reset,
        kmem_zalloc,
        mutex_enter,
        mutex_exit,
        mutex_init,
        mutex_owned,
    )

    m = mutex_init()
    buf = kmem_zalloc(2)
    c = callout_init(0)
    mutex_enter(m)
    callout_reset(c, 1, handler_needs_mutex, (m, buf))
    wait_for(lambda: buf[0] == 1, "the handler to start")
    # The handler waits for m: callout_halt must drop it while it waits, or hang.
    expired = callout_halt(c, m)
    result = expired, buf[1], mutex_owned(m)
    mutex_exit(m)
    return result


@pytest.mark.timeout(60)
def test_callout_halt_waits_for_the_handler_and_drops_the_interlock(rump_kernel):
    assert rump_kernel.run(halt_with_interlock, cpu=2) == (True, 1, True)


def bound_callout():
    from rumpmp.kern import callout_bind, callout_init, callout_reset, kmem_zalloc

    buf = kmem_zalloc(24)
    c = callout_init(0)
    callout_bind(c, 3)
    callout_reset(c, 2, record_fire, buf)
    wait_for(lambda: struct.unpack_from("<q", buf, 0)[0], "the bound callout")
    return struct.unpack_from("<q", buf, 16)[0]


@pytest.mark.timeout(60)
def test_a_bound_callout_fires_on_its_cpu(rump_kernel):
    assert rump_kernel.run(bound_callout, cpu=0) == 3


def many_on_this_cpu(arg):
    """Schedule 125 callouts from this CPU; each marks its own byte with cpu+1."""
    import random

    from rumpmp.kern import callout_init, callout_reset, cpu_index

    buf, base = arg
    rng = random.Random(base)
    for i in range(base, base + 125):
        callout_reset(callout_init(0), rng.randint(1, 20), mark_byte, (buf, i, cpu_index()))


def mark_byte(arg):
    from rumpmp.kern import cpu_index

    buf, i, cpu = arg
    assert cpu == cpu_index()  # a kthread exception would panic the kernel
    buf[i] += 1
    buf[1000 + i] = cpu + 1


def thousand_callouts():
    from rumpmp.kern import KTHREAD_MUSTJOIN, PRI_KTHREAD, kmem_zalloc, kthread_create, kthread_join

    buf = kmem_zalloc(2000)
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, many_on_this_cpu, (buf, cpu * 125), "co")
        for cpu in range(8)
    ]
    for lid in lids:
        kthread_join(lid)
    wait_for(lambda: all(bytes(buf[:1000])), "every callout to fire")
    wait_for(lambda: True, "one more tick")
    return bytes(buf[:1000]), bytes(buf[1000:])


@pytest.mark.timeout(120)
def test_a_thousand_callouts_on_eight_cpus_all_fire_once(rump_boot):
    k = rump_boot(8)
    counts, cpus = k.run(thousand_callouts)
    assert counts == b"\x01" * 1000
    assert cpus == bytes(cpu + 1 for cpu in range(8) for _ in range(125))
    fired = [callout_stats(k._arena, cpu)["fired"] for cpu in range(8)]
    assert sum(fired) >= 1000 and all(fired)


def destroy_stopped():
    from rumpmp.kern import callout_destroy, callout_init, callout_reset, callout_stop

    c = callout_init(0)
    callout_reset(c, 100, record_fire, None)
    callout_stop(c)
    callout_destroy(c)


@pytest.mark.timeout(60)
def test_a_stopped_callout_is_destroyed_without_a_trace(rump_kernel):
    before = rump_kernel.kmem_stats()[0]
    rump_kernel.run(destroy_stopped)
    assert rump_kernel.kmem_stats()[0] == before


# -- the clock ----------------------------------------------------------------------


def clock_facts():
    from rumpmp.kern import getboottime, getticks, hz, hztoms, mstohz, nanotime, nanouptime

    t = getticks()
    return hz(), mstohz(1000), hztoms(25), t, nanouptime(), getboottime(), nanotime()


def ticks_now(_a, _b):
    from rumpmp.kern import getticks

    return getticks()


@pytest.mark.timeout(60)
def test_hz_is_set_at_boot_and_ticks_agree_everywhere(rump_boot):
    k = rump_boot(4, hz=50)
    rate, per_second, ms, ticks, up, booted, now = k.run(clock_facts)
    assert (rate, per_second, ms) == (50, 50, 500)
    assert ticks >= 0 and up[0] * 1_000_000_000 + up[1] >= ticks * 20_000_000
    assert booted[0] + up[0] <= now[0] <= booted[0] + up[0] + 1
    # Every CPU's hardclock ticks; the tick count is the same clock everywhere.
    before = ticks_in(k._arena)
    seen = k.xc_broadcast(0, ticks_now)
    after = ticks_in(k._arena)
    assert all(before <= t <= after for t in seen)


@pytest.mark.timeout(60)
def test_every_cpu_runs_a_hardclock(rump_boot):
    k = rump_boot(4)

    def all_ticked(a, b):
        from rumpmp.kern import kpause

        arena = current()
        for _ in range(BOUND_TICKS):
            ticks = [callout_stats(arena, c)["ticks"] for c in range(4)]
            if min(ticks) >= 5:
                return ticks
            kpause("tick", False, 1)
        return ticks

    ticks = k.xc_unicast(0, all_ticked, None, None, 0)
    assert min(ticks) >= 5


@pytest.mark.timeout(30)
@pytest.mark.parametrize("bad", ["0", "x", "5000"])
def test_a_bad_hz_is_refused(monkeypatch, bad):
    monkeypatch.setenv("RUMP_HZ", bad)
    with pytest.raises(OSError) as info:
        rumpmp.boot(1)
    assert info.value.errno == errno.EINVAL
