"""FIFOs in memfs (issue 27): ports of NetBSD's tests/lib/libc/sys/t_mkfifo.c and
tests/kernel/kqueue/{read,write}/t_fifo.c, each named after its upstream case, on a
kernel with more CPUs than cores (the opens and the I/O on different CPUs)."""

from __future__ import annotations

import concurrent.futures as cf
import errno
import signal

import pytest

from rumpmp import kern
from rumpmp.kern import (
    EV_ADD,
    EV_ENABLE,
    EVFILT_READ,
    EVFILT_WRITE,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PIPE_BUF,
    POLLIN,
    POLLOUT,
    S_IFIFO,
    S_IFMT,
)
from tests.helpers import call_in_process, errno_of, wait_for

pytestmark = pytest.mark.timeout(60)
PATH = "/fifo"


def _open_on(k, cpu: int, path: str, flags: int) -> int:
    """open(2) run by a kernel lwp on ``cpu``: it may sleep there."""
    return k.run(kern.rump_sys_open, path, flags, cpu=cpu, timeout=30)


def test_mkfifo_stat(rump_kernel):
    """t_mkfifo.c mkfifo_stat (and mknod_s_ififo): the node is a FIFO."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o600)
    s.mknod("/node", S_IFIFO | 0o600, 0)
    for path in (PATH, "/node"):
        st = s.stat(path)
        assert st.st_mode & S_IFMT == S_IFIFO and st.st_mode & 0o777 == 0o600
    s.unlink(PATH)
    assert sorted(s.listdir("/")) == ["node"]


def test_mkfifo_err(rump_kernel):
    """t_mkfifo.c mkfifo_err: EEXIST, ENAMETOOLONG, ENOENT (EFAULT becomes a
    TypeError for a path that is not a string); mknod of another type."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o600)
    assert errno_of(s.mkfifo, PATH, 0o600) == errno.EEXIST
    assert errno_of(s.mkfifo, "x" * 1025, 0o600) == errno.ENAMETOOLONG
    assert errno_of(s.mkfifo, "/a/b/c/d/e/f/g", 0o600) == errno.ENOENT
    with pytest.raises(TypeError):
        s.mkfifo(-1, 0o600)
    assert errno_of(s.mknod, "/reg", 0o100600, 0) == errno.EINVAL
    assert errno_of(s.mknod, "/dev", 0o020600, 0) == errno.EOPNOTSUPP  # root, no devices


def test_mkfifo_block(rump_boot):
    """t_mkfifo.c mkfifo_block: an open for reading sleeps until a writer opens
    (here the writer's open, on another CPU, lets it through; upstream kills it)."""
    k = rump_boot(4)
    k.sys.mkfifo(PATH, 0o600)
    with cf.ThreadPoolExecutor(1) as pool:
        reader = pool.submit(_open_on, k, 0, PATH, O_RDONLY)
        with pytest.raises(cf.TimeoutError):
            reader.result(timeout=0.5)  # still asleep half a second on: a bounded check
        w = _open_on(k, 3, PATH, O_WRONLY)  # a reader is waiting: no wait here
        r = reader.result(timeout=30)
    k.run(kern.rump_sys_write, w, b"across", cpu=2)
    assert k.run(kern.rump_sys_read, r, 10, cpu=1) == b"across"


def test_mkfifo_nonblock(rump_kernel):
    """t_mkfifo.c mkfifo_nonblock: O_RDONLY|O_NONBLOCK opens at once; a writer's
    O_WRONLY|O_NONBLOCK with no reader fails with ENXIO."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o600)
    assert errno_of(s.open, PATH, O_WRONLY | O_NONBLOCK) == errno.ENXIO
    r = s.open(PATH, O_RDONLY | O_NONBLOCK)
    w = s.open(PATH, O_WRONLY | O_NONBLOCK)  # now there is a reader
    assert s.write(w, b"x") == 1 and s.read(r, 1) == b"x"


def test_mkfifo_readeof(rump_kernel):
    """t_mkfifo.c mkfifo_readeof_block and mkfifo_readeof_nonblock: a read with no
    writer returns end of file, not EAGAIN nor a sleep; data a writer left is read
    after it has gone, then end of file again."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o600)
    r = s.open(PATH, O_RDONLY | O_NONBLOCK)
    s.fcntl(r, kern.F_SETFL, 0)  # blocking again
    assert s.read(r, 1) == b"" and s.read(r, 1) == b""
    w = s.open(PATH, O_WRONLY)
    assert s.write(w, b"{") == 1
    s.close(w)
    assert s.read(r, 1) == b"{"
    assert s.read(r, 1) == b""


def test_data_goes_with_the_last_close(rump_kernel):
    """fifofs: the pipe goes with the FIFO's last open file, unread bytes with it;
    the next open starts empty.  lseek is ESPIPE."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o600)
    fd = s.open(PATH, O_RDWR)
    assert s.write(fd, b"left behind") == 11
    assert errno_of(s.lseek, fd, 0, kern.SEEK_SET) == errno.ESPIPE
    s.close(fd)
    fd = s.open(PATH, O_RDWR | O_NONBLOCK)
    assert errno_of(s.read, fd, 20) == errno.EAGAIN


@pytest.mark.parametrize("first", ["reader", "writer"])
def test_mkfifo_sigopen_race(rump_kernel, first):
    """t_mkfifo.c mkfifo_sigopenreader_race and mkfifo_sigopenwriter_race (PR
    kern/59578), once each instead of for 5 s: an open asleep for the other side
    that a signal interrupts ends with EINTR and gives its end back; but once the
    other side has opened (even if it closed again at once), a signal no longer
    makes the open fail."""
    k = rump_kernel
    k.run(kern.rump_boot_setsigmodel, kern.RUMP_SIGMODEL_RECORD)  # signals end sleeps
    k.sys.mkfifo(PATH, 0o600)
    mine, theirs = (O_RDONLY, O_WRONLY) if first == "reader" else (O_WRONLY, O_RDONLY)
    with k.process() as p, cf.ThreadPoolExecutor(1) as pool:
        # A signal and no other side: EINTR, and the end is given back.
        opening = pool.submit(p.sys.open, PATH, mine)
        wait_for(opening.running, 10, "the open to start")
        k.sys.kill(p.pid, signal.SIGUSR1)
        assert opening.exception(timeout=30).errno == errno.EINTR
        assert _ends(k) == 0  # given back: the FIFO has no pipe now
        k.run(call_in_process, p.pid, kern.sigclear, signal.SIGUSR1)  # (it stays pending)
        # The other side opens and closes at once, then the signal: the open succeeds.
        opening = pool.submit(p.sys.open, PATH, mine)
        wait_for(lambda: _ends(k) == 1, 30, "the open to count its end")
        k.sys.close(k.sys.open(PATH, theirs | O_NONBLOCK))
        k.sys.kill(p.pid, signal.SIGUSR1)
        assert opening.result(timeout=30) >= 0


def _ends(k) -> int:
    """Open ends of the one FIFO's pipe (0 when it has none)."""
    return k.run(_pipe_ends)


def _pipe_ends() -> int:
    from rumpmp.rumpkern.base import arena as _arena
    from rumpmp.rumpkern.file import pipe
    from rumpmp.sys import file as F
    from rumpmp.sys import vnode as V
    from rumpmp.vfs import namei, vnode

    arena = _arena.current()
    node, _ = namei.namei(arena, PATH, (0, 0, []))
    n = arena.w[vnode.rec(arena, node) + V.V_FIFO] - 1
    if n < 0:
        return 0
    p = pipe.pipe_rec(arena, n)
    return arena.w[p + F.PI_READERS] + arena.w[p + F.PI_WRITERS]


def test_read_fifo(rump_kernel):
    """kqueue/read/t_fifo.c fifo: EVFILT_READ on a FIFO open for reading and
    writing reports the bytes written."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o644)
    fd = s.open(PATH, O_RDWR)
    kq = s.kqueue()
    s.kevent(kq, [(fd, EVFILT_READ, EV_ADD | EV_ENABLE, 0, 0, 0)], 0)
    s.write(fd, b"foo")
    ((ident, filt, _, _, data, _),) = s.kevent(kq, None, 1, None)
    assert (ident, filt, data) == (fd, EVFILT_READ, 3)
    assert s.read(fd, data) == b"foo"


def test_write_fifo(rump_kernel):
    """kqueue/write/t_fifo.c fifo: EVFILT_WRITE on a FIFO is active while
    PIPE_BUF bytes fit, and again once PIPE_BUF bytes have been read out."""
    s = rump_kernel.sys
    s.mkfifo(PATH, 0o600)
    r = s.open(PATH, O_RDONLY | O_NONBLOCK)
    w = s.open(PATH, O_WRONLY | O_NONBLOCK)
    kq = s.kqueue()
    s.kevent(kq, [(w, EVFILT_WRITE, EV_ADD | EV_ENABLE, 0, 0, 0)], 0)
    ((ident, filt, *_),) = s.kevent(kq, None, 1, 0)
    assert (ident, filt) == (w, EVFILT_WRITE)
    with pytest.raises(BlockingIOError):  # write until PIPE_BUF bytes no longer fit
        for _ in range(1 + 65536 // PIPE_BUF):
            s.write(w, bytes(PIPE_BUF))
    assert s.kevent(kq, None, 1, 0) == []
    assert len(s.read(r, 1)) == 1
    assert s.kevent(kq, None, 1, 0) == []  # one byte of room is not PIPE_BUF
    assert len(s.read(r, PIPE_BUF - 1)) == PIPE_BUF - 1
    ((ident, filt, *_),) = s.kevent(kq, None, 1, 0)
    assert (ident, filt) == (w, EVFILT_WRITE)


def test_poll_fifo(rump_boot):
    """poll(2) on a FIFO's ends (t_poll.c's pipe cases, on a FIFO): the writer is
    ready to write; the reader, asleep in poll on one CPU, wakes when a writer on
    another CPU writes."""
    k = rump_boot(4)
    k.sys.mkfifo(PATH, 0o600)
    r = _open_on(k, 0, PATH, O_RDONLY | O_NONBLOCK)
    w = _open_on(k, 3, PATH, O_WRONLY)
    assert k.run(kern.rump_sys_poll, [(w, POLLOUT)], 0, cpu=2) == [(w, POLLOUT)]
    with cf.ThreadPoolExecutor(1) as pool:
        polling = pool.submit(k.run, kern.rump_sys_poll, [(r, POLLIN)], 30_000, cpu=0)
        k.run(kern.rump_sys_write, w, b"!", cpu=3)
        assert polling.result(timeout=30) == [(r, POLLIN)]
