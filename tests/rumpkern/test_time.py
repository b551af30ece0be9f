"""Timecounters and the time system calls (issue 23): ports of NetBSD's
tests/lib/libc/sys/t_nanosleep.c (nanosleep_basic, nanosleep_err, nanosleep_sig)
and tests/kernel/t_nanosleep.c (the four clock_nanosleep cases, with a shorter
sleep), and the get*/precise timecounter calls."""

from __future__ import annotations

import errno
import signal

import pytest

from rumpmp import kern
from tests.helpers import call_in_process, wait_for

NS = 1_000_000_000


def ts_ns(ts):
    return ts[0] * NS + ts[1]


def nanosleep_basic():
    from rumpmp.kern import CLOCK_MONOTONIC, rump_sys_clock_gettime, rump_sys_nanosleep

    slept = []
    for i in range(1, 10):
        ts1 = rump_sys_clock_gettime(CLOCK_MONOTONIC)
        left = rump_sys_nanosleep((0, i))
        ts2 = rump_sys_clock_gettime(CLOCK_MONOTONIC)
        slept.append((ts_ns(ts2) - ts_ns(ts1) >= i, left))
    return slept


@pytest.mark.timeout(60)
def test_nanosleep_basic(rump_kernel):
    """t_nanosleep.c nanosleep_basic: every sleep lasts at least what was asked."""
    assert rump_kernel.run(nanosleep_basic) == [(True, (0, 0))] * 9


@pytest.mark.timeout(60)
def test_nanosleep_err(rump_kernel):
    """t_nanosleep.c nanosleep_err: a negative time is EINVAL, a bad pointer EFAULT."""
    with pytest.raises(OSError) as e:
        rump_kernel.sys.nanosleep((-1, 1000))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        rump_kernel.sys.nanosleep(None)
    assert e.value.errno == errno.EFAULT
    with pytest.raises(OSError) as e:
        rump_kernel.sys.nanosleep((0, NS))
    assert e.value.errno == errno.EINVAL


def set_model(model):
    kern.rump_boot_setsigmodel(model)


def sleep_ten_seconds():
    from rumpmp.kern import rump_sys_nanosleep

    try:
        rump_sys_nanosleep((10, 0))
    except OSError as e:
        return e.errno, tuple(e.remaining)
    return 0, (0, 0)


@pytest.mark.timeout(60)
def test_nanosleep_sig(rump_kernel):
    """t_nanosleep.c nanosleep_sig: a signal ends the sleep with EINTR and the time
    left unslept."""
    import concurrent.futures

    k = rump_kernel
    k.run(set_model, kern.RUMP_SIGMODEL_RECORD)
    with k.process() as p, concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(k.run, call_in_process, p.pid, sleep_ten_seconds, timeout=30)
        wait_for(sleeping.running, 10, "the sleeper to start")
        k.sys.kill(p.pid, signal.SIGINT)  # asleep or about to be: either way it ends
        err, left = sleeping.result(timeout=30)
    assert err == errno.EINTR
    assert 0 < ts_ns(left) <= 10 * NS


def sleep_and_measure(clock, flags, length_ns):
    from rumpmp.kern import TIMER_ABSTIME, rump_sys_clock_gettime, rump_sys_clock_nanosleep

    before = rump_sys_clock_gettime(clock)
    if flags & TIMER_ABSTIME:
        request = divmod(ts_ns(before) + length_ns, NS)
    else:
        request = divmod(length_ns, NS)
    left = rump_sys_clock_nanosleep(clock, flags, request)
    after = rump_sys_clock_gettime(clock)
    return ts_ns(after) - ts_ns(before), left


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("clock", "flags"),
    [
        pytest.param(kern.CLOCK_MONOTONIC, kern.TIMER_ABSTIME, id="nanosleep_monotonic_absolute"),
        pytest.param(kern.CLOCK_MONOTONIC, kern.TIMER_RELTIME, id="nanosleep_monotonic_relative"),
        pytest.param(kern.CLOCK_REALTIME, kern.TIMER_ABSTIME, id="nanosleep_realtime_absolute"),
        pytest.param(kern.CLOCK_REALTIME, kern.TIMER_RELTIME, id="nanosleep_realtime_relative"),
    ],
)
def test_clock_nanosleep_never_ends_early(rump_kernel, clock, flags):
    """tests/kernel/t_nanosleep.c: clock_nanosleep sleeps at least as long as asked
    (0.3 s here, 4 s upstream), and a relative sleep that ran in full leaves 0."""
    slept, left = rump_kernel.run(sleep_and_measure, clock, flags, 300_000_000)
    assert slept >= 300_000_000
    assert left == (0, 0)


def bad_clock_and_flags():
    from rumpmp.kern import CLOCK_MONOTONIC, rump_sys_clock_gettime, rump_sys_clock_nanosleep

    out = []
    for call in (
        lambda: rump_sys_clock_gettime(7),
        lambda: rump_sys_clock_nanosleep(CLOCK_MONOTONIC, 4, (0, 1)),
    ):
        try:
            call()
        except OSError as e:
            out.append(e.errno)
    return out


@pytest.mark.timeout(60)
def test_bad_clock_or_flags_is_einval(rump_kernel):
    assert rump_kernel.run(bad_clock_and_flags) == [errno.EINVAL, errno.EINVAL]


def timecounter_reads():
    from rumpmp.kern import (
        CLOCK_REALTIME,
        bintime,
        binuptime,
        getbintime,
        getbinuptime,
        getmicrotime,
        getmicrouptime,
        getnanotime,
        getnanouptime,
        hz,
        microtime,
        microuptime,
        nanotime,
        nanouptime,
        rump_sys_clock_getres,
        rump_sys_clock_gettime,
        rump_sys_gettimeofday,
        tc_getfrequency,
        tc_setclock,
    )

    tick = NS // hz()
    up = ts_ns(nanouptime())
    coarse_up = ts_ns(getnanouptime())
    micro_up = microuptime()
    bin_up = binuptime()
    out = {
        "coarse uptime is a tick boundary": coarse_up % tick == 0 and up - coarse_up < 2 * tick,
        "microuptime": 0 <= micro_up[1] < 1_000_000,
        "binuptime frac": 0 <= bin_up[1] < 2**64 and getbinuptime()[1] < 2**64,
        "getmicrouptime": getmicrouptime()[0] == coarse_up // NS,
        "frequency": tc_getfrequency(),
        "res": rump_sys_clock_getres(CLOCK_REALTIME),
    }
    wall = ts_ns(nanotime())
    # (within 2 s: the second-grained ones are truncated, or rounded up, and the
    # calls may straddle a second's boundary)
    out["wall clocks agree"] = all(
        abs(v - wall) < 2 * NS
        for v in (
            ts_ns(rump_sys_clock_gettime(CLOCK_REALTIME)),
            microtime()[0] * NS + microtime()[1] * 1000,
            rump_sys_gettimeofday()[0] * NS,
            ts_ns(getnanotime()),
            getmicrotime()[0] * NS,
            (bintime()[0] + 1) * NS,
            (getbintime()[0] + 1) * NS,
        )
    )
    tc_setclock((1_000_000_000, 0))  # 2001-09-09: the wall clock moves, uptime does not
    out["after tc_setclock"] = nanotime()[0] - 1_000_000_000 < 2, ts_ns(nanouptime()) >= up
    return out


@pytest.mark.timeout(60)
def test_timecounter_calls_agree(rump_kernel):
    out = rump_kernel.run(timecounter_reads)
    assert out == {
        "coarse uptime is a tick boundary": True,
        "microuptime": True,
        "binuptime frac": True,
        "getmicrouptime": True,
        "frequency": NS,
        "res": (0, 1),
        "wall clocks agree": True,
        "after tc_setclock": (True, True),
    }
