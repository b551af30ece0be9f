"""Pipes across CPUs (issue 14): blocking both ways, O_NONBLOCK, PIPE_BUF atomicity
with many writers on many CPUs, EPIPE and SIGPIPE, end of file.  Ports of NetBSD's
tests/lib/libc/sys/t_pipe.c, t_pipe2.c and t_write.c:write_pipe where they map."""

from __future__ import annotations

import errno
import struct

import pytest

from rumpmp.kern import (
    F_GETFD,
    F_GETFL,
    FD_CLOEXEC,
    O_APPEND,
    O_CLOEXEC,
    O_NONBLOCK,
    PIPE_BUF,
    RUMP_SIGMODEL_RECORD,
)
from tests.helpers import errno_of

pytestmark = pytest.mark.timeout(120)


def test_pipe2_basic_nonblock_cloexec_einval(rump_kernel):
    """t_pipe2:pipe2_basic, pipe2_nonblock, pipe2_cloexec, pipe2_einval."""
    s = rump_kernel.sys
    r, w = s.pipe2(0)
    assert (s.fcntl(r, F_GETFL, 0), s.fcntl(w, F_GETFL, 0)) == (0, 1)  # O_RDONLY, O_WRONLY
    assert s.fcntl(r, F_GETFD, 0) == 0
    r2, w2 = s.pipe2(O_NONBLOCK | O_CLOEXEC)
    assert s.fcntl(r2, F_GETFL, 0) & O_NONBLOCK and s.fcntl(w2, F_GETFL, 0) & O_NONBLOCK
    assert s.fcntl(r2, F_GETFD, 0) == s.fcntl(w2, F_GETFD, 0) == FD_CLOEXEC
    assert errno_of(s.read, r2, 1) == errno.EAGAIN
    assert errno_of(s.pipe2, O_APPEND) == errno.EINVAL
    st = s.fstat(r)
    assert st.st_mode & 0o170000 == 0o010000  # S_IFIFO


def test_nonblocking_write_fills_then_eagain(rump_kernel):
    s = rump_kernel.sys
    r, w = s.pipe2(O_NONBLOCK)
    total = 0
    while True:
        try:
            total += s.write(w, b"x" * 4096)
        except OSError as e:
            assert e.errno == errno.EAGAIN
            break
    assert total == 65536  # the whole buffer, then EAGAIN
    assert errno_of(s.write, w, b"y") == errno.EAGAIN
    assert len(s.read(r, 100)) == 100
    assert s.write(w, b"y" * 100) == 100


def test_end_of_file_and_epipe(rump_kernel):
    """EOF when no writer is left; EPIPE when no reader is (t_write:write_pipe)."""
    s = rump_kernel.sys
    r, w = s.pipe()
    s.write(w, b"last")
    s.close(w)
    assert s.read(r, 10) == b"last"
    assert s.read(r, 10) == b""
    r, w = s.pipe()
    s.close(r)
    assert errno_of(s.write, w, b"x") == errno.EPIPE


def sigpipe_recorded():
    from rumpmp.kern import (
        rump_boot_setsigmodel,
        rump_lwproc_newproc,
        rump_lwproc_releaselwp,
        rump_sys_close,
        rump_sys_pipe,
        rump_sys_write,
        sigpending,
    )

    rump_boot_setsigmodel(RUMP_SIGMODEL_RECORD)
    rump_lwproc_newproc()
    try:
        r, w = rump_sys_pipe()
        rump_sys_close(r)
        try:
            rump_sys_write(w, b"x")
        except OSError as e:
            return e.errno, sigpending()
        return 0, sigpending()
    finally:
        rump_lwproc_releaselwp()


def test_write_without_reader_raises_sigpipe(rump_kernel):
    """Under RUMP_SIGMODEL_RECORD the writer's process has SIGPIPE pending."""
    err, pending = rump_kernel.run(sigpipe_recorded)
    assert err == errno.EPIPE
    assert pending == {13}


def _pingpong(arg):
    from rumpmp.kern import rump_sys_read, rump_sys_write

    rfd, wfd, rounds = arg
    for i in range(rounds):
        got = rump_sys_read(rfd, 1)
        assert got == bytes([i % 256]), (i, got)
        rump_sys_write(wfd, got)


def pingpong(rounds):
    """Two kthreads on CPUs 0 and 1 bounce a byte: each read blocks until the other
    CPU writes."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        rump_sys_pipe,
        rump_sys_read,
        rump_sys_write,
    )

    a_r, a_w = rump_sys_pipe()
    b_r, b_w = rump_sys_pipe()
    lid = kthread_create(
        PRI_KTHREAD, KTHREAD_MUSTJOIN | KTHREAD_MPSAFE, 1, _pingpong, (a_r, b_w, rounds), "pong"
    )
    for i in range(rounds):
        rump_sys_write(a_w, bytes([i % 256]))
        assert rump_sys_read(b_r, 1) == bytes([i % 256])
    kthread_join(lid)
    return rounds


def test_reader_and_writer_on_two_cpus_wake_each_other(rump_kernel):
    assert rump_kernel.run(pingpong, 500, cpu=0) == 500


def _record(writer: int, seq: int) -> bytes:
    head = struct.pack("<ii", writer, seq)
    return head + bytes([(writer * 7 + seq) % 256]) * (PIPE_BUF - len(head))


def _writer(arg):
    from rumpmp.kern import rump_sys_write

    wfd, writer, nrec = arg
    for seq in range(nrec):
        assert rump_sys_write(wfd, _record(writer, seq)) == PIPE_BUF


def many_writers(nwriters, ncpu, nrec):
    """``nwriters`` kthreads on ``ncpu`` CPUs write PIPE_BUF records into one pipe
    while this lwp reads it in odd-sized pieces."""
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        kthread_create,
        kthread_join,
        rump_sys_pipe,
        rump_sys_read,
    )

    r, w = rump_sys_pipe()
    lids = [
        kthread_create(
            PRI_KTHREAD, KTHREAD_MUSTJOIN | KTHREAD_MPSAFE, i % ncpu, _writer, (w, i, nrec), f"w{i}"
        )
        for i in range(nwriters)
    ]
    want = nwriters * nrec * PIPE_BUF
    data = bytearray()
    while len(data) < want:
        data += rump_sys_read(r, 3000)
    for lid in lids:
        kthread_join(lid)
    return bytes(data)


@pytest.mark.rump(ncpu=8)
def test_pipe_buf_writes_from_32_writers_on_8_cpus_are_never_torn(rump_kernel):
    nwriters, nrec = 32, 40
    data = rump_kernel.run(many_writers, nwriters, 8, nrec)
    last = {}
    for at in range(0, len(data), PIPE_BUF):
        rec = data[at : at + PIPE_BUF]
        writer, seq = struct.unpack_from("<ii", rec)
        assert rec == _record(writer, seq), f"torn record at {at}"
        assert seq == last.get(writer, -1) + 1  # each writer's records in order
        last[writer] = seq
    assert last == dict.fromkeys(range(nwriters), nrec - 1)
