"""poll, pollts, select and kevent (issue 14): readiness, timeouts, and wake-ups
raced from other CPUs, none lost.  Ports of NetBSD's tests/lib/libc/sys/t_poll.c,
t_select.c and tests/kernel/kqueue (read/t_pipe, read/t_file, write/t_pipe,
t_timer) where they map."""

from __future__ import annotations

import errno
import time

import pytest

from rumpmp.kern import (
    EV_ADD,
    EV_CLEAR,
    EV_DELETE,
    EV_DISABLE,
    EV_ENABLE,
    EV_EOF,
    EV_ERROR,
    EV_ONESHOT,
    EVFILT_READ,
    EVFILT_TIMER,
    EVFILT_WRITE,
    O_CREAT,
    O_RDWR,
    PIPE_BUF,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
)
from tests.helpers import errno_of

pytestmark = pytest.mark.timeout(120)


def test_poll_basic(rump_kernel):
    """t_poll:poll_basic: nothing to read times out; data makes the read end ready;
    the write end is ready while there is room; a closed descriptor is POLLNVAL."""
    s = rump_kernel.sys
    r, w = s.pipe()
    start = time.monotonic()
    assert s.poll([(r, POLLIN)], 50) == []
    assert time.monotonic() - start >= 0.045
    assert s.poll([(w, POLLOUT)], 0) == [(w, POLLOUT)]
    s.write(w, b"x")
    assert s.poll([(r, POLLIN), (w, POLLOUT)], -1) == [(r, POLLIN), (w, POLLOUT)]
    assert s.poll([(99, POLLIN)], 0) == [(99, POLLNVAL)]
    s.close(w)
    assert s.poll([(r, POLLIN)], 0) == [(r, POLLIN | POLLHUP)]


def test_pollts_and_select_timeouts(rump_kernel):
    """t_poll:pollts_basic, t_select:select_timeout."""
    s = rump_kernel.sys
    r, w = s.pipe()
    start = time.monotonic()
    assert s.pollts([(r, POLLIN)], 0.05) == []
    assert s.select([r], [], [], 0.05) == ([], [], [])
    assert time.monotonic() - start >= 0.09
    assert s.select([r], [w], [], 0) == ([], [w], [])
    s.write(w, b"x")
    assert s.select([r], [], [], None) == ([r], [], [])
    assert errno_of(s.select, [42], [], [], 0) == errno.EBADF
    assert errno_of(s.pollts, [(r, POLLIN)], -1.0) == errno.EINVAL


def test_files_are_always_ready(rump_kernel):
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    assert s.poll([(fd, POLLIN | POLLOUT)], 0) == [(fd, POLLIN | POLLOUT)]


def _late_writer(arg):
    from rumpmp.kern import kpause, rump_sys_write

    wfd, ticks = arg
    kpause("late", False, ticks)
    rump_sys_write(wfd, b"!")


def poll_woken_from_other_cpu(how):
    """t_poll:poll_3way in spirit: a waiter blocks, a kthread on another CPU writes
    a little later; the waiter wakes with the data."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        rump_sys_kevent,
        rump_sys_kqueue,
        rump_sys_pipe,
        rump_sys_poll,
        rump_sys_select,
    )

    r, w = rump_sys_pipe()
    kq = rump_sys_kqueue()
    rump_sys_kevent(kq, [(r, EVFILT_READ, EV_ADD, 0, 0, "r")], 0, 0)
    lid = kthread_create(
        PRI_KTHREAD, KTHREAD_MUSTJOIN | KTHREAD_MPSAFE, 1, _late_writer, (w, 5), "late"
    )
    if how == "poll":
        got = rump_sys_poll([(r, POLLIN)], 10_000)
    elif how == "select":
        got = rump_sys_select([r], [], [], 10)
    else:
        got = rump_sys_kevent(kq, None, 4, 10)
    kthread_join(lid)
    return got


@pytest.mark.parametrize("how", ["poll", "select", "kevent"])
def test_a_waiter_is_woken_by_a_write_on_another_cpu(rump_kernel, how):
    got = rump_kernel.run(poll_woken_from_other_cpu, how, cpu=0)
    assert got in ([(3, POLLIN)], [(0, POLLIN)], ([0], [], []), [(0, EVFILT_READ, 0, 0, 1, "r")])


def _racer(arg):
    from rumpmp.kern import rump_sys_read, rump_sys_write

    go, data_w, tries = arg
    for _ in range(tries):
        rump_sys_read(go, 1)
        rump_sys_write(data_w, b"d")


def race_wakeups(how, tries):
    """Each try: this lwp (CPU 0) tells a kthread on CPU 3 to write, then waits at
    once with poll/kevent; the write lands while the wait is being set up, in its
    scan or as it goes to sleep.  A lost wake-up sleeps to the wait's 5 s bound (and
    then finds the data): a wait that long is counted lost."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        nanouptime,
        rump_sys_kevent,
        rump_sys_kqueue,
        rump_sys_pipe,
        rump_sys_poll,
        rump_sys_read,
        rump_sys_write,
    )

    go_r, go_w = rump_sys_pipe()
    data_r, data_w = rump_sys_pipe()
    kq = rump_sys_kqueue()
    rump_sys_kevent(kq, [(data_r, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, None)], 0, 0)
    lid = kthread_create(
        PRI_KTHREAD, KTHREAD_MUSTJOIN | KTHREAD_MPSAFE, 3, _racer, (go_r, data_w, tries), "racer"
    )
    lost = 0
    for _ in range(tries):
        rump_sys_write(go_w, b"g")
        start = nanouptime()
        if how == "poll":
            ready = rump_sys_poll([(data_r, POLLIN)], 5_000)
        else:
            ready = rump_sys_kevent(kq, None, 1, 5)
        waited = (nanouptime()[0] - start[0]) + (nanouptime()[1] - start[1]) / 1e9
        lost += not ready or waited > 2.5
        rump_sys_read(data_r, 1)
    kthread_join(lid)
    return lost


@pytest.mark.rump(ncpu=4)
@pytest.mark.parametrize("how", ["poll", "kevent"])
def test_no_wakeup_is_lost_in_10000_raced_tries(rump_kernel, how):
    assert rump_kernel.run(race_wakeups, how, 10_000, cpu=0, timeout=100) == 0


# -- kqueue ------------------------------------------------------------------------------


def test_kqueue_read_write_filters_on_a_pipe(rump_kernel):
    """kqueue read/t_pipe and write/t_pipe: EVFILT_READ reports the bytes to read,
    EVFILT_WRITE the room, EV_EOF once the other end has gone."""
    s = rump_kernel.sys
    r, w = s.pipe()
    kq = s.kqueue()
    assert (
        s.kevent(kq, [(r, EVFILT_READ, EV_ADD, 0, 0, 1), (w, EVFILT_WRITE, EV_ADD, 0, 0, 2)], 0, 0)
        == []
    )
    assert s.kevent(kq, None, 4, 0) == [(w, EVFILT_WRITE, 0, 0, 65536, 2)]
    s.write(w, b"hello")
    events = sorted(s.kevent(kq, None, 4, 0), key=lambda e: e[1])
    assert events == [(r, EVFILT_READ, 0, 0, 5, 1), (w, EVFILT_WRITE, 0, 0, 65531, 2)]
    s.close(r)
    (ev,) = s.kevent(kq, None, 4, 0)
    assert ev[:2] == (w, EVFILT_WRITE) and ev[2] & EV_EOF  # the knote on r went with it


def test_kqueue_read_on_a_file(rump_kernel):
    """kqueue read/t_file: the bytes past the file's offset; a write wakes a waiter."""
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    kq = s.kqueue()
    s.kevent(kq, [(fd, EVFILT_READ, EV_ADD, 0, 0, None)], 0, 0)
    assert s.kevent(kq, None, 1, 0.02) == []
    s.pwrite(fd, b"x" * 10, 0)
    assert s.kevent(kq, None, 1, 0) == [(fd, EVFILT_READ, 0, 0, 10, None)]


def test_kqueue_clear_oneshot_enable_disable_delete(rump_kernel):
    s = rump_kernel.sys
    r, w = s.pipe()
    kq = s.kqueue()
    s.write(w, b"x")
    s.kevent(kq, [(r, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, None)], 0, 0)
    assert len(s.kevent(kq, None, 1, 0)) == 1
    assert s.kevent(kq, None, 1, 0) == []  # EV_CLEAR: reported once per change
    s.write(w, b"y")
    assert s.kevent(kq, None, 1, 0)[0][4] == 2
    s.kevent(kq, [(r, EVFILT_READ, EV_DISABLE, 0, 0, None)], 0, 0)
    s.write(w, b"z")
    assert s.kevent(kq, None, 1, 0) == []
    s.kevent(kq, [(r, EVFILT_READ, EV_ENABLE, 0, 0, None)], 0, 0)
    assert s.kevent(kq, None, 1, 0)[0][4] == 3
    s.kevent(kq, [(r, EVFILT_READ, EV_DELETE, 0, 0, None)], 0, 0)
    assert s.kevent(kq, None, 1, 0) == []
    s.kevent(kq, [(r, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, None)], 0, 0)
    assert len(s.kevent(kq, None, 1, 0)) == 1
    assert s.kevent(kq, None, 1, 0) == []  # EV_ONESHOT: deleted once reported
    # errors: EV_ERROR events if there is room, else the call fails
    bad = [(r, EVFILT_READ, EV_DELETE, 0, 0, None), (77, EVFILT_READ, EV_ADD, 0, 0, None)]
    assert s.kevent(kq, bad, 4, 0) == [
        (r, EVFILT_READ, EV_ERROR, 0, errno.ENOENT, None),
        (77, EVFILT_READ, EV_ERROR, 0, errno.EBADF, None),
    ]
    assert errno_of(s.kevent, kq, bad, 0, 0) == errno.ENOENT
    assert errno_of(s.kevent, r, None, 1, 0) == errno.EBADF


def test_kqueue_timer(rump_kernel):
    """kqueue t_timer: EVFILT_TIMER fires every ``data`` ms; data counts expirations."""
    s = rump_kernel.sys
    kq = s.kqueue()
    s.kevent(kq, [(1, EVFILT_TIMER, EV_ADD, 0, 30, "t")], 0, 0)
    start = time.monotonic()
    (ev,) = s.kevent(kq, None, 1, 5)
    assert ev[:2] == (1, EVFILT_TIMER) and ev[4] >= 1 and ev[5] == "t"
    assert time.monotonic() - start >= 0.025
    time.sleep(0.1)  # not a synchronisation: three periods pass, then one event counts them
    (ev,) = s.kevent(kq, None, 1, 5)
    assert ev[4] >= 3
    s.kevent(kq, [(2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 10, None)], 0, 0)
    s.kevent(kq, [(1, EVFILT_TIMER, EV_DELETE, 0, 0, None)], 0, 0)
    assert [e[0] for e in s.kevent(kq, None, 2, 5)] == [2]
    assert s.kevent(kq, None, 2, 0.05) == []


def test_write_filter_waits_for_pipe_buf_of_room(rump_kernel):
    s = rump_kernel.sys
    r, w = s.pipe()
    s.write(w, b"x" * (65536 - PIPE_BUF + 1))
    assert s.poll([(w, POLLOUT)], 0) == []
    s.read(r, 1)
    assert s.poll([(w, POLLOUT)], 0) == [(w, POLLOUT)]
