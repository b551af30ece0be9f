"""Descriptors (issue 14): dup, dup2, dup3, fcntl, close, read/write in their forms,
lseek, ioctl; shared offsets; the open-files limit.  Ports of NetBSD's
tests/lib/libc/sys/t_dup.c and t_write.c where they map."""

from __future__ import annotations

import errno

import pytest

from rumpmp.kern import (
    F_DUPFD,
    F_DUPFD_CLOEXEC,
    F_GETFD,
    F_GETFL,
    F_SETFD,
    F_SETFL,
    FD_CLOEXEC,
    FIONBIO,
    FIONREAD,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    RLIMIT_NOFILE,
    RUMP_RFFDG,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
)
from tests.helpers import errno_of

pytestmark = pytest.mark.timeout(60)


def test_dup1_dup2_share_the_file_and_its_offset(rump_kernel):
    """t_dup:dup1, dup2: the copies name one file, so they share its offset."""
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    s.write(fd, b"0123456789")
    s.lseek(fd, 0, SEEK_SET)
    d = s.dup(fd)
    assert d == fd + 1  # the lowest free descriptor
    assert s.read(d, 3) == b"012"
    assert s.read(fd, 3) == b"345"  # the offset moved through the other descriptor
    assert s.dup2(fd, 7) == 7
    assert s.lseek(7, 0, SEEK_CUR) == 6
    s.close(fd)
    assert s.read(7, 10) == b"6789"  # the file stays open while a descriptor names it
    assert s.dup2(7, 7) == 7


def test_dup3_sets_cloexec_and_refuses_the_same_descriptor(rump_kernel):
    """t_dup:dup3: O_CLOEXEC only; EINVAL when both descriptors are the same."""
    s = rump_kernel.sys
    r, _ = s.pipe()
    assert s.dup3(r, 9, O_CLOEXEC) == 9
    assert s.fcntl(9, F_GETFD, 0) == FD_CLOEXEC
    assert s.fcntl(s.dup2(r, 10), F_GETFD, 0) == 0
    assert errno_of(s.dup3, r, r, 0) == errno.EINVAL
    assert errno_of(s.dup3, r, 11, O_APPEND) == errno.EINVAL


def test_dup_errors_are_ebadf(rump_kernel):
    """t_dup:dup_err."""
    s = rump_kernel.sys
    assert errno_of(s.dup, 5) == errno.EBADF
    assert errno_of(s.dup2, 5, 6) == errno.EBADF
    assert errno_of(s.dup2, -1, 6) == errno.EBADF
    r, _ = s.pipe()
    assert errno_of(s.dup2, r, -1) == errno.EBADF
    assert errno_of(s.close, 99) == errno.EBADF
    assert errno_of(s.read, 99, 1) == errno.EBADF


def test_dup_max_is_emfile_at_rlimit_nofile(rump_kernel):
    """t_dup:dup_max: descriptors stop at RLIMIT_NOFILE with EMFILE."""
    with rump_kernel.process() as p:
        s = p.sys
        s.setrlimit(RLIMIT_NOFILE, 20, 20)
        r, _ = s.pipe()
        fds = [s.dup(r) for _ in range(18)]
        assert fds[-1] == 19
        assert errno_of(s.dup, r) == errno.EMFILE
        assert errno_of(s.dup2, r, 20) == errno.EBADF
        assert errno_of(s.fcntl, r, F_DUPFD, 25) == errno.EINVAL
        s.close(5)
        assert s.dup(r) == 5


def test_fcntl_flags_and_dupfd(rump_kernel):
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_WRONLY, 0o644)
    assert s.fcntl(fd, F_GETFL, 0) == O_WRONLY
    s.fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK)
    assert s.fcntl(fd, F_GETFL, 0) == O_WRONLY | O_APPEND | O_NONBLOCK
    assert s.fcntl(fd, F_DUPFD, 5) == 5
    assert s.fcntl(5, F_GETFL, 0) & O_APPEND  # status flags belong to the file
    assert s.fcntl(fd, F_DUPFD_CLOEXEC, 5) == 6
    assert s.fcntl(6, F_GETFD, 0) == FD_CLOEXEC
    s.fcntl(6, F_SETFD, 0)
    assert s.fcntl(6, F_GETFD, 0) == 0
    assert errno_of(s.fcntl, fd, 999, 0) == errno.EINVAL


def test_o_append_writes_at_the_end(rump_kernel):
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    s.write(fd, b"abc")
    a = s.open("/f", O_WRONLY | O_APPEND)
    s.lseek(a, 0, SEEK_SET)
    s.write(a, b"def")
    assert s.pread(fd, 10, 0) == b"abcdef"


def test_pread_pwrite_leave_the_offset_and_readv_writev(rump_kernel):
    """t_write:write_pos and writev; readv fills the caller's buffers."""
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    assert s.writev(fd, [b"hello ", bytearray(b"world")]) == 11
    assert s.pwrite(fd, b"W", 6) == 1
    assert s.lseek(fd, 0, SEEK_CUR) == 11
    assert s.pread(fd, 5, 6) == b"World"
    bufs = [bytearray(3), bytearray(4), bytearray(10)]
    s.lseek(fd, 0, SEEK_SET)
    assert s.readv(fd, bufs) == 11
    assert bufs[0] == b"hel" and bufs[1] == b"lo W" and bufs[2][:4] == b"orld"
    assert errno_of(s.pwrite, fd, b"x", -1) == errno.EINVAL
    assert errno_of(s.writev, fd, [b"x"] * 1025) == errno.EINVAL  # t_write:writev_iovmax
    r, _ = s.pipe()
    assert errno_of(s.pread, r, 1, 0) == errno.ESPIPE
    assert errno_of(s.lseek, r, 0, SEEK_SET) == errno.ESPIPE


def test_lseek_whence(rump_kernel):
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_RDWR, 0o644)
    s.write(fd, b"x" * 100)
    assert s.lseek(fd, -10, SEEK_END) == 90
    assert s.lseek(fd, 5, SEEK_CUR) == 95
    assert s.lseek(fd, 1000, SEEK_SET) == 1000  # past the end is allowed
    s.write(fd, b"y")
    assert s.fstat(fd).st_size == 1001
    assert s.pread(fd, 3, 999) == b"\0y"  # the gap reads as zeros
    assert errno_of(s.lseek, fd, -2000, SEEK_CUR) == errno.EINVAL
    assert errno_of(s.lseek, fd, 0, 9) == errno.EINVAL


def test_ioctl_fionread_fionbio(rump_kernel):
    s = rump_kernel.sys
    r, w = s.pipe()
    s.write(w, b"12345")
    assert s.ioctl(r, FIONREAD, 0) == 5
    s.ioctl(r, FIONBIO, 1)
    assert s.fcntl(r, F_GETFL, 0) & O_NONBLOCK
    s.read(r, 5)
    assert errno_of(s.read, r, 1) == errno.EAGAIN
    s.ioctl(r, FIONBIO, 0)
    assert not s.fcntl(r, F_GETFL, 0) & O_NONBLOCK
    assert errno_of(s.ioctl, r, 0x1234, 0) == errno.ENOTTY


def test_access_modes_are_enforced_per_descriptor(rump_kernel):
    s = rump_kernel.sys
    fd = s.open("/f", O_CREAT | O_WRONLY, 0o644)
    assert errno_of(s.read, fd, 1) == errno.EBADF
    ro = s.open("/f", O_RDONLY)
    assert errno_of(s.write, ro, b"x") == errno.EBADF
    assert errno_of(s.ftruncate, ro, 0) == errno.EINVAL


def test_rffdg_children_share_open_files_not_the_table(rump_kernel):
    """A process made with RUMP_RFFDG names its parent's files: one offset."""
    with rump_kernel.process() as parent:
        fd = parent.sys.open("/f", O_CREAT | O_RDWR, 0o644)
        parent.sys.write(fd, b"abcdef")
        parent.sys.lseek(fd, 0, SEEK_SET)
        with parent.fork(RUMP_RFFDG) as child:
            assert child.sys.read(fd, 2) == b"ab"
            assert parent.sys.read(fd, 2) == b"cd"  # the offset is shared
            child.sys.close(fd)
            assert parent.sys.read(fd, 2) == b"ef"  # closing the child's copy keeps it


def test_a_process_ending_closes_its_descriptors(rump_kernel):
    """The last process of a table closes its files: the pipe's writer goes, so
    its reader sees end of file."""
    with rump_kernel.process() as p:
        s = p.sys
        r, w = s.pipe()
        with p.fork() as child:
            child.sys.write(w, b"bye")
        s.close(w)
        assert s.read(r, 10) == b"bye"
        assert s.read(r, 10) == b""


def test_kern_maxfiles_bounds_open_files(rump_kernel):
    from rumpmp.kern import rump_sys_pipe

    def fill():
        fds = []
        try:
            while True:
                fds.extend(rump_sys_pipe())
        except OSError as e:
            return e.errno, len(fds)

    rump_kernel.sysctl("kern.maxfiles", 64)
    err, n = rump_kernel.run(fill)
    assert err == errno.ENFILE and 60 <= n <= 64
