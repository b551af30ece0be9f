"""Ports of NetBSD's tests/kernel/kqueue cases that rumpmp's kqueue serves as they
are (issue 23): read/t_pipe, write/t_pipe, read/t_file, t_scan; each test is named
after its upstream case.  The writers and readers run as kernel lwps on different
CPUs of a kernel with more CPUs than cores."""

from __future__ import annotations

import contextlib
import errno

import pytest

from rumpmp.kern import EV_ADD, EV_ENABLE, EV_EOF, EV_ERROR, EVFILT_READ, EVFILT_WRITE


def test_read_pipe(rump_kernel):
    """read/t_pipe.c pipe: EVFILT_READ reports the bytes written; a read takes them."""
    s = rump_kernel.sys
    r, w = s.pipe()
    kq = s.kqueue()
    s.kevent(kq, [(r, EVFILT_READ, EV_ADD | EV_ENABLE, 0, 0, None)], 0, None)
    s.write(w, b"foo")
    ((ident, filt, _flags, _fflags, data, _udata),) = s.kevent(kq, None, 1, None)
    assert (ident, filt, data) == (r, EVFILT_READ, 3)
    assert s.read(r, data) == b"foo"


@pytest.mark.parametrize(
    ("end", "filt"), [(1, EVFILT_READ), (0, EVFILT_WRITE)], ids=["read", "write"]
)
def test_pipe_wrong_end(rump_kernel, end, filt):
    """read/t_pipe.c and write/t_pipe.c pipe_wrong_end: EVFILT_READ on the write end
    (EVFILT_WRITE on the read end) never triggers, and kevent does not fail."""
    s = rump_kernel.sys
    fds = s.pipe()
    kq = s.kqueue()
    s.kevent(kq, [(fds[end], filt, EV_ADD | EV_ENABLE, 0, 0, None)], 0, None)
    s.write(fds[1], b"foo")
    assert s.kevent(kq, None, 1, 0) == []


def test_write_pipe1(rump_kernel):
    """write/t_pipe.c pipe1: EVFILT_WRITE on a pipe whose reader has gone."""
    s = rump_kernel.sys
    r, w = s.pipe()
    kq = s.kqueue()
    s.close(r)
    s.kevent(kq, [(w, EVFILT_WRITE, EV_ADD | EV_ENABLE, 0, 0, None)], 0, None)
    ((ident, filt, flags, _fflags, data, udata),) = s.kevent(kq, None, 1, 5)
    assert (ident, filt, data, udata) == (w, EVFILT_WRITE, 0, None)
    assert flags & EV_EOF


def child_reader(arg):
    from rumpmp.kern import rump_sys_read

    r, got = arg
    data = rump_sys_read(r, 128)
    got[: len(data)] = data


def pipe2():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        rump_sys_close,
        rump_sys_kevent,
        rump_sys_kqueue,
        rump_sys_pipe,
        rump_sys_write,
    )

    r, w = rump_sys_pipe()
    kq = rump_sys_kqueue()
    rump_sys_kevent(kq, [(w, EVFILT_WRITE, EV_ADD | EV_ENABLE, 0, 0, None)], 0, None)
    got = kmem_zalloc(8)
    reader = kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, 1, child_reader, (r, got), "reader")
    (event,) = rump_sys_kevent(kq, None, 1, None)
    n = rump_sys_write(w, b"foo")
    rump_sys_close(w)
    kthread_join(reader)
    return event[:2], n, bytes(got).rstrip(b"\0")


def test_write_pipe2(rump_boot):
    """write/t_pipe.c pipe2: EVFILT_WRITE is ready while a reader on another CPU
    waits; the write reaches it (the upstream child process is a kthread here)."""
    k = rump_boot(4)
    ident_filter, n, read = k.run(pipe2, cpu=0)
    assert ident_filter[1] == EVFILT_WRITE and n == 3 and read == b"foo"


def test_write_pipe3(rump_kernel):
    """write/t_pipe.c pipe3: closing the read end, then the write end, with a knote
    on the write end, neither fails."""
    s = rump_kernel.sys
    r, w = s.pipe()
    kq = s.kqueue()
    s.kevent(kq, [(w, EVFILT_WRITE, EV_ADD | EV_ENABLE, 0, 0, None)], 0, None)
    s.close(r)
    s.close(w)
    assert s.kevent(kq, None, 1, 0) == []


NLINES = 5


def append_lines(arg):
    from rumpmp.kern import (
        O_APPEND,
        O_WRONLY,
        atomic_load_relaxed,
        kpause,
        rump_sys_close,
        rump_sys_open,
        rump_sys_write,
    )

    path, consumed = arg
    for i in range(NLINES):
        while atomic_load_relaxed(consumed) < i:  # the reader took the last line
            kpause("lockstep", False, 1)
        fd = rump_sys_open(path, O_WRONLY | O_APPEND, 0o644)
        rump_sys_write(fd, b"foo\n")
        rump_sys_close(fd)


def read_file():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        O_CREAT,
        O_RDONLY,
        PRI_KTHREAD,
        SEEK_END,
        atomic_inc_64,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        rump_sys_kevent,
        rump_sys_kqueue,
        rump_sys_lseek,
        rump_sys_open,
        rump_sys_read,
    )

    fd = rump_sys_open("/file", O_RDONLY | O_CREAT, 0o644)
    rump_sys_lseek(fd, 0, SEEK_END)
    kq = rump_sys_kqueue()
    rump_sys_kevent(kq, [(fd, EVFILT_READ, EV_ADD | EV_ENABLE, 0, 0, None)], 0, None)
    consumed = kmem_zalloc(8)
    writer = kthread_create(
        PRI_KTHREAD, KTHREAD_MUSTJOIN, 2, append_lines, ("/file", consumed), "child"
    )
    got, num = [], 0
    while num < NLINES:
        events = rump_sys_kevent(kq, None, 1, None)
        num += len(events)
        got.append((events[0][4], rump_sys_read(fd, 128)))
        atomic_inc_64(consumed)
    kthread_join(writer)
    return got


def test_read_file(rump_boot):
    """read/t_file.c file: EVFILT_READ on a regular file reports each line appended
    by a writer on another CPU (upstream's child process sleeps a second between
    lines; here the writer waits for the reader to take each one)."""
    k = rump_boot(4)
    assert k.run(read_file, cpu=0) == [(4, b"foo\n")] * NLINES


NKEVENT_CALLS = 2000


def kevent_thread(arg):
    from rumpmp.kern import atomic_store_relaxed, rump_sys_kevent

    kq, results, slot = arg
    done = NKEVENT_CALLS
    for i in range(NKEVENT_CALLS):
        if len(rump_sys_kevent(kq, None, 1, 0)) != 1:
            done = i
            break
    atomic_store_relaxed((results, 8 * slot), done)


def scan1():
    from rumpmp.kern import (
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        atomic_load_relaxed,
        kmem_zalloc,
        kthread_create,
        kthread_join,
        rump_sys_kevent,
        rump_sys_kqueue,
        rump_sys_pipe,
        rump_sys_write,
    )

    r, w = rump_sys_pipe()
    kq = rump_sys_kqueue()
    rump_sys_kevent(kq, [(r, EVFILT_READ, EV_ADD, 0, 0, None)], 0, None)
    rump_sys_write(w, b"p")
    results = kmem_zalloc(16)
    lids = [
        kthread_create(PRI_KTHREAD, KTHREAD_MUSTJOIN, cpu, kevent_thread, (kq, results, i), "scan")
        for i, cpu in enumerate((1, 2))
    ]
    for lid in lids:
        kthread_join(lid)
    return [atomic_load_relaxed((results, 8 * i)) for i in range(2)]


@pytest.mark.timeout(120)
def test_scan1(rump_boot):
    """t_scan.c scan1 (PR kern/50094): two lwps on two CPUs scan one kqueue; a
    level-triggered knote is reported to every call (2,000 calls each, 10,000
    upstream)."""
    k = rump_boot(4)
    assert k.run(scan1, cpu=0) == [NKEVENT_CALLS, NKEVENT_CALLS]


# -- EVFILT_TIMER as t_timer.c and t_oneshot.c expect it (issue 27) ----------------------


def _timer_modify(scale: float) -> tuple[int, int, int]:
    """t_timer.c modify, its times scaled by ``scale``: a 500 ms timer read after 5 s,
    then EV_ADD again as a 4000 ms timer (re-armed: not active at once), read after
    5 s.  Kernel code: kevent and nanosleep are the kernel's own calls."""
    from rumpmp.kern import EV_ADD, EVFILT_TIMER, rump_sys_kevent, rump_sys_kqueue
    from rumpmp.kern import rump_sys_nanosleep as nanosleep

    def ms(n: int) -> int:
        return int(n * scale)

    def sleep(seconds: float) -> None:
        nanosleep((int(seconds * scale), int(seconds * scale % 1 * 1e9)))

    kq = rump_sys_kqueue()
    rump_sys_kevent(kq, [(1, EVFILT_TIMER, EV_ADD, 0, ms(500), None)], 0, None)
    sleep(5)
    ((ident, _, _, _, first, _),) = rump_sys_kevent(kq, None, 1, 0)
    assert ident == 1
    rump_sys_kevent(kq, [(1, EVFILT_TIMER, EV_ADD, 0, ms(4000), None)], 0, None)
    active = len(rump_sys_kevent(kq, None, 1, 0))
    sleep(5)
    ((_, _, _, _, second, _),) = rump_sys_kevent(kq, None, 1, 0)
    return first, active, second


@pytest.mark.timeout(60)
def test_timer_modify(rump_kernel):
    """kqueue/t_timer.c modify (times a fifth of upstream's): adding a timer again
    with a new period restarts it with that period."""
    first, active, second = rump_kernel.run(_timer_modify, 0.2, cpu=1)
    assert 9 <= first <= 11
    assert active == 0  # re-armed: the knote is no longer active
    assert second == 1  # one 800 ms period in 1 s (upstream: 4 s in 5 s)


def test_oneshot_udata(rump_kernel):
    """kqueue/t_oneshot.c oneshot_udata: a one-shot 1 ms timer fires once (data 1),
    however late it is read, and gives its udata back."""
    from rumpmp.kern import EV_ONESHOT, EVFILT_TIMER

    s = rump_kernel.sys
    kq = s.kqueue()
    udata = 0xBEEFCAFE
    s.kevent(kq, [(1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, udata)], 0, None)
    s.nanosleep((0, 20_000_000))  # (read it 20 periods late: still one expiry)
    ((ident, filt, _, _, data, got),) = s.kevent(kq, None, 1, None)
    assert (ident, filt, data, got) == (1, EVFILT_TIMER, 1, udata)
    assert s.kevent(kq, None, 1, 0) == []  # one-shot: gone


def _elapsed_oneshot(fflags: int, data: int) -> float:
    """t_timer.c do_test_timer_units: seconds until a one-shot timer of ``data``
    in the unit ``fflags`` names fires, added and waited for in one kevent."""
    from rumpmp.kern import EV_ONESHOT, EVFILT_TIMER, rump_sys_kevent, rump_sys_kqueue
    from rumpmp.kern import rump_sys_clock_gettime as clock_gettime
    from rumpmp.kern import rump_sys_close as close
    from rumpmp.sys.time import CLOCK_MONOTONIC

    kq = rump_sys_kqueue()
    start = clock_gettime(CLOCK_MONOTONIC)
    (event,) = rump_sys_kevent(kq, [(1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, fflags, data)], 1)
    end = clock_gettime(CLOCK_MONOTONIC)
    close(kq)
    assert event[:2] == (1, EVFILT_TIMER) and event[4] == 1
    return (end[0] - start[0]) + (end[1] - start[1]) / 1e9


PREC_TIMEOUT_SEC = 1  # upstream's is 2


@pytest.mark.timeout(60)
def test_timer_units(rump_boot):
    """kqueue/t_timer.c timer_units: the same timeout in each unit (NOTE_SECONDS,
    NOTE_MSECONDS, NOTE_USECONDS, NOTE_NSECONDS) fires after it, not a tenth of a
    second early nor a second late; the four run at once, each on its own CPU."""
    import concurrent.futures as cf

    from rumpmp.kern import NOTE_MSECONDS, NOTE_NSECONDS, NOTE_SECONDS, NOTE_USECONDS

    k = rump_boot(4)
    units = [
        (NOTE_SECONDS, PREC_TIMEOUT_SEC),
        (NOTE_MSECONDS, PREC_TIMEOUT_SEC * 1000),
        (NOTE_USECONDS, PREC_TIMEOUT_SEC * 1000_000),
        (NOTE_NSECONDS, PREC_TIMEOUT_SEC * 1000_000_000),
    ]
    with cf.ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(k.run, _elapsed_oneshot, *u, cpu=i) for i, u in enumerate(units)]
        for (unit, _), run in zip(units, runs, strict=True):
            elapsed = run.result(30)
            assert PREC_TIMEOUT_SEC - 0.1 <= elapsed < PREC_TIMEOUT_SEC + 1, (unit, elapsed)


def _abstime() -> tuple[float, int]:
    """t_timer.c abstime: a NOTE_ABSTIME|NOTE_SECONDS timer for TIME1_TOTAL_SEC
    seconds from now on the wall clock; (seconds until it fired, events a second
    kevent that does not wait finds)."""
    from rumpmp.kern import EVFILT_TIMER, NOTE_ABSTIME, NOTE_SECONDS
    from rumpmp.kern import rump_sys_clock_gettime as clock_gettime
    from rumpmp.kern import rump_sys_kevent as kevent
    from rumpmp.kern import rump_sys_kqueue as kqueue
    from rumpmp.sys.time import CLOCK_REALTIME

    kq = kqueue()
    start = clock_gettime(CLOCK_REALTIME)
    seconds = start[0] + TIME1_TOTAL_SEC + (start[1] >= 500_000_000)
    change = (1, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME | NOTE_SECONDS, seconds, None)
    assert len(kevent(kq, [change], 1)) == 1
    end = clock_gettime(CLOCK_REALTIME)
    return (end[0] - start[0]) + (end[1] - start[1]) / 1e9, len(kevent(kq, None, 1, 0))


TIME1_TOTAL_SEC = 1  # upstream's is 5


@pytest.mark.timeout(60)
def test_abstime(rump_kernel):
    """kqueue/t_timer.c abstime (1 s instead of 5): an absolute timer fires when the
    wall clock reaches it, and stays active (it is not EV_CLEAR)."""
    elapsed, again = rump_kernel.run(_abstime, cpu=1)
    assert TIME1_TOTAL_SEC - 0.5 <= elapsed < TIME1_TOTAL_SEC + 1.5
    assert again == 1


def test_timer_bad_arguments(rump_kernel):
    """filt_timercompute's EINVAL: unknown fflags, a negative time, a relative
    timer of 0; an absolute time already past fires at once."""
    import errno
    import time

    from rumpmp.kern import EVFILT_TIMER, NOTE_ABSTIME, NOTE_SECONDS

    s = rump_kernel.sys
    kq = s.kqueue()
    for fflags, data in ((0x100, 10), (NOTE_SECONDS, -1), (NOTE_SECONDS, 0)):
        ((_, _, flags, _, err, _),) = s.kevent(kq, [(1, EVFILT_TIMER, EV_ADD, fflags, data)], 1)
        assert (flags, err) == (EV_ERROR, errno.EINVAL), (fflags, data)
    past = (2, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME | NOTE_SECONDS, int(time.time()) - 60)
    ((ident, _, _, _, data, _),) = s.kevent(kq, [past], 1, 0)
    assert (ident, data) == (2, 1)


# -- EVFILT_VNODE as kqueue/t_vnode.c expects it (issue 27) --------------------------------

DIR_TARGET, DIR_INSIDE1, DIR_INSIDE2, DIR_OUTSIDE = "/foo", "/foo/bar1", "/foo/bar2", "/bar"
FILE_INSIDE1, FILE_INSIDE2, FILE_OUTSIDE = "/foo/baz1", "/foo/baz2", "/qux"


def _create_file(s, path: str) -> None:
    from rumpmp.kern import O_CREAT, O_WRONLY

    s.close(s.open(path, O_WRONLY | O_CREAT, 0o600))


#: What t_vnode.c's directory cases do: (what exists before the knote, the change).
VNODE_ACTIONS = {
    "create_file_in": ([], ("create", FILE_INSIDE1)),
    "delete_file_in": ([FILE_INSIDE1], ("unlink", FILE_INSIDE1)),
    "create_dir_in": ([], ("mkdir", DIR_INSIDE1)),
    "delete_dir_in": ([DIR_INSIDE1], ("rmdir", DIR_INSIDE1)),
    "mv_dir_in": ([DIR_OUTSIDE], ("rename", DIR_OUTSIDE, DIR_INSIDE1)),
    "mv_dir_out": ([DIR_INSIDE1], ("rename", DIR_INSIDE1, DIR_OUTSIDE)),
    "mv_dir_within": ([DIR_INSIDE1], ("rename", DIR_INSIDE1, DIR_INSIDE2)),
    "mv_file_in": ([FILE_OUTSIDE], ("rename", FILE_OUTSIDE, FILE_INSIDE1)),
    "mv_file_out": ([FILE_INSIDE1], ("rename", FILE_INSIDE1, FILE_OUTSIDE)),
    "mv_file_within": ([FILE_INSIDE1], ("rename", FILE_INSIDE1, FILE_INSIDE2)),
}
#: Their names say it all: dir_[no_]note_<note>_<action>.
VNODE_DIR_CASES = [
    *(f"dir_no_note_link_{a}" for a in ("create_file_in", "delete_file_in")),
    *(f"dir_no_note_link_{a}" for a in ("mv_dir_within", "mv_file_within")),
    *(f"dir_note_link_{a}" for a in ("create_dir_in", "delete_dir_in", "mv_dir_in", "mv_dir_out")),
    *(f"dir_note_write_{a}" for a in VNODE_ACTIONS),
]


@pytest.mark.parametrize("case", VNODE_DIR_CASES)
def test_vnode_dir(rump_kernel_session, case):
    """kqueue/t_vnode.c, its directory cases (each named as upstream): an
    EV_ONESHOT EVFILT_VNODE knote on directory "foo" watching every note, then a
    change inside or across it; the note checked is there or not."""
    import re

    from rumpmp import kern
    from rumpmp.kern import EV_ONESHOT, EVFILT_VNODE, O_RDONLY

    no, note, action = re.fullmatch(r"dir_(no_)?note_(link|write)_(\w+)", case).groups()
    before, change = VNODE_ACTIONS[action]
    s = rump_kernel_session.sys
    s.mkdir(DIR_TARGET, 0o700)
    kq = target = -1
    try:
        target = s.open(DIR_TARGET, O_RDONLY)
        for path in before:
            s.mkdir(path, 0o700) if "bar" in path else _create_file(s, path)
        kq = s.kqueue()
        every = sum(getattr(kern, n) for n in VNODE_NOTES)
        s.kevent(kq, [(target, EVFILT_VNODE, EV_ADD | EV_ONESHOT, every, 0, 0)], 0)
        op, *args = change
        if op == "create":
            _create_file(s, *args)
        elif op in ("mkdir",):
            s.mkdir(*args, 0o700)
        else:
            getattr(s, op)(*args)
        ((ident, filt, _, fflags, _, _),) = s.kevent(kq, None, 1, 0)
        assert (ident, filt) == (target, EVFILT_VNODE)
        assert bool(fflags & getattr(kern, f"NOTE_{note.upper()}")) == (not no), hex(fflags)
    finally:
        for path in (FILE_INSIDE1, FILE_INSIDE2, FILE_OUTSIDE):
            with contextlib.suppress(OSError):
                s.unlink(path)
        for path in (DIR_INSIDE1, DIR_INSIDE2, DIR_OUTSIDE, DIR_TARGET):
            with contextlib.suppress(OSError):
                s.rmdir(path)
        for fd in (kq, target):
            if fd >= 0:
                s.close(fd)


VNODE_NOTES = [
    "NOTE_DELETE",
    "NOTE_WRITE",
    "NOTE_EXTEND",
    "NOTE_ATTRIB",
    "NOTE_LINK",
    "NOTE_RENAME",
    "NOTE_REVOKE",
]


def _vnode_file_events() -> list[int]:
    """Kernel code: an EV_CLEAR EVFILT_VNODE knote on a file; the fflags each
    change reports (t_vnode.c open_write_read_close, its NOTE_WRITE/NOTE_EXTEND
    part, then the other notes a file gets)."""
    from rumpmp.kern import (
        EV_CLEAR,
        EVFILT_VNODE,
        NOTE_ATTRIB,
        NOTE_DELETE,
        NOTE_EXTEND,
        NOTE_LINK,
        NOTE_RENAME,
        NOTE_WRITE,
        O_CREAT,
        O_RDWR,
        O_TRUNC,
        rump_sys_chmod,
        rump_sys_kevent,
        rump_sys_kqueue,
        rump_sys_link,
        rump_sys_open,
        rump_sys_pwrite,
        rump_sys_rename,
        rump_sys_unlink,
    )

    kq = rump_sys_kqueue()
    fd = rump_sys_open("/testfile", O_RDWR | O_CREAT | O_TRUNC, 0o600)
    every = NOTE_DELETE | NOTE_WRITE | NOTE_EXTEND | NOTE_ATTRIB | NOTE_LINK | NOTE_RENAME
    rump_sys_kevent(kq, [(fd, EVFILT_VNODE, EV_ADD | EV_CLEAR, every, 0, None)], 0)
    seen = []

    def then() -> None:
        events = rump_sys_kevent(kq, None, 1, 0)
        seen.append(events[0][3] if events else 0)

    rump_sys_pwrite(fd, b"testfile\0", 0)
    then()
    rump_sys_pwrite(fd, b"testfile\0", 0)
    then()
    then()  # EV_CLEAR: nothing new
    rump_sys_chmod("/testfile", 0o644)
    then()
    rump_sys_link("/testfile", "/testfile2")
    then()
    rump_sys_rename("/testfile2", "/testfile3")  # the same node, by its other name
    then()
    rump_sys_unlink("/testfile3")
    then()
    rump_sys_unlink("/testfile")
    then()
    return seen


def test_vnode_file_notes(rump_kernel):
    """kqueue/t_vnode.c open_write_read_close (its NOTE_WRITE/NOTE_EXTEND part):
    a write that grows the file is NOTE_WRITE|NOTE_EXTEND, a rewrite NOTE_WRITE;
    then chmod (NOTE_ATTRIB), link and unlink of one name (NOTE_LINK), rename
    (NOTE_RENAME), unlink of the last name (NOTE_DELETE).  The knote is made by
    an lwp on one CPU, the changes come from the same code on the CPU it runs on."""
    from rumpmp import kern

    assert rump_kernel.run(_vnode_file_events, cpu=1) == [
        kern.NOTE_WRITE | kern.NOTE_EXTEND,
        kern.NOTE_WRITE,
        0,
        kern.NOTE_ATTRIB,
        kern.NOTE_LINK,
        kern.NOTE_RENAME,
        kern.NOTE_LINK,
        kern.NOTE_DELETE,
    ]


def test_vnode_wait_across_cpus(rump_boot):
    """A kevent asleep on an EVFILT_VNODE knote on one CPU wakes when another CPU
    writes the file; without EV_CLEAR the note stays (NetBSD's kn_fflags add up);
    EVFILT_VNODE on a pipe is EINVAL."""
    import concurrent.futures as cf

    from rumpmp import kern
    from rumpmp.kern import EVFILT_VNODE, NOTE_ATTRIB, NOTE_WRITE, O_CREAT, O_RDWR

    k = rump_boot(4)
    fd = k.run(kern.rump_sys_open, "/watched", O_CREAT | O_RDWR, 0o600, cpu=0)
    kq = k.run(kern.rump_sys_kqueue, cpu=0)
    change = (fd, EVFILT_VNODE, EV_ADD, NOTE_WRITE | NOTE_ATTRIB, 0, None)
    k.run(kern.rump_sys_kevent, kq, [change], 0, cpu=0)
    with cf.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(k.run, kern.rump_sys_kevent, kq, None, 1, 30, cpu=0)
        k.run(kern.rump_sys_write, fd, b"x", cpu=3)
        ((_, _, _, fflags, _, _),) = waiting.result(timeout=30)
    assert fflags == NOTE_WRITE
    k.run(kern.rump_sys_fchmod, fd, 0o644, cpu=2)
    ((_, _, _, fflags, _, _),) = k.run(kern.rump_sys_kevent, kq, None, 1, 0, cpu=1)
    assert fflags == NOTE_WRITE | NOTE_ATTRIB
    r, _ = k.sys.pipe()
    hkq = k.sys.kqueue()
    ((_, _, flags, _, err, _),) = k.sys.kevent(hkq, [(r, EVFILT_VNODE, EV_ADD, NOTE_WRITE)], 1)
    assert (flags, err) == (EV_ERROR, errno.EINVAL)


# -- EVFILT_SIGNAL and EVFILT_PROC (issue 27) ----------------------------------------------

NSIGNALS = 5


@pytest.mark.timeout(60)
def test_sig(rump_kernel):
    """kqueue/t_sig.c sig: EVFILT_SIGNAL counts the posts of a signal to the
    process that registered it, even one it ignores (here the kernel's signal
    model ignores it, as upstream's SIG_IGN); a kevent asleep in that process wakes
    for a post from another.  Upstream sends one every 2 s; here a post wakes the
    waiter, then the rest are posted at once and counted together."""
    import concurrent.futures as cf
    import signal

    from rumpmp import kern
    from rumpmp.kern import EVFILT_SIGNAL

    k = rump_kernel
    k.run(kern.rump_boot_setsigmodel, kern.RUMP_SIGMODEL_IGNORE)
    with k.process() as p, cf.ThreadPoolExecutor(1) as pool:
        kq = p.sys.kqueue()
        p.sys.kevent(kq, [(signal.SIGUSR1, EVFILT_SIGNAL, EV_ADD | EV_ENABLE)], 0)
        waiting = pool.submit(p.sys.kevent, kq, None, 1, 30)
        k.sys.kill(p.pid, signal.SIGUSR1)
        ((ident, filt, flags, _, data, _),) = waiting.result(timeout=30)
        assert (ident, filt, data) == (signal.SIGUSR1, EVFILT_SIGNAL, 1)
        assert flags & kern.EV_CLEAR
        for _ in range(NSIGNALS - 1):
            k.sys.kill(p.pid, signal.SIGUSR1)
        k.sys.kill(p.pid, signal.SIGUSR2)  # another signal: not this knote's
        ((_, _, _, _, data, _),) = p.sys.kevent(kq, None, 1, 0)
        assert data == NSIGNALS - 1
        assert p.sys.kevent(kq, None, 1, 0) == []
        ((_, _, flags, _, err, _),) = p.sys.kevent(kq, [(99, EVFILT_SIGNAL, EV_ADD)], 1)
        assert (flags, err) == (EV_ERROR, errno.EINVAL)


def test_proc_fork_and_exit(rump_boot):
    """kqueue/t_proc1.c's NOTE_FORK and NOTE_EXIT for processes the host makes
    (rump_lwproc_rfork): without EV_CLEAR the notes add up until the exit, whose
    event comes once, with EV_EOF; an exited or unknown pid is ESRCH.  The knote's
    kqueue and the processes run on different CPUs."""
    from rumpmp.kern import EV_EOF, EVFILT_PROC, NOTE_EXEC, NOTE_EXIT, NOTE_FORK

    k = rump_boot(4)
    kq = k.sys.kqueue()
    p = k.process()
    watch = NOTE_EXIT | NOTE_FORK | NOTE_EXEC
    k.sys.kevent(kq, [(p.pid, EVFILT_PROC, EV_ADD, watch, 0, "me")], 0)
    assert k.sys.kevent(kq, None, 1, 0) == []
    child = p.fork()
    ((ident, _, flags, fflags, _, udata),) = k.sys.kevent(kq, None, 1, 0)
    assert (ident, fflags, flags & EV_EOF, udata) == (p.pid, NOTE_FORK, 0, "me")
    child.release()
    p.release()
    ((_, _, flags, fflags, _, _),) = k.sys.kevent(kq, None, 1, 5)
    assert fflags == NOTE_FORK | NOTE_EXIT and flags & EV_EOF
    assert k.sys.kevent(kq, None, 1, 0) == []
    ((_, _, flags, _, err, _),) = k.sys.kevent(kq, [(p.pid, EVFILT_PROC, EV_ADD, watch)], 1)
    assert (flags, err) == (EV_ERROR, errno.ESRCH)


def test_proc3(rump_kernel):
    """kqueue/t_proc3.c proc3: NOTE_TRACK alone on the watcher's own process: its
    child, which exits at once, still gets a knote whose event is NOTE_CHILD (not
    NOTE_TRACKERR), named by the child's pid; the parent's NOTE_FORK, not asked
    for, is not reported."""
    from rumpmp.kern import EVFILT_PROC, NOTE_CHILD, NOTE_TRACK, NOTE_TRACKERR

    s = rump_kernel.sys
    kq = s.kqueue()
    s.kevent(kq, [(s.getpid(), EVFILT_PROC, EV_ADD, NOTE_TRACK, 0, None)], 0)
    child = rump_kernel.process()  # a child of the host's process
    child.release()
    ((ident, _, _, fflags, data, _),) = s.kevent(kq, None, 4, 0)
    assert fflags & NOTE_CHILD and not fflags & NOTE_TRACKERR
    assert (ident, data) == (child.pid, s.getpid())


def test_proc_track_limit(rump_kernel):
    """Up to P_NTRACK (4) kqueues track one process; a fifth NOTE_TRACK is ENOMEM,
    and a kqueue whose knote has gone frees its place at the next fork."""
    from rumpmp.kern import EV_DELETE, EVFILT_PROC, NOTE_TRACK

    s = rump_kernel.sys
    pid = s.getpid()
    kqs = [s.kqueue() for _ in range(5)]
    for kq in kqs[:4]:
        s.kevent(kq, [(pid, EVFILT_PROC, EV_ADD, NOTE_TRACK)], 0)
    ((_, _, flags, _, err, _),) = s.kevent(kqs[4], [(pid, EVFILT_PROC, EV_ADD, NOTE_TRACK)], 1)
    assert (flags, err) == (EV_ERROR, errno.ENOMEM)
    s.kevent(kqs[0], [(pid, EVFILT_PROC, EV_DELETE)], 0)
    rump_kernel.process().release()  # the fork finds kqs[0] no longer tracking
    s.kevent(kqs[4], [(pid, EVFILT_PROC, EV_ADD, NOTE_TRACK)], 0)


TOTAL_CHILDREN = 4  # upstream's is 10


@pytest.mark.timeout(120)
def test_proc4(rump_kernel):
    """kqueue/t_proc4.c proc4 (4 children of 4 grandchildren each, upstream 10 of
    10): NOTE_TRACK|NOTE_EXIT on the watcher's own process reports a NOTE_CHILD and
    a NOTE_EXIT (with EV_EOF) for every descendant, however soon it exits, and never
    NOTE_FORK or NOTE_TRACKERR.  (Rump processes have no exit status: data is 0.)"""
    from rumpmp.kern import (
        EV_EOF,
        EVFILT_PROC,
        NOTE_CHILD,
        NOTE_EXIT,
        NOTE_FORK,
        NOTE_TRACK,
        NOTE_TRACKERR,
    )

    k = rump_kernel
    s = k.sys
    kq = s.kqueue()
    s.kevent(kq, [(s.getpid(), EVFILT_PROC, EV_ADD, NOTE_TRACK | NOTE_EXIT, 0, None)], 0)
    descendants = set()
    for _ in range(TOTAL_CHILDREN):
        child = k.process()
        for _ in range(TOTAL_CHILDREN):
            grandchild = child.fork()
            descendants.add(grandchild.pid)
            grandchild.release()
        descendants.add(child.pid)
        child.release()
    tracked, exited = set(), set()
    while tracked != descendants or exited != descendants:
        events = s.kevent(kq, None, 1, 30)
        assert events, f"no event in 30 s: {len(tracked)} tracked, {len(exited)} exited"
        ((ident, _, flags, fflags, _, _),) = events
        assert not fflags & (NOTE_FORK | NOTE_TRACKERR)
        if fflags & NOTE_CHILD:  # (kept in fflags with the exit: no EV_CLEAR)
            tracked.add(ident)
        if fflags & NOTE_EXIT:
            assert flags & EV_EOF and ident not in exited
            exited.add(ident)
    assert s.kevent(kq, None, 1, 0) == []


@pytest.mark.timeout(60)
def test_a_knote_added_meanwhile_wakes_a_waiting_kevent(rump_kernel):
    """kqueue_register activates a knote for a kevent already asleep on the
    kqueue: a waiter with nothing to wait for (30 s timeout) returns when the 200 ms
    timer another thread adds meanwhile fires, not 30 s later (it wakes when the
    knote is added, and then sleeps no longer than to the new timer)."""
    import concurrent.futures as cf

    from rumpmp.kern import EV_ONESHOT, EVFILT_TIMER

    s = rump_kernel.sys
    kq = s.kqueue()
    with cf.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(s.kevent, kq, None, 1, 30)
        with pytest.raises(cf.TimeoutError):
            waiting.result(timeout=0.5)  # asleep by now: a bounded check, not a sync
        s.kevent(kq, [(7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 200)], 0)
        ((ident, filt, *_),) = waiting.result(timeout=10)
    assert (ident, filt) == (7, EVFILT_TIMER)
